"""Research question 5, MLP vs CNN: each architecture's best point, and both at the smallest
parameter budget they both reach (:func:`analysis.equal_budget.arch_at_budget`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.convergence import IMPROVING_NOTE
from analysis.pareto import front_table
from analysis.sections.section import Section, no_data
from analysis.sections.tolerance import best_resolved, compared
from analysis.stats import BETTER, NOT_CONVERGED, UNRESOLVED, WORSE, verdict, welch
from sparsity_tune.metrics import M

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("arch", "5. MLP vs CNN")
    c = a.usable
    if c.empty or c["arch"].nunique() < 2:
        archs = ", ".join(sorted(c["arch"].unique())) if len(c) else "none"
        return no_data(s, f"the finished trials cover one architecture only ({archs})")
    x = M.nonzero_params
    d = compared(a)
    best_tol = best_resolved(d, ["arch"]).set_index("arch") if len(d) else pd.DataFrame()
    fronts = {}
    budget = c.groupby("arch")[x].min().max()
    maximise = a.sign > 0
    at_budget = {}
    for arch, adf in c.groupby("arch"):
        fronts[arch] = front_table(adf, x, y).table
        top = adf.loc[adf[y].idxmax() if maximise else adf[y].idxmin()]
        under = adf[adf[x] <= budget]
        if len(under):
            at_budget[arch] = under.loc[under[y].idxmax() if maximise else under[y].idxmin()]
        if not (d["arch"] == arch).any():
            tol_txt = ""
        elif arch in best_tol.index:
            tol_txt = (
                f"; highest sparsity resolved within {w.fmt(tol)} point(s) of dense: "
                f"{w.sp(best_tol.loc[arch, M.sparsity])}"
            )
        else:
            tol_txt = f"; no pruned point resolved within {w.fmt(tol)} point(s) of dense"
        b = at_budget.get(arch)
        s.sentences.append(
            f"{arch}: best {y} {w.fmt(top[y])} ({top['label']}, {w.whole(top[x])} nonzero params); "
            f"best with at most {w.whole(budget)} nonzero params: "
            f"{w.fmt(b[y]) if b is not None else 'n/a'}{tol_txt}."
        )
    if len(at_budget) >= 2:
        (na, ra), (nb, rb) = sorted(at_budget.items(), key=lambda kv: -a.sign * kv[1][y])[:2]
        k = a.sign * a.scale
        dd = welch(
            [k * ra[y]], [a.scale * ra[f"{y}_std"]], [ra["n_seeds"]],
            [k * rb[y]], [a.scale * rb[f"{y}_std"]], [rb["n_seeds"]],
        )  # fmt: skip
        v = {BETTER: "better", WORSE: "worse", UNRESOLVED: "not resolved"}
        word = f"{na} {v[verdict(dd['lo'], dd['hi'], 0.0)[0]]}"
        still = [(n, r) for n, r in ((na, ra), (nb, rb)) if is_open(r)]
        if still:
            notes = "; ".join(f"{n}: {r[IMPROVING_NOTE]}" for n, r in still)
            word = f"{NOT_CONVERGED}, no verdict ({notes})"
        s.sentences.append(
            f"At most {w.whole(budget)} nonzero params, {na} vs {nb}: {w.signed(dd['diff'][0])} "
            f"points of {y} ({w.interval(dd['lo'][0], dd['hi'][0])}, {w.WELCH}): {word}."
        )
    s.charts.append(charts.arch_compare_chart(c, fronts, x, y))
    return s


def is_open(r: pd.Series) -> bool:
    """Whether a point (a row of ``a.points``) was still improving at its end (NaN: unjudged)."""
    v = r.get("still_improving")
    return bool(pd.notna(v) and v)
