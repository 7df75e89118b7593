"""The single-trial CLI: files written, bad input is exit 2 with one message and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sparsity_tune import layout, metrics
from sparsity_tune.train import main


def _spec(tmp_path, data_root, body: str = ""):
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"dataset: {{root: {data_root}, train_limit: 400, test_limit: 200}}\n"
        "model: {arch: mlp, depth: 1, width: 32}\n"
        "train: {epochs: 2, threads: 1}\n" + body
    )
    return path


def test_cli_writes_config_records_and_summary(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    spec = _spec(tmp_path, data_root)
    rc = main(
        [
            str(spec),
            "--out",
            str(out),
            "--set",
            "pruning.method=one_shot",
            "--set",
            "pruning.final_sparsity=0.5",
        ]
    )
    assert rc == 0
    records = layout.read_records(out)
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["target_sparsity"] == 0.5 for r in records)
    assert set(metrics.RECORD_KEYS) <= set(records[0])
    summary = json.loads((out / layout.SUMMARY).read_text())
    assert set(metrics.SUMMARY_KEYS) == set(summary)
    config = json.loads((out / layout.CONFIG).read_text())
    assert config["config"]["pruning"]["final_sparsity"] == 0.5
    printed = capsys.readouterr().out
    assert "epoch   2/2" in printed and "done:" in printed


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "pruning.final_sparsity=1.5"], "pruning.final_sparsity=1.5"),
        (["--set", "model.colour=red"], "model.colour: unknown key"),
        (["--set", "pruning.method=gradual", "--set", "pruning.end_epoch=9"], "end_epoch=9"),
        (["--set", "dataset.name=svhn"], "dataset.name='svhn'"),
        (["--set", "dataset.name=mnist"], "download"),  # files missing: names the flag
        (["--set", "pruning.granularity=cubes"], "pruning.granularity: 'cubes' is not allowed"),
        (
            ["--set", "pruning.granularity=nm", "--set", "pruning.method=gradual"],
            "pruning.method='gradual' does not combine with pruning.granularity='nm'",
        ),
        (
            ["--set", "pruning.granularity=structured", "--set", "pruning.prune_output=true"],
            "pruning.prune_output=True does not combine with pruning.granularity='structured'",
        ),
        (["--set", "pruning.rewind=shuffle"], "pruning.rewind: 'shuffle' is not allowed"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(tmp_path, data_root, args, fragment, capsys):
    spec = _spec(tmp_path, data_root)
    assert main([str(spec), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


def test_bad_input_as_a_process_exits_2_without_traceback(tmp_path, data_root):
    spec = _spec(tmp_path, data_root, "pruning: {final_sparsity: 1.5}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sparsity_tune.train", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pruning.final_sparsity=1.5" in proc.stderr and "Traceback" not in proc.stderr


def test_unsupported_combination_as_a_process_exits_2_naming_both_keys(tmp_path, data_root):
    spec = _spec(tmp_path, data_root)
    args = ["--set", "pruning.granularity=nm", "--set", "pruning.method=imp"]
    proc = subprocess.run(
        [sys.executable, "-m", "sparsity_tune.train", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pruning.method='imp' does not combine with pruning.granularity='nm'" in proc.stderr
    assert "one_shot" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_spec_file_is_exit_2(tmp_path):
    assert main([str(tmp_path / "nope.yaml")]) == 2
