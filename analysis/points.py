"""Operating points: one per finished trial, except IMP runs, which give one per round.

An IMP run trains each mask to the end of its round before pruning again, so every round is a
trained network at its own sparsity, and round 0 is the run's own dense baseline (Frankle &
Carbin's figures read IMP this way). A round's point holds the round's last record (as a trial's
point holds its final record), ``peak_mem_bytes`` as the max over the round, times
(:data:`FINAL_MASK_MEDIAN`) as the median over the epochs trained with the point's final mask
(one epoch's wall time is at the mercy of the machine's load), and the round's own
``best_val_acc``, ``best_epoch``, ``test_acc_at_best_val`` and ``epochs_to_99pct`` (epochs
counted from the round's start, i.e. from the rewind); summary-only figures (inference time,
totals) describe the run's final network and sit on its last round. A pruned round also carries
its epoch times against its own round 0's, in the same run (:mod:`analysis.round_times`). Rounds are read from
records.jsonl, where ``target_sparsity`` changes at each one, so no schedule rule is re-derived.

Round 0 is the same dense training for every IMP variant of the same other settings (score,
rewind and rate act only after it), so it is one shared point, ``<baseline_key>/r0``, each seed
counted once. The dense baseline of an IMP round is that round 0 (same training per round); of
any other point, the dense configuration with the same non-pruning settings.

Convergence, per point (all in epochs, from its start; :class:`P` names the columns):

- ``epochs_to_99_own``: first epoch whose ``val_acc`` reaches 99% of the point's own best over
  the whole run (an IMP round: over the round), so a gradual run is not held to its final mask;
- ``epochs_to_99_dense``: first epoch reaching 99% of the dense baseline's best ``val_acc``
  (seed mean), NaN when never; ``reached_dense`` (1/0) says whether it did;
- ``early_stop_epoch``: the epoch of minimum ``val_loss`` (Frankle & Carbin's early-stopping
  iteration), with ``test_acc_at_early_stop``;
- ``epochs_trained`` and ``converged`` (records): how long the point's segment trained, and
  whether ``train.until``'s plateau ended it (1) or its cap did (0; NaN without a rule);
- ``monitored``, ``last_gain``, ``last_value``, ``gain_epochs``: what
  :mod:`analysis.convergence` judges "still improving" on.

With ``train.until`` an IMP round's length is where it plateaued, which differs by seed, so
round 0 is shared by the planned round length instead of the measured one (see
:func:`_round0_length`).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analysis import convergence
from analysis.load import FINISHED
from analysis.round_times import round_time_ratios
from analysis.tables import DENSE_EPS, identity_columns
from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, NUMERIC, RECORD_KEYS, SUMMARY_KEYS, M
from sparsity_tune.trial.registry import SCHEDULES

#: Pruning settings that set *how much* is pruned rather than *how*: not part of a variant.
AMOUNT_KEYS: Final = frozenset(
    {"pruning.final_sparsity", "pruning.initial_sparsity", "pruning.rounds"}
)
DENSE_VARIANT: Final = "dense"
REACH: Final = 0.99  #: "reaches 99% of" in the convergence columns
#: Wall times whose point value is the median over the epochs trained with the point's final mask
#: (a one_shot run's epochs after its pruning event, a gradual run's after end_epoch, an IMP
#: round's epochs, every epoch of a dense run): what the final network costs an epoch, robust to
#: a load spike in its last epoch.
FINAL_MASK_MEDIAN: Final = (M.epoch_time_s, M.train_time_s, M.eval_time_s, M.samples_per_s)


class P:
    """Columns the analysis derives (beside the registry's metrics); a typo is an AttributeError."""

    point_id: Final = "point_id"
    round: Final = "round"  #: IMP round (0 = dense); NaN for other methods
    baseline_key: Final = "baseline_key"  #: points with the same key share a dense baseline
    variant: Final = "variant"  #: the pruning settings other than the amount ("dense" if none)
    remaining: Final = "remaining"  #: 1 - sparsity: the fraction of prunable weights left
    to99_own: Final = "epochs_to_99_own"
    to99_dense: Final = "epochs_to_99_dense"
    reached_dense: Final = "reached_dense"
    early_stop_epoch: Final = "early_stop_epoch"
    test_acc_at_early_stop: Final = "test_acc_at_early_stop"
    monitored: Final = convergence.MONITORED  #: the metric "still improving" is judged on
    last_gain: Final = convergence.LAST_GAIN  #: its improvement over the last epochs
    last_value: Final = convergence.LAST_VALUE
    gain_epochs: Final = convergence.GAIN_EPOCHS


#: Derived numeric columns, aggregated over seeds like the registry's metrics.
DERIVED_METRICS: Final = (
    P.remaining,
    P.to99_own,
    P.to99_dense,
    P.reached_dense,
    P.early_stop_epoch,
    P.test_acc_at_early_stop,
    P.last_gain,
    P.last_value,
)
#: Summary keys an IMP round gets from its own records (the rest sit on the last round only).
_ROUND_SUMMARY = (
    M.best_val_acc,
    M.best_epoch,
    M.test_acc_at_best_val,
    M.final_test_acc,
    M.final_sparsity,
    M.epochs_to_99pct,
)
_KEY = ["trial_id", "_seg"]


def segment_history(history: pd.DataFrame, imp_ids: set[str]) -> pd.DataFrame:
    """``history`` with ``_seg`` (IMP round, 0 for other runs) and ``_rel`` (epoch counted from
    the segment's start, 1-based). A new round starts where ``target_sparsity`` changes."""
    h = history.sort_values(["trial_id", M.epoch], kind="stable")
    tid = h["trial_id"]
    if imp_ids:
        ts = h[M.target_sparsity].fillna(-1.0)
        new = ts.ne(ts.groupby(tid).shift())
        seg = (new.astype(int).groupby(tid).cumsum() - 1).where(tid.isin(imp_ids), 0)
        h = h.assign(_seg=seg.to_numpy())
    else:
        h = h.assign(_seg=0)
    return h.assign(_rel=h.groupby(_KEY, sort=False).cumcount().to_numpy() + 1)


def first_reach(h: pd.DataFrame, threshold: pd.Series) -> pd.Series:
    """Per segment: the first ``_rel`` epoch whose val_acc >= its ``threshold`` (indexed by
    trial_id and _seg); NaN when it never does."""
    v = h[[*_KEY, M.val_acc, "_rel"]].join(threshold.rename("_thr"), on=_KEY)
    hit = v[v[M.val_acc] >= v["_thr"]]
    return hit.groupby(_KEY)["_rel"].min()


def segment_stats(h: pd.DataFrame) -> pd.DataFrame:
    """One row per segment (index trial_id, _seg): its last record, peak memory over it, best
    val_acc (epoch, test_acc there), 99%-of-own-best epoch and early-stopping epoch."""
    g = h.groupby(_KEY, sort=False)
    out = g.tail(1).set_index(_KEY)
    if M.peak_mem_bytes in h:
        out[M.peak_mem_bytes] = g[M.peak_mem_bytes].max()
    times = [m for m in FINAL_MASK_MEDIAN if m in h]
    if times and M.sparsity in h:  # masks only shrink: the final mask's epochs are a tail
        last = g[M.sparsity].transform("last")
        same = np.isclose(h[M.sparsity], last, rtol=0, atol=1e-9) | last.isna()
        final = h[same.to_numpy()]
        out[times] = final.groupby(_KEY, sort=False)[times].median().reindex(out.index)
    v = h[h[M.val_acc].notna()]
    best = h.loc[v.groupby(_KEY)[M.val_acc].idxmax().to_numpy()].set_index(_KEY)
    out["_run_best"] = best[M.val_acc]
    out["_best_epoch"] = best["_rel"]
    out["_test_at_best"] = best[M.test_acc]
    out[P.to99_own] = first_reach(h, REACH * out["_run_best"])
    lo = h[h[M.val_loss].notna()]
    stop = h.loc[lo.groupby(_KEY)[M.val_loss].idxmin().to_numpy()].set_index(_KEY)
    out[P.early_stop_epoch] = stop["_rel"]
    out[P.test_acc_at_early_stop] = stop[M.test_acc]
    return out


def operating_points(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per operating point and seed of the finished trials (``trials`` with
    :func:`~analysis.tables.add_config_ids` columns): the trial's columns, the point's metrics,
    ``point_id``, ``round``, ``baseline_key``, ``variant``, ``remaining`` and the convergence
    columns of :class:`P`. A (point, seed) pair found twice is kept once."""
    fin = trials[trials["status"] == FINISHED]
    method = fin["pruning.method"] if "pruning.method" in fin else pd.Series("", index=fin.index)
    # rounds with a rewind (IMP): the schedule's own property, not its name
    rewinding = {name for name, schedule in SCHEDULES.items() if schedule.rewinds}
    imp = method.astype("string").fillna("").isin(rewinding).to_numpy()
    hist = history
    if len(fin) < len(trials) and len(history):  # unfinished trials' records are not points
        hist = history[history["trial_id"].isin(set(fin["trial_id"]))]
    if hist.empty:
        hist = pd.DataFrame(columns=["trial_id", *RECORD_KEYS])
    h = segment_history(hist, set(fin.loc[imp, "trial_id"]))
    seg = (
        segment_stats(h)
        if len(h)
        else pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=_KEY))
    )
    conv = [P.to99_own, P.early_stop_epoch, P.test_acc_at_early_stop, "_run_best"]

    plain = fin[~imp].copy()
    plain["_seg"] = 0
    plain = plain.join(seg[[c for c in conv if c in seg]], on=_KEY)
    for m in FINAL_MASK_MEDIAN:  # the final record's time is one epoch's: the median instead
        if m in seg and m in plain:
            med = seg[m].reindex(pd.MultiIndex.from_frame(plain[_KEY]))
            plain[m] = med.to_numpy()
            plain[m] = plain[m].fillna(fin.loc[plain.index, m])
    plain[P.round] = np.nan
    plain[P.point_id] = plain["config_id"]
    plain[P.baseline_key] = plain["base_id"]

    rounds = _imp_rounds(fin[imp], seg)
    samples = pd.concat([plain, rounds], ignore_index=True) if len(rounds) else plain
    for c in conv:
        if c not in samples:
            samples[c] = np.nan
    samples[P.remaining] = 1.0 - samples[M.sparsity]
    pairs = round_time_ratios(h, set(fin.loc[imp, "trial_id"]))  # in-run epoch-time ratios
    samples = samples.join(pairs, on=["trial_id", "_seg"])
    samples = samples[~samples.duplicated([P.point_id, "seed"]) | samples["seed"].isna()]
    samples = samples.reset_index(drop=True)
    samples = convergence.add_gains(samples, h)
    samples[P.variant] = variants(samples)
    _add_dense_convergence(samples, h)
    return samples.drop(columns=["_seg", "_run_best"])


def _imp_rounds(imp_trials: pd.DataFrame, seg: pd.DataFrame) -> pd.DataFrame:
    if imp_trials.empty or seg.empty:
        return pd.DataFrame()
    metric_cols = {*RECORD_KEYS, *SUMMARY_KEYS}
    layer = LAYER_SPARSITY_PREFIX
    keep = [c for c in imp_trials.columns if c not in metric_cols and not c.startswith(layer)]
    rec = [c for c in seg.columns if c in metric_cols or c.startswith(layer)]
    stats = seg[[*rec, P.to99_own, P.early_stop_epoch, P.test_acc_at_early_stop, "_run_best"]]
    stats = stats.assign(
        **{
            M.best_val_acc: seg["_run_best"],
            M.best_epoch: seg["_best_epoch"],
            M.test_acc_at_best_val: seg["_test_at_best"],
            M.final_test_acc: seg[M.test_acc],
            M.final_sparsity: seg[M.sparsity],
            M.epochs_to_99pct: seg[P.to99_own],
        }
    ).reset_index()
    rows = stats.merge(imp_trials[keep], on="trial_id", how="inner")
    last = rows["_seg"].eq(rows.groupby("trial_id")["_seg"].transform("max"))
    rest = [m for m in SUMMARY_KEYS if m not in _ROUND_SUMMARY and m in imp_trials]
    if rest:  # column by column: one array of mixed columns would turn numbers into objects
        tail = imp_trials.set_index("trial_id")[rest].reindex(rows["trial_id"])
        for m in rest:
            rows[m] = pd.Series(tail[m].to_numpy(), index=rows.index).where(last)
    k = rows["_seg"].astype(int)
    first_len = _round0_length(rows)
    rows[P.round] = k.astype(float)
    rows[P.baseline_key] = rows["base_id"].astype(str) + "/imp" + first_len
    rows[P.point_id] = rows["config_id"].astype(str) + "/r" + k.astype(str)
    r0 = k.eq(0)
    rows.loc[r0, P.point_id] = rows.loc[r0, P.baseline_key] + "/r0"
    rows.loc[r0, "config_id"] = pd.NA
    rows.loc[r0, "label"] = rows.loc[r0, "base_label"] + " · IMP round 0 (dense)"
    rows.loc[~r0, "label"] = rows.loc[~r0, "label"] + " · round " + k[~r0].astype(str)
    return rows.drop(columns=["_rel"], errors="ignore")


def _round0_length(rows: pd.DataFrame) -> pd.Series:
    """Epochs of each trial's round 0 (its last record's epoch), as text for the baseline key:
    IMP runs share a dense baseline only when they train the same epochs a round. With
    ``train.until`` (part of ``base_id``) a round ends on its plateau, a different epoch per
    seed: such runs share round 0 when their *planned* round is the same (``pruning.
    epochs_per_round``, else ``train.epochs // (rounds + 1)``, the config's default), ``p<n>``."""
    r0 = rows[rows["_seg"] == 0].set_index("trial_id")[M.epoch]
    out = rows["trial_id"].map(r0).fillna(-1).astype(int).astype(str)
    until = "train.until.metric"
    if until not in rows or not rows[until].notna().any():
        return out

    def num(col: str) -> pd.Series:
        return pd.to_numeric(rows.get(col, pd.Series(np.nan, rows.index)), errors="coerce")

    planned = num("pruning.epochs_per_round").fillna(
        (num("train.epochs") // (num("pruning.rounds") + 1)).clip(lower=1)
    )
    text = "p" + planned.fillna(-1).astype(int).astype(str)
    return out.where(rows[until].isna(), text)


def variants(samples: pd.DataFrame) -> pd.Series:
    """The pruning settings that tell compared methods apart, as ``key=value`` text: the
    settings other than the amount (:data:`AMOUNT_KEYS`) that vary among the pruned points of
    one base (same non-pruning settings), plus ``method`` where several are swept. "dense" for
    dense points; "pruned" when nothing varies."""
    cols = [c for c in identity_columns(samples) if c.startswith("pruning.")]
    cols = [c for c in cols if c not in AMOUNT_KEYS]
    pruned = samples[samples[M.sparsity] > DENSE_EPS]
    text = pruned[cols].astype("string").fillna("-")
    within = text.groupby(pruned["base_id"].to_numpy()).nunique() if len(pruned) else text
    vary = [c for c in cols if len(within) and within[c].max() > 1]
    if "pruning.method" in cols and text["pruning.method"].nunique() > 1:
        vary = ["pruning.method", *(c for c in vary if c != "pruning.method")]
    if not vary:
        out = pd.Series("pruned", index=samples.index, dtype=object)
    else:
        parts = [
            (c.removeprefix("pruning.") + "=" + samples[c].astype("string")).fillna("")
            for c in vary
        ]
        label = parts[0]
        for p in parts[1:]:
            label = label + " " + p
        out = label.str.replace(r"\s+", " ", regex=True).str.strip().astype(object)
    return out.where(samples[M.sparsity] > DENSE_EPS, DENSE_VARIANT)


def dense_samples(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The dense baseline's seed values of ``metric``: one per (baseline_key, seed), the mean
    over the dense points that share them (a seed counts once, however many points repeat it)."""
    d = samples[(samples[M.sparsity] <= DENSE_EPS) & samples[metric].notna()]
    return d.groupby([P.baseline_key, "seed"], as_index=False, dropna=False)[metric].mean()


def _add_dense_convergence(samples: pd.DataFrame, h: pd.DataFrame) -> None:
    samples[P.to99_dense] = np.nan
    samples[P.reached_dense] = np.nan
    if h.empty or samples.empty:
        return
    best = dense_samples(samples, "_run_best").groupby(P.baseline_key)["_run_best"].mean()
    thr = samples[P.baseline_key].map(REACH * best)
    if thr.notna().sum() == 0:
        return
    # Each sample's segment: non-IMP trials have one (0); an IMP round is its round number.
    seg = samples[P.round].fillna(0).astype(int)
    index = pd.MultiIndex.from_arrays([samples["trial_id"], seg], names=_KEY)
    threshold = pd.Series(thr.to_numpy(), index=index)
    threshold = threshold[~threshold.index.duplicated()]
    reach = first_reach(h, threshold.dropna())
    vals = reach.reindex(index).to_numpy()
    samples[P.to99_dense] = vals
    samples[P.reached_dense] = np.where(thr.notna(), np.isfinite(vals).astype(float), np.nan)


def numeric_point_metrics(samples: pd.DataFrame) -> list[str]:
    """Registry metrics and derived columns present in ``samples`` as numbers."""
    names = [m for m in NUMERIC if m != M.epoch] + list(DERIVED_METRICS)
    return [m for m in names if m in samples and pd.api.types.is_numeric_dtype(samples[m])]
