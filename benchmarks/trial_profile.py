"""Where a sweep's CPU goes outside the trainer: probes for ``bench_sweep_efficiency.py --profile``.

Wraps the functions a trial's life passes through, in the trial workers and in the launcher, and
adds up, per label, *exclusive* CPU seconds of the calling thread (``time.thread_time``: what
this thread burned, not what other processes on a busy machine took) and exclusive wall seconds
(a trial's labels add up to its ``train_trial`` wall time).
Nothing here changes what the sweep does; it only times it. Worker probes are installed by
:func:`profiled_train_trial` (the trainable, wrapped) the first time it runs in a worker, and each
trial appends one JSON line to ``$SPARSITY_TUNE_PROFILE/workers.jsonl``; launcher probes are
installed by :func:`install_driver_probes` and read back with :func:`driver_totals`.

CPU outside the probed threads (Ray's core-worker threads, pyarrow's copy threads, other
processes) is not seen here: the benchmark adds it from psutil's per-process figures.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import defaultdict
from typing import Any

ENV = "SPARSITY_TUNE_PROFILE"

_local = threading.local()
_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # label -> cpu, wall, calls
_lock = threading.Lock()


def _stack() -> list[list[float]]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def timed(label: str, fn: Any) -> Any:
    """``fn`` wrapped: its exclusive thread CPU and inclusive wall go to ``label``."""
    if getattr(fn, "_probe_label", None):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = _stack()
        frame = [time.thread_time(), time.perf_counter(), 0.0, 0.0]  # cpu0, wall0, children's
        stack.append(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            stack.pop()
            cpu = time.thread_time() - frame[0]
            wall = time.perf_counter() - frame[1]
            if stack:
                stack[-1][2] += cpu
                stack[-1][3] += wall
            with _lock:
                t = _totals[label]
                t[0] += cpu - frame[2]
                t[1] += wall - frame[3]
                t[2] += 1

    wrapper._probe_label = label  # type: ignore[attr-defined]
    return wrapper


def probe(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` (a module function or a class's method) by its timed wrapper."""
    setattr(owner, name, timed(label, getattr(owner, name)))


def snapshot() -> dict[str, list[float]]:
    with _lock:
        return {k: list(v) for k, v in _totals.items()}


# ----------------------------------------------------------------------------- trial workers
_WORKER_READY = False


def install_worker_probes() -> None:
    global _WORKER_READY
    if _WORKER_READY:
        return
    _WORKER_READY = True
    import ray.tune
    from ray.train._internal import storage

    from sparsity_tune.sweep import checkpoints, trainable
    from sparsity_tune.trial import budget, data, deploy, trainer

    probe(trainable, "trial_config", "start: config validation")
    probe(trainable, "_node", "start: node info (ray runtime context)")
    probe(trainable.TrialFiles, "__init__", "start: trial files (mkdir, finished?)")
    probe(trainable.TrialFiles, "finished", "start: trial files (mkdir, finished?)")
    probe(trainable.TrialFiles, "clear", "start: trial files (mkdir, finished?)")
    probe(budget, "check_fits", "start: memory budget check")
    probe(data, "load_dataset", "start: dataset load (cache miss)")
    probe(trainer.Trainer, "__init__", "start: Trainer init (model build, warm-up)")
    probe(checkpoints, "load_newest", "start: restore lookup")
    probe(trainable.TrialFiles, "write_json", "files: config.json/summary.json")
    probe(trainable.TrialFiles, "write_records", "files: records.jsonl")
    probe(trainable.TrialFiles, "append_record", "files: records.jsonl")
    probe(trainer.Trainer, "state_dict", "checkpoint: state copy")
    probe(checkpoints, "write", "checkpoint: torch.save + SHA-256")
    probe(storage.StorageContext, "persist_current_checkpoint", "checkpoint: copy to storage")
    probe(storage.StorageContext, "persist_artifacts", "report: Ray artifact sync")
    probe(ray.tune, "report", "report: tune.report (wait for the driver)")
    probe(trainer.Trainer, "summary", "end: summary (rest)")
    probe(deploy, "build", "end: deploy build (CSR per-layer timing)")
    probe(deploy, "measure", "end: deploy measure (inference timing)")
    probe(trainer.Trainer, "dense_model", "end: dense reference model")

    run = trainer.Trainer.run

    @functools.wraps(run)
    def run_probed(self: Any, report: Any = None) -> Any:
        if report is not None:
            report = timed("report: per-epoch callback (rest)", report)
        return timed("trainer: epochs (train+prune+eval)", run)(self, report)

    trainer.Trainer.run = run_probed


def profiled_train_trial(config: dict[str, Any], **kwargs: Any) -> None:
    """``train_trial`` with the worker probes on; one JSON line per trial on return."""
    from sparsity_tune.sweep import trainable

    install_worker_probes()
    before = snapshot()
    t0, c0, p0 = time.time(), time.thread_time(), time.process_time()
    try:
        timed("start/end: train_trial (rest)", trainable.train_trial)(config, **kwargs)
    finally:
        after = snapshot()
        zero = [0.0, 0.0, 0]
        items = {
            k: [v[i] - before.get(k, zero)[i] for i in range(3)]
            for k, v in after.items()
            if v[2] != before.get(k, zero)[2]
        }
        line = {
            "pid": os.getpid(),
            "start": t0,
            "end": time.time(),
            "thread_cpu": time.thread_time() - c0,
            "process_cpu": time.process_time() - p0,
            "items": items,
        }
        path = os.path.join(os.environ[ENV], "workers.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


# ----------------------------------------------------------------------------- the launcher
def install_driver_probes() -> None:
    from ray.train._internal import storage
    from ray.tune import progress_reporter
    from ray.tune.execution import tune_controller
    from ray.tune.logger import json as json_logger

    from sparsity_tune.sweep import housekeeping, wandb_log

    tc = tune_controller.TuneController
    probe(tc, "step", "Tune loop: step (rest)")
    probe(tc, "checkpoint", "Tune loop: experiment state save + sync")
    probe(tc, "_process_trial_result", "Tune loop: result processing")
    probe(storage, "_upload_to_fs_path", "Ray syncer thread: state upload")
    probe(progress_reporter.CLIReporter, "report", "Tune loop: progress table")
    for name in ("on_trial_result", "on_trial_complete", "on_checkpoint", "on_trial_start"):
        probe(json_logger.JsonLoggerCallback, name, "callback: Ray JSON logger")
    for name in (
        "on_step_end",
        "on_trial_result",
        "on_trial_complete",
        "on_checkpoint",
        "on_trial_start",
        "on_trial_error",
    ):
        probe(housekeeping.SweepCallback, name, "callback: housekeeping")
    for name in ("on_checkpoint", "on_trial_complete", "on_trial_error"):
        probe(wandb_log.WandbTrialLogger, name, "callback: W&B enqueue")
    w = wandb_log._Writer
    probe(w, "_open", "W&B thread: run start (wandb.init)")
    probe(w, "sync", "W&B thread: log history")
    probe(w, "finish", "W&B thread: summary + finish")
    probe(w, "_prior", "W&B thread: read prior run files")


def driver_totals() -> dict[str, list[float]]:
    return snapshot()
