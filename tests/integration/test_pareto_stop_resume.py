"""search.scheduler pareto_asha end to end: an interrupted and resumed sweep stops the same
configurations as an uninterrupted one, at the same rungs (decisions saved in pareto_stop.jsonl)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sweep_helpers import interrupt_when, launcher, tiny_spec, trial_dirs

from sparsity_tune import layout
from sparsity_tune.sweep import launch
from sparsity_tune.sweep.pareto_stop import DECISIONS, read_log

pytestmark = pytest.mark.slow


def spec(tmp_path: Path, data_root: Path) -> Path:
    return tiny_spec(
        tmp_path / "pstop.yaml",
        data_root,
        "pstop",
        {
            "algorithm": "grid",
            "parameters": {
                # Adam at lr 0.5 trains badly: dominated at its own cost by lr 0.01
                "train.lr": {"values": [0.01, 0.5]},
                "pruning.final_sparsity": {"values": [0.5, 0.9]},
            },
            "seeds": [0, 1],
            "objectives": {"test_acc": "max", "nonzero_params": "min"},
            "scheduler": "pareto_asha",
            "grace_period": 2,
            "reduction_factor": 2,
            "max_concurrent": 1,  # one trial at a time: the same order of results in both runs
        },
        # trials of a few seconds, so that Ctrl-C lands mid-sweep
        dataset={"name": "mnist1d", "root": str(data_root), "train_limit": 4000, "test_limit": 300},
        model={"arch": "mlp", "depth": 1, "width": 256},
        train={"epochs": 6, "batch_size": 20, "lr": 0.01},
        pruning={"method": "gradual", "final_sparsity": 0.5, "end_epoch": 2},
        wandb={"project": "it", "mode": "disabled"},
    )


def outcome(exp: Path) -> tuple[list[tuple], dict[str, str]]:
    """The decisions (config, seed, epoch, action) and each trial's status, by config and seed."""
    log = [
        (e["config"], e["seed"], e["epoch"], e["action"]) for e in read_log(str(exp / DECISIONS))
    ]
    status = {}
    for d in trial_dirs(exp):
        cfg = layout.read_json(d / layout.CONFIG)
        status[f"{cfg['config_id']}/{cfg['seed']}"] = layout.trial_status(d)
    return log, status


def test_interrupted_and_resumed_sweep_stops_the_same_configurations(
    ray_session, tmp_path: Path, data_root: Path
) -> None:
    path = spec(tmp_path, data_root)
    storage = tmp_path / "cut"
    exp = storage / "pstop"
    log = tmp_path / "first.log"
    # The run to interrupt (its own Ray) and the uninterrupted reference (this process, the
    # session's Ray) run side by side, one trial at a time each: one CPU each.
    with interrupt_when(
        launcher([str(path), "--storage", str(storage)], log),
        lambda: len(read_log(str(exp / DECISIONS))) >= 3,  # mid-sweep: some rungs decided
        "3 decisions",
    ) as proc:
        assert launch.main([str(path), "--storage", str(tmp_path / "whole")]) == 0
    whole = outcome(tmp_path / "whole" / "pstop")
    assert any(a == "stop" for *_, a in whole[0]), "the reference sweep stopped nothing"
    assert "stopped" in whole[1].values() and "finished" in whole[1].values()
    assert proc.returncode == 128 + signal.SIGINT, log.read_text()[-3000:]
    cut = read_log(str(exp / DECISIONS))
    assert 3 <= len(cut) < len(whole[0])

    assert launch.main([str(exp), "--resume"]) == 0
    resumed = outcome(exp)
    assert resumed[0][: len(cut)] == [
        (e["config"], e["seed"], e["epoch"], e["action"]) for e in cut
    ]
    assert resumed == whole
