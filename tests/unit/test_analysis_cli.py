"""`python -m analysis`: every output file with its columns; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.load import ID_COLUMNS
from analysis.synthetic import write_experiment
from sparsity_tune.metrics import RECORD_KEYS, SUMMARY_KEYS

X = ["nonzero_params", "epoch_time_s"]


@pytest.fixture(scope="module")
def running_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    write_experiment(root, grid={"model.depth": [1]}, seeds=(0, 1), epochs=4, running=3, failed=1)
    return root


def test_cli_writes_every_file_on_a_running_experiment(running_experiment, capsys):
    out = running_experiment / "out"
    assert main([str(running_experiment), "--out", str(out), "--x", *X, "--quiet"]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials.columns[: len(ID_COLUMNS)]) == list(ID_COLUMNS)
    assert {*RECORD_KEYS, *SUMMARY_KEYS, "config_id", "model.width"} <= set(trials.columns)
    assert trials["status"].value_counts().to_dict() == {"finished": 36, "running": 3, "failed": 1}
    history = pd.read_csv(out / "history.csv")
    assert {"trial_id", *RECORD_KEYS} <= set(history.columns)
    assert len(history) == trials["epochs_done"].sum()
    configs = pd.read_csv(out / "configs.csv")
    assert {"n_seeds", "test_acc", "test_acc_std", "test_acc_ci95_lo", "test_acc_ci95_hi"} <= set(
        configs.columns
    )
    unfinished = set(trials.loc[trials["status"] != "finished", "config_id"])
    finished = set(trials.loc[trials["status"] == "finished", "config_id"])
    for x in X:
        front = pd.read_csv(out / f"pareto_{x}.csv")
        assert {
            x,
            f"{x}_std",
            "test_acc",
            "test_acc_ci95_lo",
            "n_seeds",
            "hypervolume",
            "hv_ref_x",
            "hv_ref_y",
            "hv_reference",
        } <= set(front.columns)
        assert len(front) >= 1 and set(front["config_id"]) <= finished
        # configs whose every trial is unfinished never reach a front
        assert not (set(front["config_id"]) & (unfinished - finished))
    hv = pd.read_csv(out / "hypervolume.csv")
    assert hv["x"].tolist() == X and (hv["reference"].str.contains("worst observed")).all()
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert {
        "front_nonzero_params.png",
        "acc_vs_sparsity.png",
        "learning_curves.png",
        "sparsity_schedule.png",
        "cost_vs_sparsity.png",
    } <= set(pngs)
    assert all((out / "plots" / p).stat().st_size > 5000 for p in pngs)
    html = (out / "report.html").read_text()
    assert "<script src=" not in html and "Plotly.newPlot" in html  # plotly.js inlined
    for title in (
        "1. Training dynamics",
        "2. Highest sparsity",
        "3. Robustness",
        "4. Accuracy / time / memory",
        "5. MLP vs CNN",
        "Large-sparse vs small-dense",
    ):
        assert title in html


@pytest.mark.parametrize(
    "args",
    [
        ["/nonexistent/dir"],
        ["{tmp}"],
        ["{tmp}", "--x", "accuracy"],
        ["{tmp}", "--tolerance", "-1"],
        ["s3://bucket/results/cnn"],
    ],
)
def test_bad_input_exits_2_with_one_message(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, "-m", "analysis", *args], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "error:" in r.stderr
    assert r.stdout == ""


def test_cli_when_the_accuracy_metric_is_missing_everywhere(tmp_path):
    write_experiment(tmp_path, grid={"model.depth": [1], "model.width": [32]}, seeds=(0,), epochs=2)
    for rec_file in tmp_path.glob("trials/*/records.jsonl"):
        recs = [json.loads(ln) for ln in rec_file.read_text().splitlines()]
        for r in recs:
            r["test_acc"] = None
        rec_file.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "out"
    assert main([str(tmp_path), "--out", str(out), "--x", "nonzero_params", "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert "Not available: no finished configuration has both test_acc and sparsity values" in html
    assert (
        "nonzero_params (counted): not available (no operating point has both nonzero_params "
        "and test_acc)" in html
    )
    assert pd.read_csv(out / "pareto_nonzero_params.csv").empty


def test_cli_analyses_several_directories_together(tmp_path, capsys):
    """Two experiments (an IMP lottery sweep and a gradual one) in one report: trial ids that
    clash are told apart, each trial names its experiment, points.csv and methods.csv carry the
    intervals, and the default output lies beside the first directory."""
    lottery = {
        "model.arch": ["mlp"],
        "model.depth": [1],
        "model.width": [32],
        "pruning.final_sparsity": [0.0],
        "pruning.method": ["imp"],
        "pruning.score": ["magnitude", "random"],
    }
    write_experiment(tmp_path / "lt", grid=lottery, seeds=(0, 1), epochs=3, name="lt", rounds=2)
    gradual = {"model.depth": [1], "model.width": [32], "pruning.final_sparsity": [0.0, 0.75]}
    write_experiment(tmp_path / "gr", grid=gradual, seeds=(0, 1), epochs=3, name="gr")
    write_experiment(tmp_path / "gr2", grid=gradual, seeds=(0, 1), epochs=3, name="gr")
    args = [str(tmp_path / d) for d in ("lt", "gr", "gr2")]
    assert main([*args, "--x", "nonzero_params", "--no-plots", "--quiet"]) == 0
    out = tmp_path / "analysis-lt+gr+gr2"  # gr's name is taken twice: the directories name them
    trials = pd.read_csv(out / "trials.csv")
    names = {"lt", (tmp_path / "gr").as_posix(), (tmp_path / "gr2").as_posix()}
    assert set(trials["experiment"]) == names and len(trials) == 4 + 8 + 8
    assert trials["trial_id"].is_unique  # gr and gr2 hold the same trial ids: prefixed
    assert trials["trial_id"].str.startswith((tmp_path / "gr2").as_posix() + "/").sum() == 8
    configs = pd.read_csv(out / "configs.csv")
    assert (configs["n_seeds"] == 2).all()  # gr2 repeats gr's settings and seeds: counted once
    points = pd.read_csv(out / "points.csv")
    assert {"point_id", "round", "variant", "diff_pts", "diff_ci95_lo", "verdict"} <= set(
        points.columns
    )
    assert sorted(points["round"].dropna().unique()) == [0.0, 1.0, 2.0]
    methods = pd.read_csv(out / "methods.csv")
    assert len(methods) == 2 and set(methods["variant_b"]) == {"method=imp score=random"}
    html = (out / "report.html").read_text()
    assert "3 experiments analysed together: lt (4 trials" in html


def test_cli_refuses_a_bad_directory_among_several(tmp_path, capsys):
    write_experiment(tmp_path / "ok", grid={"model.depth": [1]}, seeds=(0,), epochs=2)
    assert main([str(tmp_path / "ok"), str(tmp_path / "missing"), "--quiet"]) == 2
    assert "missing: not a directory" in capsys.readouterr().err


def test_the_report_names_the_package_versions_of_launch_json(tmp_path):
    """Issue 19: a figure can be traced to its stack (launch.json's versions, in the header)."""
    from sparsity_tune import layout, stack

    root = tmp_path / "exp"
    write_experiment(root, grid={"model.depth": [1]}, seeds=(0,), epochs=2)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--quiet"]) == 0
    assert "Package versions: not recorded" in (out / "report.html").read_text()

    versions = {**stack.versions(), "optuna": "5.1.0<script>"}
    (root / layout.LAUNCH).write_text(json.dumps({"versions": versions}))
    assert main([str(root), "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert f"Package versions: python {versions['python']}, torch {versions['torch']}" in html
    assert "optuna 5.1.0&lt;script&gt;" in html  # escaped like every file-borne string
