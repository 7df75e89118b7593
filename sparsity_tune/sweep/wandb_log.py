"""One W&B run per trial, written from the Ray Tune driver by a ``tune.Callback``.

Why the driver and not the trial: one wandb-core service serves every trial's run (``reinit=
"create_new"`` keeps several runs open in one process), trial workers never pay wandb's start-up,
and offline runs land in ``<experiment>/wandb`` on the machine that launched the sweep even when
trials run on other nodes.

Each run: ``id`` = a stable hash of experiment + trial id, ``resume="allow"`` (a retried or resumed
trial continues its own run: steps are epochs and only epochs beyond the last one logged are sent),
``group`` = the experiment, ``job_type`` = the pruning method, ``config`` = the flat dotted trial
config, history = the trainer's records (``step=epoch``), summary = the final summary. The last step logged to each run is kept in
``<experiment>/wandb/<run id>.last_step`` so a run resumed by a later ``--resume`` (offline W&B
cannot report it) skips the epochs it already holds. W&B never
blocks an exit for long: stats/console capture are off and ``finish_timeout`` bounds the flush.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import weakref
from pathlib import Path
from typing import Any, ClassVar

from ray.tune import Callback

from sparsity_tune import metrics
from sparsity_tune.sweep.search import trial_params, trial_seed
from sparsity_tune.sweep.spec import Spec
from sparsity_tune.sweep.trainable import RECORDS_KEY

log = logging.getLogger(__name__)


def run_id(experiment: str, trial_id: str) -> str:
    """Stable across retries and ``--resume``: the same trial always maps to the same W&B run."""
    return hashlib.sha256(f"{experiment}/{trial_id}".encode()).hexdigest()[:16]


def wandb_settings() -> Any:
    import wandb

    return wandb.Settings(
        x_disable_stats=True,  # no system-metrics sampler thread per run
        x_disable_meta=True,
        disable_git=True,
        disable_code=True,
        console="off",
        silent=True,
        finish_timeout=30,
        init_timeout=120,
    )


class WandbTrialLogger(Callback):
    """Ray Tune callback: opens a run when a trial starts, logs records, finishes at the end.

    All W&B calls happen on one background thread fed by a queue, so Tune's event loop never
    waits for ``wandb.init`` (seconds for the first one: it starts wandb-core) or ``finish``:
    trials are scheduled while W&B catches up.
    """

    _live: ClassVar[weakref.WeakSet] = weakref.WeakSet()  # loggers with a writer thread

    def __init__(self, spec: Spec, experiment_dir: str | Path) -> None:
        self.spec = spec
        self.dir = Path(experiment_dir)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {"spec": self.spec, "dir": self.dir, "_queue": None, "_thread": None}

    # ------------------------------------------------------------------ Tune's side (enqueue)
    def _put(self, item: tuple) -> None:
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(
                target=_Writer(self.spec, self.dir, self._queue).loop,
                name="wandb-trial-logger",
                daemon=True,
            )
            self._thread.start()
            WandbTrialLogger._live.add(self)
        assert self._queue is not None
        self._queue.put(item)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._put(("open", trial.trial_id, dict(trial.config)))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._put(("open", trial.trial_id, dict(trial.config)))
        for record in result.get(RECORDS_KEY) or [result]:  # every epoch since the last result
            row = {
                k: v
                for k, v in record.items()
                if k in metrics.RECORD_KEYS or k.startswith(metrics.LAYER_SPARSITY_PREFIX)
            }
            self._put(("log", trial.trial_id, row, int(record.get("epoch", 0))))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        summary = {k: last[k] for k in metrics.SUMMARY_KEYS if k in last}
        summary["seed"] = trial_seed(trial.config, self.spec.search.seeds)
        self._put(("finish", trial.trial_id, summary, 0))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._put(("finish", trial.trial_id, None, 1))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close_all()

    @classmethod
    def close_every_logger(cls) -> None:
        """Flush every logger of this process (also those Tune unpickled for --resume)."""
        for logger in list(cls._live):
            logger.close_all()

    def close_all(self, timeout: float = 120.0) -> None:
        """Finish every open run and wait for the writer, at most ``timeout`` seconds."""
        if self._thread is None:
            return
        self._put(("stop",))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "W&B writer still busy after %.0f s; leaving it (runs are offline files)", timeout
            )
        self._thread = self._queue = None


class _Writer:
    """The background thread's state: open runs and the last step logged to each."""

    def __init__(self, spec: Spec, directory: Path, q: queue.Queue) -> None:
        self.spec, self.dir, self.queue = spec, directory, q
        self.runs: dict[str, Any] = {}
        self.last_step: dict[str, int] = {}

    def loop(self) -> None:
        while True:
            item = self.queue.get()
            if item[0] == "stop":
                for tid in list(self.runs):
                    self.finish(tid, None, 1)  # still open: the sweep was interrupted
                return
            try:
                getattr(self, item[0])(*item[1:])
            except Exception as err:  # never let logging break the sweep
                log.warning("W&B %s for trial %s failed: %s", item[0], item[1], err)

    def open(self, trial_id: str, config: dict[str, Any]) -> None:
        if trial_id in self.runs:
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.dir.mkdir(parents=True, exist_ok=True)
        seed = trial_seed(config, self.spec.search.seeds)
        cfg = self.spec.resolve(trial_params(config), seed)
        w = self.spec.wandb
        self.runs[trial_id] = wandb.init(
            project=w.project,
            entity=w.entity,
            group=w.group or self.spec.name,
            job_type=cfg.pruning.method,
            tags=w.tags or None,
            name=f"{self.spec.name}-{trial_id}",
            id=run_id(self.spec.name, trial_id),
            resume="allow",
            dir=str(self.dir),
            mode=w.mode,
            reinit="create_new",
            config={**cfg.flat(), "trial_id": trial_id, "experiment": self.spec.name},
            settings=wandb_settings(),
        )
        if trial_id not in self.last_step:  # an earlier session may have logged some steps
            try:
                self.last_step[trial_id] = int(self._step_file(trial_id).read_text())
            except (OSError, ValueError):
                self.last_step[trial_id] = 0

    def _step_file(self, trial_id: str) -> Path:
        """Offline W&B cannot tell a resumed run its last step, so we keep it next to the runs."""
        return self.dir / "wandb" / f"{run_id(self.spec.name, trial_id)}.last_step"

    def log(self, trial_id: str, row: dict[str, Any], step: int) -> None:
        run = self.runs.get(trial_id)
        if run is None or step <= self.last_step.get(trial_id, 0):
            return  # already logged by an earlier attempt of this trial
        run.log(row, step=step)
        self.last_step[trial_id] = step
        path = self._step_file(trial_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(str(step))
        os.replace(tmp, path)

    def finish(self, trial_id: str, summary: dict[str, Any] | None, exit_code: int) -> None:
        run = self.runs.pop(trial_id, None)
        if run is None:
            return
        if summary:
            run.summary.update(summary)
        run.finish(exit_code=exit_code)
