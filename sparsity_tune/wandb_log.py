"""One W&B run per trial, written from the Ray Tune driver by a ``tune.Callback``.

Why the driver and not the trial: one wandb-core service serves every trial's run (``reinit=
"create_new"`` keeps several runs open in one process), trial workers never pay wandb's start-up,
and offline runs land in ``<experiment>/wandb`` on the machine that launched the sweep even when
trials run on other nodes.

Each run: ``id`` = a stable hash of experiment + trial id, ``resume="allow"`` (a retried or resumed
trial continues its own run: steps are epochs and only epochs beyond the last one logged are sent),
``group`` = the experiment, ``job_type`` = the pruning method, ``config`` = the flat dotted trial
config, history = the trainer's records (``step=epoch``), summary = the final summary. W&B never
blocks an exit for long: stats/console capture are off and ``finish_timeout`` bounds the flush.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback

from sparsity_tune import metrics
from sparsity_tune.search import trial_params, trial_seed
from sparsity_tune.spec import Spec

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
    """Ray Tune callback: opens a run when a trial starts, logs records, finishes at the end."""

    def __init__(self, spec: Spec, experiment_dir: str | Path) -> None:
        self.spec = spec
        self.dir = Path(experiment_dir)
        self.runs: dict[str, Any] = {}
        self.last_step: dict[str, int] = {}

    def _open(self, trial: Any) -> Any:
        run = self.runs.get(trial.trial_id)
        if run is not None:
            return run
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.dir.mkdir(parents=True, exist_ok=True)
        params = trial_params(trial.config)
        seed = trial_seed(trial.config, self.spec.search.seeds)
        cfg = self.spec.resolve(params, seed)
        w = self.spec.wandb
        run = wandb.init(
            project=w.project,
            entity=w.entity,
            group=w.group or self.spec.name,
            job_type=cfg.pruning.method,
            tags=w.tags or None,
            name=f"{self.spec.name}-{trial.trial_id}",
            id=run_id(self.spec.name, trial.trial_id),
            resume="allow",
            dir=str(self.dir),
            mode=w.mode,
            reinit="create_new",
            config={**cfg.flat(), "trial_id": trial.trial_id, "experiment": self.spec.name},
            settings=wandb_settings(),
        )
        self.runs[trial.trial_id] = run
        self.last_step.setdefault(trial.trial_id, 0)
        return run

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._open(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        run = self._open(trial)
        step = int(result.get("epoch", 0))
        if step <= self.last_step.get(trial.trial_id, 0):
            return  # already logged by an earlier attempt of this trial
        row = {
            k: v
            for k, v in result.items()
            if k in metrics.RECORD_KEYS or k.startswith(metrics.LAYER_SPARSITY_PREFIX)
        }
        run.log(row, step=step)
        self.last_step[trial.trial_id] = step

    def _close(self, trial: Any, exit_code: int) -> None:
        run = self.runs.pop(trial.trial_id, None)
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as err:  # never let logging break the sweep
            log.warning("W&B run of trial %s did not finish cleanly: %s", trial.trial_id, err)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self.runs.get(trial.trial_id)
        last = trial.last_result or {}
        if run is not None:
            run.summary.update({k: last[k] for k in metrics.SUMMARY_KEYS if k in last})
            run.summary["seed"] = trial_seed(trial.config, self.spec.search.seeds)
        self._close(trial, 0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, 1)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close_all()

    def close_all(self) -> None:
        """Finish every open run (interrupted sweep): bounded by finish_timeout, never hangs."""
        for tid in list(self.runs):
            run = self.runs.pop(tid)
            try:
                run.finish(exit_code=1)
            except Exception as err:
                log.warning("W&B run of trial %s did not finish cleanly: %s", tid, err)
