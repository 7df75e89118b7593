"""The launcher's side of each trial's files: a Ray Tune callback, and what it measures.

Ray Tune calls :class:`SweepCallback` from its loop (the launcher's main thread). It

* hands the signal routing of :class:`~sparsity_tune.sweep.stop.Stop` to Ray's handler once Ray
  has installed it;
* writes ``stopped.txt`` the moment the scheduler (ASHA) stops a trial early, and only then (an
  interrupted sweep stops trials too, without a result: no file);
* removes a finished trial's error files of earlier failed attempts (Ray keeps a copy in its
  staging directory and would copy it back);
* keeps an atomic copy of each complete snapshot of Ray's state (``.ray-state/``, see
  :mod:`sparsity_tune.sweep.state`);
* watches the free space of a local storage and stops the sweep, the way SIGUSR1 does, before a
  full disk can cut Ray's state files off; a trial that reports ``ENOSPC`` stops it too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.tune import Callback

from sparsity_tune import layout
from sparsity_tune.machine import free_bytes
from sparsity_tune.metrics import M
from sparsity_tune.sweep import checkpoints, state
from sparsity_tune.sweep.plan import Plan
from sparsity_tune.sweep.stop import DISK_FULL, Stop
from sparsity_tune.sweep.trainable import STORAGE_FULL

#: How often the free space of a local storage is checked, and the least the sweep keeps free.
SPACE_CHECK_S = 2.0
MIN_FREE_BYTES = 1 << 20
#: How often the list of Ray's state files in its staging directory is refreshed.
STATE_LIST_S = 5.0

log = logging.getLogger("sparsity_tune.launch")


@dataclass
class Housekeeping:
    """Launcher-side trial bookkeeping (a Ray Tune callback's state)."""

    exp: str
    stop: Stop
    local: bool
    ckpt_bytes: int = 0
    state_bytes: int = 0
    _last_space: float = 0.0
    _backed_up: float = 0.0
    _live: set = field(default_factory=set)
    _state_files: list = field(default_factory=list)  # Ray's state files in its staging dir
    _listed: float = 0.0


class SweepCallback(Callback):
    """Installs the signal routing, writes ``stopped.txt`` when the scheduler stops a trial,
    removes a finished trial's stale error files, backs Ray's state up, and stops the sweep
    when the storage is full."""

    def __init__(self, hk: Housekeeping) -> None:
        self.hk = hk

    def __getstate__(self) -> dict[str, Any]:
        return {}  # rebuilt by every launcher; nothing of it belongs in tuner.pkl

    def setup(self, **info: Any) -> None:
        if getattr(self, "hk", None) is not None:
            self.hk.stop.attach_ray()

    # -- trial files
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.hk._live.add(trial.trial_id)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        # `done` without the summary's keys: the scheduler (ASHA) stopped it early
        if result.get("done") and M.best_val_acc not in result:
            _write_trial_file(
                trial,
                layout.STOPPED,
                f"stopped early by the scheduler after epoch {result.get(M.epoch)}\n",
            )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.hk._live.discard(trial.trial_id)
        if _trial_has_summary(trial):  # a finish supersedes earlier attempts' error files
            for name in (layout.ERROR, "error.pkl"):
                if trial.local_path:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(trial.local_path, name))
                _delete_trial_file(trial, name)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.hk._live.discard(trial.trial_id)
        self._check_storage_error(trial)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check_storage_error(trial)

    def _check_storage_error(self, trial: Any) -> None:
        text = ""
        for path in (trial.error_file,):
            if path:
                with contextlib.suppress(OSError):
                    text += Path(path).read_text(errors="replace")
        if STORAGE_FULL in text or any(s in text for s in DISK_FULL):
            self.hk.stop.request(
                "storage_full", f"trial {trial.trial_id} found no space left on {self.hk.exp}"
            )
            # Ray would copy its long error files over the trial's own error.txt (which says
            # what happened and what to do), and on a full disk cut them off: keep the trial's.
            for name in (layout.ERROR, "error.pkl"):
                if trial.local_path:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(trial.local_path, name))

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        with contextlib.suppress(Exception):
            fs, path = checkpoint.filesystem, checkpoint.path
            with fs.open_input_stream(f"{path}/{checkpoints.MANIFEST_FILE}") as f:
                self.hk.ckpt_bytes = max(self.hk.ckpt_bytes, json.loads(f.readall())["bytes"])

    # -- every turn of Tune's loop: back up Ray's state, watch the free space
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        hk = self.hk
        hk.stop.deliver()
        if not hk.local or not trials:
            return
        self._backup(trials)
        now = time.monotonic()
        if now - hk._last_space < SPACE_CHECK_S or hk.stop.stopping:
            return
        hk._last_space = now
        free = free_bytes(hk.exp)
        need = self.reserve()
        if free is not None and free < need:
            hk.stop.request(
                "storage_full",
                f"{free / 2**20:.1f} MiB free on the storage of {hk.exp}, below the "
                f"{need / 2**20:.1f} MiB the sweep keeps in reserve",
            )

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.hk.local and trials:  # after Ray's last save: the newest snapshot
            self.hk._backed_up = 0.0
            self.hk._state_files = []  # and every file of it, listed afresh
            self._backup(trials)

    def reserve(self) -> int:
        hk = self.hk
        live = max(1, len(hk._live))
        return max(MIN_FREE_BYTES, 2 * hk.state_bytes + live * 2 * hk.ckpt_bytes)

    def _backup(self, trials: list) -> None:
        hk = self.hk
        now = time.monotonic()
        # Called on every turn of Tune's loop (tens a second): listing the staging directory
        # (every trial's staging folder in it) each time cost more than the rest of this
        # callback. Ray's state files keep their names within a session, so the list is
        # refreshed every STATE_LIST_S and each turn only stats the few files on it.
        if not hk._state_files or now - hk._listed >= STATE_LIST_S:
            staging = Path(trials[0].storage.experiment_driver_staging_path)
            hk._state_files, hk._listed = state.ray_state_files(staging), now
        try:
            newest = max((p.stat().st_mtime for p in hk._state_files), default=0.0)
        except OSError:  # a file went away (Ray renamed it): list again next turn
            hk._state_files = []
            return
        if newest <= hk._backed_up:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        files = hk._state_files
        try:
            if state.backup_ray_state(staging, Path(self.hk.exp)):
                self.hk._backed_up = newest
                self.hk.state_bytes = sum(p.stat().st_size for p in files)
        except OSError as err:
            log.debug("backup of Ray's state failed: %s", err)


def _trial_has_summary(trial: Any) -> bool:
    try:
        info = trial.storage.storage_filesystem.get_file_info(f"{trial.path}/{layout.SUMMARY}")
    except OSError:
        return False
    return info.type == pyarrow.fs.FileType.File


def _write_trial_file(trial: Any, name: str, text: str) -> None:
    fs = trial.storage.storage_filesystem
    with contextlib.suppress(OSError):
        if isinstance(fs, pyarrow.fs.LocalFileSystem):
            layout.write_text(Path(trial.path) / name, text)
        else:
            with fs.open_output_stream(f"{trial.path}/{name}") as f:
                f.write(text.encode())


def _delete_trial_file(trial: Any, name: str) -> None:
    with contextlib.suppress(OSError):
        trial.storage.storage_filesystem.delete_file(f"{trial.path}/{name}")


def backup_tuner_pkl(exp: str) -> None:
    """tuner.pkl is written once, when the experiment starts: keep a copy beside Ray's state."""
    with contextlib.suppress(OSError):
        src = Path(exp) / "tuner.pkl"
        if state.is_intact(src):
            dest = Path(exp) / state.BACKUP_DIR
            dest.mkdir(exist_ok=True)
            tmp = dest / ".tuner.pkl.tmp"
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dest / "tuner.pkl")


def space_needed(plan: Plan) -> str:
    """An estimate of the space the rest of the sweep needs, from what its trials wrote."""
    root = Path(plan.experiment)
    ckpt, rec, todo = 0, 0, 0
    for d in root.glob("trial_*"):
        for m in d.glob(f"{checkpoints.CHECKPOINT_PREFIX}*/{checkpoints.MANIFEST_FILE}"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                ckpt = max(ckpt, int(layout.read_json(m)["bytes"]))
        with contextlib.suppress(OSError):
            n = len(layout.read_records(d, warn=False))
            if n:
                rec = max(rec, (d / layout.RECORDS).stat().st_size // n)
        if layout.trial_status(d) != layout.FINISHED:
            todo += 1
    todo = max(todo, plan.trials - sum(1 for _ in root.glob("trial_*")) + todo)
    need = todo * (3 * ckpt + plan.max_epochs * rec) + (1 << 20)
    return (
        f"about {need / 2**20:.1f} MiB more are needed for {todo} unfinished trial(s) "
        f"(checkpoints of {ckpt / 2**20:.2f} MiB, three kept while writing, and records)"
    )
