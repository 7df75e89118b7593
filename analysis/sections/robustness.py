"""Research question 3: whether the answer holds across depth, width and seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.sections.section import Section, lines, no_data
from analysis.sections.tolerance import best_resolved, compared
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("robustness", "3. Robustness across depth, width and seeds")
    if a.usable.empty:
        return no_data(s, a.why_unusable)
    d = compared(a)
    per_size = best_resolved(d, ["arch", "size"])
    for arch, g in a.usable.groupby("arch", sort=True):
        sizes = sorted(g["size"].astype(str).unique())
        if len(sizes) < 2:
            continue
        best = per_size[per_size["arch"] == arch].set_index("size")[M.sparsity]
        vals = {sz: float(best.get(sz, 0.0)) for sz in sizes}
        lo, hi = min(vals, key=vals.get), max(vals, key=vals.get)
        if vals[lo] == vals[hi]:
            s.sentences.append(
                f"{arch}: across {len(sizes)} sizes the highest sparsity resolved within "
                f"{w.fmt(tol)} point(s) of dense is {w.sp(vals[hi])} for every size."
            )
        else:
            s.sentences.append(
                f"{arch}: across {len(sizes)} sizes the highest sparsity resolved within "
                f"{w.fmt(tol)} point(s) of dense ranges from {w.sp(vals[lo])} ({lo}) to "
                f"{w.sp(vals[hi])} ({hi}) (0: none resolved within)."
            )
    if a.usable.groupby("arch")["size"].nunique().max() < 2:
        s.sentences.append(
            "Not available: depth/width comparison (one model size per architecture)."
        )
    multi = a.usable[(a.usable["n_seeds"] >= 2) & a.usable[f"{y}_std"].notna()]
    if multi.empty:
        s.sentences.append("Not available: seed spread (every configuration ran with one seed).")
    else:
        std = multi[f"{y}_std"] * a.scale
        worst = multi.loc[std.idxmax()]
        text = (
            f"Across seeds, the std of {y} is {w.fmt(std.mean(), 2)} points on average over "
            f"{len(multi)} operating points with ≥2 seeds (largest {w.fmt(std.max(), 2)} points "
            f"at {worst['label']})"
        )
        half = ((d["diff_ci95_hi"] - d["diff_ci95_lo"]) / 2).dropna()
        if len(half):
            text += (
                f"; the 95% interval of a difference to dense is ±{w.fmt(half.median(), 2)} "
                f"points wide (median), against a tolerance of {w.fmt(tol)}"
            )
        s.sentences.append(text + ".")
    s.answer, s.summary = _answer(a, d, per_size)
    if len(d):
        r = d.assign(seed_std_pts=d[f"{y}_std"] * a.scale)
        r = r.assign(diff_pts_ci95_hi=r["diff_ci95_hi"], diff_pts_ci95_lo=r["diff_ci95_lo"])
        s.charts.append(
            charts.by_group_chart(
                lines(r).query(f"{M.sparsity} > {DENSE_EPS}"),
                "robustness",
                "Difference to dense and seed spread vs sparsity",
                M.sparsity,
                ["diff_pts", "seed_std_pts"],
                "arch",
                group="line",
                errors="ci95",
                note="diff_pts: pruned minus dense in points, bars: its 95% interval; "
                "seed_std_pts: std over seeds",
            )
        )
    return s


def _answer(
    a: Analysis, d: pd.DataFrame, per_size: pd.DataFrame
) -> tuple[str, tuple[str, pd.DataFrame] | None]:
    """Whether the highest sparsity resolved within tolerance moves with the model size, and how
    wide the seed noise leaves a difference to dense, in one sentence; per architecture and size
    the figures behind it as the compact table."""
    if d.empty:
        return "", None
    tol = w.fmt(a.tolerance)
    best = per_size.set_index(["arch", "size"])[M.sparsity] if len(per_size) else pd.Series([])
    half = (d["diff_ci95_hi"] - d["diff_ci95_lo"]) / 2
    rows = []
    for (arch, size), g in d.groupby(["arch", "size"], sort=True):
        rows.append(
            {
                "arch": arch,
                "size": size,
                "pruned points": len(g),
                f"highest sparsity within {tol} point(s)": float(best.get((arch, size), 0.0)),
                f"seed std of {a.y} (points, mean)": float((g[f"{a.y}_std"] * a.scale).mean()),
                "95% interval half-width (points, median)": float(half.loc[g.index].median()),
            }
        )
    table = pd.DataFrame(rows)
    col = f"highest sparsity within {tol} point(s)"
    parts = []
    for arch, g in table.groupby("arch", sort=True):
        lo, hi = g[col].min(), g[col].max()
        same = f"{w.sp(hi)} at every size" if lo == hi else f"{w.sp(lo)} to {w.sp(hi)}"
        parts.append(f"{arch} {same} ({len(g)} sizes)")
    answer = (
        f"Highest sparsity resolved within {tol} point(s) of dense, across model sizes (0: none): "
        + "; ".join(parts)
        + f"; with these seeds a difference to dense carries a 95% interval of "
        f"±{w.fmt(half.median(), 2)} points (median)."
    )
    return answer, ("Per model size: the answer of section 2 and the seed noise behind it", table)
