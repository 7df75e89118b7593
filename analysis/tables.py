"""Seed aggregation: trials -> configurations (seed-mean, seed std, t-based 95% interval).

A *configuration* is a trial's settings without its seed (and without settings that cannot change
results, such as the data root): its id is :func:`sparsity_tune.keys.config_id`, the one
identity rule, read from each trial's ``config.json`` (:mod:`analysis.load`). A finished run that
never pruned a weight is dense whatever its ``pruning.*`` settings say, so they do not make it
another configuration (``config_id(..., dense=True)``). Everything a front or a report sentence
says is about configurations, so one lucky seed never makes the front. Settings alone make the
identity, not the experiment: analysed together, two experiments share a configuration only where
their settings are equal, and a (configuration, seed) pair found in both counts once.
:func:`aggregate_seeds` is the one seed aggregation (of trials, and of IMP rounds as operating
points); the end-of-sweep summary uses it too. pandas groupby does the work; the Student-t
quantile comes from scipy (installed with mnist1d).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import load
from analysis.load import CONFIG_ID, FINISHED, config_columns
from analysis.load import DENSE_EPS as DENSE_EPS  # re-exported: the charts and comparisons use it
from sparsity_tune.keys import identity_keys, settings_id
from sparsity_tune.metrics import NUMERIC, M

#: Columns added to the trial table by :func:`add_config_ids`.
DERIVED = (CONFIG_ID, "base_id", "label", "base_label", "arch", "size")


def identity_columns(trials: pd.DataFrame) -> list[str]:
    """The settings that make a configuration (the experiment is not one of them)."""
    return identity_keys(config_columns(trials))


def _ids(df: pd.DataFrame) -> pd.Series:
    """:func:`~sparsity_tune.keys.settings_id` of each row's settings (a row's missing
    values left out), for tables that carry no stored ``config_id``."""
    if df.shape[1] == 0:
        return pd.Series(settings_id({}), index=df.index)
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    return pd.Series(
        [settings_id({k: v for k, v in r.items() if v is not None}) for r in records],
        index=df.index,
    )


def _group_ids(df: pd.DataFrame) -> pd.Series:
    """A short hash of each row's values (vectorised): a grouping key within one table, such
    as ``base_id``; a configuration's identity is ``config_id``."""
    if df.shape[1] == 0:
        return pd.Series("0" * 10, index=df.index)
    try:  # pandas hashes each column vectorised (object columns through factorize)
        h = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:  # unhashable cells: hash their text instead
        h = pd.util.hash_pandas_object(df.astype("string").fillna("<NA>"), index=False).to_numpy()
    return pd.Series([f"{v:016x}"[:10] for v in h], index=df.index)


def _varying(df: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if df[c].astype("string").nunique(dropna=False) > 1]


def _short_names(cols: list[str]) -> dict[str, str]:
    last = [c.rsplit(".", 1)[-1] for c in cols]
    return {c: (s if last.count(s) == 1 else c) for c, s in zip(cols, last, strict=True)}


def never_pruned(trials: pd.DataFrame) -> pd.Series:
    """:func:`analysis.load.never_pruned` of each row: a grid of granularity x sparsity that
    includes sparsity 0 runs the same dense network once per granularity, and those runs are one
    configuration."""
    if M.sparsity not in trials or "status" not in trials:
        return pd.Series(False, index=trials.index)
    return load.never_pruned(trials["status"], trials[M.sparsity]).astype(bool)


def add_config_ids(trials: pd.DataFrame) -> pd.DataFrame:
    """Add ``config_id`` (settings without seed, a never-pruned run's also without its pruning
    settings, see :func:`never_pruned`; as :mod:`analysis.load` read it, else computed from the
    columns), ``base_id`` (also without pruning.*), ``label`` and ``base_label`` (the settings,
    and the non-pruning settings, that vary among the trials; "· dense" for a never-pruned run),
    ``arch`` and ``size``."""
    df = trials.copy()
    ident = identity_columns(df)
    dense = never_pruned(df)
    stored = df[CONFIG_ID] if CONFIG_ID in df else pd.Series(pd.NA, index=df.index)
    if stored.isna().any():  # a table not read from trial directories (no config.json)
        if ident:
            settings = df[ident].astype(object)
            for c in (c for c in ident if c.startswith("pruning.")):
                settings[c] = settings[c].where(~dense, None)
            computed = _ids(settings)
        else:  # no settings anywhere: every trial is its own configuration
            computed = df["trial_id"].astype(str)
        df[CONFIG_ID] = stored.astype(object).where(stored.notna(), computed)
    base_cols = [c for c in ident if not c.startswith("pruning.")]
    df["base_id"] = _group_ids(df[base_cols])
    vary = _varying(df, ident)
    names = _short_names(vary)
    fallback = df["experiment"].astype("string").fillna("config").astype(str)
    df["label"] = _label(df, vary, names, fallback)
    base_vary = [c for c in vary if not c.startswith("pruning.")]
    df["base_label"] = _label(df, base_vary, names, fallback)
    if dense.any() and any(c.startswith("pruning.") for c in vary):
        lead = df.loc[dense, "base_label"] + " · " if base_vary else ""
        df.loc[dense, "label"] = lead + "dense"
    df["arch"] = _col(df, "model.arch").fillna("?").astype(str)
    df["size"] = _size(df)
    return df


def _label(df: pd.DataFrame, cols: list[str], names: dict[str, str], fallback: pd.Series):
    """``key=value`` of ``cols`` (short names), leaving out the keys a row has no value for."""
    if not cols:
        return fallback
    parts = [(names[c] + "=" + df[c].astype("string")).fillna("") for c in cols]
    label = parts[0]
    for p in parts[1:]:
        label = label + " " + p
    if any((p == "").any() for p in parts):  # a key some rows lack: squeeze its gap
        label = label.str.replace(r"\s+", " ", regex=True).str.strip()
    return label.where(label != "", fallback).astype(str)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return (
        df[name].astype("string")
        if name in df
        else pd.Series(pd.NA, index=df.index, dtype="string")
    )


def _size(df: pd.DataFrame) -> pd.Series:
    """Preset name, explicit hidden sizes, or depth x width: what "model size" means per arch."""
    depth_width = (
        "d" + _col(df, "model.depth").fillna("?") + "×w" + _col(df, "model.width").fillna("?")
    )
    hidden = _col(df, "model.hidden").replace({"null": pd.NA, "None": pd.NA})
    preset = _col(df, "model.preset").replace({"null": pd.NA, "None": pd.NA})
    return preset.fillna("h" + hidden).fillna(depth_width).astype(str)


def numeric_metrics(df: pd.DataFrame) -> list[str]:
    """Record and summary metrics present in ``df`` as numbers (the aggregated columns)."""
    return [m for m in NUMERIC if m in df and m != M.epoch and pd.api.types.is_numeric_dtype(df[m])]


def t_quantile(n: np.ndarray) -> np.ndarray:
    """Two-sided 95% Student-t quantile for ``n`` samples (NaN where n < 2).

    scipy.special.stdtrit (inverse Student-t CDF) is evaluated once per distinct ``n``.
    """
    from scipy.special import stdtrit  # scipy arrives with mnist1d; lighter than scipy.stats

    n = np.asarray(n, dtype=float)
    out = np.full(n.shape, np.nan)
    ok = n >= 2
    if ok.any():
        uniq, inv = np.unique(n[ok], return_inverse=True)
        out[ok] = stdtrit(uniq - 1, 0.975)[inv]
    return out


def duplicate_seeds(trials: pd.DataFrame, by: str = "config_id") -> pd.Series:
    """True for a finished trial whose (``by``, seed) pair an earlier row already has: the same
    settings and seed found twice (two experiments analysed together, a re-run). Such a trial is
    one more copy, not one more seed, and every aggregate counts it once."""
    fin = trials["status"] == FINISHED
    dup = trials[fin].duplicated([by, "seed"]) & trials.loc[fin, "seed"].notna()
    return dup.reindex(trials.index, fill_value=False)


def aggregate_seeds(
    trials: pd.DataFrame,
    metrics: list[str] | None = None,
    by: str = "config_id",
    keep: list[str] | None = None,
) -> pd.DataFrame:
    """One row per ``by`` value (a configuration; or an operating point, see
    :mod:`analysis.points`) of the *finished* rows: ``keep`` columns (default: the settings),
    ``experiment`` (those it came from, joined by ``+``), ``n_seeds``, and for each metric
    ``m``: ``m`` (seed mean), ``m_std``, ``m_ci95_lo``, ``m_ci95_hi`` (t-based). A (``by``,
    seed) pair found twice counts once (:func:`duplicate_seeds`)."""
    if "config_id" not in trials:
        trials = add_config_ids(trials)
    done = trials[trials["status"] == FINISHED]
    fin = done[~duplicate_seeds(done, by)]
    metrics = metrics or numeric_metrics(trials)
    if keep is None:
        keep = [*DERIVED[:1], *identity_columns(trials), *DERIVED[1:]]
    keep = [by, *(c for c in dict.fromkeys(keep) if c != by and c != "experiment")]
    if fin.empty:
        cols = [*keep, "experiment", "n_seeds"]
        for m in metrics:
            cols += [m, f"{m}_std", f"{m}_ci95_lo", f"{m}_ci95_hi"]
        return pd.DataFrame(columns=cols)
    g = fin.groupby(by, sort=False)
    first = g[keep[1:]].first()
    first["experiment"] = _experiments(done, by).reindex(first.index)
    num = fin[metrics].apply(pd.to_numeric, errors="coerce")
    num[by] = fin[by].to_numpy()
    gn = num.groupby(by, sort=False)
    mean, std, count = gn.mean(), gn.std(ddof=1), gn.count()
    half = std * t_quantile(count.to_numpy()) / np.sqrt(count.to_numpy())
    out = first.copy()
    out.insert(0, "n_seeds", g.size())
    cols = {}
    for m in metrics:
        cols[m] = mean[m]
        cols[f"{m}_std"] = std[m]
        cols[f"{m}_ci95_lo"] = mean[m] - half[m]
        cols[f"{m}_ci95_hi"] = mean[m] + half[m]
    out = pd.concat([out, pd.DataFrame(cols)], axis=1).reset_index()
    return out


def _experiments(fin: pd.DataFrame, by: str) -> pd.Series:
    """The experiments each group's rows came from ("a+b" when a configuration spans two)."""
    exp = fin["experiment"].astype("string").fillna("")
    if exp.nunique() <= 1:
        return fin.groupby(by, sort=False)["experiment"].first()
    return exp.groupby(fin[by], sort=False).agg(lambda s: "+".join(sorted(set(s) - {""})))


def points_scale(acc: pd.Series | np.ndarray) -> float:
    """100 when accuracies are fractions (so tolerances are in percentage points), else 1."""
    a = np.asarray(acc, dtype=float)
    return 100.0 if a.size and np.nanmax(np.abs(a)) <= 1.0 + 1e-9 else 1.0


def seed_mean_history(history: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and epoch: seed-mean of every record metric (for learning curves)."""
    if history.empty:
        return history.assign(config_id=pd.Series(dtype=str))
    ids = trials[["trial_id", "config_id"]].drop_duplicates("trial_id")
    h = history.merge(ids, on="trial_id", how="inner")
    cols = [c for c in h.columns if c not in ("trial_id", "config_id", M.epoch)]
    cols = [c for c in cols if pd.api.types.is_numeric_dtype(h[c])]
    return h.groupby(["config_id", M.epoch], sort=True)[cols].mean().reset_index()
