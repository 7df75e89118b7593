"""Loading experiment directories: statuses, columns, single-trial dirs, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.load import AnalysisError, load_experiment
from analysis.synthetic import simple_trial, trial_files, write_experiment, write_trial
from sparsity_tune import layout
from sparsity_tune.metrics import RECORD_KEYS, SUMMARY_KEYS


def test_statuses_follow_the_files(tmp_path):
    simple_trial(tmp_path, seed=0, status="finished")
    simple_trial(tmp_path, seed=1, status="failed")
    simple_trial(tmp_path, seed=2, status="running")
    simple_trial(tmp_path, seed=3, status="stopped")
    exp = load_experiment(tmp_path)
    st = exp.trials.set_index("seed")["status"].to_dict()
    assert st == {0: "finished", 1: "failed", 2: "running", 3: "stopped"}
    t = exp.trials.set_index("seed")
    assert t.loc[1, "error"] == "ValueError: boom"
    assert t.loc[0, "epochs_done"] == 2 and t.loc[2, "epochs_done"] == 1
    # summary metrics exist as columns for every trial, NaN when there is no summary.json
    assert np.isnan(t.loc[2, "best_val_acc"]) and not np.isnan(t.loc[0, "best_val_acc"])
    assert len(exp.history) == 2 + 1 + 1 + 1


def test_every_metric_is_a_column_and_config_is_dotted(tmp_path):
    write_experiment(
        tmp_path,
        grid={"model.arch": ["mlp"], "pruning.final_sparsity": [0.0, 0.9]},
        seeds=(0,),
        epochs=3,
    )
    exp = load_experiment(tmp_path)
    for key in (*RECORD_KEYS, *SUMMARY_KEYS):
        assert key in exp.trials.columns
    assert {"model.arch", "model.width", "pruning.final_sparsity", "train.seed"} <= set(
        exp.trials.columns
    )
    assert list(exp.history.columns[: len(RECORD_KEYS) + 1]) == ["trial_id", *RECORD_KEYS]
    assert any(c.startswith("layer_sparsity/") for c in exp.history.columns)
    assert exp.name == "synthetic" and "pruning.final_sparsity" in exp.searched


def test_peak_memory_is_the_max_over_epochs(tmp_path):
    cfg, records, summary = trial_files("mlp", 1, 32, 0.5, 0, epochs=3)
    for r, peak in zip(records, [5_000_000, 8192, 4096], strict=True):
        r["peak_mem_bytes"] = peak
    write_trial(tmp_path / "t", cfg, records, summary)
    exp = load_experiment(tmp_path)
    assert exp.trials.loc[0, "peak_mem_bytes"] == 5_000_000
    assert exp.history["peak_mem_bytes"].tolist() == [5_000_000, 8192, 4096]


def test_single_trial_output_dir_loads(tmp_path):
    cfg, records, summary = trial_files("cnn", 2, 32, 0.8, 3)
    write_trial(tmp_path, cfg, records, summary)  # the files sit at the top, like train --out
    exp = load_experiment(tmp_path)
    assert len(exp.trials) == 1
    row = exp.trials.iloc[0]
    assert row["status"] == "finished" and row["trial_dir"] == "." and row["seed"] == 3
    assert row["test_acc"] == pytest.approx(records[-1]["test_acc"])


def test_torn_last_line_and_list_values(tmp_path):
    cfg, records, _ = trial_files("mlp", 1, 32, 0.0, 0)
    cfg["config"]["model"]["hidden"] = [64, 32]
    d = write_trial(tmp_path / "t", cfg, records)
    with open(d / layout.RECORDS, "a") as f:
        f.write('{"epoch": 7, "train_lo')  # killed mid-write
    exp = load_experiment(tmp_path)
    assert exp.trials.loc[0, "epochs_done"] == len(records)
    assert json.loads(exp.trials.loc[0, "model.hidden"]) == [64, 32]
    assert exp.trials.loc[0, "status"] == "running" and exp.warnings == []  # normal: killed


def test_a_torn_line_in_a_finished_trial_is_skipped_with_a_warning(tmp_path):
    cfg, records, summary = trial_files("mlp", 1, 32, 0.0, 0)
    d = write_trial(tmp_path / "t", cfg, records, summary)
    with open(d / layout.RECORDS, "a") as f:
        f.write('{"epoch": 7, "train_lo')
    exp = load_experiment(tmp_path)
    assert exp.trials.loc[0, "status"] == "finished"
    assert exp.trials.loc[0, "epochs_done"] == len(records)
    (warning,) = exp.warnings
    assert f"finished, yet line {len(records) + 1} of records.jsonl is torn" in warning


def test_trial_that_has_only_its_config_yet_is_running(tmp_path):
    cfg, _, _ = trial_files("mlp", 1, 32, 0.0, 0)
    (tmp_path / "t").mkdir()
    layout.write_json(tmp_path / "t" / layout.CONFIG, cfg)
    exp = load_experiment(tmp_path)
    assert exp.trials.loc[0, "status"] == "running" and exp.trials.loc[0, "epochs_done"] == 0
    assert exp.history.empty and "test_acc" in exp.history.columns


def test_started_experiment_without_trials_and_remote_uris_are_explained(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: x\n")
    with pytest.raises(AnalysisError, match="no trial has written its files yet"):
        load_experiment(tmp_path)
    with pytest.raises(AnalysisError, match="reads local files; copy the experiment first"):
        load_experiment("s3://bucket/results/cnn")


@pytest.mark.parametrize("kind", ["missing", "empty", "foreign"])
def test_bad_directories_raise_one_clear_error(tmp_path, kind):
    root = tmp_path / "x"
    if kind != "missing":
        root.mkdir()
    if kind == "foreign":
        (root / "config.json").write_text('{"lr": 0.1}')  # not a trial config
        (root / "notes.txt").write_text("hello")
    with pytest.raises(AnalysisError, match="directory") as err:
        load_experiment(root)
    assert str(root) in str(err.value)


def test_parallel_load_equals_sequential(tmp_path, monkeypatch):
    import analysis.load as load_mod

    write_experiment(
        tmp_path, grid={"model.depth": [1]}, seeds=(0, 1), epochs=3, running=2, failed=1
    )
    monkeypatch.setattr(load_mod, "CHUNK", 7)  # several chunks per worker
    one = load_experiment(tmp_path, jobs=1)
    two = load_experiment(tmp_path, jobs=2)
    pd.testing.assert_frame_equal(one.trials, two.trials)
    pd.testing.assert_frame_equal(one.history, two.history)
    assert one.searched == two.searched and len(one.trials) == 40
