"""Experiment directory -> tidy pandas DataFrames (one row per trial; one row per trial and epoch).

Reads only the files of the trial-directory contract (:mod:`sparsity_tune.layout`), so it runs on a
laptop over results copied from a cluster, with no Ray or torch import. A trial's status is
:func:`sparsity_tune.layout.status_rule` (``summary.json`` -> finished, else ``error.txt`` ->
failed, else ``stopped.txt`` -> stopped early by ASHA, else running, i.e. running or
interrupted), applied to what :mod:`analysis.safe_io` finds.

The directory may come from someone else, so files are read through :mod:`analysis.safe_io`
(no symlink followed, no FIFO, size and JSON depth capped before parsing, strict UTF-8). A trial
with a file that cannot be read or does not have the contract's shape (non-UTF-8, a torn line
that is not the last, ``config`` that is not an object, ...) gets status ``damaged``, one warning
naming the file (:attr:`Experiment.warnings`) and its reason in the ``error`` column; it never
stops the analysis. A torn *last* line of records.jsonl is normal for a trial killed mid-write and
is skipped; in a *finished* trial it cannot come from the writer, so it is skipped with a warning.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import safe_io
from analysis.parallel import process_pool
from sparsity_tune import layout, safe_yaml
from sparsity_tune.keys import NAME_RE, config_id, flatten, is_config_id
from sparsity_tune.machine import cpu_allowance
from sparsity_tune.metrics import (
    DEFAULT_TOLERANCE,
    LAYER_SPARSITY_PREFIX,
    NUMERIC,
    RECORD_KEYS,
    SUMMARY_KEYS,
    M,
)
from sparsity_tune.trial.config import SECTIONS

FINISHED, FAILED, STOPPED, RUNNING, DAMAGED = (
    layout.FINISHED,
    layout.FAILED,
    layout.STOPPED_EARLY,
    layout.RUNNING,
    layout.DAMAGED,
)
ERROR_TAIL = 64 << 10  # bytes of error.txt read (its last line is what is shown)
#: Columns that describe a trial rather than configure it (they lead trials.csv).
ID_COLUMNS = ("trial_id", "experiment", "seed", "status", "epochs_done", "trial_dir", "error")
#: The configuration's identity (:func:`sparsity_tune.keys.config_id`): from the trial's
#: ``config.json``, computed from its config for directories written before it was stored, and
#: without the pruning settings for a run that never pruned (:func:`never_pruned`).
CONFIG_ID = "config_id"
#: Achieved sparsity at or below this counts as dense.
DENSE_EPS = 1e-6
#: Record keys whose trial-level value is the max over epochs rather than the final record's:
#: the memory a run needs is its peak, and on CPU the per-epoch value is RSS *growth*, which is
#: near zero after the first epoch. The per-epoch values stay in history.csv.
MAX_OVER_EPOCHS = (M.peak_mem_bytes,)
#: True/false/null metrics, as 1.0/0.0/NaN columns (a seed mean is then the fraction true).
FLAGS = (M.converged, M.all_converged)
#: Trials per reader task, and the experiment size from which several processes read.
CHUNK, PARALLEL_MIN = 500, 4000
#: Directories never searched for trials: W&B's run folders (thousands of media files).
SKIP_DIRS = frozenset({"wandb", ".git", "__pycache__"})


class AnalysisError(ValueError):
    """A problem with the input a user can fix; the message says what and how."""


@dataclass
class Experiment:
    """An experiment directory loaded into DataFrames (the notebook entry point)."""

    root: Path
    name: str
    #: one row per trial: ID_COLUMNS, config_id, config.*, final record*, summary
    #: (*except MAX_OVER_EPOCHS, the max over the trial's records)
    trials: pd.DataFrame
    history: pd.DataFrame  # one row per trial and epoch: trial_id + record keys
    spec: dict[str, Any] = field(default_factory=dict)  # spec.yaml as written (raw mapping)
    searched: list[str] = field(default_factory=list)  # dotted keys the sweep varied (params)
    warnings: list[str] = field(default_factory=list)  # one per damaged trial or refused file
    #: experiment name -> directory, when several experiments are analysed together
    sources: dict[str, Path] = field(default_factory=dict)
    #: experiment name -> the package versions it started with (launch.json; see sparsity_tune.stack)
    stacks: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def config_columns(self) -> list[str]:
        return config_columns(self.trials)


def config_columns(df: pd.DataFrame) -> list[str]:
    """The dotted trial-config columns of a table (``model.width``, ``pruning.method``, ...)."""
    return [c for c in df.columns if c.split(".", 1)[0] in SECTIONS and "." in c]


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
        data = safe_io.read_json(Path(dirpath) / layout.CONFIG)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "trial_id" in data and "config" in data


# ---------------------------------------------------------------------- one file at a time
# Each reader returns what it could read and appends "FILE: why" to ``problems`` otherwise.


def _config_problem(cfg: Any) -> str | None:
    """Why a parsed config.json does not have the contract's shape (None when it does)."""
    if not isinstance(cfg, dict):
        return f"holds a JSON {type(cfg).__name__}, not an object"
    checks = {
        "trial_id": (str, int),
        "experiment": (str,),
        "seed": (int,),
        "params": (dict,),
        "config": (dict,),
    }
    for key, types in checks.items():
        v = cfg.get(key)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            return f"{key} is a JSON {type(v).__name__}; expected {' or '.join(t.__name__ for t in types)}"
    sections = cfg.get("config") or {}
    bad = [k for k, v in sections.items() if not isinstance(v, dict)]
    if bad:
        return f"config.{safe_yaml.brief(bad[0])} is not an object of keys"
    return None


def _read_object(path: Path, problems: list[str], check: Any = None) -> dict[str, Any] | None:
    """A JSON object file, None when absent; a refused or malformed file becomes a problem."""
    try:
        data = safe_io.read_json(path)
    except FileNotFoundError:
        return None
    except safe_io.Refused as err:
        problems.append(str(err))
        return None
    why = check(data) if check else (None if isinstance(data, dict) else "not a JSON object")
    if why:
        problems.append(f"{path}: {why}")
        return None
    return data


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a data file must not set (the id columns: a record claiming ``status``)."""
    return {k: v for k, v in d.items() if k not in ID_COLUMNS and k != CONFIG_ID}


def _scalar(v: Any) -> Any:
    """Lists (e.g. model.hidden) become JSON text so columns stay hashable and CSV-stable."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def load_trial(trial_dir: Path, root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trial's row (config flattened, final record, summary) and its records.

    ``row["_problems"]`` lists what could not be read (the caller turns them into warnings).
    """
    problems: list[str] = []
    cfg = _read_object(trial_dir / layout.CONFIG, problems, _config_problem) or {}
    torn: list[int] = []
    records = _read_records(trial_dir, problems, torn)
    summary = _read_object(trial_dir / layout.SUMMARY, problems)
    if torn and summary is not None:  # a finished trial's writer was never killed mid-write
        row_notes = [
            f"trial {trial_dir.name}: finished, yet line {torn[0]} of {layout.RECORDS} is torn "
            f"(skipped); a finished trial never has one: was the file truncated or edited?"
        ]
    else:
        row_notes = []
    error_path = trial_dir / layout.ERROR
    has_error = safe_io.entry_exists(error_path)
    error = _last_line(error_path, problems) if has_error and summary is None else None
    if problems:
        status = DAMAGED
    else:  # the one rule (the sweep's summary uses it too), on what was read safely
        stopped = safe_io.entry_exists(trial_dir / layout.STOPPED)
        status = layout.status_rule(summary is not None, has_error, stopped, True)
    rel = trial_dir.relative_to(root).as_posix()
    nested = cfg.get("config") or {}
    seed = cfg.get("seed", (nested.get("train") or {}).get("seed"))
    row: dict[str, Any] = {
        "trial_id": str(cfg.get("trial_id") or (trial_dir.name if rel != "." else root.name)),
        "experiment": cfg.get("experiment"),
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "status": status,
        "epochs_done": len(records),
        "trial_dir": rel,
        "error": ("damaged: " + "; ".join(problems))[:300] if problems else error,
    }
    row[CONFIG_ID] = None  # set below, once the final sparsity is known
    row.update({k: _scalar(v) for k, v in flatten(nested).items()})
    row["_params"] = [str(k) for k in cfg.get("params") or {}]
    row["_problems"] = problems
    row["_notes"] = row_notes
    if records:
        row.update(_clean(records[-1]))
        for key in MAX_OVER_EPOCHS:
            values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
            row[key] = max(values) if values else row.get(key)
    if summary:
        row.update(_clean(summary))
    if nested:
        stored = cfg.get(CONFIG_ID)
        if never_pruned(status, row.get(M.sparsity)):
            row[CONFIG_ID] = config_id(nested, dense=True)
        else:
            row[CONFIG_ID] = stored if is_config_id(stored) else config_id(nested)
    return row, records


def never_pruned(status: Any, sparsity: Any) -> Any:
    """True for a finished trial whose final network is dense (achieved sparsity 0): its pruning
    settings never acted (masks only shrink, and an IMP run ends sparse), so they are no part of
    its configuration. Scalars (one trial) or Series (a table) alike."""
    return (status == FINISHED) & (pd.to_numeric(sparsity, errors="coerce") <= DENSE_EPS)


def _read_records(
    trial_dir: Path, problems: list[str], torn: list[int] | None = None
) -> list[dict[str, Any]]:
    """All records in one json.loads call (3x fewer decoder calls than one per line); when that
    fails, line by line: a torn *last* line is skipped (its number appended to ``torn``: the
    caller warns when the trial finished), any other bad line or a non-object record is a
    problem (the records read so far are kept)."""
    path = trial_dir / layout.RECORDS
    try:
        text = safe_io.read_text(path, safe_io.MAX_RECORDS_BYTES)
    except FileNotFoundError:
        return []
    except safe_io.Refused as err:
        problems.append(str(err))
        return []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    deep = next((i for i, ln in enumerate(lines) if _too_deep(ln)), None)
    if deep is not None:
        problems.append(f"{path}: line {deep + 1} nested more than {safe_io.MAX_JSON_DEPTH} levels")
        lines = lines[:deep]
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except ValueError:
                if i < len(lines) - 1:  # only the last line may be torn (killed mid-write)
                    problems.append(f"{path}: line {i + 1} is not valid JSON")
                    break
                if torn is not None:
                    torn.append(i + 1)
    objects = [r for r in records if isinstance(r, dict)]
    if len(objects) < len(records):
        problems.append(f"{path}: {len(records) - len(objects)} record(s) are not JSON objects")
    return objects


def _too_deep(line: str) -> bool:
    opens = line.count("[") + line.count("{")  # fast path: an upper bound of the depth
    return opens > safe_io.MAX_JSON_DEPTH and safe_io.json_depth(line) > safe_io.MAX_JSON_DEPTH


def _last_line(path: Path, problems: list[str]) -> str:
    """The last non-empty line of error.txt (only its tail is read; never through a link)."""
    try:
        text = safe_io.read_bytes(path, ERROR_TAIL, tail=True).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return "error.txt vanished"
    except safe_io.Refused as err:
        problems.append(str(err))
        return "error.txt not read"
    lines = [ln for ln in text.splitlines() if ln.strip()]
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
    if not dirs and safe_io.entry_exists(root / layout.SPEC):
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
    warnings: list[str] = []
    spec = _read_spec(root, warnings)
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
    for r in rows:
        warnings.extend(r.pop("_notes", ()))
        problems = r.pop("_problems", ())
        if problems:
            warnings.append(f"trial {r['trial_dir']} counted as damaged: " + "; ".join(problems))
    frames = [h for _, h in parts if not h.empty]
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    trials = _order_trials(pd.DataFrame(rows))
    history = _order_history(history)
    name = _experiment_name(spec, trials, root, warnings)
    versions = _read_versions(root, warnings)
    return Experiment(
        root=root,
        name=name,
        trials=trials,
        history=history,
        spec=spec,
        searched=sorted(searched),
        warnings=warnings,
        stacks={name: versions} if versions else {},
    )


def _read_versions(root: Path, warnings: list[str]) -> dict[str, str]:
    """The ``versions`` saved in launch.json, or {} (a ``train --out`` run, an older version's
    experiment); only short strings are kept, since they reach the report."""
    try:
        data = safe_io.read_json(root / layout.LAUNCH)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:  # safe_io.Refused is a ValueError
        warnings.append(f"{layout.LAUNCH}: {err}; package versions not shown")
        return {}
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(versions, dict):
        return {}
    return {
        str(k)[:40]: v[:40]
        for k, v in versions.items()
        if isinstance(v, str) and isinstance(k, str)
    }


def _experiment_name(
    spec: dict[str, Any], trials: pd.DataFrame, root: Path, warnings: list[str]
) -> str:
    """spec.yaml's name, else the trials' most common experiment, else the directory's name;
    only a valid experiment name is used (it reaches titles, file names and W&B)."""
    for where, candidate in (
        (layout.SPEC, spec.get("name")),
        ("the trials' config.json", _most_common(trials["experiment"])),
    ):
        if candidate is None:
            continue
        if isinstance(candidate, str) and NAME_RE.fullmatch(candidate):
            return candidate
        warnings.append(
            f"experiment name {safe_yaml.brief(candidate)} in {where} is not a valid name; not used"
        )
    return root.resolve().name


def _workers(n_dirs: int, jobs: int | None) -> int:
    if jobs is not None:
        return max(1, jobs)
    return 1 if n_dirs < PARALLEL_MIN else min(cpu_allowance(), 8)


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


def _read_spec(root: Path, warnings: list[str]) -> dict[str, Any]:
    """spec.yaml as a raw mapping, or {} with a warning: the analysis works from trial files,
    and the spec only contributes the experiment's name (never W&B settings: see wandb_log)."""
    path = root / layout.SPEC
    try:
        data = safe_yaml.load_bytes(safe_io.read_bytes(path, safe_yaml.MAX_BYTES), str(path))
    except FileNotFoundError:
        return {}
    except (safe_io.Refused, safe_yaml.YamlInputError) as err:
        warnings.append(f"{err}; spec.yaml ignored")
        return {}
    return data if isinstance(data, dict) else {}


def _order_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Stable columns: ids, config (section order), record keys, layer sparsities, summary keys."""
    for col in (*ID_COLUMNS, CONFIG_ID, *RECORD_KEYS, *SUMMARY_KEYS):
        if col not in df.columns:
            df[col] = pd.NA if col in (*ID_COLUMNS, CONFIG_ID) else float("nan")
    for col in NUMERIC:  # JSON null (e.g. no validation split) -> NaN, not object
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in FLAGS:
        df[col] = df[col].astype(float)
    cfg = sorted(config_columns(df), key=lambda c: (SECTIONS.index(c.split(".")[0]), c))
    layers = sorted(c for c in df.columns if c.startswith(LAYER_SPARSITY_PREFIX))
    known = [*ID_COLUMNS, CONFIG_ID, *cfg, *RECORD_KEYS, *layers, *SUMMARY_KEYS]
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
    df[M.converged] = df[M.converged].astype(float)
    layers = sorted(c for c in df.columns if c.startswith(LAYER_SPARSITY_PREFIX))
    known = ["trial_id", *RECORD_KEYS, *layers]
    extra = [c for c in df.columns if c not in set(known)]
    return (
        df[known + extra].sort_values(["trial_id", M.epoch], kind="stable").reset_index(drop=True)
    )


def load_experiments(
    roots: list[str | Path], progress: bool | None = None, jobs: int | None = None
) -> Experiment:
    """Several experiment directories as one :class:`Experiment` (one directory: the same as
    :func:`load_experiment`).

    Each trial's ``experiment`` becomes its directory's experiment name (made unique), its
    ``trial_dir`` the path from the working directory, and a ``trial_id`` found in more than
    one experiment is prefixed ``<experiment>/``. Configurations are not told apart by
    experiment: the analysis pools two experiments' trials only where their settings are equal
    (:mod:`analysis.tables`). ``sources`` maps each name to its directory; ``spec`` is the
    first experiment's (it names the W&B project of ``--wandb``), with the seeds plan and
    tolerance of :func:`_pooled_search` (what the report's intervals and lines must follow).
    """
    paths = list(dict.fromkeys(Path(r) for r in roots))
    if len(paths) == 1:
        return load_experiment(paths[0], progress=progress, jobs=jobs)
    parts = [load_experiment(p, progress=progress, jobs=jobs) for p in paths]
    names = _unique_names([e.name for e in parts], paths)
    counts = pd.concat([e.trials["trial_id"].drop_duplicates() for e in parts]).value_counts()
    clash = set(counts[counts > 1].index)
    trials, histories = [], []
    for name, e in zip(names, parts, strict=True):
        t, h = e.trials.copy(), e.history.copy()
        rename = {i: f"{name}/{i}" for i in clash}
        t["trial_id"] = t["trial_id"].replace(rename)
        if len(h):
            h["trial_id"] = h["trial_id"].replace(rename)
        t["experiment"] = name
        t["trial_dir"] = [(e.root / d).as_posix() for d in t["trial_dir"]]
        trials.append(t)
        histories.append(h)
    trials_df = _order_trials(pd.concat(trials, ignore_index=True))
    frames = [h for h in histories if not h.empty]
    history = _order_history(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
    searched = sorted({k for e in parts for k in e.searched})
    warnings: list[str] = []  # what pooling changes first, then each experiment's own
    spec = _pooled_search(dict(zip(names, (e.spec for e in parts), strict=True)), warnings)
    warnings += [f"{n}: {w}" for n, e in zip(names, parts, strict=True) for w in e.warnings]
    return Experiment(
        root=paths[0],
        name=" + ".join(names),
        trials=trials_df,
        history=history,
        spec=spec,
        searched=searched,
        warnings=warnings,
        sources=dict(zip(names, paths, strict=True)),
        stacks={n: v for n, e in zip(names, parts, strict=True) for v in e.stacks.values()},
    )


def spec_tolerance(spec: Mapping[str, Any]) -> float | None:
    """The tolerance (accuracy points) a sweep was run for, from its spec.yaml's
    ``search.tolerance``: the line its adaptive seeds chased and its report's default. None
    when the spec does not set one (or is not a spec the sweep validated)."""
    search = spec.get("search") if isinstance(spec, Mapping) else None
    raw = search.get("tolerance") if isinstance(search, Mapping) else None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw) if math.isfinite(raw) and 0 <= raw <= 100 else None


def _pooled_search(specs: dict[str, dict[str, Any]], warnings: list[str]) -> dict[str, Any]:
    """The first experiment's spec, but for what decides the report's intervals and lines when
    experiments are pooled: the first adaptive seeds plan wherever any experiment had one (its
    sequential intervals are valid for fixed seeds too; fixed-seed ones are not valid for
    adaptive seeds), and a warning where the experiments' ``search.seeds`` kinds or plans, or
    their ``search.tolerance``, differ, naming what the report uses."""
    search = {n: s["search"] if isinstance(s.get("search"), dict) else {} for n, s in specs.items()}
    plans = {n: s["seeds"] for n, s in search.items() if isinstance(s.get("seeds"), dict)}
    first_name, first = next(iter(specs.items()))
    mixed = 0 < len(plans) < len(specs)  # some adaptive, some fixed
    if mixed or len({json.dumps(p, sort_keys=True) for p in plans.values()}) > 1:
        name, plan = next(iter(plans.items()))
        shown = ", ".join(f"{n}: {s.get('seeds')}" for n, s in search.items())
        warnings.append(
            f"the experiments' search.seeds differ ({shown}); every comparison is judged with "
            f"the sequential intervals of {name}'s {plan}"
        )
    told = {n: spec_tolerance(s) for n, s in specs.items()}
    told = {n: DEFAULT_TOLERANCE if v is None else v for n, v in told.items()}  # unset: 1
    if len({json.dumps(v) for v in told.values()}) > 1:
        shown = ", ".join(f"{n}: {v}" for n, v in told.items())
        warnings.append(
            f"the experiments' search.tolerance differ ({shown}); the report judges at "
            f"{told[first_name]} unless --tolerance says otherwise"
        )
    if not plans:
        return first
    return {**first, "search": {**search[first_name], "seeds": next(iter(plans.values()))}}


def _unique_names(names: list[str], paths: list[Path]) -> list[str]:
    """Experiment names, the directory's path where two experiments share a name."""
    return [n if names.count(n) == 1 else p.as_posix() for n, p in zip(names, paths, strict=True)]
