"""Experiment directory -> tidy pandas DataFrames (one row per trial; one row per trial and epoch).

Reads only the files of the trial-directory contract (:mod:`sparsity_tune.layout`), so it runs on a
laptop over results copied from a cluster, with no Ray or torch import. A trial's status is
:func:`sparsity_tune.layout.trial_status` (``summary.json`` -> finished, else ``error.txt`` ->
failed, else ``stopped.txt`` -> stopped early by ASHA, else running, i.e. running or interrupted).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis.parallel import cpu_count, process_pool
from sparsity_tune import layout
from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, NUMERIC, RECORD_KEYS, SUMMARY_KEYS
from sparsity_tune.trial.config import flatten

FINISHED, FAILED, STOPPED, RUNNING = (
    layout.FINISHED,
    layout.FAILED,
    layout.STOPPED_EARLY,
    layout.RUNNING,
)
#: Columns that describe a trial rather than configure it (they lead trials.csv).
ID_COLUMNS = ("trial_id", "experiment", "seed", "status", "epochs_done", "trial_dir", "error")
#: Record keys whose trial-level value is the max over epochs rather than the final record's:
#: the memory a run needs is its peak, and on CPU the per-epoch value is RSS *growth*, which is
#: near zero after the first epoch. The per-epoch values stay in history.csv.
MAX_OVER_EPOCHS = ("peak_mem_bytes",)
#: Trials per reader task, and the experiment size from which several processes read.
CHUNK, PARALLEL_MIN = 500, 4000
#: Record and summary keys that hold numbers (from the metric registry).
NUMERIC_METRICS = NUMERIC
#: Directories never searched for trials: W&B's run folders (thousands of media files).
SKIP_DIRS = frozenset({"wandb", ".git", "__pycache__"})
#: Sections of the nested trial config; their dotted keys are the config columns.
CONFIG_SECTIONS = ("dataset", "model", "train", "pruning")


class AnalysisError(ValueError):
    """A problem with the input a user can fix; the message says what and how."""


@dataclass
class Experiment:
    """An experiment directory loaded into DataFrames (the notebook entry point)."""

    root: Path
    name: str
    trials: pd.DataFrame  # one row per trial: ID_COLUMNS, config.*, final record*, summary
    # (*except MAX_OVER_EPOCHS, the max over the trial's records)
    history: pd.DataFrame  # one row per trial and epoch: trial_id + record keys
    spec: dict[str, Any] = field(default_factory=dict)  # spec.yaml as written (raw mapping)
    searched: list[str] = field(default_factory=list)  # dotted keys the sweep varied (params)

    @property
    def config_columns(self) -> list[str]:
        return config_columns(self.trials)


def config_columns(df: pd.DataFrame) -> list[str]:
    """The dotted trial-config columns of a table (``model.width``, ``pruning.method``, ...)."""
    return [c for c in df.columns if c.split(".", 1)[0] in CONFIG_SECTIONS and "." in c]


def find_trial_dirs(root: Path) -> list[Path]:
    """Directories below ``root`` (itself included) holding records.jsonl or a trial config.json."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        names = set(filenames)
        if layout.RECORDS in names or (layout.CONFIG in names and _is_trial_config(dirpath)):
            found.append(Path(dirpath))
    return sorted(found)


def _is_trial_config(dirpath: str) -> bool:
    try:
        data = layout.read_json(Path(dirpath) / layout.CONFIG)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "trial_id" in data and "config" in data


def _scalar(v: Any) -> Any:
    """Lists (e.g. model.hidden) become JSON text so columns stay hashable and CSV-stable."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _read_optional_json(path: Path) -> dict[str, Any] | None:
    try:
        data = layout.read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # torn or unreadable file: treat as absent (the trial is still being written)
    return data if isinstance(data, dict) else None


def load_trial(trial_dir: Path, root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trial's row (config flattened, final record, summary) and its records."""
    cfg = _read_optional_json(trial_dir / layout.CONFIG) or {}
    records = _read_records(trial_dir)
    summary = _read_optional_json(trial_dir / layout.SUMMARY)
    error_path = trial_dir / layout.ERROR
    has_error = error_path.exists()
    status = layout.trial_status(trial_dir)  # the one rule (the sweep's summary uses it too)
    rel = trial_dir.relative_to(root).as_posix()
    nested = cfg.get("config") or {}
    row: dict[str, Any] = {
        "trial_id": str(cfg.get("trial_id") or (trial_dir.name if rel != "." else root.name)),
        "experiment": cfg.get("experiment"),
        "seed": cfg.get("seed", (nested.get("train") or {}).get("seed")),
        "status": status,
        "epochs_done": len(records),
        "trial_dir": rel,
        "error": _last_line(error_path) if has_error and summary is None else None,
    }
    row.update({k: _scalar(v) for k, v in flatten(nested).items()})
    row["_params"] = list(cfg.get("params") or {})
    if records:
        row.update(records[-1])
        for key in MAX_OVER_EPOCHS:
            values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
            row[key] = max(values) if values else row.get(key)
    if summary:
        row.update(summary)
    return row, records


def _read_records(trial_dir: Path) -> list[dict[str, Any]]:
    """All records in one json.loads call (3x fewer decoder calls than one per line); a torn
    or odd file falls back to layout.read_records, which skips the bad line."""
    try:
        text = (trial_dir / layout.RECORDS).read_text()
    except FileNotFoundError:
        return []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        return layout.read_records(trial_dir)
    return [r for r in records if isinstance(r, dict)]


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "unreadable error.txt"
    return lines[-1][:300] if lines else "error.txt is empty"


def load_experiment(
    root: str | Path, progress: bool | None = None, jobs: int | None = None
) -> Experiment:
    """Load every trial below ``root``; raises :class:`AnalysisError` when there is none.

    ``progress``: show a tqdm bar (None: only for more than 200 trials on a terminal).
    ``jobs``: reader processes (None: one per CPU when there are more than
    ``PARALLEL_MIN`` trials; reading and JSON parsing are CPU-bound in Python).
    """
    if "://" in str(root):
        raise AnalysisError(
            f"{root}: analysis reads local files; copy the experiment first (e.g. "
            f"`aws s3 sync {root} results/NAME` or `gsutil -m rsync -r ...`) and pass that directory"
        )
    root = Path(root)
    if not root.is_dir():
        raise AnalysisError(f"{root}: not a directory; give an experiment directory (results/NAME)")
    dirs = find_trial_dirs(root)
    if not dirs and (root / layout.SPEC).is_file():
        raise AnalysisError(
            f"{root}: has {layout.SPEC} but no trial has written its files yet; run the analysis "
            "again once the first trial has started"
        )
    if not dirs:
        raise AnalysisError(
            f"{root}: no trial directories found (looked for records.jsonl or a config.json with "
            "a trial_id below it). Give a directory written by `python -m sparsity_tune.launch` "
            "or `python -m sparsity_tune.train --out DIR`."
        )
    spec = _read_spec(root)
    from tqdm import tqdm  # optuna's dependency; imported late to keep `import analysis` light

    show = progress if progress is not None else (len(dirs) > 200 and sys.stderr.isatty())
    workers = _workers(len(dirs), jobs)
    chunks = [dirs[i : i + CHUNK] for i in range(0, len(dirs), CHUNK)]
    tqdm.monitor_interval = 0  # no monitor thread: it would make forking reader processes unsafe
    bar = tqdm(
        total=len(dirs), desc="loading trials", unit="trial", disable=not show, file=sys.stderr
    )
    parts: list[tuple[list[dict[str, Any]], pd.DataFrame]] = []
    pool = process_pool(workers)
    if pool is not None:
        with pool:
            for part in pool.map(_load_chunk, chunks, [root] * len(chunks)):
                parts.append(part)
                bar.update(len(part[0]))
    else:
        for chunk in chunks:
            parts.append(_load_chunk(chunk, root))
            bar.update(len(chunk))
    bar.close()
    rows = [r for part, _ in parts for r in part]
    searched = {k for r in rows for k in r.pop("_params", ())}
    frames = [h for _, h in parts if not h.empty]
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    trials = _order_trials(pd.DataFrame(rows))
    history = _order_history(history)
    name = str(spec.get("name") or _most_common(trials["experiment"]) or root.name)
    return Experiment(
        root=root, name=name, trials=trials, history=history, spec=spec, searched=sorted(searched)
    )


def _workers(n_dirs: int, jobs: int | None) -> int:
    if jobs is not None:
        return max(1, jobs)
    return 1 if n_dirs < PARALLEL_MIN else min(cpu_count(), 8)


def _load_chunk(dirs: list[Path], root: Path) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Rows and history of some trials; runs in a worker process for large experiments."""
    rows, ids, records = [], [], []
    for d in dirs:
        row, recs = load_trial(d, root)
        rows.append(row)
        ids.extend([row["trial_id"]] * len(recs))
        records.extend(recs)
    history = pd.DataFrame(records)
    if not history.empty:
        history.insert(0, "trial_id", ids)
    return rows, history


def _most_common(s: pd.Series) -> Any:
    s = s.dropna()
    return s.mode().iloc[0] if not s.empty else None


def _read_spec(root: Path) -> dict[str, Any]:
    path = root / layout.SPEC
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AnalysisError(f"{path}: not valid YAML ({err}); fix or remove it") from None
    return data if isinstance(data, dict) else {}


def _order_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Stable columns: ids, config (section order), record keys, layer sparsities, summary keys."""
    for col in (*ID_COLUMNS, *RECORD_KEYS, *SUMMARY_KEYS):
        if col not in df.columns:
            df[col] = pd.NA if col in ID_COLUMNS else float("nan")
    for col in NUMERIC_METRICS:  # JSON null (e.g. no validation split) -> NaN, not object
        df[col] = pd.to_numeric(df[col], errors="coerce")
    cfg = sorted(config_columns(df), key=lambda c: (CONFIG_SECTIONS.index(c.split(".")[0]), c))
    layers = sorted(c for c in df.columns if c.startswith(LAYER_SPARSITY_PREFIX))
    known = [*ID_COLUMNS, *cfg, *RECORD_KEYS, *layers, *SUMMARY_KEYS]
    extra = [c for c in df.columns if c not in set(known)]
    df = df[known + extra]
    return df.sort_values(
        ["experiment", "trial_id"], kind="stable", na_position="last"
    ).reset_index(drop=True)


def _order_history(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=["trial_id", *RECORD_KEYS])
    for col in RECORD_KEYS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else float("nan")
    layers = sorted(c for c in df.columns if c.startswith(LAYER_SPARSITY_PREFIX))
    known = ["trial_id", *RECORD_KEYS, *layers]
    extra = [c for c in df.columns if c not in set(known)]
    return (
        df[known + extra].sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)
    )
