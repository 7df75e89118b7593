"""Comparisons with intervals: each operating point against its dense baseline, and pruning
methods against each other at equal sparsity (Blalock et al. 2020: compare at matched sparsity,
against random pruning; Frankle & Carbin 2019: winning ticket vs random re-initialisation).

Both work on the per-seed table of :func:`analysis.points.operating_points` and return one row
per comparison with the difference in *points* (``scale`` x the metric, sign-flipped for a
minimised metric so that positive is always better), its 95% interval, the verdict of
:func:`analysis.stats.verdict` and, when unresolved, the seeds per configuration the observed
noise would need (:func:`analysis.stats.seeds_needed`). The interval is Welch's even where both
sides ran the same seeds: measured on the demo, a seed's share in both sides is small (the
pruned-minus-dense difference keeps 0.89 of the two sides' variance for the CNNs, 0.97 for the
MLPs on the 4-seed demo, 0.75 and 0.89 on an earlier 3-seed one: ``python
benchmarks/bench_allocation.py --calibrate results/demo``), so a paired interval
would lose more in degrees of freedom (``n - 1`` against Welch's ~``2(n - 1)``) than it gains,
and Welch's stays valid (conservative) under a positive seed correlation. Measured times are
another matter (:mod:`analysis.measured`). Methods against each other are peers: besides better and worse, their difference may be
resolved as :data:`~analysis.stats.EQUAL` (its 90% interval, the two one-sided tests at 5% of
:func:`~analysis.stats.tost_bounds`, inside plus or minus the tolerance). A
comparison one of whose sides was still improving when its training ended
(:func:`analysis.convergence.still_improving`) gets the verdict ``not converged`` instead, with
``convergence_note`` saying which side and by how much.
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import pandas as pd

from analysis.convergence import open_flags, still_improving
from analysis.points import DENSE_VARIANT, P, dense_samples
from analysis.stats import (
    NOT_CONVERGED,
    UNRESOLVED,
    resolution_lines,
    seeds_needed_many,
    tost_bounds,
    verdict,
    welch,
)
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M
from sparsity_tune.trial.config import REWIND_FRESH, REWIND_NONE, PruningConfig
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES

#: Points of one base whose sparsities differ by at most this are "at equal sparsity" (structured
#: pruning reaches a target only as closely as whole units allow).
SPARSITY_MATCH: Final = 0.01
#: Comparison columns (the tables carry the interval).
DIFF_COLS: Final = (
    "diff_pts",
    "diff_ci95_lo",
    "diff_ci95_hi",
    "verdict",
    "seeds_needed",
    "convergence_note",
)


def _stats(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    g = df.groupby(keys, sort=False, dropna=False)[metric]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})


def _judge(
    a: pd.DataFrame,
    b: pd.DataFrame,
    scale: float,
    sign: float,
    tolerance: float,
    symmetric: bool = False,
) -> pd.DataFrame:
    """Difference ``sign * scale * (a - b)`` of two aligned stats tables, its interval, verdict
    and the seeds needed where unresolved (the gap to the line the verdict reads:
    :func:`~analysis.stats.resolution_lines`; ``symmetric``: two peers)."""
    k = sign * scale
    d = welch(
        k * a["mean"].to_numpy(float),
        abs(k) * a["std"].to_numpy(float),
        a["n"].to_numpy(float),
        k * b["mean"].to_numpy(float),
        abs(k) * b["std"].to_numpy(float),
        b["n"].to_numpy(float),
    )
    eq = tost_bounds(d["diff"], d["se"], d["df"])  # peers: equal by the two one-sided tests
    v = verdict(d["lo"], d["hi"], tolerance, symmetric, equivalence=eq)
    sa, sb = abs(k) * a["std"].to_numpy(float), abs(k) * b["std"].to_numpy(float)
    need = np.full(len(v), np.nan)
    todo = np.flatnonzero(v == UNRESOLVED)
    for gap, level in resolution_lines(d["diff"][todo], tolerance, symmetric):
        need[todo] = np.fmin(need[todo], seeds_needed_many(sa[todo], sb[todo], gap, level))
    return pd.DataFrame(
        {
            "diff_pts": d["diff"],
            "diff_ci95_lo": d["lo"],
            "diff_ci95_hi": d["hi"],
            "verdict": v,
            "seeds_needed": need,
        },
        index=a.index,
    )


def mark_unconverged(
    judged: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]
) -> pd.DataFrame:
    """``judged`` (rows aligned with the :func:`~analysis.convergence.still_improving` tables
    ``a`` and ``b`` of its two sides) with the verdict ``not converged`` and no
    ``seeds_needed`` (more seeds would not settle it) where a side was still improving, and
    ``convergence_note`` naming that side (``names``) and by how much."""
    out = judged.copy()
    notes = []
    open_any = np.zeros(len(out), dtype=bool)
    for side, name in zip((a, b), names, strict=True):
        flag = open_flags(side).to_numpy()
        note = side["note"].astype(object).where(flag, "").fillna("").to_numpy(object)
        notes.append(np.array([f"{name}: {t}" if t else "" for t in note], dtype=object))
        open_any |= flag
    out["verdict"] = np.where(open_any, NOT_CONVERGED, out["verdict"].to_numpy(object))
    out["seeds_needed"] = np.where(open_any, np.nan, out["seeds_needed"].to_numpy(float))
    out["convergence_note"] = ["; ".join(t for t in pair if t) for pair in zip(*notes, strict=True)]
    return out


def versus_dense(
    samples: pd.DataFrame, metric: str, scale: float, sign: float, tolerance: float = 0.0
) -> pd.DataFrame:
    """Per pruned operating point (index ``point_id``): ``n``, the dense baseline's mean and
    ``dense_n`` (seeds of the baseline, each counted once), and the difference point - dense
    with its interval, verdict against ``-tolerance`` and seeds needed (:data:`DIFF_COLS`)."""
    pruned = samples[(samples[M.sparsity] > DENSE_EPS) & samples[metric].notna()]
    cols = ["n", f"dense_{metric}", "dense_n", *DIFF_COLS]
    if pruned.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name=P.point_id))
    mine = _stats(pruned, [P.point_id], metric)
    key = pruned.groupby(P.point_id, sort=False)[P.baseline_key].first()
    dense = _stats(dense_samples(samples, metric), [P.baseline_key], metric)
    base = dense.reindex(key.to_numpy())
    base.index = mine.index
    out = _judge(mine, base, scale, sign, tolerance)
    dense = samples[samples[M.sparsity] <= DENSE_EPS]
    out = mark_unconverged(
        out,
        still_improving(pruned, P.point_id).reindex(out.index),
        still_improving(dense, P.baseline_key).reindex(key.to_numpy()),
        ("pruned", "dense"),
    )
    out.insert(0, "dense_n", base["n"].fillna(0).astype(int))
    out.insert(0, f"dense_{metric}", base["mean"])
    out.insert(0, "n", mine["n"])
    return out[out["dense_n"] > 0].reindex(columns=cols)


def sparsity_cells(points: pd.DataFrame, tol: float = SPARSITY_MATCH) -> pd.Series:
    """A cell id per pruned point: its ``base_id`` and the cluster of sparsities (sorted, a new
    cluster where the gap to the previous exceeds ``tol``) it falls in. Dense points: NaN."""
    pruned = points[points[M.sparsity] > DENSE_EPS].sort_values(["base_id", M.sparsity])
    gap = pruned[M.sparsity].diff().gt(tol) | pruned["base_id"].ne(pruned["base_id"].shift())
    cell = pruned["base_id"].astype(str) + "#" + gap.cumsum().astype(str)
    return cell.reindex(points.index)


def at_equal_sparsity(
    samples: pd.DataFrame,
    points: pd.DataFrame,
    metric: str,
    scale: float,
    sign: float,
    order: list[str] | None = None,
    tolerance: float = 0.0,
) -> pd.DataFrame:
    """Every pair of variants with points in the same cell (same non-pruning settings, equal
    sparsity): one row each, ``a`` before ``b`` in ``order`` (default :func:`variant_order`),
    with both means and seed counts and the difference a - b with its interval and verdict
    (peers: better, worse, equal within ``tolerance`` or not resolved)."""
    cols = [
        "arch",
        "size",
        "base_label",
        M.sparsity,
        "variant_a",
        "variant_b",
        f"{metric}_a",
        f"{metric}_b",
        "n_a",
        "n_b",
        *DIFF_COLS,
    ]
    cells = sparsity_cells(points)
    p = points.assign(_cell=cells)
    p = p[p["_cell"].notna() & (p[P.variant] != DENSE_VARIANT)]
    if p.empty or p[P.variant].nunique() < 2:
        return pd.DataFrame(columns=cols)
    order = order or variant_order(p, metric, sign)
    rank = {v: i for i, v in enumerate(order)}
    s = samples.merge(p[[P.point_id, "_cell"]], on=P.point_id, how="inner")
    s = s[s[metric].notna()]
    per_seed = s.groupby(["_cell", P.variant, "seed"], as_index=False, dropna=False)[metric].mean()
    st = _stats(per_seed, ["_cell", P.variant], metric).reset_index()
    info = p.groupby("_cell").agg(
        arch=("arch", "first"),
        size=("size", "first"),
        base_label=("base_label", "first"),
        **{M.sparsity: (M.sparsity, "mean")},
    )
    rows = []
    for cell, g in st.groupby("_cell", sort=False):
        vs = sorted(g[P.variant], key=lambda v: rank.get(v, len(rank)))
        by = g.set_index(P.variant)
        for va, vb in itertools.combinations(vs, 2):
            rows.append(
                (cell, va, vb, *by.loc[va, ["mean", "std", "n"]], *by.loc[vb, ["mean", "std", "n"]])
            )
    if not rows:
        return pd.DataFrame(columns=cols)
    r = pd.DataFrame(rows, columns=["_cell", "a", "b", "ma", "sa", "na", "mb", "sb", "nb"])
    a = r[["ma", "sa", "na"]].set_axis(["mean", "std", "n"], axis=1)
    b = r[["mb", "sb", "nb"]].set_axis(["mean", "std", "n"], axis=1)
    judged = _judge(a, b, scale, sign, tolerance, symmetric=True)
    side = still_improving(s, ["_cell", P.variant])
    judged = mark_unconverged(
        judged,
        side.reindex(pd.MultiIndex.from_arrays([r["_cell"], r["a"]])),
        side.reindex(pd.MultiIndex.from_arrays([r["_cell"], r["b"]])),
        ("a", "b"),
    )
    out = info.reindex(r["_cell"]).reset_index(drop=True)
    out = out.assign(
        variant_a=r["a"],
        variant_b=r["b"],
        **{f"{metric}_a": r["ma"], f"{metric}_b": r["mb"]},
        n_a=r["na"].astype(int),
        n_b=r["nb"].astype(int),
    )
    out = pd.concat([out, judged.reset_index(drop=True)], axis=1)
    out["_ra"] = out["variant_a"].map(rank)
    out["_rb"] = out["variant_b"].map(rank)
    out = out.sort_values(["_ra", "_rb", "arch", "base_label", M.sparsity], kind="stable")
    return out[cols].reset_index(drop=True)


CONTROLS: Final = ("random re-init", "random pruning")


def variant_order(points: pd.DataFrame, metric: str, sign: float) -> list[str]:
    """Variants, the methods first (best mean of ``metric`` over their pruned points first),
    the random controls last, so a comparison reads "method vs control"."""
    pruned = points[points[P.variant] != DENSE_VARIANT]
    mean = pruned.groupby(P.variant)[metric].mean() * sign
    names = variant_names(pruned)

    def control(v: str) -> bool:
        return names.get(v, "").startswith(CONTROLS)

    return sorted(mean.index, key=lambda v: (control(v), -mean.get(v, -np.inf), v))


def role(settings: dict[str, str]) -> str | None:
    """A reader's name for a method from its pruning settings (short keys): "random re-init"
    (the mask with fresh random weights), "random pruning" (a score that ranks by chance),
    "winning ticket" (a rewinding schedule, weight-magnitude scores, weights rewound to init or
    an early epoch, masks free per weight: Frankle & Carbin's procedure), else None. Read from
    the properties of the registered pieces (:mod:`sparsity_tune.trial.registry`), never their
    names; a setting missing from ``settings`` takes its config default."""
    fields = PruningConfig.model_fields

    def get(key: str) -> str:
        return settings.get(key, str(fields[key].default))

    rewind = get("rewind")
    if rewind == REWIND_FRESH:
        return "random re-init"
    score = SCORES.get(get("score"))
    if score is not None and score.random_control:
        return "random pruning"
    schedule, gran = SCHEDULES.get(get("method")), GRANULARITIES.get(get("granularity"))
    if (
        schedule is not None
        and schedule.rewinds
        and score is not None
        and score.weight_magnitude
        and rewind != REWIND_NONE
        and gran is not None
        and gran.free_elements
    ):
        return "winning ticket"
    return None


def variant_names(points: pd.DataFrame) -> dict[str, str]:
    """Each variant as the report names it: its role (:func:`role`, from the settings of its
    first point) and the settings that vary, e.g. "random pruning (score=random)"."""
    out = {}
    cols = [c for c in points.columns if c.startswith("pruning.")]
    for v, g in points[points[P.variant] != DENSE_VARIANT].groupby(P.variant, sort=False):
        first = g.iloc[0]
        settings = {c.removeprefix("pruning."): str(first[c]) for c in cols}
        name = role(settings)
        out[str(v)] = f"{name} ({v})" if name else str(v)
    return out
