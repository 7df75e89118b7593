"""The Ray Tune function trainable: one trial = the shared Trainer on one resolved config.

Ray Tune does the heavy lifting (``tune.report`` with a ``tune.Checkpoint``, copying checkpoints to
the storage, restarting failed trials). This module glues the Trainer's ``report`` callable to it
and writes the trial-directory files of :mod:`sparsity_tune.layout` straight into the trial's
storage directory (local disk, shared filesystem or a pyarrow URI):

* ``config.json`` at start (trial id, experiment, seed, configuration id, params, full config,
  node that ran it, the checkpoint it continued from);
* ``records.jsonl``: one line per epoch; on a restart it is first rewritten from the checkpoint's
  records, so epochs trained after the last checkpoint of a crashed attempt never appear twice;
  Tune gets at most one result per ``report_interval_s`` (the latest record; see
  :func:`report_interval`), plus one with a checkpoint every ``checkpoint_every`` epochs but at
  most one every ``checkpoint_min_interval_s`` seconds, and one (with a checkpoint) at the end;
* ``summary.json`` at the end. ``error.txt`` is written by Ray when a trial fails (and by this
  module when the storage is full, since Ray's copy would not fit).

**Where a trial continues from** is decided here, from the trial's own storage directory, not from
Ray's experiment state (which may lag behind, or come from a backup): the newest checkpoint that
verifies (:mod:`sparsity_tune.sweep.checkpoints`); a corrupt one is skipped with a warning. A
trial whose ``summary.json`` is complete is not trained again (Ray may restart it when a sweep was
interrupted between its last report and Ray's next snapshot): its stored result is reported.

No fault injection lives here: tests kill trial processes from outside (``config.json`` names the
process) or wrap this function.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from sparsity_tune import layout
from sparsity_tune.keys import config_id
from sparsity_tune.machine import free_bytes
from sparsity_tune.metrics import M
from sparsity_tune.sweep import checkpoints
from sparsity_tune.sweep.search import trial_params, trial_seed
from sparsity_tune.trial.config import TrialConfig, trial_config

#: Tune gets a result at most this often (and at every checkpoint and the end) when a scheduler
#: acts on results (ASHA); with FIFO only the live table reads them, printed every 30 s, so
#: REPORT_INTERVAL_FIFO_S. A result is a round trip to the launcher that the trial waits for
#: (Ray's function trainables report synchronously): ~14 ms of the trial's wall time each, and
#: CPU in the Tune loop, the GCS and the worker (bench_sweep_efficiency.py's profile).
REPORT_INTERVAL_S = 1.0
REPORT_INTERVAL_FIFO_S = 10.0
#: ``error.txt`` of a trial that stopped because its storage was full starts with this.
STORAGE_FULL = "storage full"

log = logging.getLogger(__name__)
_DATA_CACHE: dict[str, Any] = {}  # dataset tensors kept across trials when Ray reuses the actor


def report_interval(scheduler: str) -> float:
    """Seconds between results a trial sends Tune between checkpoints, for this scheduler."""
    return REPORT_INTERVAL_FIFO_S if scheduler == "fifo" else REPORT_INTERVAL_S


class StorageFullError(OSError):
    """The trial's storage has no space left; the message names the path and the space needed."""


def is_storage_full(err: BaseException) -> bool:
    """ENOSPC / EDQUOT / EFBIG, also when pyarrow reports it only in its message."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(err)
    return any(s in text for s in ("No space left", "Disk quota exceeded", "File too large"))


class TrialFiles:
    """Writes the layout files into the trial's storage directory through pyarrow's filesystem."""

    def __init__(self, fs: Any, trial_path: str) -> None:
        import pyarrow.fs

        self.fs, self.path = fs, trial_path
        self.local = isinstance(fs, pyarrow.fs.LocalFileSystem)
        if self.local:
            Path(trial_path).mkdir(parents=True, exist_ok=True)
        else:
            fs.create_dir(trial_path, recursive=True)
        self.records: list[dict[str, Any]] = []

    def _write(self, name: str, text: str) -> None:
        with self.fs.open_output_stream(f"{self.path}/{name}") as f:
            f.write(text.encode())

    def write_json(self, name: str, obj: Any) -> None:
        if self.local:
            layout.write_json(Path(self.path) / name, obj)
        else:
            self._write(name, json.dumps(obj, indent=2, default=str) + "\n")

    def write_text(self, name: str, text: str) -> None:
        if self.local:
            layout.write_text(Path(self.path) / name, text)
        else:
            self._write(name, text)

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self.records = list(records)
        if self.local:
            layout.write_records(Path(self.path), self.records)
        else:
            self._write(layout.RECORDS, "".join(json.dumps(r) + "\n" for r in self.records))

    def append_record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.local:
            layout.append_record(Path(self.path), record)
        else:  # object stores cannot append: rewrite (records are small)
            self.write_records(self.records)

    def finished(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(last record, summary) when this trial already ran to the end (summary.json is written
        only after the last record), else None."""
        if not self.local:
            return None
        path = Path(self.path)
        if layout.trial_status(path) != layout.FINISHED:
            return None
        summary = layout.read_json(path / layout.SUMMARY)
        records = layout.read_records(path)
        if not records or len(records) != summary.get(M.epochs):
            return None
        return records[-1], summary

    def clear(self, name: str) -> None:
        with contextlib.suppress(OSError):  # FileNotFoundError included
            self.fs.delete_file(f"{self.path}/{name}")


def _save_checkpoint(trainer: Any) -> tune.Checkpoint:
    d = tempfile.mkdtemp(prefix="sparsity_tune_ckpt_")
    checkpoints.write(trainer.state_dict(), d, trainer.epoch)
    return tune.Checkpoint.from_directory(d)


def _node() -> dict[str, Any]:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "hostname": socket.gethostname(), "pid": os.getpid()}


def _storage_full(files: TrialFiles, err: BaseException, ckpt_bytes: int) -> StorageFullError:
    """Free what a cut-off write left (unverified checkpoints), write error.txt, and return the
    one error that says what happened."""
    removed = checkpoints.remove_unverified(files.fs, files.path) if files.local else []
    free = free_bytes(files.path) if files.local else None
    need = 2 * ckpt_bytes + 64 * 1024  # the next checkpoint (Ray keeps two) + records and state
    msg = (
        f"{STORAGE_FULL}: no space left on {files.path} (free: "
        f"{'unknown' if free is None else f'{free / 2**20:.1f} MiB'}; this trial needs about "
        f"{need / 2**20:.1f} MiB more for its next checkpoint and records). Free space, then "
        f"continue with --resume: the trial restarts from its newest intact checkpoint"
        + (f" (removed {len(removed)} cut-off checkpoint(s))" if removed else "")
        + f". [{type(err).__name__}: {err}]"
    )
    with contextlib.suppress(OSError):  # still full: the launcher says it instead
        files.write_text(layout.ERROR, msg + "\n")
    return StorageFullError(errno.ENOSPC, msg)


def train_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    experiment: str,
    seeds: list[int],
    cpus: float,
    checkpoint_every: int,
    checkpoint_min_interval_s: float = 0.0,
    report_interval_s: float = REPORT_INTERVAL_S,
    report_epochs: tuple[int, ...] | Callable[[TrialConfig], tuple[int, ...]] = (),
) -> None:
    """Ray Tune function trainable (bind the keyword arguments with ``tune.with_parameters``)."""
    # one "Checkpoint successfully created" line per epoch would drown the progress table
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    params = trial_params(config)
    seed = trial_seed(config, seeds)
    cfg = trial_config(base, {**params, "train.seed": seed})

    ctx = tune.get_context()
    storage = ctx.get_storage()
    files = TrialFiles(storage.storage_filesystem, storage.trial_fs_path)
    ckpt_bytes = [0]
    try:
        always = report_epochs(cfg) if callable(report_epochs) else report_epochs  # per trial
        cadence = _Cadence(checkpoint_every, checkpoint_min_interval_s, report_interval_s, always)
        _run(files, ctx, cfg, params, seed, experiment, cpus, cadence, ckpt_bytes)
    except Exception as err:
        if is_storage_full(err):
            raise _storage_full(files, err, ckpt_bytes[0]) from None
        raise


class _Cadence:
    """When a finished epoch goes to Tune: with a checkpoint, as a plain result, or not at all.

    A checkpoint is a Tune result plus a second round trip (Tune's save), and every second one of
    a trial makes Tune save and sync the experiment's whole state (``num_to_keep=2``): tens of
    milliseconds of CPU, which at one every 5 epochs of 0.17 s was a tenth of the harness's
    cost. It protects only the epochs since the previous one, so checkpoints come every
    ``every`` epochs but no closer than ``min_interval_s`` of wall time (a retry or ``--resume``
    trains at most that much again; the last epoch always checkpoints). Plain results go at
    most every ``report_interval_s``, and always at ``always`` (ASHA's rungs: it decides there).
    """

    def __init__(
        self,
        every: int,
        min_interval_s: float,
        report_interval_s: float,
        always: tuple[int, ...] = (),
    ) -> None:
        self.every, self.min_interval_s = every, min_interval_s
        self.report_interval_s, self.always = report_interval_s, frozenset(always)
        self.last_ckpt = self.last_sent = time.monotonic()

    def decide(self, epoch: int) -> str | None:
        """``"checkpoint"``, ``"result"`` or None for a mid-run ``epoch`` just recorded."""
        now = time.monotonic()
        if epoch % self.every == 0 and now - self.last_ckpt >= self.min_interval_s:
            self.last_ckpt = self.last_sent = now
            return "checkpoint"
        if epoch in self.always or now - self.last_sent >= self.report_interval_s:
            self.last_sent = now
            return "result"
        return None


def _run(
    files: TrialFiles,
    ctx: Any,
    cfg: Any,
    params: dict[str, Any],
    seed: int,
    experiment: str,
    cpus: float,
    cadence: _Cadence,
    ckpt_bytes: list[int],
) -> None:
    from sparsity_tune.trial import budget
    from sparsity_tune.trial.data import load_dataset
    from sparsity_tune.trial.device import resolve_device
    from sparsity_tune.trial.trainer import Trainer

    node = _node()
    extra = {"node_id": node["node_id"], "train.seed": seed}
    done = files.finished()
    if done is not None:  # finished before an interruption Ray's state did not catch: keep it
        tune.report({**done[0], **done[1], **extra})
        return
    files.clear(layout.STOPPED)  # running again: an earlier stop no longer describes it

    # A sampled configuration must fit this node before anything is allocated (the spec was
    # checked against the launcher's machine; this node may be smaller, or busy).
    budget.check_fits(cfg)
    device = resolve_device(cfg.train.device)
    data_key = json.dumps([cfg.dataset.model_dump(mode="json"), str(device)], sort_keys=True)
    if data_key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[data_key] = load_dataset(cfg.dataset, device)
    trainer = Trainer(cfg, cpus=cpus, data=_DATA_CACHE[data_key])

    restored = checkpoints.load_newest(files.fs, files.path)
    for w in restored.warnings:
        log.warning("trial %s: %s", ctx.get_trial_id(), w)
    if restored.state is not None:
        trainer.load_state_dict(restored.state)
    files.write_json(
        layout.CONFIG,
        {
            "trial_id": ctx.get_trial_id(),
            "experiment": experiment,
            "seed": seed,
            "config_id": config_id(cfg),
            "params": params,
            "config": cfg.model_dump(mode="json"),
            "node": node,
            "restored_from_epoch": restored.epoch,
            "restored_from": restored.name,
            "checkpoint_warnings": restored.warnings,
        },
    )
    files.clear(layout.SUMMARY)
    files.write_records(trainer.records)  # the checkpoint's records, or none: never duplicates

    cadence.last_ckpt = cadence.last_sent = time.monotonic()  # from here, after set-up

    def checkpoint() -> tune.Checkpoint:
        ckpt = _save_checkpoint(trainer)
        ckpt_bytes[0] = max(
            ckpt_bytes[0], os.path.getsize(Path(ckpt.path) / checkpoints.STATE_FILE)
        )
        return ckpt

    def send(result: dict[str, Any], ckpt: tune.Checkpoint | None) -> None:
        try:
            tune.report({**result, **extra}, checkpoint=ckpt)
        finally:
            if ckpt is not None:
                shutil.rmtree(ckpt.path, ignore_errors=True)

    def report(record: dict[str, Any]) -> None:
        files.append_record(record)
        epoch = record[M.epoch]
        # The last record goes with the summary, after run() returns: at train.epochs, or where
        # train.until's plateau ended the run (a finished trial, not a scheduler stop).
        if trainer.done:
            return
        what = cadence.decide(epoch)
        if what == "checkpoint":
            send(record, checkpoint())
        elif what == "result":
            send(record, None)

    summary = trainer.run(report=report)
    files.write_json(layout.SUMMARY, summary)
    final = trainer.records[-1] if trainer.records else {}
    send({**final, **summary}, checkpoint())
