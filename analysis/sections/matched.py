"""Large-sparse vs small-dense at matched nonzero parameters (matched.csv's verdicts, from
:func:`analysis.equal_budget.matched_pairs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis import charts
from analysis import wording as w
from analysis.equal_budget import MATCH_RTOL, matched_pairs
from analysis.sections.section import Section, no_data
from analysis.stats import BETTER, NOT_CONVERGED, UNRESOLVED, WORSE

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    y = a.y
    s = Section("matched", "Large-sparse vs small-dense at matched nonzero parameters")
    if a.usable.empty:
        return no_data(s, a.why_unusable)
    pairs = matched_pairs(a.usable, y)
    if pairs.empty:
        return no_data(
            s,
            "no dense configuration has a sparse configuration of a larger model "
            f"with nonzero_params within {int(MATCH_RTOL * 100)}% of it",
        )
    med = pairs["sparse_minus_dense"].median() * a.scale
    text = (
        f"{len(pairs)} matched pairs (nonzero_params within {int(MATCH_RTOL * 100)}%); "
        f"median difference large-sparse minus small-dense {med:+.2f} points of {y}"
    )
    if "verdict" in pairs:
        v = pairs["verdict"]
        text += (
            f"; by the {w.WELCH}, the larger sparse model is better in {int((v == BETTER).sum())}, "
            f"worse in {int((v == WORSE).sum())}, not resolved in {int((v == UNRESOLVED).sum())}"
        )
        if (v == NOT_CONVERGED).any():
            text += f", {NOT_CONVERGED} in {int((v == NOT_CONVERGED).sum())} (no verdict)"
    s.sentences.append(text + ".")
    s.tables.append(("Matched pairs", pairs))
    s.charts.append(charts.pairs_chart(pairs, y))
    return s
