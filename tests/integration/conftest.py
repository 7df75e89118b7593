"""One real Ray runtime for the whole integration session (2 CPUs, no dashboard, loopback only).

Tests that need Ray take the ``ray_session`` fixture; launch.run reuses the connected runtime
instead of starting its own, so each sweep costs only its trials. Tests of what a launcher does
with its own Ray (signals, locks, SIGKILL) start ``python -m sparsity_tune.launch`` processes.
"""

from __future__ import annotations

import os

import pytest

# Ray reads this when it is imported: a local runtime then listens on 127.0.0.1 only, as the
# launcher's does (see sparsity_tune.sweep.launch.main).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _node_ip_address="127.0.0.1",
        )
    yield ray
    ray.shutdown()
