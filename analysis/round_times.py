"""An IMP round's epoch times against its own round 0's, measured in the same run.

An IMP run trains its dense round 0 and its pruned rounds one after the other in one process,
so its epochs are repeats of both sides: a round-``k`` epoch against a round-0 epoch of the same
run, on the same core, with the same threads and data. Comparing seed medians across runs
throws that away and leaves the seed noise of machines at different loads (3 seeds: a t with
2 degrees of freedom). Here each run gets its own estimate, standard error and degrees of
freedom of ``log(round-0 epoch time / round-k epoch time)`` (positive: the round is cheaper),
the summary :func:`analysis.repeats.combine_seeds` combines over seeds exactly as it does the
interleaved inference rounds (:data:`analysis.measured.ROUNDS`).

- **Estimate and error** (:func:`yuen`): the difference of the 10%-trimmed means of the two
  rounds' log epoch times, with Yuen's (1974) two-sample standard error from the winsorized
  variances and Welch-Satterthwaite degrees of freedom (``scipy.stats.ttest_ind(...,
  equal_var=False, trim=0.1)`` computes the same test): a stalled epoch under load swings
  neither the mean nor the error.
- **What it does not cancel**: the rounds are consecutive, not interleaved, so a load that
  changed between round 0 and round ``k`` of a run shows in its ratio. Such drift differs from
  seed to seed; the random-effects combination carries it as between-seed variance, and the
  every-seed test needs the gain in every run.

Other points (a gradual or one-shot run against a separate dense run) have no in-run pair:
their times keep the seed comparison of :mod:`analysis.measured`.

>>> est, se, df = yuen([1.0, 1.1, 0.9, 1.0], [2.0, 2.2, 1.8, 2.0])
>>> round(est, 4), round(se, 4), round(df, 2)
(-0.6931, 0.058, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from sparsity_tune.metrics import M

TRIM: Final = 0.1  #: trimmed at each end, as the interleaved inference rounds are
#: Per time axis: the samples' columns of its in-run summary (estimate, error, df; log scale).
COLUMNS: Final = {
    M.epoch_time_s: ("epoch_log_speedup", "epoch_log_speedup_se", "epoch_log_speedup_df"),
    M.train_time_s: (
        "train_step_log_speedup",
        "train_step_log_speedup_se",
        "train_step_log_speedup_df",
    ),
}
_KEY: Final = ["trial_id", "_seg"]


def _side(logs: np.ndarray, trim: float) -> tuple[float, float, int] | None:
    """(trimmed mean, Yuen's d, h) of one sample, None below 2 values kept."""
    x = np.sort(logs[np.isfinite(logs)])
    n = len(x)
    g = math.floor(trim * n)
    h = n - 2 * g
    if h < 2:
        return None
    w = np.concatenate([[x[g]] * g, x[g : n - g], [x[n - g - 1]] * g])
    d = (n - 1) * float(np.var(w, ddof=1)) / (h * (h - 1))
    return float(x[g : n - g].mean()), d, h


def yuen(a: Sequence[float], b: Sequence[float], trim: float = TRIM) -> tuple[float, float, float]:
    """``log(a) - log(b)`` for two samples of times: the difference of their ``trim``-trimmed
    mean logs, Yuen's standard error and Welch-Satterthwaite degrees of freedom. NaNs when a
    side keeps fewer than 2 values; error 0 and df inf when both sides are exact. A time that is
    not positive (a clock that did not tick) is no measurement and is dropped, quietly."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sa = _side(np.log(np.asarray(a, dtype=float)), trim)
        sb = _side(np.log(np.asarray(b, dtype=float)), trim)
    if sa is None or sb is None:
        return math.nan, math.nan, math.nan
    (ma, da, ha), (mb, db, hb) = sa, sb
    se = math.sqrt(da + db)
    if se == 0:
        return ma - mb, 0.0, math.inf
    df = (da + db) ** 2 / (da**2 / (ha - 1) + db**2 / (hb - 1))
    return ma - mb, se, df


def round_time_ratios(h: pd.DataFrame, imp_ids: set[str]) -> pd.DataFrame:
    """Per pruned IMP round (index trial_id, _seg >= 1) of the segmented history ``h``
    (:func:`analysis.points.segment_history`): the :data:`COLUMNS` of each time axis, round 0's
    epochs against the round's."""
    cols = [c for axis in COLUMNS for c in COLUMNS[axis]]
    empty = pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=_KEY))
    axes = [a for a in COLUMNS if a in h]
    if not imp_ids or not axes:
        return empty
    runs = h[h["trial_id"].isin(imp_ids)]
    rows = {}
    for tid, run in runs.groupby("trial_id", sort=False):
        base = run[run["_seg"] == 0]
        for seg, rnd in run[run["_seg"] > 0].groupby("_seg", sort=True):
            row = []
            for axis in COLUMNS:
                if axis in axes:
                    row += list(yuen(base[axis].to_numpy(float), rnd[axis].to_numpy(float)))
                else:
                    row += [math.nan] * 3
            rows[(tid, seg)] = row
    if not rows:
        return empty
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    out.index = pd.MultiIndex.from_tuples(out.index, names=_KEY)
    return out
