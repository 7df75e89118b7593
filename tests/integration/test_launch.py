"""Sweeps end to end on a real Ray runtime: files, W&B runs, retries, seeds, Optuna, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import tiny_spec, trial_dirs, trial_files, wandb_runs

from sparsity_tune import layout, metrics
from sparsity_tune.sweep import launch
from sparsity_tune.sweep.summary import summarise, trials_frame

pytestmark = pytest.mark.slow


def test_small_grid_sweep_end_to_end(ray_session, tmp_path: Path, data_root: Path, capsys) -> None:
    spec = tiny_spec(
        tmp_path / "grid.yaml",
        data_root,
        "grid",
        {
            "parameters": {"pruning.final_sparsity": {"values": [0.5, 0.9]}},
            "seeds": [0, 1],
            # one checkpoint, at the end: epochs 1-2 (a fraction of a second each) reach Tune
            # batched with the last result and must still appear one by one in W&B
            "checkpoint_every": 3,
        },
    )
    rc = launch.main([str(spec), "--storage", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert rc == 0
    exp = tmp_path / "res" / "grid"
    assert (exp / layout.SPEC).exists()
    assert f"python -m analysis {exp}" in out

    dirs = trial_dirs(exp)
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        cfg, records, summary = trial_files(d)
        target = cfg["params"]["pruning.final_sparsity"]
        seen.add((target, cfg["seed"]))
        assert cfg["config"]["train"]["seed"] == cfg["seed"]
        assert [r["epoch"] for r in records] == [1, 2, 3]
        assert all(tuple(k for k in r if "/" not in k) == metrics.RECORD_KEYS for r in records)
        assert records[-1]["sparsity"] == pytest.approx(target, abs=0.01)
        assert summary is not None and set(metrics.SUMMARY_KEYS) <= set(summary)
    assert seen == {(0.5, 0), (0.5, 1), (0.9, 0), (0.9, 1)}  # every config once per seed

    runs = wandb_runs(exp)
    assert len(runs) == 4
    by_trial = {frags[0]["run"]["config"]["update"]["trial_id"]: frags for frags in runs.values()}
    for d in dirs:
        cfg, records, summary = trial_files(d)
        (frag,) = by_trial[cfg["trial_id"]]
        wb_cfg = frag["run"]["config"]["update"]
        assert frag["run"]["run_group"] == "grid" and frag["run"]["job_type"] == "gradual"
        assert wb_cfg["pruning.final_sparsity"] == cfg["params"]["pruning.final_sparsity"]
        assert wb_cfg["train.seed"] == cfg["seed"]
        assert [h["_step"] for h in frag["history"]] == [1, 2, 3]
        assert [h["val_acc"] for h in frag["history"]] == [r["val_acc"] for r in records]
        assert frag["summary"]["best_val_acc"] == summary["best_val_acc"]
        assert frag["exit_code"] == 0


def test_multi_objective_optuna_returns_its_pareto_trials(
    ray_session, tmp_path: Path, data_root: Path, capsys
) -> None:
    spec = tiny_spec(
        tmp_path / "mo.yaml",
        data_root,
        "mo",
        {
            "algorithm": "optuna",
            "objectives": {"val_acc": "max", "nonzero_params": "min"},
            "parameters": {
                "pruning.final_sparsity": {"distribution": "uniform", "min": 0.2, "max": 0.95},
                "model.width": {"values": [16, 48]},
            },
            "num_samples": 3,
            "seeds": [0, 1],
        },
        train={"epochs": 2, "batch_size": 100, "lr": 0.01},
        pruning={"method": "gradual", "final_sparsity": 0.5, "end_epoch": 1},
    )
    assert launch.main([str(spec), "--storage", str(tmp_path / "res"), "--no-wandb"]) == 0
    out = capsys.readouterr().out
    exp = tmp_path / "res" / "mo"
    df = trials_frame(exp)
    assert len(df) == 6 and (df["status"] == "finished").all()
    # Optuna sampled each configuration once; the repeater ran it once per seed
    params = ["pruning.final_sparsity", "model.width"]
    groups = df.groupby(params)["seed"].apply(sorted)
    assert len(groups) == 3 and all(s == [0, 1] for s in groups)
    assert not (exp / "wandb").exists()

    objectives = {"val_acc": "max", "nonzero_params": "min"}
    front = summarise(df, objectives).front
    assert "Pareto-optimal configurations" in out and 1 <= len(front) <= 3
    means = df.groupby(params)[list(objectives)].mean().reset_index()
    for _, row in means.iterrows():
        dominated = (
            (means["val_acc"] >= row["val_acc"])
            & (means["nonzero_params"] <= row["nonzero_params"])
            & (
                (means["val_acc"] > row["val_acc"])
                | (means["nonzero_params"] < row["nonzero_params"])
            )
        ).any()
        on_front = (front["val_acc"] == row["val_acc"]).any() and (
            front["nonzero_params"] == row["nonzero_params"]
        ).any()
        assert on_front == (not dominated)


BAD = {
    "unknown key": ({"search": {"algoritm": "grid"}}, "search.algoritm"),
    "missing path": ({"search": {"parameters": {"model.widht": {"values": [1]}}}}, "model.widht"),
    "min > max": (
        {"search": {"algorithm": "random", "parameters": {"train.lr": {"min": 0.1, "max": 0.01}}}},
        "min=0.1 is above max=0.01",
    ),
    "objective": (
        {"search": {"algorithm": "optuna", "objectives": {"acc": "max"}}},
        "objectives.acc",
    ),
    "asha": (
        {
            "search": {
                "algorithm": "optuna",
                "scheduler": "asha",
                "objectives": {"val_acc": "max", "sparse_bytes": "min"},
            }
        },
        "search.metric",
    ),
    "online W&B without a key": ({"wandb": {"mode": "online"}}, "no W&B API key"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_before_ray_starts(tmp_path: Path, case: str) -> None:
    import yaml

    top, expected = BAD[case]
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"name": "bad", "train": {"epochs": 2}, **top}))
    code = (
        "import sys; from sparsity_tune import launch; rc = launch.main(sys.argv[1:]); "
        "assert 'ray' not in sys.modules or not sys.modules['ray'].is_initialized(); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(spec), "--storage", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        timeout=120,
        # no W&B credentials in this environment (HOME holds ~/.netrc)
        env={k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | {"HOME": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "res").exists()


def test_failed_trial_leaves_error_txt_and_exit_1(
    ray_session, tmp_path: Path, data_root: Path, capsys
) -> None:
    # end_epoch 5 passes the field check but not the trainer's cross-key rule (epochs is 3);
    # random search does not enumerate points up front, so the trial itself fails
    spec = tiny_spec(
        tmp_path / "fail.yaml",
        data_root,
        "fail",
        {
            "algorithm": "random",
            "parameters": {"pruning.end_epoch": {"values": [5]}},
            "max_failures": 0,
        },
    )
    rc = launch.main([str(spec), "--storage", str(tmp_path / "res"), "--no-wandb"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 trial(s) failed" in out
    (d,) = [p.parent for p in (tmp_path / "res" / "fail").glob(f"*/{layout.ERROR}")]
    assert "pruning.end_epoch=5 is beyond train.epochs=3" in (d / layout.ERROR).read_text()
    df = trials_frame(tmp_path / "res" / "fail")
    assert list(df["status"]) == ["failed"]


def test_asha_stops_weak_trials_early(ray_session, tmp_path: Path, data_root: Path) -> None:
    spec = tiny_spec(
        tmp_path / "asha.yaml",
        data_root,
        "asha",
        {
            "parameters": {
                "pruning.final_sparsity": {"values": [0.3, 0.6, 0.9, 0.97, 0.99]},
                "train.lr": {"values": [0.0001, 0.01]},  # 1e-4 barely learns in 6 epochs
            },
            "scheduler": "asha",
            "metric": "val_acc",
            "grace_period": 1,
            "reduction_factor": 2,
        },
        train={"epochs": 6, "batch_size": 100, "lr": 0.01},
    )
    assert launch.main([str(spec), "--storage", str(tmp_path / "res"), "--no-wandb"]) == 0
    df = trials_frame(tmp_path / "res" / "asha")
    assert len(df) == 10
    stopped = df[df["status"] == "stopped"]
    finished = df[df["status"] == "finished"]
    assert len(stopped) >= 1 and len(finished) >= 1
    assert (finished["epochs_done"] == 6).all()
    assert ((stopped["epochs_done"] >= 1) & (stopped["epochs_done"] < 6)).all()
    # the launcher marks them, so analysis reads "stopped", not "running"
    from analysis.load import load_experiment

    status = load_experiment(tmp_path / "res" / "asha").trials["status"]
    assert (status == "stopped").sum() == len(stopped)
    assert (status == "finished").sum() == len(finished)
