"""Two-objective Pareto fronts and hypervolume, vectorised with numpy (no Python loop over points).

Both functions take a direction per axis (``"min"`` or ``"max"``, see
:func:`sparsity_tune.metrics.direction`) and flip maximised axes internally, so the core works
on "both minimised" data. Rows with a NaN on either axis are never on a front.

Dominance: ``p`` dominates ``q`` when ``p`` is no worse on both axes and strictly better on one.
Identical points do not dominate each other, so duplicates of a front point are all on the front.

>>> pareto_mask([1, 2, 3], [0.5, 0.9, 0.8]).tolist()   # min cost, max accuracy
[True, True, False]
>>> hypervolume_2d([1, 2], [0.5, 0.9], ref=(3, 0.0))     # (2-1)*0.5 + (3-2)*0.9
1.4
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.points import P
from analysis.stats import verdict, welch
from analysis.tables import identity_columns
from sparsity_tune.metrics import M, direction

Direction = str  # "min" | "max"
REF_MARGIN = 0.1  # hypervolume reference: the worst observed values, 10% of the range beyond
REFERENCE_TEXT = "worst observed value on each axis, pushed 10% of the observed range further"


def _as_min(values: Sequence[float] | np.ndarray, direction: Direction) -> np.ndarray:
    if direction not in ("min", "max"):
        raise ValueError(f"direction={direction!r} is not allowed; use 'min' or 'max'")
    a = np.asarray(values, dtype=float)
    return -a if direction == "max" else a


def pareto_mask(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    x_dir: Direction = "min",
    y_dir: Direction = "max",
) -> np.ndarray:
    """Boolean mask of the non-dominated points; O(n log n) via one sort and a running minimum."""
    a, b = _as_min(x, x_dir), _as_min(y, y_dir)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of equal length, got {a.shape} and {b.shape}")
    mask = np.zeros(a.shape, dtype=bool)
    ok = np.flatnonzero(~(np.isnan(a) | np.isnan(b)))
    if ok.size == 0:
        return mask
    a, b = a[ok], b[ok]
    order = np.lexsort((b, a))  # by x, then y: the best y of each x-group comes first
    xs, ys = a[order], b[order]
    group_start = np.r_[True, xs[1:] != xs[:-1]]
    gid = np.cumsum(group_start) - 1
    best_in_group = ys[group_start]  # min y of each distinct x
    # best y among strictly smaller x: running min of group bests, shifted by one group
    before = np.r_[np.inf, np.minimum.accumulate(best_in_group)[:-1]]
    keep = (ys == best_in_group[gid]) & (ys < before[gid])
    mask[ok[order[keep]]] = True
    return mask


def non_dominated(values: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n points x k objectives, one
    direction per column): the same rule as :func:`pareto_mask`, for any number of objectives
    (the end-of-sweep summary's 3-objective Optuna fronts). Rows with a NaN are never on it.
    O(n² k) in blocks of rows, so thousands of configurations stay fast and small in memory."""
    v = np.column_stack([_as_min(values[:, j], d) for j, d in enumerate(directions)])
    if v.shape[1] == 2:
        return pareto_mask(v[:, 0], v[:, 1], "min", "min")
    ok = ~np.isnan(v).any(axis=1)
    keep = np.zeros(len(v), dtype=bool)
    pts = v[ok]
    out = np.ones(len(pts), dtype=bool)
    for start in range(0, len(pts), 512):
        block = pts[start : start + 512, None, :]  # candidates x others x objectives
        dominated = (pts[None] <= block).all(-1) & (pts[None] < block).any(-1)
        out[start : start + 512] = ~dominated.any(axis=1)
    keep[np.flatnonzero(ok)] = out
    return keep


def pareto_front(
    df: pd.DataFrame, x: str, y: str, x_dir: Direction = "min", y_dir: Direction = "max"
) -> pd.DataFrame:
    """The non-dominated rows of ``df`` on columns ``x`` and ``y``, sorted by ``x``."""
    mask = pareto_mask(df[x].to_numpy(float), df[y].to_numpy(float), x_dir, y_dir)
    return df.loc[mask].sort_values([x, y], kind="stable")


def reference_point(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    x_dir: Direction = "min",
    y_dir: Direction = "max",
    margin: float = 0.0,
) -> tuple[float, float]:
    """The nadir of the observed points (the worst value seen on each axis), pushed ``margin``
    times the observed range further away from the best.

    A margin > 0 keeps the extreme front points (each the worst on one axis) contributing area;
    with margin 0 a front of two such points has hypervolume 0. An axis whose values are all equal
    is pushed by ``margin`` times its magnitude (or by ``margin`` when that is 0).
    """
    out = []
    for v, d in ((np.asarray(x, float), x_dir), (np.asarray(y, float), y_dir)):
        worst, best = (np.nanmax(v), np.nanmin(v)) if d == "min" else (np.nanmin(v), np.nanmax(v))
        span = abs(worst - best) or abs(worst) or 1.0
        out.append(float(worst + margin * span * (1 if d == "min" else -1)))
    return out[0], out[1]


def hypervolume_2d(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    ref: tuple[float, float],
    x_dir: Direction = "min",
    y_dir: Direction = "max",
) -> float:
    """Area dominated by the points and bounded by ``ref`` (points beyond ``ref`` add nothing).

    After flipping to "both minimised", the front sorted by x has decreasing y, and the area is
    the sum of rectangles ``(x[i+1] - x[i]) * (ref_y - y[i])`` with ``x[n] = ref_x``.
    """
    a, b = _as_min(x, x_dir), _as_min(y, y_dir)
    rx = _as_min([ref[0]], x_dir)[0]
    ry = _as_min([ref[1]], y_dir)[0]
    inside = (a <= rx) & (b <= ry)  # NaN compares False: dropped
    a, b = a[inside], b[inside]
    if a.size == 0:
        return 0.0
    on = pareto_mask(a, b, "min", "min")
    a, b = a[on], b[on]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    widths = np.diff(np.r_[a, rx])
    return float(np.sum(widths * (ry - b)))


@dataclass
class Front:
    x: str
    y: str
    x_dir: str
    y_dir: str
    table: pd.DataFrame  # the non-dominated operating points, sorted by x, with seed spread
    n_configs: int  # operating points with both values (the candidates)
    hypervolume: float
    hv_normalized: float  # hypervolume / area of the box from the ideal to the reference point
    ref: tuple[float, float]  # REFERENCE_TEXT, over the candidates


def front_table(configs: pd.DataFrame, x: str, y: str) -> Front:
    """Pareto front of seed means on (x, y), directions from sparsity_tune.metrics.direction."""
    x_dir, y_dir = direction(x), direction(y)
    if x not in configs or y not in configs:  # e.g. no run wrote that summary figure
        configs = configs.iloc[0:0].assign(**{x: np.nan, y: np.nan})
    cand = configs[np.isfinite(configs[x].astype(float)) & np.isfinite(configs[y].astype(float))]
    if cand.empty:
        nan = float("nan")
        return Front(x, y, x_dir, y_dir, cand.iloc[0:0], 0, nan, nan, (nan, nan))
    xv, yv = cand[x].to_numpy(float), cand[y].to_numpy(float)
    mask = pareto_mask(xv, yv, x_dir, y_dir)
    ref = reference_point(xv, yv, x_dir, y_dir, margin=REF_MARGIN)
    hv = hypervolume_2d(xv[mask], yv[mask], ref, x_dir, y_dir)
    flip = {"min": "max", "max": "min"}
    ideal = reference_point(xv, yv, flip[x_dir], flip[y_dir])  # the best observed values
    box = abs(ref[0] - ideal[0]) * abs(ref[1] - ideal[1])
    spread = [f"{m}{s}" for m in (x, y) for s in ("", "_std", "_ci95_lo", "_ci95_hi")]
    lead = [P.point_id, "config_id", "label", "arch", "size", P.round, P.variant, "n_seeds"]
    lead += list(dict.fromkeys(spread))
    extra = [c for c in (M.sparsity,) if c not in lead]
    cols = [*lead, *extra, *(c for c in identity_columns(configs) if c in configs)]
    table = cand.loc[mask, [c for c in dict.fromkeys(cols) if c in cand]]
    table = table.sort_values([x, y], kind="stable")
    table = table.assign(
        hypervolume=hv,
        hv_normalized=hv / box if box > 0 else np.nan,
        hv_ref_x=ref[0],
        hv_ref_y=ref[1],
        hv_reference=REFERENCE_TEXT,
    )
    return Front(x, y, x_dir, y_dir, table, len(cand), hv, hv / box if box > 0 else np.nan, ref)


def versus_best(
    cand: pd.DataFrame,
    best: pd.Series,
    x: str,
    y: str,
    scale: float,
    sign: float,
    tolerance: float,
) -> pd.DataFrame:
    """Each point of ``cand`` cheaper than ``best`` on ``x`` (direction from
    :func:`sparsity_tune.metrics.direction`), cheapest first, against ``best`` on ``y``: the
    difference point - best in points (``sign * scale``: positive is more accurate), its Welch
    95% interval over seeds and the verdict against ``-tolerance`` (:func:`analysis.stats.verdict`:
    within tolerance where the interval lies above it). The front's "what does it cost to give
    up at most ``tolerance`` points?"."""
    k = sign * scale
    d = welch(
        k * cand[y].to_numpy(float),
        scale * cand[f"{y}_std"].to_numpy(float),
        cand["n_seeds"].to_numpy(float),
        np.full(len(cand), k * best[y]),
        np.full(len(cand), scale * best[f"{y}_std"]),
        np.full(len(cand), float(best["n_seeds"])),
    )
    out = pd.DataFrame(
        {
            "diff_pts": d["diff"],
            "diff_ci95_lo": d["lo"],
            "diff_ci95_hi": d["hi"],
            "verdict": verdict(d["lo"], d["hi"], tolerance),
        },
        index=cand.index,
    )
    cheaper = (cand[x] < best[x]) if direction(x) == "min" else (cand[x] > best[x])
    order = cand.loc[cheaper.to_numpy(), x].sort_values(
        ascending=direction(x) == "min", kind="stable"
    )
    return out.loc[order.index]
