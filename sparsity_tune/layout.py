"""Files of a trial directory: the contract between the trainer CLI, the sweep and analysis.

A trial directory holds::

    config.json     {"trial_id", "experiment", "seed", "config_id", "params": {dotted: value},
                     "config": {nested}} (config_id: sparsity_tune.keys.config_id)
    records.jsonl   one trainer record per line (keys: metrics.RECORD_KEYS + layer_sparsity/*)
    summary.json    the final summary (metrics.SUMMARY_KEYS); present only when the trial finished
    error.txt       present when the trial failed (Ray writes it; so does the CLI)
    stopped.txt     present when the scheduler (ASHA) stopped the trial early (the launcher writes
                    it at the moment the scheduler decides, never for an interrupted sweep;
                    pareto_asha writes it, with config.json, for a pending trial it stops unstarted)

An experiment directory holds trial directories anywhere below it (``**/records.jsonl``), plus
``spec.yaml`` (the resolved spec) and ``launch.json`` (what the launcher resolved: the source of
truth for ``--resume``) at its top. Analysis reads only these files.

A trial's status has one owner, :func:`status_rule` (:func:`trial_status` applies it to a
directory); the sweep's summary and the analysis both
call it, so they can never disagree. Whole files are written temp-then-rename
(:func:`write_text`), so a crash or a full disk leaves the old file or the new one, never half of
one; ``records.jsonl`` is appended a line at a time and a failed append is cut back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

CONFIG = "config.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.json"
ERROR = "error.txt"
STOPPED = "stopped.txt"
SPEC = "spec.yaml"
LAUNCH = "launch.json"
#: the sweep's own decisions, appended before Ray acts on them and replayed on resume
ALLOCATION_LOG = "allocation.jsonl"  # adaptive seeds (sweep/replicate.py)
STOP_DECISIONS = "pareto_stop.jsonl"  # pareto_asha (sweep/pareto_stop.py)

#: A trial's status, from its files (see :func:`trial_status`).
TrialStatus = Literal["finished", "failed", "stopped", "running", "not_started", "damaged"]
FINISHED: TrialStatus = "finished"
FAILED: TrialStatus = "failed"
STOPPED_EARLY: TrialStatus = "stopped"
#: Started and not ended: still running, or its sweep was interrupted (files cannot tell which;
#: ``--resume`` continues it from its newest valid checkpoint).
RUNNING: TrialStatus = "running"
NOT_STARTED: TrialStatus = "not_started"
#: A file of the trial could not be read safely or has the wrong shape (the analysis's verdict
#: on someone else's directory; see ``analysis.safe_io``).
DAMAGED: TrialStatus = "damaged"

log = logging.getLogger(__name__)


def experiment_path(storage: str, name: str) -> str:
    """Where the experiment ``name`` lives under ``storage`` (a directory or a URI): the one rule
    the launcher, the SLURM job and its status share."""
    if "://" in storage:
        return storage.rstrip("/") + "/" + name
    return str(Path(storage).expanduser().resolve() / name)


def status_rule(summary: bool, error: bool, stopped: bool, started: bool) -> TrialStatus:
    """The one rule for a trial's status, from which of its files exist.

    ``summary`` (a readable ``summary.json`` object) → finished, whatever else lies beside it (a
    finish supersedes the files of earlier failed attempts); else ``error.txt`` → failed; else
    ``stopped.txt`` → stopped by the scheduler; else ``records.jsonl`` or ``config.json``
    (``started``) → running (or interrupted); else not started. Callers that must not follow
    symlinks (the analysis) gather the facts their own way and call this.
    """
    if summary:
        return FINISHED
    if error:
        return FAILED
    if stopped:
        return STOPPED_EARLY
    return RUNNING if started else NOT_STARTED


def trial_status(trial_dir: Path) -> TrialStatus:
    """:func:`status_rule` applied to the files of ``trial_dir``."""
    d = Path(trial_dir)
    summary = False
    with contextlib.suppress(OSError, ValueError):
        summary = isinstance(read_json(d / SUMMARY), dict)
    return status_rule(
        summary,
        (d / ERROR).exists(),
        (d / STOPPED).exists(),
        (d / RECORDS).exists() or (d / CONFIG).exists(),
    )


def write_text(path: Path, text: str) -> None:
    """Write a whole file atomically: a temporary file in the same directory, flushed to disk,
    then renamed over ``path``. On any error (a full disk) the temporary file is removed and
    ``path`` keeps its previous content."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith("Umask:")).split()[1], 8)
    return 0o022


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (see :func:`write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_record(trial_dir: Path, record: dict[str, Any]) -> None:
    """Append one record line with one unbuffered write; if it fails or is cut short (disk full),
    cut the file back to where it was, so a failed append never leaves a torn line."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(Path(trial_dir) / RECORDS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
        if written != len(line):
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise OSError(errno.ENOSPC, f"short write to {RECORDS}: {written} of {len(line)} bytes")
    finally:
        os.close(fd)


def write_records(trial_dir: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole records file atomically (used when a trial restarts from a checkpoint)."""
    write_text(Path(trial_dir) / RECORDS, "".join(json.dumps(r) + "\n" for r in records))


def read_records(trial_dir: Path, *, warn: bool = True) -> list[dict[str, Any]]:
    """Records of a trial. A line that is not a JSON object (a torn last line: the writer was
    killed mid-write) is skipped, with one warning naming the file and the line."""
    path = Path(trial_dir) / RECORDS
    out = []
    if path.exists():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if isinstance(rec, dict):
                out.append(rec)
            elif line.strip() and warn:
                log.warning("%s: line %d is not a JSON record (torn write?); skipped", path, n)
    return out


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
