"""How the report words a number: counts, sparsities, signed differences with their intervals,
verdict counts, seeds needed and cost ratios. One place, so every section says the same figure
the same way (``+0.43 points (95% CI [-2.48, +3.35])``); the verdicts themselves come from the
comparison tables, never from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.allocation import sequential_looks
from analysis.stats import (
    BETTER,
    EQUAL,
    NOT_CONVERGED,
    UNRESOLVED,
    WITHIN,
    WORSE,
    sequential_level,
)

if TYPE_CHECKING:
    from analysis.questions import Analysis

#: How every accuracy interval in the report was computed (:func:`analysis.stats.welch`).
WELCH = "Welch 95% interval over seeds"


def how_judged(a: Analysis) -> str:
    """How the comparisons with dense and between methods of the analysis ``a`` were judged:
    :data:`WELCH`, or in an adaptive sweep (its spec has ``search.seeds: {initial, max}``) the
    sequential interval (:data:`analysis.stats.SEQUENTIAL`), whose level per look is not 95%."""
    looks = sequential_looks(a.experiment.spec)
    if not looks:
        return WELCH
    level = sequential_level(len(looks))
    at = ", ".join(map(str, looks))
    return (
        f"Welch interval over seeds at {level:.2%} per look (Bonferroni over looks at {at} seeds)"
    )


#: A verdict of an accuracy comparison as a sentence says it.
VERDICT_WORDS = {
    BETTER: "better",
    WORSE: "worse",
    UNRESOLVED: "not resolved",
    WITHIN: "within tolerance",
    EQUAL: "equal within tolerance",
    NOT_CONVERGED: NOT_CONVERGED,
}


def diff_cell(d: float, lo: float, hi: float) -> str:
    """A difference and its 95% interval for a table cell: ``-0.47 [-3.33, +2.39]``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{signed(d)} (no interval)"
    return f"{signed(d)} [{signed(lo)}, {signed(hi)}]"


def whole(v: float) -> str:
    """A count (nonzero parameters; a seed mean of counts) as a whole number: ``26,702``."""
    return f"{round(float(v)):,}" if np.isfinite(v) else "n/a"


def fmt(v: float, digits: int = 3) -> str:
    """A measured value: ``digits`` significant digits below 1, that many decimals (trailing
    zeros dropped) up to 10,000, whole with thousands separators above: 0.942, 12.583, 61,812."""
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def sp(v: float) -> str:
    """A sparsity (or a percentage of weights) with the digits IMP needs: 0.9375, 6.25."""
    return "n/a" if not np.isfinite(v) else f"{v:.4g}"


def signed(v: float) -> str:
    """A difference in points, always signed, two decimals (never ``-0.00``): ``+0.43``."""
    return "n/a" if not np.isfinite(v) else f"{v + 0.0:+.2f}".replace("-0.00", "+0.00")


def interval(lo: float, hi: float) -> str:
    """A 95% interval of a difference: ``95% CI [-2.48, +3.35]``, or why there is none."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval (a side has one seed)"
    return f"95% CI [{signed(lo)}, {signed(hi)}]"


def seeds_phrase(need: float) -> str:
    """How many seeds the observed noise would need, in words."""
    if not np.isfinite(need):
        if need == np.inf:
            return "more than 1000 seeds per configuration (the mean sits on the line)"
        return "at least 2 seeds per configuration to measure the noise"
    return f"about {int(need)} seeds per configuration"


def diff(r: pd.Series, unit: str = "points") -> str:
    """A comparison row's difference with its interval: ``+0.43 points (95% CI [...])``."""
    return f"{signed(r['diff_pts'])} {unit} ({interval(r['diff_ci95_lo'], r['diff_ci95_hi'])})"


def counts(verdicts: pd.Series, words: dict[str, str]) -> str:
    """How many of ``verdicts`` read each verdict, in ``words``: ``faster at 0, slower at 3,
    not resolved at 21 of 24``; "not converged" is always named when present."""
    n = len(verdicts)
    if (verdicts == NOT_CONVERGED).any():  # every count names them: never a silent remainder
        words = {**words, NOT_CONVERGED: NOT_CONVERGED}
    parts = [f"{words[v]} at {int((verdicts == v).sum())}" for v in words]
    return ", ".join(parts) + f" of {n}"


def times(r: float) -> str:
    """A ratio: 3 digits, more near 1 (a 0.3% memory overhead is not "1.00x more")."""
    if not np.isfinite(r):
        return "n/a"
    if abs(r - 1) < 0.01 and round(r, 4) != 1:
        return f"{r:.4f}x"
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def pct(sparsity: float) -> str:
    """A sparsity as a percentage, 3 significant digits: ``87.5%``."""
    return f"{100 * sparsity:.3g}%"
