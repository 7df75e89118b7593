"""Research question 2: the highest sparsity whose difference to the dense baseline is resolved
within the tolerance (points.csv's verdicts, from :func:`analysis.compare.versus_dense`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.compare import DIFF_COLS
from analysis.points import P
from analysis.sections.section import Section, compact, lines, no_data
from analysis.stats import BETTER, NOT_CONVERGED, UNRESOLVED, WITHIN, WORSE
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M

if TYPE_CHECKING:
    from analysis.questions import Analysis


_TOL_COLS = [
    "arch",
    "size",
    P.variant,
    P.round,
    M.sparsity,
    "n_seeds",
    "dense_n",
    *DIFF_COLS,
    "label",
]


def _not_converged_sentence(g: pd.DataFrame) -> str:
    """How many compared points were still improving, with the one improving the most, or ""."""
    open_ = g[g["verdict"] == NOT_CONVERGED]
    if open_.empty:
        return ""
    r = open_.iloc[0]
    return (
        f" {len(open_)} {'is' if len(open_) == 1 else 'are'} {NOT_CONVERGED}: a side was "
        f"still improving when its training ended, so no verdict is read from it (e.g. "
        f"sparsity {w.sp(r[M.sparsity])}, {r['label']}: {r['convergence_note']}); train longer "
        "or set train.until."
    )


_BEST_COLS = ("arch", "size", M.sparsity, "diff_pts", "diff_ci95_lo", "diff_ci95_hi", "n_seeds")
_BEST_COLS = (*_BEST_COLS, "label")


def compared(a: Analysis) -> pd.DataFrame:
    """Pruned usable points that have a dense baseline."""
    d = a.usable
    return d[(d[M.sparsity] > DENSE_EPS) & d["dense_n"].fillna(0).gt(0)]


def build(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section(
        "tolerance", f"2. Highest sparsity within {w.fmt(tol)} point(s) of the dense baseline"
    )
    if a.usable.empty:
        return no_data(s, a.why_unusable)
    d = compared(a)
    if d.empty:
        return no_data(
            s,
            "no dense baseline (a configuration with sparsity 0 and otherwise the same "
            "settings, or round 0 of an IMP run) among the finished trials; add a dense run "
            "(pruning.method=none, or final_sparsity 0) to the sweep",
        )
    s.answer, s.summary = _answer(a, d)
    ok = d["verdict"].isin([WITHIN, BETTER])
    words = {WITHIN: "within tolerance", BETTER: "better", WORSE: "worse", UNRESOLVED: "unresolved"}
    for arch, g in d.groupby("arch", sort=True):
        good = g[ok.loc[g.index]].sort_values([M.sparsity, "diff_pts"], ascending=[False, False])
        text = f"{arch}: "
        if len(good):
            r = good.iloc[0]
            text += (
                f"up to sparsity {w.sp(r[M.sparsity])} ({r['label']}) is within {w.fmt(tol)} "
                f"point(s) of dense: {y} {w.fmt(r[y])} vs {w.fmt(r[f'dense_{y}'])}, difference "
                f"{w.diff(r)} ({int(r['n_seeds'])} vs {int(r['dense_n'])} seeds, {w.how_judged(a)})."
            )
            floor = r[M.sparsity]
        else:
            text += (
                f"no pruned point is resolved within {w.fmt(tol)} point(s) of dense with these "
                "seeds."
            )
            floor = -1.0
        beyond = g[(g["verdict"] == UNRESOLVED) & (g[M.sparsity] > floor)]
        if len(beyond):
            # the sparsest unresolved point whose mean is within (else any), and of those at
            # that sparsity the one the fewest extra seeds would settle
            near = beyond[beyond["diff_pts"] >= -tol]
            near = near if len(near) else beyond
            top = near[np.isclose(near[M.sparsity], near[M.sparsity].max(), atol=5e-4)]
            r = top.sort_values("seeds_needed", na_position="last").iloc[0]
            text += (
                f" Not resolved with {int(r['n_seeds'])} seed(s): sparsity {w.sp(r[M.sparsity])} "
                f"({r['label']}): {w.diff(r)}; the observed noise would need "
                f"{w.seeds_phrase(r['seeds_needed'])}."
            )
        counts = {v: int((g["verdict"] == v).sum()) for v in [*words, NOT_CONVERGED]}
        text += (
            f" Of {len(g)} pruned points: {counts[WITHIN] + counts[BETTER]} within tolerance "
            f"({counts[BETTER]} of them better than dense), {counts[WORSE]} worse by more than "
            f"the tolerance, {counts[UNRESOLVED]} not resolved."
        )
        text += _not_converged_sentence(g)
        s.sentences.append(text)
    table = d.sort_values(["arch", "size", P.variant, M.sparsity], kind="stable")
    cols = [c for c in _TOL_COLS if c in table]
    cols[cols.index("n_seeds") : cols.index("n_seeds")] = [y, f"dense_{y}"]
    s.tables.append(
        (
            f"Every pruned point against its dense baseline: difference of {y} in points with "
            f"its {w.how_judged(a)}; verdict against -{w.fmt(tol)} point(s) (all in points.csv)",
            table[cols],
        )
    )
    best = best_resolved(d, ["arch", "size"])
    s.tables.append(
        (
            "Highest sparsity resolved within tolerance, per architecture and size",
            best[[c for c in _BEST_COLS if c in best]],
        )
    )
    by_line = lines(a.usable)
    dense = by_line[by_line[M.sparsity] <= DENSE_EPS]
    hl = pd.DataFrame(
        {
            "group": dense["line"],
            "facet": dense["arch"],
            "value": dense[y] - tol / a.scale * a.sign,
        }
    )
    s.charts.append(
        charts.by_group_chart(
            by_line,
            "acc_vs_sparsity",
            f"{y} vs sparsity per architecture and size",
            M.sparsity,
            [y],
            "arch",
            group="line",
            hlines={y: hl},
            errors="ci95",
            note=f"dashed: dense {y} minus {w.fmt(tol)} point(s), per size; bars: 95% interval "
            "over seeds (the verdicts use the interval of the difference, in the table)",
        )
    )
    return s


def _answer(a: Analysis, d: pd.DataFrame) -> tuple[str, tuple[str, pd.DataFrame]]:
    """Per architecture, the highest sparsity resolved within tolerance (points.csv's verdicts),
    in one sentence; per architecture, size and variant the sparsest point resolved within,
    else its sparsest point, as the compact table."""
    tol = w.fmt(a.tolerance)
    parts = []
    for arch, g in d.groupby("arch", sort=True):
        v = g["verdict"]
        n_ok, n_worse = int(v.isin([WITHIN, BETTER]).sum()), int((v == WORSE).sum())
        best = best_resolved(g, ["arch"])
        top = w.sp(best[M.sparsity].iloc[0]) if len(best) else "none"
        parts.append(
            f"{arch} {top} ({n_ok} of {len(g)} pruned points within, {n_worse} worse, "
            f"{len(g) - n_ok - n_worse} not resolved)"
        )
    answer = (
        f"Highest sparsity whose {a.y} is resolved within {tol} point(s) of the dense "
        f"baseline ({w.how_judged(a)} of the difference): " + "; ".join(parts) + "."
    )
    good = d["verdict"].isin([WITHIN, BETTER]).astype(int)
    rows = d.assign(_ok=good).sort_values(["_ok", M.sparsity, "diff_pts"], kind="stable")
    rows = rows.groupby(["arch", "size", P.variant], sort=True).tail(1)
    rows = rows.sort_values(["arch", "size", P.variant], kind="stable")
    caption = (
        f"Per configuration, the sparsest point resolved within {tol} point(s) of dense, else "
        f"its sparsest point: pruned - dense in points of {a.y}"
    )
    return answer, (caption, compact(rows))


def best_resolved(d: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    ok = d[d["verdict"].isin([WITHIN, BETTER])]
    if ok.empty:
        return ok
    ok = ok.sort_values([M.sparsity, "diff_pts"], ascending=[False, False])
    return ok.groupby(keys, sort=True).head(1).sort_values(keys)
