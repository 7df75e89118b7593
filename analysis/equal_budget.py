"""Comparisons at an equal parameter budget: each dense configuration against the sparse
configuration of a larger model with about as many nonzero parameters (Zhu & Gupta 2017: "to
prune, or not to prune"), and the best of two architectures within the budget both reach, with
the Welch interval and verdict of :mod:`analysis.stats`. Both sides of either are peers, neither
the reference, so the verdict is symmetric: better, worse, or equal within the tolerance (the
two one-sided tests of :func:`analysis.stats.tost_bounds`: the 90% interval inside it). The
report's sections only phrase these verdicts; ``matched.csv`` and ``arch.csv`` hold them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.convergence import IMPROVING_NOTE, open_flags
from analysis.points import P
from analysis.stats import NOT_CONVERGED, tost_bounds, verdict, welch
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M, direction

MATCH_RTOL = 0.2  # nonzero params of a "matched" pair differ by at most 20%


def matched_pairs(
    configs: pd.DataFrame, y: str, rtol: float = MATCH_RTOL, tolerance: float = 0.0
) -> pd.DataFrame:
    """Each dense configuration beside the sparse configuration of a *larger* model of the same
    architecture whose nonzero_params is closest to it (within ``rtol``), with the difference
    sparse - dense (sign-flipped for a minimised ``y``) and, where the seed spread is known, its
    Welch interval and symmetric verdict (``tolerance`` in units of ``y``: the margin of
    :data:`~analysis.stats.EQUAL`; 0, better or worse only). Operating points (with
    ``point_id``) also give ``sparse_point_id`` and ``dense_point_id``, the allocator's keys.

    Sparse candidates are sorted by nonzero_params per architecture, so each dense configuration
    looks only at its window (numpy searchsorted), never at all pairs.
    """
    c = configs.dropna(subset=[M.nonzero_params, M.total_params, y])
    dense = c[c[M.sparsity] <= DENSE_EPS]
    sparse = c[c[M.sparsity] > DENSE_EPS]
    rows = []
    for arch, d_arch in dense.groupby("arch", sort=True):
        s_arch = sparse[sparse["arch"] == arch].sort_values(M.nonzero_params, kind="stable")
        if s_arch.empty:
            continue
        nz = s_arch[M.nonzero_params].to_numpy(float)
        total = s_arch[M.total_params].to_numpy(float)
        for i, d in enumerate(d_arch.itertuples(index=False)):
            d_nz, d_total = float(d.nonzero_params), float(d.total_params)
            lo = np.searchsorted(nz, d_nz * (1 - rtol), side="left")
            hi = np.searchsorted(nz, d_nz * (1 + rtol), side="right")
            window = np.arange(lo, hi)
            window = window[total[window] > d_total]
            if window.size == 0:
                continue
            j = window[np.argmin(np.abs(nz[window] - d_nz))]
            rows.append((arch, d_arch.index[i], s_arch.index[j]))
    if not rows:
        return pd.DataFrame()
    di = [r[1] for r in rows]
    si = [r[2] for r in rows]
    out = pd.DataFrame(
        {
            "arch": [r[0] for r in rows],
            "dense_label": c.loc[di, "label"].to_numpy(),
            "dense_nonzero_params": c.loc[di, M.nonzero_params].to_numpy(),
            f"dense_{y}": c.loc[di, y].to_numpy(),
            "sparse_label": c.loc[si, "label"].to_numpy(),
            "sparse_nonzero_params": c.loc[si, M.nonzero_params].to_numpy(),
            "sparse_total_params": c.loc[si, M.total_params].to_numpy(),
            "sparse_sparsity": c.loc[si, M.sparsity].to_numpy(),
            f"sparse_{y}": c.loc[si, y].to_numpy(),
        }
    )
    if P.point_id in c:
        out = out.assign(
            sparse_point_id=c.loc[si, P.point_id].to_numpy(),
            dense_point_id=c.loc[di, P.point_id].to_numpy(),
        )
    sign = 1.0 if direction(y) == "max" else -1.0
    out = out.assign(sparse_minus_dense=sign * (out[f"sparse_{y}"] - out[f"dense_{y}"]))
    if "n_seeds" in c:
        out = out.assign(
            sparse_n_seeds=c.loc[si, "n_seeds"].to_numpy(),
            dense_n_seeds=c.loc[di, "n_seeds"].to_numpy(),
        )
    if f"{y}_std" in c and "n_seeds" in c:
        d = welch(
            sign * c.loc[si, y].to_numpy(float),
            c.loc[si, f"{y}_std"].to_numpy(float),
            c.loc[si, "n_seeds"].to_numpy(float),
            sign * c.loc[di, y].to_numpy(float),
            c.loc[di, f"{y}_std"].to_numpy(float),
            c.loc[di, "n_seeds"].to_numpy(float),
        )
        eq = tost_bounds(d["diff"], d["se"], d["df"])
        word = verdict(d["lo"], d["hi"], tolerance, symmetric=True, equivalence=eq)
        out = out.assign(ci95_lo=d["lo"], ci95_hi=d["hi"], verdict=word)
        flag = open_flags(c)  # points (analyse): a side still improving reads no verdict
        open_ = flag.loc[si].to_numpy() | flag.loc[di].to_numpy()
        out.loc[open_, "verdict"] = NOT_CONVERGED
    return out


#: arch.csv: the columns of :func:`arch_at_budget` (``a``: the architecture with the better mean).
ARCH_COLS = (
    "budget",
    "arch_a",
    "arch_b",
    "label_a",
    "label_b",
    "y_a",
    "y_b",
    "n_a",
    "n_b",
    "diff_pts",
    "diff_ci95_lo",
    "diff_ci95_hi",
    "verdict",
    "convergence_note",
)


def arch_at_budget(
    points: pd.DataFrame,
    y: str,
    scale: float,
    sign: float,
    x: str = M.nonzero_params,
    tolerance: float = 0.0,
) -> pd.DataFrame:
    """The two best architectures at the smallest budget of ``x`` that every architecture
    reaches (the largest of their smallest values), each by its best point within that budget:
    one row, ``a`` the better mean, with the difference a - b in points (``sign * scale``), its
    Welch interval and symmetric verdict (``tolerance`` in points: the margin of
    :data:`~analysis.stats.EQUAL`), or ``not converged`` with ``convergence_note`` where a side
    was still improving at its end. Empty with fewer than two architectures."""
    c = points[points[x].notna() & points[y].notna()] if len(points) else points
    if c.empty or c["arch"].nunique() < 2:
        return pd.DataFrame(columns=ARCH_COLS)
    budget = float(points.groupby("arch")[x].min().max())
    best = []
    for _, adf in c[c[x] <= budget].groupby("arch", sort=True):
        best.append(adf.loc[(sign * adf[y]).idxmax()])
    if len(best) < 2:
        return pd.DataFrame(columns=ARCH_COLS)
    ra, rb = sorted(best, key=lambda r: -sign * r[y])[:2]
    k = sign * scale
    d = welch(
        [k * ra[y]], [scale * ra[f"{y}_std"]], [ra["n_seeds"]],
        [k * rb[y]], [scale * rb[f"{y}_std"]], [rb["n_seeds"]],
    )  # fmt: skip
    eq = tost_bounds(d["diff"], d["se"], d["df"])
    word = verdict(d["lo"], d["hi"], tolerance, symmetric=True, equivalence=eq)[0]
    open_ = [r for r in (ra, rb) if pd.notna(r.get("still_improving")) and r["still_improving"]]
    note = "; ".join(f"{r['arch']}: {r.get(IMPROVING_NOTE, '')}" for r in open_)
    row = {
        "budget": budget,
        "arch_a": ra["arch"],
        "arch_b": rb["arch"],
        "label_a": ra["label"],
        "label_b": rb["label"],
        "y_a": ra[y],
        "y_b": rb[y],
        "n_a": int(ra["n_seeds"]),
        "n_b": int(rb["n_seeds"]),
        "diff_pts": d["diff"][0],
        "diff_ci95_lo": d["lo"][0],
        "diff_ci95_hi": d["hi"][0],
        "verdict": NOT_CONVERGED if open_ else word,
        "convergence_note": note,
    }
    return pd.DataFrame([row], columns=ARCH_COLS)
