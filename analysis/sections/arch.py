"""Research question 5, MLP vs CNN: each architecture's best point, and both at the smallest
parameter budget they both reach (:func:`analysis.equal_budget.arch_at_budget`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.equal_budget import arch_at_budget
from analysis.pareto import front_table
from analysis.sections.section import Section, no_data
from analysis.sections.tolerance import best_resolved, compared
from analysis.stats import BETTER, EQUAL, NOT_CONVERGED
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
    pair = arch_at_budget(c, y, a.scale, a.sign, x, tolerance=tol)
    if len(pair):
        r = pair.iloc[0]
        word = f"{r['arch_a']} {w.VERDICT_WORDS.get(r['verdict'], r['verdict'])}"
        if r["verdict"] == NOT_CONVERGED:
            word = f"{NOT_CONVERGED}, no verdict ({r['convergence_note']})"
        s.answer = _answer(r, y)
        s.summary = (
            f"The best of each architecture with at most {w.whole(budget)} nonzero params: "
            f"a - b in points of {y} (arch.csv)",
            pd.DataFrame(
                {
                    "configuration": [f"{r['label_a']} vs {r['label_b']}"],
                    f"{y}": [f"{w.fmt(r['y_a'])} vs {w.fmt(r['y_b'])}"],
                    "difference (95% CI)": [
                        w.diff_cell(r["diff_pts"], r["diff_ci95_lo"], r["diff_ci95_hi"])
                    ],
                    "verdict": [r["verdict"]],
                    "seeds": [f"{int(r['n_a'])} vs {int(r['n_b'])}"],
                }
            ),
        )
        s.sentences.append(
            f"At most {w.whole(budget)} nonzero params, {r['arch_a']} vs {r['arch_b']}: "
            f"{w.signed(r['diff_pts'])} points of {y} "
            f"({w.interval(r['diff_ci95_lo'], r['diff_ci95_hi'])}, {w.WELCH}): {word}."
        )
    s.charts.append(charts.arch_compare_chart(c, fronts, x, y))
    return s


def _answer(r: pd.Series, y: str) -> str:
    """arch.csv's row in one sentence: which architecture is better at the equal budget."""
    at = f"At most {w.whole(r['budget'])} nonzero params"
    ci = w.interval(r["diff_ci95_lo"], r["diff_ci95_hi"])
    how = f"{w.signed(r['diff_pts'])} points of {y}, {ci}"
    if r["verdict"] == BETTER:
        return f"{at}, {r['arch_a']} is better than {r['arch_b']} ({how})."
    if r["verdict"] == EQUAL:
        return f"{at}, {r['arch_a']} and {r['arch_b']} are equal within tolerance ({how})."
    if r["verdict"] == NOT_CONVERGED:
        return f"{at}, {r['arch_a']} vs {r['arch_b']} reads no verdict: {r['convergence_note']}."
    return f"{at}, {r['arch_a']} vs {r['arch_b']} is not resolved ({how})."
