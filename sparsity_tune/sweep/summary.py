"""End-of-sweep summary: one row per trial from the experiment directory's files (pandas).

Reads only :mod:`sparsity_tune.layout` files, so it shows the same numbers as the analysis will,
for trials run in this session and in earlier ones alike; a trial's status is
:func:`sparsity_tune.layout.trial_status`, the rule the analysis uses too. With several objectives it also lists
the Pareto-optimal configurations (objectives averaged over seeds; non-dominated rows).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsity_tune import layout
from sparsity_tune.sweep.spec import Spec

SUMMARY_METRICS = ("best_val_acc", "test_acc_at_best_val", "final_sparsity", "total_time_s")


def trials_frame(exp: str | Path) -> pd.DataFrame:
    """One row per trial directory: id, seed, params, status, epochs and final metrics."""
    rows: list[dict[str, Any]] = []
    dirs = {p.parent for p in Path(exp).glob(f"*/{layout.CONFIG}")}
    dirs |= {p.parent for p in Path(exp).glob(f"*/{layout.ERROR}")}
    for d in sorted(dirs):
        try:
            cfg = layout.read_json(d / layout.CONFIG)
        except (OSError, ValueError):  # failed before it started: Ray's params.json only
            params = layout.read_json(d / "params.json") if (d / "params.json").exists() else {}
            cfg = {
                "trial_id": d.name.removeprefix("trial_"),
                "seed": params.get("train.seed"),
                "params": {
                    k: v for k, v in params.items() if not k.startswith(("_", "train.seed"))
                },
            }
        records = layout.read_records(d)
        status = layout.trial_status(d)
        summary = layout.read_json(d / layout.SUMMARY) if status == layout.FINISHED else {}
        last = records[-1] if records else {}
        row: dict[str, Any] = {"trial_id": cfg["trial_id"], "seed": cfg["seed"]}
        row.update(cfg.get("params", {}))
        row["status"] = status
        row["epochs"] = len(records)
        for k in ("val_acc", "test_acc", "sparsity", "nonzero_params", "sparse_bytes"):
            row[k] = last.get(k)
        for k in SUMMARY_METRICS:
            row[k] = summary.get(k)
        row["node"] = (cfg.get("node") or {}).get("node_id", "")[:8]
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_configs(df: pd.DataFrame, params: list[str], objectives: dict[str, str]) -> pd.DataFrame:
    """Seed-mean objectives per configuration, keeping only the non-dominated ones."""
    done = df[df["status"] == layout.FINISHED]
    cols = [c for c in objectives if c in done.columns]
    if done.empty or len(cols) != len(objectives):
        return pd.DataFrame()
    keys = [p for p in params if p in done.columns]
    grouped = (
        done.groupby([done[k].astype(str) for k in keys], sort=False)[cols].mean().reset_index()
        if keys
        else done[cols].mean().to_frame().T
    )
    for k in keys:  # grouped as text (exact), shown as numbers again where they are numbers
        with contextlib.suppress(ValueError, TypeError):
            grouped[k] = pd.to_numeric(grouped[k])
    signs = np.array([1.0 if objectives[c] == "min" else -1.0 for c in cols])
    vals = grouped[cols].to_numpy(dtype=float) * signs
    keep = []
    for v in vals:
        dominated = np.any(np.all(vals <= v, axis=1) & np.any(vals < v, axis=1))
        keep.append(not dominated)
    return grouped[keep].reset_index(drop=True)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def config_table(df: pd.DataFrame, params: list[str], sort: str, ascending: bool) -> pd.DataFrame:
    """One row per configuration: seeds run, and the mean (± std over seeds) of the key metrics."""
    keys = [p for p in params if p in df.columns]
    done = df[df["status"] == layout.FINISHED]
    if done.empty:
        return pd.DataFrame()
    cols = [
        c
        for c in (sort, "test_acc", "best_val_acc", "sparsity", "nonzero_params", "total_time_s")
        if c in done.columns
    ]
    cols = list(dict.fromkeys(cols))
    by = [done[k].astype(str) for k in keys] if keys else [pd.Series("all", index=done.index)]
    g = done.groupby(by, sort=False)
    table = g[cols].mean()
    table.insert(0, "seeds", g.size())
    if g.size().max() > 1:
        table.insert(cols.index(sort) + 2, f"{sort}_std", g[sort].std())
    table = table.reset_index()
    for k in keys:
        with contextlib.suppress(ValueError, TypeError):
            table[k] = pd.to_numeric(table[k])
    return table.sort_values(sort, ascending=ascending, na_position="last")


def print_summary(spec: Spec, exp: str) -> pd.DataFrame:
    """The end-of-sweep report: counts, one row per configuration, the Pareto set, next step."""
    if "://" in exp:
        print(f"results in {exp}; analyse with: python -m analysis {exp}")
        return pd.DataFrame()
    df = trials_frame(exp)
    if df.empty:
        print(f"no trial finished yet in {exp}")
        return df
    objectives = dict(spec.search.objectives)
    sort = next(iter(objectives), "test_acc")
    ascending = objectives.get(sort, "max") == "min"
    counts = df["status"].value_counts()
    print(
        f"\n{len(df)} trial(s): "
        + ", ".join(
            f"{int(counts.get(s, 0))} {label}"
            for s, label in (
                (layout.FINISHED, "finished"),
                (layout.STOPPED_EARLY, "stopped early"),
                (layout.FAILED, "failed"),
                (layout.RUNNING, "unfinished (running or interrupted)"),
            )
            if s != layout.RUNNING or counts.get(s, 0)
        )
    )
    params = list(spec.search.parameters)
    table = config_table(df, params, sort, ascending)
    fmt = {"float_format": _num, "index": False}
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        if not table.empty:
            print(f"\nfinished configurations, best {sort} first (mean over seeds):")
            print(table.to_string(**fmt))
        failed = df[df["status"] == layout.FAILED]
        if not failed.empty:
            print("\nfailed trials: " + ", ".join(failed["trial_id"].astype(str)))
        if len(objectives) > 1:
            front = pareto_configs(df, params, objectives)
            if not front.empty:
                front = front.sort_values(sort, ascending=ascending)
                print("\nPareto-optimal configurations (mean over seeds):")
                print(front.to_string(**fmt))
    print(f"\nper-trial files: {exp}/trial_*/ (config.json, records.jsonl, summary.json)")
    print(f"next: python -m analysis {exp}")
    return df
