"""Checkpoints: verified before use, newest intact one wins, never an endless retry, no code runs."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow.fs
import pytest
import torch

from sparsity_tune.sweep import checkpoints

FS = pyarrow.fs.LocalFileSystem()


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> list[dict]:
    """Real trainer states after epochs 1, 2 and 3 of a tiny run."""
    from sparsity_tune.trial.config import trial_config
    from sparsity_tune.trial.trainer import Trainer

    root = tmp_path_factory.mktemp("ckdata")
    cfg = trial_config(
        {},
        {
            "dataset.root": str(root),
            "dataset.train_limit": 200,
            "dataset.test_limit": 100,
            "model.width": 8,
            "train.epochs": 3,
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.5,
            "pruning.end_epoch": 2,
        },
    )
    trainer = Trainer(cfg, cpus=1)
    out = []
    trainer.run(report=lambda r: out.append(trainer.state_dict()))
    return out


def save_all(trial: Path, states: list[dict]) -> list[Path]:
    dirs = []
    for i, st in enumerate(states):
        d = trial / f"checkpoint_{i:06d}"
        d.mkdir(parents=True)
        checkpoints.write(st, str(d), st["epoch"])
        dirs.append(d)
    return dirs


def test_the_newest_intact_checkpoint_loads(tmp_path: Path, states: list[dict]) -> None:
    save_all(tmp_path, states)
    got = checkpoints.load_newest(FS, str(tmp_path))
    assert got.epoch == 3 and got.name == "checkpoint_000002" and not got.warnings
    for k, v in states[-1]["model"].items():
        assert torch.equal(got.state["model"][k], v)
    assert got.state["records"] == states[-1]["records"]
    assert torch.equal(got.state["batch_gen"], states[-1]["batch_gen"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_a_damaged_newest_checkpoint_falls_back_with_a_warning(
    tmp_path: Path, states: list[dict], damage: str
) -> None:
    dirs = save_all(tmp_path, states)
    pt = dirs[-1] / checkpoints.STATE_FILE
    data = pt.read_bytes()
    if damage == "truncate":
        pt.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        pt.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "delete":
        pt.unlink()
    else:
        (dirs[-1] / checkpoints.MANIFEST_FILE).write_text('{"epoch": 3, "by')
        pt.write_bytes(data[: len(data) // 2])
    got = checkpoints.load_newest(FS, str(tmp_path))
    assert got.epoch == 2 and got.name == "checkpoint_000001"
    assert "checkpoint_000002" in got.warnings[0] and "skipped" in got.warnings[0]
    assert "continuing from the newest intact one, checkpoint_000001" in got.warnings[-1]


def test_no_intact_checkpoint_means_a_fresh_start_not_a_failure(
    tmp_path: Path, states: list[dict]
) -> None:
    for d in save_all(tmp_path, states):
        (d / checkpoints.STATE_FILE).write_bytes(b"\0" * 10)
    got = checkpoints.load_newest(FS, str(tmp_path))
    assert got.state is None and got.epoch is None
    assert len(got.warnings) == 4 and "restarts from epoch 0" in got.warnings[-1]
    assert checkpoints.load_newest(FS, str(tmp_path / "nothing")).warnings == []


class Planted:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/nonexistent"


def test_a_planted_pickle_does_not_run(tmp_path: Path, states: list[dict], monkeypatch) -> None:
    global MARKER
    marker = tmp_path / "pwned"
    monkeypatch.setattr(__import__(__name__), "MARKER", str(marker))
    MARKER = str(marker)
    dirs = save_all(tmp_path / "t", states)
    buf = io.BytesIO()
    torch.save({"epoch": 3, "x": Planted()}, buf)
    data = buf.getvalue()
    (dirs[-1] / checkpoints.STATE_FILE).write_bytes(data)
    import hashlib

    manifest = {"format": 1, "epoch": 3, "file": "trainer.pt", "bytes": len(data)}
    manifest["sha256"] = hashlib.sha256(data).hexdigest()  # a consistent forgery
    (dirs[-1] / checkpoints.MANIFEST_FILE).write_text(json.dumps(manifest))
    got = checkpoints.load_newest(FS, str(tmp_path / "t"))
    assert not marker.exists()
    assert got.epoch == 2 and "does not load" in got.warnings[0]


def test_only_plain_data_is_saved() -> None:
    checkpoints.check_plain({"a": [1, 2.0, "x", None, torch.zeros(2)], 3: (True,)})
    with pytest.raises(TypeError, match=r"state\.gen is a torch\._C\.Generator"):
        checkpoints.check_plain({"gen": torch.Generator()})
    with pytest.raises(TypeError, match=r"state\.x\[0\] is a .*Planted"):
        checkpoints.check_plain({"x": [Planted()]})


def test_unverified_checkpoints_are_removed_to_free_space(
    tmp_path: Path, states: list[dict]
) -> None:
    dirs = save_all(tmp_path, states)
    (dirs[-1] / checkpoints.STATE_FILE).write_bytes(b"cut")
    assert checkpoints.remove_unverified(FS, str(tmp_path)) == ["checkpoint_000002"]
    assert [d.exists() for d in dirs] == [True, True, False]
