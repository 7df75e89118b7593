"""Shared fixtures: one MNIST-1D cache per test session and small, fast trial configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# Keep W&B quiet and local in every test, whatever the user's environment says.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# Under pytest-xdist (`make test` runs tests/unit with -n 2) the workers share the cores: one
# torch/OpenMP thread each, so two workers on 2 cores do not oversubscribe them. Set before torch
# is imported (its thread pool reads OMP_NUM_THREADS); subprocesses of the tests inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST-1D is generated once per session (a few seconds) and cached here."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def small_config(data_root: Path):
    """Build a TrialConfig for a quick MNIST-1D run: 800 train / 400 test samples."""
    from sparsity_tune.trial.config import trial_config

    def make(**dotted: Any):
        base = {
            "dataset.root": str(data_root),
            "dataset.train_limit": 800,
            "dataset.test_limit": 400,
            "model.arch": "mlp",
            "model.depth": 2,
            "model.width": 64,
            "train.epochs": 3,
            "train.lr": 0.01,
            "train.batch_size": 64,
            "train.threads": 1,
        }
        base.update(dotted)
        return trial_config({}, base)

    return make


#: test_acc per sparsity and seed of :func:`tolerance_sweep`: against dense .90/.91/.92, the 0.5
#: point is +0.00 points [-2.08, +2.08] (Welch), 0.9 is -3 [-5.27, -0.73], 0.95 is -20.
TOLERANCE_ACCS = {
    0.0: [0.90, 0.91, 0.92],
    0.5: [0.905, 0.91, 0.915],
    0.9: [0.87, 0.88, 0.89],
    0.95: [0.70, 0.71, 0.72],
}


@pytest.fixture
def tolerance_sweep(tmp_path: Path) -> Path:
    """A synthetic sweep whose points sit inside, across and below a 1-point tolerance
    (:data:`TOLERANCE_ACCS`, 3 seeds): the case the tolerance section is read on."""
    from analysis.synthetic import simple_trial

    for s, accs in TOLERANCE_ACCS.items():
        for seed in range(3):
            simple_trial(tmp_path, sparsity=s, seed=seed, acc=accs[seed])
    return tmp_path
