"""One real Ray runtime for the whole integration session (2 CPUs, no dashboard).

Tests that need Ray take the ``ray_session`` fixture; launch.run reuses the connected runtime
instead of starting its own, so each sweep costs only its trials.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
