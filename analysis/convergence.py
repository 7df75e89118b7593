"""Had an operating point finished training? The rule behind the "not converged" verdict.

A comparison between networks that were still learning when they stopped says how long each
trained, not how good each is (a pruned run trained for more epochs in total "beats" its dense
baseline), so :mod:`analysis.compare` gives every comparison that involves such a point the
verdict :data:`~analysis.stats.NOT_CONVERGED` instead of better / worse / within.

Each point is judged on its *monitored metric*: ``train.until.metric`` where the run had a
plateau rule (:mod:`sparsity_tune.trial.plateau`), else ``val_loss`` (the rule's default).
Per seed (one trial, or one IMP round), :func:`segment_gains` takes from its records:

- ``last_gain``: how much the metric improved over the segment's last ``k`` epochs
  (:data:`LAST_K` = 3, the rule's default patience; fewer when the segment is shorter, NaN for a
  one-epoch segment): the value ``k`` epochs before the end minus the last value for a
  minimised metric, the reverse for a maximised one, so positive means still improving;
- ``last_value``: the metric's last value; ``gain_epochs``: the ``k`` used.

:func:`still_improving` then judges a point (all its seeds):

1. where its runs had ``train.until`` (``converged`` recorded): still improving when *any* seed
   ended at its cap while still improving (``converged`` false). The rule itself is the
   judgement; a point is only as converged as its least converged seed.
2. otherwise (fixed-epoch runs, ``converged`` null): still improving when the seed mean of
   ``last_gain`` exceeds the seed noise of the point's end value, the standard error
   ``std(last_value) / sqrt(n)`` over its ``n`` seeds (0 with one seed): training on would
   move the point by more than the uncertainty of where it is. The threshold is at least
   :data:`REL_FLOOR` of the end value per epoch of the gain (0.3% over 3 epochs): a network
   collapsed to chance ends every seed on the same loss, so its noise is 0 and a drift of
   1e-4 would count as learning. A point whose gain cannot be computed (one-epoch segments,
   no records) is not judged and blocks nothing.

In both cases the note says by how much it was still improving (the seed mean of
``last_gain``, in the metric's units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from sparsity_tune.metrics import M, direction

LAST_K: Final = 3
#: The least gain per epoch, relative to the end value, that counts as still improving without
#: a rule (the fallback's floor under the seed noise).
REL_FLOOR: Final = 0.001
DEFAULT_MONITORED: Final = M.val_loss
#: Columns of the per-seed table (one row per operating point and seed) this module reads.
MONITORED: Final = "monitored"
LAST_GAIN: Final = "last_gain"
LAST_VALUE: Final = "last_value"
GAIN_EPOCHS: Final = "gain_epochs"
#: points.csv: why a point counts as still improving at its end (:func:`still_improving`'s note).
IMPROVING_NOTE: Final = "improving_note"
#: points.csv and :func:`still_improving`: whether a point was still improving at its end.
STILL_IMPROVING: Final = "still_improving"
_KEY = ["trial_id", "_seg"]


def segment_gains(h: pd.DataFrame, metrics: Sequence[str], k: int = LAST_K) -> pd.DataFrame:
    """Per segment of a segmented history (``trial_id``, ``_seg``, ``_rel``: see
    :func:`analysis.points.segment_history`), for each of ``metrics``: ``last_gain:<m>``,
    ``last_value:<m>``, and ``gain_epochs`` (the ``k`` used: ``min(k, epochs - 1)``)."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1 epoch")
    length = h.groupby(_KEY, sort=False)["_rel"].transform("max")
    ref_rel = (length - k).clip(lower=1)
    end = h[h["_rel"].eq(length)].set_index(_KEY)
    ref = h[h["_rel"].eq(ref_rel)].set_index(_KEY).reindex(end.index)
    out = pd.DataFrame(index=end.index)
    steps = end["_rel"] - ref["_rel"]
    out[GAIN_EPOCHS] = steps.where(steps > 0)
    for m in metrics:
        if m not in h:
            continue
        sign = 1.0 if direction(m) == "max" else -1.0
        gain = sign * (end[m].astype(float) - ref[m].astype(float))
        out[f"{LAST_GAIN}:{m}"] = gain.where(steps > 0)
        out[f"{LAST_VALUE}:{m}"] = end[m].astype(float)
    return out


def add_gains(samples: pd.DataFrame, h: pd.DataFrame, k: int = LAST_K) -> pd.DataFrame:
    """``samples`` (with ``trial_id`` and ``_seg``) plus :data:`MONITORED`, :data:`LAST_GAIN`,
    :data:`LAST_VALUE` and :data:`GAIN_EPOCHS` for each row's monitored metric."""
    until = "train.until.metric"
    monitored = (
        samples[until].astype(object).where(samples[until].notna(), DEFAULT_MONITORED)
        if until in samples
        else pd.Series(DEFAULT_MONITORED, index=samples.index, dtype=object)
    )
    out = samples.assign(**{MONITORED: monitored.astype(str)})
    for c in (LAST_GAIN, LAST_VALUE, GAIN_EPOCHS):
        out[c] = np.nan
    if h.empty or samples.empty:
        return out
    names = sorted(set(out[MONITORED]))
    gains = segment_gains(h, names, k)
    idx = pd.MultiIndex.from_frame(out[_KEY])
    out[GAIN_EPOCHS] = gains[GAIN_EPOCHS].reindex(idx).to_numpy()
    for m in names:
        rows = out[MONITORED].eq(m).to_numpy()
        for c in (LAST_GAIN, LAST_VALUE):
            col = f"{c}:{m}"
            if col in gains:
                out.loc[rows, c] = gains[col].reindex(idx).to_numpy()[rows]
    return out


def open_flags(table: pd.DataFrame) -> pd.Series:
    """Which rows of a table judged by :func:`still_improving` (points.csv, a side of a
    comparison) were still improving at their end: its ``still_improving`` column as bools,
    unjudged rows (NaN) and a table without the column read False."""
    if STILL_IMPROVING not in table:
        return pd.Series(False, index=table.index)
    return table[STILL_IMPROVING].astype("boolean").fillna(False).astype(bool)


def still_improving(samples: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Per group ``by`` of the per-seed table (an operating point, a dense baseline, a variant
    in a cell): ``still_improving`` (bool, the module's rule), ``gain`` (seed mean of
    ``last_gain``), ``noise`` (the fallback's threshold; NaN where the rule judged),
    ``unconverged`` (seeds whose rule hit the cap improving), ``ruled`` (seeds with a rule),
    ``n`` and ``note`` (why, in words; empty when converged)."""
    keys = [by] if isinstance(by, str) else list(by)
    cols = [STILL_IMPROVING, "gain", "noise", "unconverged", "ruled", "n", "note"]
    if samples.empty or LAST_GAIN not in samples:
        return pd.DataFrame(columns=cols)
    conv = samples[M.converged] if M.converged in samples else pd.Series(np.nan, samples.index)
    conv = pd.to_numeric(conv, errors="coerce")
    d = pd.DataFrame(
        {
            **{k: samples[k] for k in keys},
            "_gain": samples[LAST_GAIN].astype(float),
            "_value": samples[LAST_VALUE].astype(float),
            "_k": samples[GAIN_EPOCHS].astype(float),
            "_ruled": conv.notna(),
            "_open": conv.eq(0.0),
            "_metric": samples.get(MONITORED, DEFAULT_MONITORED),
        }
    )
    g = d.groupby(keys, sort=False, dropna=False)
    out = pd.DataFrame(
        {
            "gain": g["_gain"].mean(),
            "sd": g["_value"].std(ddof=1),
            "n": g["_value"].count(),
            "ruled": g["_ruled"].sum(),
            "unconverged": g["_open"].sum(),
            "k": g["_k"].max(),
            "metric": g["_metric"].first(),
            "end": g["_value"].mean(),
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = (out["sd"] / np.sqrt(out["n"])).where(out["n"] >= 2, 0.0)
    floor = (REL_FLOOR * out["k"] * out["end"].abs()).fillna(0.0)
    out["floored"] = floor > noise
    noise = np.maximum(noise, floor)
    by_rule = out["ruled"] > 0
    fallback = ~by_rule & out["gain"].notna() & (out["gain"] > noise)
    out[STILL_IMPROVING] = (by_rule & (out["unconverged"] > 0)) | fallback
    out["noise"] = noise.where(~by_rule)
    fields = (STILL_IMPROVING, "gain", "k", "metric", "ruled", "unconverged", "noise", "floored")
    rows = zip(*(out[f] for f in fields), strict=True)
    out["note"] = [_note(*row) if row[0] else "" for row in rows]
    return out[cols]


def _note(
    _: bool,
    gain: float,
    k: float,
    metric: str,
    ruled: int,
    unconverged: int,
    noise: float,
    floored: bool,
) -> str:
    what = (
        f"{metric} improved by {gain:.3g} over its last {int(k)} epochs (seed mean)"
        if np.isfinite(gain) and np.isfinite(k)
        else f"{metric} still improving"
    )
    if ruled > 0:
        return (
            f"{int(unconverged)} of {int(ruled)} seeds hit their epoch cap still improving; {what}"
        )
    if floored:
        return f"{what}, above the floor {noise:.3g} ({REL_FLOOR:g} of its end value per epoch)"
    return f"{what}, above its seed noise {noise:.3g}"
