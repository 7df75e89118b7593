"""The report's sections, one module each, in the order :data:`analysis.questions.SECTIONS`
gives. Each exposes ``build(a: Analysis) -> Section``: it phrases the verdicts the comparison
tables hold (:mod:`analysis.compare`, :mod:`analysis.measured`, :mod:`analysis.equal_budget`)
and never computes one of its own."""
