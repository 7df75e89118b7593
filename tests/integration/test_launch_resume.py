"""An interrupted sweep (Ctrl-C) resumes with --resume without rerunning finished trials.

It uses Optuna with seed repeats, the path with the most state to restore (the searcher's study
and the seed groups of :class:`sparsity_tune.sweep.search.SeedRepeater`)."""

from __future__ import annotations

import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import tiny_spec, trial_dirs, trial_files, wandb_runs

from sparsity_tune import layout
from sparsity_tune.sweep import launch

pytestmark = pytest.mark.slow


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(
    ray_session, tmp_path: Path, data_root: Path
) -> None:
    spec = tiny_spec(
        tmp_path / "resume.yaml",
        data_root,
        "resume",
        {
            "algorithm": "optuna",
            "objectives": {"val_acc": "max"},
            "parameters": {
                "pruning.final_sparsity": {"distribution": "uniform", "min": 0.3, "max": 0.9}
            },
            "num_samples": 2,
            "seeds": [0, 1],
            "max_concurrent": 1,  # trials one after the other: a clean cut between them
        },
        # trials of about 2 s on a quiet machine: long enough that Ctrl-C, sent once the first
        # has finished, lands before the last one does (tiny trials all finished first)
        dataset={"name": "mnist1d", "root": str(data_root), "train_limit": 4000, "test_limit": 300},
        model={"arch": "mlp", "depth": 2, "width": 256},
        train={"epochs": 4, "batch_size": 10, "lr": 0.01},
    )
    storage = tmp_path / "res"
    exp = storage / "resume"
    args = [str(spec), "--storage", str(storage)]
    # the first run is a separate process with its own Ray, stopped by SIGINT (Ctrl-C)
    log = tmp_path / "first.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparsity_tune.launch", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if len(list(exp.glob(f"*/{layout.SUMMARY}"))) >= 1:
                break
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.2)
        else:
            pytest.fail("no trial finished in time")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Ctrl-C is an interruption, not a success: status 130 and the exact command that continues
    text = log.read_text()
    assert proc.returncode == 128 + signal.SIGINT, text[-3000:]
    hint = text.strip().splitlines()[-1].strip()
    assert hint == shlex.join(["python", "-m", "sparsity_tune.launch", str(exp), "--resume"])
    assert not list(exp.glob(f"*/{layout.STOPPED}"))

    before = {}
    for d in trial_dirs(exp):
        if (d / layout.SUMMARY).exists():
            before[d.name] = (
                (d / layout.RECORDS).stat().st_mtime_ns,
                (d / layout.SUMMARY).read_text(),
            )
    assert 1 <= len(before) < 4
    fragments_before = {k: len(v) for k, v in wandb_runs(exp).items()}

    # without --resume the experiment is not silently overwritten
    assert launch.main(args) == 2
    assert launch.main(shlex.split(hint)[3:]) == 0  # the printed command, as printed

    dirs = trial_dirs(exp)
    assert len(dirs) == 4
    for d in dirs:
        _, records, summary = trial_files(d)
        assert [r["epoch"] for r in records] == [1, 2, 3, 4]
        assert summary is not None
        if d.name in before:  # finished before the interruption: untouched
            assert (d / layout.RECORDS).stat().st_mtime_ns == before[d.name][0]
            assert (d / layout.SUMMARY).read_text() == before[d.name][1]

    runs = wandb_runs(exp)
    assert len(runs) == 4
    for run_id, frags in runs.items():
        steps = [h["_step"] for f in frags for h in f["history"]]
        assert steps == [1, 2, 3, 4], run_id  # a resumed run continues, never repeats a step
        if run_id in fragments_before and frags[0]["exit_code"] == 0 and len(frags) == 1:
            assert fragments_before[run_id] == 1
    finished_before = sum(1 for f in runs.values() if len(f) == 1 and f[0]["exit_code"] == 0)
    assert finished_before >= len(before)

    # Optuna's study came back too: two configurations, each told the mean of its two seeds
    state_files = sorted(exp.glob("searcher-state-*.pkl"))
    assert state_files
    with open(state_files[-1], "rb") as f:  # Ray saves the base searcher (OptunaSearch) here
        study = pickle.load(f)["_ot_study"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2
    finals: dict[float, list[float]] = {}
    for d in dirs:
        cfg, records, _ = trial_files(d)
        finals.setdefault(cfg["params"]["pruning.final_sparsity"], []).append(
            records[-1]["val_acc"]
        )
    assert all(len(v) == 2 for v in finals.values())
    for t in done:
        assert t.value == pytest.approx(sum(finals[t.params["pruning.final_sparsity"]]) / 2)
