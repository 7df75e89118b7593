"""The Ray Tune function trainable: one trial = the shared Trainer on one resolved config.

Ray Tune does the heavy lifting (``tune.report`` with a ``tune.Checkpoint``, ``tune.get_checkpoint``
on retry/resume, copying checkpoints to the storage). This module only glues the Trainer's
``report`` callable to it and writes the trial-directory files of :mod:`sparsity_tune.layout`
straight into the trial's storage directory (local disk, shared filesystem or a pyarrow URI):

* ``config.json`` at start (trial id, experiment, seed, params, full config, node that ran it);
* ``records.jsonl``: one line per epoch; on a restore it is first rewritten from the checkpoint's
  records, so epochs trained after the last checkpoint of a crashed attempt never appear twice;
  Tune gets at most one result per ``REPORT_INTERVAL_S`` (the latest record, with the records since
  the previous result attached for the W&B logger), plus one at every checkpoint and at the end;
* ``summary.json`` at the end. ``error.txt`` is written by Ray when a trial fails.

A trial whose ``summary.json`` is already complete is not trained again (Ray may restart it when a
sweep was interrupted between the trial's last report and Ray's next experiment snapshot): its
stored result is reported as it is.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

from sparsity_tune import layout
from sparsity_tune.sweep.search import trial_params, trial_seed
from sparsity_tune.trial.config import trial_config

CHECKPOINT_FILE = "trainer.pt"
#: Fault injection for tests: a file of this name in the experiment directory holding an epoch
#: number makes the first trial that reaches that epoch claim (delete) it and kill its process.
CRASH_FILE = ".crash_once_at_epoch"

#: Tune gets a result at most this often (and at every checkpoint and the end); the records of the
#: epochs in between ride along under RECORDS_KEY. Each result costs the Tune loop ~20 ms of CPU
#: and the trial ~7 ms, which is most of an MNIST-1D epoch.
REPORT_INTERVAL_S = 1.0
RECORDS_KEY = "_records"

_DATA_CACHE: dict[str, Any] = {}  # dataset tensors kept across trials when Ray reuses the actor


class TrialFiles:
    """Writes the layout files into the trial's storage directory through pyarrow's filesystem."""

    def __init__(self, fs: Any, trial_path: str, experiment_path: str) -> None:
        import pyarrow.fs

        self.fs, self.path, self.experiment_path = fs, trial_path, experiment_path
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
        try:
            summary = layout.read_json(path / layout.SUMMARY)
        except (OSError, ValueError):
            return None
        records = layout.read_records(path)
        if not records or len(records) != summary.get("epochs"):
            return None
        return records[-1], summary

    def clear(self, name: str) -> None:
        if self.local:
            (Path(self.path) / name).unlink(missing_ok=True)


def _maybe_crash(files: TrialFiles, epoch: int) -> None:
    """Test hook (see CRASH_FILE): kill this worker process once, hard, at a chosen epoch."""
    if not files.local:
        return
    marker = Path(files.experiment_path) / CRASH_FILE
    try:
        at = int(marker.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    if epoch == at:
        try:
            os.rename(marker, marker.with_name(CRASH_FILE + ".claimed"))  # atomic: one winner
        except FileNotFoundError:
            return
        os._exit(17)


def _save_checkpoint(trainer: Any) -> tune.Checkpoint:
    import torch

    d = tempfile.mkdtemp(prefix="sparsity_tune_ckpt_")
    torch.save(trainer.state_dict(), os.path.join(d, CHECKPOINT_FILE))
    return tune.Checkpoint.from_directory(d)


def _node() -> dict[str, Any]:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "hostname": socket.gethostname(), "pid": os.getpid()}


def train_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    experiment: str,
    seeds: list[int],
    cpus: float,
    checkpoint_every: int,
) -> None:
    """Ray Tune function trainable (bind the keyword arguments with ``tune.with_parameters``)."""
    import shutil

    import torch

    from sparsity_tune.trial.data import load_dataset
    from sparsity_tune.trial.trainer import Trainer, resolve_device

    # one "Checkpoint successfully created" line per epoch would drown the progress table
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    params = trial_params(config)
    seed = trial_seed(config, seeds)
    cfg = trial_config(base, {**params, "train.seed": seed})

    ctx = tune.get_context()
    storage = ctx.get_storage()
    files = TrialFiles(
        storage.storage_filesystem, storage.trial_fs_path, storage.experiment_fs_path
    )
    node = _node()

    extra = {"node_id": node["node_id"], "train.seed": seed}
    done = files.finished()
    if done is not None:  # finished before an interruption Ray's state did not catch: keep it
        tune.report({**done[0], **done[1], **extra, RECORDS_KEY: []})
        return

    device = resolve_device(cfg.train.device)
    data_key = json.dumps([cfg.dataset.model_dump(mode="json"), str(device)], sort_keys=True)
    if data_key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[data_key] = load_dataset(cfg.dataset, device)
    trainer = Trainer(cfg, cpus=cpus, data=_DATA_CACHE[data_key])

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            # on CPU first: a retry may land on another GPU (or node); the trainer moves it back
            state = torch.load(
                os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=False
            )
        trainer.load_state_dict(state)
    files.write_json(
        layout.CONFIG,
        {
            "trial_id": ctx.get_trial_id(),
            "experiment": experiment,
            "seed": seed,
            "params": params,
            "config": cfg.model_dump(mode="json"),
            "node": node,
            "restored_from_epoch": trainer.epoch if checkpoint is not None else None,
        },
    )
    files.clear(layout.SUMMARY)
    files.write_records(trainer.records)  # the checkpoint's records, or none: never duplicates

    last_epoch = cfg.train.epochs
    pending: list[dict[str, Any]] = []  # records not yet sent to Tune
    last_sent = [time.monotonic()]

    def send(result: dict[str, Any], ckpt: tune.Checkpoint | None) -> None:
        try:
            tune.report({**result, **extra, RECORDS_KEY: list(pending)}, checkpoint=ckpt)
        finally:
            if ckpt is not None:
                shutil.rmtree(ckpt.path, ignore_errors=True)
        pending.clear()
        last_sent[0] = time.monotonic()

    def report(record: dict[str, Any]) -> None:
        files.append_record(record)
        pending.append(record)
        epoch = record["epoch"]
        if epoch >= last_epoch:  # sent with the summary, after run() returns
            return
        if epoch % checkpoint_every == 0:
            send(record, _save_checkpoint(trainer))
        elif time.monotonic() - last_sent[0] >= REPORT_INTERVAL_S:
            send(record, None)
        _maybe_crash(files, epoch)

    summary = trainer.run(report=report)
    files.write_json(layout.SUMMARY, summary)
    final = trainer.records[-1] if trainer.records else {}
    send({**final, **summary}, _save_checkpoint(trainer))
