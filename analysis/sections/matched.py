"""Large-sparse vs small-dense at matched nonzero parameters (matched.csv's verdicts, from
:func:`analysis.equal_budget.matched_pairs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.equal_budget import MATCH_RTOL
from analysis.sections.section import Section, compact, no_data
from analysis.stats import BETTER, EQUAL, NOT_CONVERGED, UNRESOLVED, WORSE

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    y = a.y
    s = Section("matched", "Large-sparse vs small-dense at matched nonzero parameters")
    if a.usable.empty:
        return no_data(s, a.why_unusable)
    pairs = a.matched
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
            f"; by the {w.how_judged(a)}, the larger sparse model is better in "
            f"{int((v == BETTER).sum())}, worse in {int((v == WORSE).sum())}, equal within "
            f"{w.fmt(a.tolerance)} point(s) in {int((v == EQUAL).sum())}, not resolved in "
            f"{int((v == UNRESOLVED).sum())}"
        )
        if (v == NOT_CONVERGED).any():
            text += f", {NOT_CONVERGED} in {int((v == NOT_CONVERGED).sum())} (no verdict)"
    s.sentences.append(text + ".")
    s.answer, s.summary = _answer(a, pairs)
    s.tables.append(("Matched pairs", pairs))
    s.charts.append(charts.pairs_chart(pairs, y))
    return s


def _answer(a: Analysis, pairs: pd.DataFrame) -> tuple[str, tuple[str, pd.DataFrame]]:
    """matched.csv's verdicts in one sentence, and its pairs as the compact table (sparse -
    dense in points)."""
    y = a.y
    med = pairs["sparse_minus_dense"].median() * a.scale
    head = (
        f"Against a small dense model with as many nonzero params (within {int(MATCH_RTOL * 100)}%)"
    )
    if "verdict" not in pairs:
        answer = (
            f"{head}, a larger sparse model differs by {med:+.2f} points of {y} (median of "
            f"{len(pairs)} pairs; no seed spread to judge it)."
        )
        return answer, ("Matched pairs", pairs)
    v = pairs["verdict"]
    answer = (
        f"{head}, a larger sparse model is better in {int((v == BETTER).sum())}, worse in "
        f"{int((v == WORSE).sum())}, equal within tolerance in {int((v == EQUAL).sum())} and "
        f"not resolved in {int((v == UNRESOLVED).sum())} of {len(pairs)} pairs"
        + (
            f", {int((v == NOT_CONVERGED).sum())} {NOT_CONVERGED}"
            if (v == NOT_CONVERGED).any()
            else ""
        )
        + f" (median {med:+.2f} points of {y}, {w.how_judged(a)})."
    )
    rows = pairs.assign(
        label=pairs["sparse_label"].astype(str) + " vs " + pairs["dense_label"].astype(str),
        sparsity=pairs["sparse_sparsity"],
        diff_pts=pairs["sparse_minus_dense"] * a.scale,
        diff_ci95_lo=pairs["ci95_lo"] * a.scale,
        diff_ci95_hi=pairs["ci95_hi"] * a.scale,
    )
    caption = f"Matched pairs: large sparse - small dense in points of {y} (matched.csv)"
    return answer, (caption, compact(rows, n=("sparse_n_seeds", "dense_n_seeds")))
