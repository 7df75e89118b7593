"""Cost axes read against the dense baseline and the seed noise, by pruning granularity.

A mask saves nothing by itself: what pruning buys in wall time, memory and shipped bytes depends
on the kernels that run the pruned model (DESIGN: counted and measured costs), and a measured
figure moves with the machine's load. So before a front is drawn on a cost axis, each pruned
operating point is put against its dense baseline on that axis:

- **ratio**: dense / pruned for a cost (above 1: cheaper; pruned / dense for a maximised axis),
  of the seed geometric means. Its interval is the Welch interval (:func:`analysis.stats.welch`)
  of the difference of the seeds' mean *log* values, exponentiated: times and bytes change by
  factors, and on the log scale a ratio's interval is symmetric.
- **the dense baseline**: for inference times the dense model timed beside the deployable one in
  the same runs (``infer_ms_dense_b1``/``_b256``: same process, interleaved, so the machine's
  load cancels), for shipped bytes the dense model saved in the same runs
  (``deploy_bytes_dense``: an IMP round before the last ships nothing), the ratio taken per
  run and its interval the Student-t one over the runs' log ratios (Welch's with a spread-free
  second sample); for every other axis the dense baseline's
  own seeds (:func:`analysis.points.dense_samples`: the dense configuration of the same other
  settings, or IMP round 0), paired by seed where both sides ran the same seeds (an IMP round
  and its own round 0 are the same process, so the per-seed ratio also cancels what that
  process ran beside: :func:`seed_differences`, ``test``
  :data:`SEED_PAIRS`), else unpaired as elsewhere in the report.
- **the same cost** (:data:`SAME`): a point whose ratio passes the two one-sided tests at 5%
  each (:func:`analysis.stats.tost_bounds` from the standard error and degrees of freedom its
  95% interval is made of: the 90% interval) against
  ``[1 / (1 + COST_TOLERANCE), 1 + COST_TOLERANCE]`` (10%) costs the same as dense on that
  axis, resolved: an equivalence claim at the same 5% error rate as the other verdicts. This is
  the answer, for instance, for masked training, which trains at dense shapes: "as slow as
  dense", not "within seed noise". It is read point by point, on a flat axis too.
- **epochs against round 0** (an IMP round's epoch and training-step times,
  :mod:`analysis.round_times`): the run's own round-0 epochs are its dense side, so each run
  has an estimate, error and degrees of freedom as a run with timing rounds does, and is judged
  the same way (``test`` :data:`IN_RUN_EPOCHS`).
- **paired rounds** (inference times of runs that kept their rounds, :data:`ROUNDS`): each run
  timed its deployable and its dense model in alternating rounds and kept the rounds' paired
  log-ratios (:func:`sparsity_tune.trial.measure.log_ratio_summary`), so the load cancels
  within the run, not only between the run's two medians. The verdict is the every-seed
  (intersection-union) test of :mod:`analysis.repeats`: each seed's own rounds must show the
  gain; the ratio and its 95% interval are the random-effects combination of the seeds
  (their rounds' variance plus the between-seed variance), and ``ratio_seeds_lo``/``_hi`` the
  widest reach of the seeds' own intervals. Runs recorded before the rounds were kept (and
  every axis without in-run rounds) get the test above (``test``: :data:`SEED_MEANS`);
  a point whose every run shipped the dense model is 1.0 by rule (:data:`BY_RULE`).
- **the axis** (:func:`judge_axis`): it *moves* when at least one point is resolved among the
  ``k`` points compared on it: a paired-rounds point whose Benjamini-Hochberg adjusted p-value
  (:func:`analysis.stats.fdr_bh`, over every point of the axis with a p-value: the false
  discovery rate at 5%) is below 0.05, or a seed-means point whose interval at the family-wise
  level ``1 - 0.05/k`` (Bonferroni, as before the rounds were kept) excludes 1. It is *flat:
  within seed noise* when none is (then no front is drawn from it), and *unjudged* when no
  point has an interval (no dense baseline, or one seed without rounds). A paired-rounds point
  is cheaper or dearer when it is resolved; a seed-means point, only on an axis that moves, is
  read at 95% (Fisher's protected comparisons: the family first), as before. So an experiment
  without rounds reads exactly as it did.

Summary figures (the deployable model's bytes and latency) describe a run's final network, so an
IMP round before the last has none (:mod:`analysis.points`) and is never compared on them.

>>> import pandas as pd
>>> granularity(pd.DataFrame({"sparsity": [0.0, 0.9], "pruning.granularity": ["nm", "nm"]})).tolist()
['dense', 'nm']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from analysis.points import P, dense_samples
from analysis.repeats import COMBINED_COLS, combine_seeds
from analysis.round_times import COLUMNS as ROUND_TIME_COLUMNS
from analysis.stats import LEVEL, fdr_bh, tost_bounds, welch
from analysis.stats import paired as paired_t
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import MEASURED, M, direction

GRANULARITY: Final = "pruning.granularity"
DENSE: Final = "dense"
#: Inference times are compared with the dense model timed beside them in the same runs.
IN_RUN_DENSE: Final = {
    M.infer_ms_b1: M.infer_ms_dense_b1,
    M.infer_ms_b256: M.infer_ms_dense_b256,
    M.deploy_bytes: M.deploy_bytes_dense,
}
FAMILY_ALPHA: Final = 0.05  #: error rate of the flat rule (Bonferroni / BH over points)
#: Where runs keep their paired rounds (sparsity_tune.trial.measure.log_ratio_summary): the
#: axis, and the columns of its estimate, standard error and degrees of freedom (log scale).
ROUNDS: Final = {
    M.infer_ms_b1: (M.infer_log_speedup_b1, M.infer_log_speedup_b1_se, M.infer_log_speedup_b1_df),
    M.infer_ms_b256: (
        M.infer_log_speedup_b256,
        M.infer_log_speedup_b256_se,
        M.infer_log_speedup_b256_df,
    ),
    **ROUND_TIME_COLUMNS,  # an IMP round's epochs against its own round 0's, in the same run
}
#: How a row was tested (the ``test`` column): from each run's paired rounds, every seed, BH;
#: today's test where runs have no rounds (experiments recorded before they were kept, and
#: axes without in-run pairs); or not at all where every run shipped the dense model.
PAIRED_ROUNDS: Final = "paired rounds: every seed, BH"
IN_RUN_EPOCHS: Final = "epochs vs round 0 in the run: every seed, BH"
#: The ``test`` label of each axis whose in-run summary is not interleaved timing rounds.
ROUNDS_TEST: Final = {axis: IN_RUN_EPOCHS for axis in ROUND_TIME_COLUMNS}
SEED_MEANS: Final = "seed means: Welch, Bonferroni"
SEED_PAIRS: Final = "seed pairs: paired t, Bonferroni"
BY_RULE: Final = "ships dense: 1.0 by rule"

MOVES: Final = "moves"
FLAT: Final = "flat: within seed noise"
UNJUDGED: Final = "unjudged"
CHEAPER: Final = "cheaper"
DEARER: Final = "dearer"
WITHIN_NOISE: Final = "within seed noise"
SAME: Final = "same within tolerance"
COST_TOLERANCE: Final = 0.10  #: a ratio within 10% of 1 either way is "the same cost"
#: Verdicts that answer the comparison.
RESOLVED_COSTS: Final = frozenset({CHEAPER, DEARER, SAME})
NO_INTERVAL: Final = "no interval"
#: Columns of :attr:`Axis.table` (one row per pruned point compared, index ``point_id``).
RATIO_COLS: Final = (
    "n",
    "dense_n",
    "ratio",
    "ratio_ci95_lo",
    "ratio_ci95_hi",
    "ratio_family_lo",
    "ratio_family_hi",
    "verdict",
    "test",
    "p_value",
    "p_adjusted",
    "ratio_seeds_lo",
    "ratio_seeds_hi",
)


def granularity(points: pd.DataFrame) -> pd.Series:
    """The group a point is drawn and compared in: ``dense`` for a dense point, else its
    ``pruning.granularity`` (``unstructured`` where it is missing: the only one there once was)."""
    g = points[GRANULARITY] if GRANULARITY in points else pd.Series(pd.NA, index=points.index)
    g = g.astype("string").fillna("unstructured").astype(object)
    return g.where(~points[M.sparsity].le(DENSE_EPS), DENSE)


def is_measured(x: str) -> bool:
    """Whether ``x`` is a measured cost (:data:`sparsity_tune.metrics.MEASURED`)."""
    return x in MEASURED


@dataclass
class Axis:
    """One cost axis against the dense baseline: ``state`` is :data:`MOVES`, :data:`FLAT` or
    :data:`UNJUDGED`; ``k`` points had an interval; ``table`` has :data:`RATIO_COLS`."""

    x: str
    state: str
    k: int
    table: pd.DataFrame


def _log_stats(df: pd.DataFrame, key: str, col: str) -> pd.DataFrame:
    """Mean, std and count over seeds of ``log(col)`` per ``key`` (non-positive values left out)."""
    v = pd.to_numeric(df[col], errors="coerce")
    ok = v > 0
    logs = np.log(v[ok])
    g = logs.groupby(df.loc[ok, key].to_numpy(), sort=False)
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(RATIO_COLS), index=pd.Index([], name=P.point_id))


def _welch_p(d: dict[str, np.ndarray]) -> np.ndarray:
    """Two-sided p-value of each Welch difference (0 for a noise-free nonzero one, 1 for a
    noise-free zero, NaN without an interval)."""
    from scipy.special import stdtr

    fin = np.isfinite(d["df"])
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stdtr(np.where(fin, d["df"], 1.0), -np.abs(d["diff"]) / d["se"])
    p = np.where(d["se"] == 0, np.where(d["diff"] == 0, 1.0, 0.0), p)
    return np.where(np.isfinite(d["lo"]), p, np.nan)


def _rounds_of(samples: pd.DataFrame, cols: tuple[str, str, str] | None) -> pd.DataFrame:
    """The points of the per-seed table ``samples`` whose every run has the rounds summary
    ``cols`` (estimate, standard error, degrees of freedom), combined over seeds
    (:func:`analysis.repeats.combine_seeds`, log scale), index ``point_id``; empty where no
    point has them for all its runs (runs recorded before the rounds were kept)."""
    empty = pd.DataFrame(columns=list(COMBINED_COLS), index=pd.Index([], name=P.point_id))
    if cols is None or not all(c in samples for c in cols) or samples.empty:
        return empty
    v = samples[list(cols)].apply(pd.to_numeric, errors="coerce")
    ok = v.notna().all(axis=1) & v[cols[2]].ge(0) & v[cols[1]].ge(0)
    full = ok.groupby(samples[P.point_id].to_numpy()).transform("all").to_numpy()
    rows = samples[full]
    if rows.empty:
        return empty
    r = v.loc[rows.index]
    out = combine_seeds(r[cols[0]], r[cols[1]], r[cols[2]], rows[P.point_id].to_numpy())
    return out.rename_axis(P.point_id)


def seed_differences(a: pd.Series, b: pd.Series, key: pd.Series) -> pd.DataFrame:
    """Per comparison, the per-seed differences ``a - b``: ``a`` and ``b`` are values indexed by
    (side, seed), ``key`` maps each comparison (its index) to its (side of a, side of b).
    Mean, std and n of the differences over the seeds both sides ran, where one side's seeds are
    all among the other's (a dense baseline shared by two methods may have run seeds that one
    of them has not) and at least 2; else NaN: the comparison keeps Welch's interval."""
    rows = []
    ga = {s: g.droplevel(0) for s, g in a.groupby(level=0, sort=False)}
    gb = {s: g.droplevel(0) for s, g in b.groupby(level=0, sort=False)}
    for sa, sb in key.to_numpy():
        va, vb = ga.get(sa), gb.get(sb)
        common = [] if va is None or vb is None else [s for s in va.index if s in vb.index]
        nested = va is not None and vb is not None and len(common) == min(len(va), len(vb))
        if not nested or len(common) < 2:
            rows.append((np.nan, np.nan, np.nan))
            continue
        diff = va.reindex(common) - vb.reindex(common)
        rows.append((diff.mean(), diff.std(ddof=1), float(len(diff))))
    return pd.DataFrame(rows, columns=["mean", "std", "n"], index=key.index)


def judge_axis(samples: pd.DataFrame, x: str, alpha: float = FAMILY_ALPHA) -> Axis:
    """Every pruned point's ratio to its dense baseline on ``x`` (one row per point of the
    per-seed table ``samples``, see :func:`analysis.points.operating_points`), its 95% interval,
    its verdict (:data:`CHEAPER`, :data:`DEARER`, :data:`WITHIN_NOISE`, :data:`NO_INTERVAL`),
    how it was tested, and the axis's state (see the module docstring)."""
    if x not in samples or M.sparsity not in samples:
        return Axis(x, UNJUDGED, 0, _empty())
    keep = (P.point_id, P.baseline_key, "seed", M.sparsity, x, IN_RUN_DENSE.get(x))
    keep += ROUNDS.get(x, ())
    samples = samples[[c for c in dict.fromkeys(keep) if c is not None and c in samples]]
    values = pd.to_numeric(samples[x], errors="coerce")
    pruned = samples[(samples[M.sparsity] > DENSE_EPS) & (values > 0)]
    if pruned.empty:
        return Axis(x, UNJUDGED, 0, _empty())
    ref_col = IN_RUN_DENSE.get(x)
    if ref_col is not None:  # paired: each run's log(point / dense) against a spread-free 0
        if ref_col not in pruned:
            return Axis(x, UNJUDGED, 0, _empty())
        ref_v = pd.to_numeric(pruned[ref_col], errors="coerce")
        own = np.log(values[pruned.index]) - np.log(ref_v.where(ref_v > 0))
        g = own.groupby(pruned[P.point_id].to_numpy(), sort=False)
        mine = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})
        ref = pd.DataFrame({"mean": 0.0, "std": 0.0, "n": mine["n"]}, index=mine.index)
    else:
        mine = _log_stats(pruned, P.point_id, x)
        dense_seeds = dense_samples(samples, x)
        by_key = _log_stats(dense_seeds, P.baseline_key, x)
        key = pruned.groupby(P.point_id, sort=False)[P.baseline_key].first()
        ref = by_key.reindex(key.reindex(mine.index).to_numpy()).set_axis(mine.index)
        logs = np.log(pd.to_numeric(pruned[x], errors="coerce"))
        own = logs.groupby([pruned[P.point_id], pruned["seed"]], sort=False).mean()
        dv = pd.to_numeric(dense_seeds[x], errors="coerce")
        dense_logs = pd.Series(
            np.log(dv.where(dv > 0)).to_numpy(),
            index=pd.MultiIndex.from_frame(dense_seeds[[P.baseline_key, "seed"]]),
        ).dropna()
        pairs = pd.Series(
            list(zip(mine.index, key.reindex(mine.index), strict=True)), index=mine.index
        )
        seed_d = seed_differences(own, dense_logs, pairs)
    ref = ref.fillna({"n": 0})
    keep = ref["n"] > 0
    mine, ref = mine[keep], ref[keep]
    if mine.empty:
        return Axis(x, UNJUDGED, 0, _empty())
    a, b = (ref, mine) if direction(x) == "min" else (mine, ref)  # log ratio: + is cheaper
    sd_paired = np.zeros(len(mine), dtype=bool)
    if ref_col is None:  # seed pairs where both sides ran the same seeds
        seed_d = seed_d.reindex(mine.index)
        sd_paired = seed_d["n"].to_numpy(float) >= 2
        flip = -1.0 if direction(x) == "min" else 1.0  # point - dense, signed as a - b

    def interval(level: float) -> dict[str, np.ndarray]:
        w = welch(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"], level=level)
        if sd_paired.any():
            p = paired_t(flip * seed_d["mean"], seed_d["std"], seed_d["n"], level)
            w = {k: np.where(sd_paired, p[k], np.asarray(v)) for k, v in w.items()}
        return w

    rounds = _rounds_of(pruned, ROUNDS.get(x)).reindex(mine.index)
    paired = rounds["k"].notna().to_numpy()
    d = interval(LEVEL)
    has = np.isfinite(d["lo"]) | paired
    k = int(has.sum())
    f = interval(1 - alpha / max(k, 1))
    # today's test (seed means: Welch at 95%, the axis at Bonferroni's level) where no rounds
    verdict = np.where(d["lo"] > 0, CHEAPER, np.where(d["hi"] < 0, DEARER, WITHIN_NOISE))
    verdict = np.where(has, verdict, NO_INTERVAL).astype(object)
    p = _welch_p(d)
    ratio, lo, hi = d["diff"].copy(), d["lo"].copy(), d["hi"].copy()
    se, dof = np.asarray(d["se"], dtype=float).copy(), np.asarray(d["df"], dtype=float).copy()
    fam_lo, fam_hi = f["lo"].copy(), f["hi"].copy()
    seeds_lo = np.full(len(mine), np.nan)
    seeds_hi = np.full(len(mine), np.nan)
    test = np.where(has, np.where(sd_paired, SEED_PAIRS, SEED_MEANS), "").astype(object)
    if paired.any():  # the runs' own rounds: every seed, random-effects size
        r = rounds[paired]
        ratio[paired], lo[paired], hi[paired] = r["mu"], r["lo"], r["hi"]
        se[paired], dof[paired] = r["se"], r["df"]
        fam_lo[paired] = fam_hi[paired] = np.nan
        seeds_lo[paired], seeds_hi[paired] = r["seeds_lo"], r["seeds_hi"]
        p[paired] = r["p_value"]
        test[paired] = np.where(r["tested"] > 0, ROUNDS_TEST.get(x, PAIRED_ROUNDS), BY_RULE)
    q = np.where(paired, fdr_bh(p), np.minimum(1.0, k * p))  # BH; Bonferroni without rounds
    legacy_moved = ~paired & ((f["lo"] > 0) | (f["hi"] < 0))
    resolved = paired & (q < alpha)
    if paired.any():
        sign = rounds["sign"].to_numpy()
        verdict[paired] = WITHIN_NOISE
        verdict[resolved & (sign > 0)] = CHEAPER
        verdict[resolved & (sign < 0)] = DEARER
    state = UNJUDGED if k == 0 else (MOVES if (legacy_moved | resolved).any() else FLAT)
    if state == FLAT:
        verdict[has] = WITHIN_NOISE  # protected: no point is read alone on a flat axis
    band = np.log1p(COST_TOLERANCE)  # equivalence: the 90% interval within 10% of 1 either way
    eq_lo, eq_hi = tost_bounds(ratio, se, dof)  # the two one-sided tests, 5% each
    same = (verdict == WITHIN_NOISE) & (eq_lo > -band) & (eq_hi < band)
    verdict[same] = SAME
    n = np.where(paired, pd.to_numeric(rounds["k"]).fillna(0), mine["n"]).astype(int)
    table = pd.DataFrame(
        {
            "n": n,
            "dense_n": np.where(paired, n, ref["n"]).astype(int),
            "ratio": np.exp(ratio),
            "ratio_ci95_lo": np.exp(lo),
            "ratio_ci95_hi": np.exp(hi),
            "ratio_family_lo": np.exp(fam_lo),
            "ratio_family_hi": np.exp(fam_hi),
            "verdict": verdict,
            "test": test,
            "p_value": p,
            "p_adjusted": q,
            "ratio_seeds_lo": np.exp(seeds_lo),
            "ratio_seeds_hi": np.exp(seeds_hi),
        },
        index=mine.index.rename(P.point_id),
    )
    return Axis(x, state, k, table)


#: Columns of :func:`measured_table` taken from the points.
_POINT_COLS = ("label", "arch", "size", P.round, M.sparsity)


def measured_table(points: pd.DataFrame, axes: dict[str, Axis]) -> pd.DataFrame:
    """measured.csv: one row per (cost axis, pruned point compared): the point's settings and
    granularity, its ratio to dense with the intervals and verdict, and the axis's state."""
    rows = []
    info = points.set_index(P.point_id)
    info = info.assign(granularity=granularity(info))
    cols = [c for c in (*_POINT_COLS, "granularity") if c in info]
    for x, ax in axes.items():
        if ax.table.empty:
            continue
        t = ax.table.join(info[cols], how="left")
        t.insert(0, "axis_state", ax.state)
        t.insert(0, "kind", "measured" if is_measured(x) else "counted")
        t.insert(0, "axis", x)
        rows.append(t.reset_index())
    if not rows:
        return pd.DataFrame(columns=["axis", "kind", "axis_state", P.point_id, *RATIO_COLS, *cols])
    out = pd.concat(rows, ignore_index=True)
    lead = ["axis", "kind", "axis_state", P.point_id, *cols]
    return out[lead + [c for c in out.columns if c not in lead]]


COMPACT: Final = "compact"  #: deploy_format of a run whose model was physically compacted


def compacted_speedup(samples: pd.DataFrame, alpha: float = FAMILY_ALPHA) -> pd.DataFrame:
    """Per point whose runs were compacted (``deploy_format`` compact): ``train_time_speedup``,
    each run's own interleaved measurement of a training step at dense shapes against the
    compact model, as ``ratio`` with ``ratio_ci95_lo``/``_hi``, ``n`` seeds, ``verdict``
    (:data:`CHEAPER`: faster, :data:`DEARER`, :data:`WITHIN_NOISE`, :data:`NO_INTERVAL`) and
    ``test``. Where every run kept its rounds (``train_log_speedup``, ``_se``, ``_df``): the
    random-effects ratio and interval, and the every-seed test with BH over the points
    (:data:`PAIRED_ROUNDS`, see :mod:`analysis.repeats`); else, as before the rounds were kept,
    the geometric mean over seeds and the Student-t interval over the runs' log values, read at
    95% (:data:`SEED_MEANS`). Index ``point_id``."""
    cols = ["n", "ratio", "ratio_ci95_lo", "ratio_ci95_hi", "verdict", "test"]
    if M.train_time_speedup not in samples or M.deploy_format not in samples:
        return pd.DataFrame(columns=cols, index=pd.Index([], name=P.point_id))
    runs = samples[samples[M.deploy_format].astype("string").eq(COMPACT).fillna(False)]
    st = _log_stats(runs, P.point_id, M.train_time_speedup)
    zero = np.zeros(len(st))
    d = welch(st["mean"], st["std"], st["n"], zero, zero, st["n"])
    verdict = np.where(d["lo"] > 0, CHEAPER, np.where(d["hi"] < 0, DEARER, WITHIN_NOISE))
    out = pd.DataFrame(
        {
            "n": st["n"].astype(int),
            "ratio": np.exp(d["diff"]),
            "ratio_ci95_lo": np.exp(d["lo"]),
            "ratio_ci95_hi": np.exp(d["hi"]),
            "verdict": np.where(np.isfinite(d["lo"]), verdict, NO_INTERVAL).astype(object),
            "test": SEED_MEANS,
        },
        index=st.index.rename(P.point_id),
    )
    r = _rounds_of(runs, (M.train_log_speedup, M.train_log_speedup_se, M.train_log_speedup_df))
    r = r[pd.to_numeric(r["tested"]) > 0].reindex([i for i in r.index if i in out.index])
    if len(r):
        q = pd.Series(fdr_bh(r["p_value"].to_numpy(dtype=float)), index=r.index)
        sign = pd.to_numeric(r["sign"])
        out.loc[r.index, "n"] = pd.to_numeric(r["k"]).astype(int)
        out.loc[r.index, "ratio"] = np.exp(r["mu"].astype(float))
        out.loc[r.index, "ratio_ci95_lo"] = np.exp(r["lo"].astype(float))
        out.loc[r.index, "ratio_ci95_hi"] = np.exp(r["hi"].astype(float))
        out.loc[r.index, "verdict"] = np.where(
            q < alpha, np.where(sign > 0, CHEAPER, DEARER), WITHIN_NOISE
        )
        out.loc[r.index, "test"] = PAIRED_ROUNDS
    return out[cols]
