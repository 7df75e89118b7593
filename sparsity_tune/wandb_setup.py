"""W&B settings and names, for the sweep's trial runs and the analysis's run alike.

One owner for what both W&B writers must agree on: the default project, a trial's run id (stable
across retries and ``--resume``, so a trial always continues its own run), the group and run
names, where offline runs go, and the settings that keep W&B quiet and cheap (no system-metrics
sampler, no console capture, no git or code snapshot, bounded waits). ``wandb`` is imported only
inside :func:`wandb_settings`, so the vocabulary layer stays light.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

DEFAULT_PROJECT = "sparsity-tune"
#: W&B writes its run directories into ``<dir>/wandb``; offline runs are uploaded later with
#: ``wandb sync <dir>/wandb/offline-run-*``.
SUBDIR = "wandb"
#: Seconds ``run.finish()`` and ``wandb.init`` may wait for wandb-core.
FINISH_TIMEOUT_S, INIT_TIMEOUT_S = 30, 120


def run_id(experiment: str, trial_id: str) -> str:
    """Stable across retries and ``--resume``: the same trial always maps to the same W&B run."""
    return hashlib.sha256(f"{experiment}/{trial_id}".encode()).hexdigest()[:16]


def group(experiment: str, given: str | None = None) -> str:
    """The W&B group of an experiment's runs: ``given`` (``wandb.group``, ``--wandb-group``),
    else the experiment's name, so its trial runs and its analysis run sit together."""
    return given or experiment


def run_name(experiment: str, trial_id: str) -> str:
    """A trial run's display name."""
    return f"{experiment}-{trial_id}"


def analysis_run_name(experiment: str) -> str:
    return f"{experiment}-analysis"


def run_root(experiment_dir: str) -> str:
    """The directory W&B is given (``dir=``) for an experiment's trial runs: the experiment
    directory itself when it is local, else ``./wandb`` of the launching machine (W&B writes
    only local files; URI storage cannot hold them)."""
    return experiment_dir if "://" not in experiment_dir else str(Path(SUBDIR).resolve())


def quiet() -> None:
    """No W&B banners on the terminal (a user's own ``WANDB_SILENT`` wins)."""
    os.environ.setdefault("WANDB_SILENT", "true")


def wandb_settings() -> Any:
    """``wandb.Settings`` of every run this project writes."""
    import wandb

    quiet()
    return wandb.Settings(
        x_disable_stats=True,  # no system-metrics sampler thread per run
        x_disable_meta=True,
        # No pip package list per run: wandb.init enumerates every installed distribution for
        # it (80 ms of the launcher's CPU per trial, 90% of an init; bench_sweep_efficiency.py),
        # and it is the same for every trial of a sweep.
        x_save_requirements=False,
        x_disable_machine_info=True,  # git and job metadata: disable_git already drops them
        disable_git=True,
        disable_code=True,
        console="off",
        silent=True,
        finish_timeout=FINISH_TIMEOUT_S,
        init_timeout=INIT_TIMEOUT_S,
    )
