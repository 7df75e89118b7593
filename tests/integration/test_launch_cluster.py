"""A two-node Ray cluster on this machine (head + a second raylet): trials run on both nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import tiny_spec, trial_dirs, trial_files

pytestmark = pytest.mark.slow


@pytest.fixture
def two_node_cluster():
    """Ray's own test cluster: a head raylet and a worker raylet (own CPUs + a custom resource)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, resources={"second_node": 1})
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_trials_run_on_both_nodes(two_node_cluster, tmp_path: Path, data_root: Path) -> None:
    spec = tiny_spec(
        tmp_path / "two.yaml",
        data_root,
        "two",
        {"parameters": {"pruning.final_sparsity": {"values": [0.5, 0.9]}}, "seeds": [0, 1]},
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparsity_tune.launch",
            str(spec),
            "--storage",
            str(tmp_path / "res"),
            "--address",
            two_node_cluster.address,
            "--no-wandb",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    nodes = {n.node_id for n in two_node_cluster.list_all_nodes()}
    assert len(nodes) == 2
    used = set()
    for d in trial_dirs(tmp_path / "res" / "two"):
        cfg, records, summary = trial_files(d)
        assert summary is not None and len(records) == 3
        used.add(cfg["node"]["node_id"])
    assert used == nodes  # every trial ran on a node of this cluster, and both nodes got trials
