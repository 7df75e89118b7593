"""A normal (non-editable) install works: the wheel ships everything read at run time.

Builds the wheel, installs it into a fresh virtual environment (reusing the running
environment's packages for torch, Ray and the rest, so nothing is downloaded), and runs the installed
package from a directory outside the checkout: ``slurm submit --dry-run`` (reads the batch
template, package data), a one-epoch ``train``, and the ``sparsity-tune`` console command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    # setuptools writes build/ and *.egg-info beside the sources: build from a copy, so the
    # checkout stays as it was (a stale build/lib would also shadow edits in later greps)
    src = tmp / "src"
    for pkg in ("sparsity_tune", "analysis"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    run([*pip_wheel, "-q", "-w", str(tmp / "dist"), str(src)], tmp, env)
    (wheel,) = (tmp / "dist").glob("sparsity_tune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sparsity_tune/cluster/ray_sweep.sbatch.tmpl" in names
    run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp, env)
    python = tmp / "venv" / "bin" / "python"
    # torch, Ray, ... come from the environment running this test, whatever it is (a venv,
    # activated or not, or the system Python): its import path, less the checkout, goes into
    # the new venv's import path (`--system-site-packages` would give the base interpreter's,
    # which has no torch when the tests run in a venv). A .pth line adds a path without running
    # the .pth files in it, so the checkout's editable install does not come along.
    site_dir = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env
    ).stdout.strip()
    borrowed = [
        p
        for p in sys.path
        if p and Path(p).is_dir() and not Path(p).resolve().is_relative_to(REPO.resolve())
    ]
    (Path(site_dir) / "zz_test_env.pth").write_text("\n".join(borrowed) + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp, env)
    env["PATH"] = f"{tmp / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return python, env


def test_installed_package_is_the_wheel(venv, tmp_path):
    python, env = venv
    out = run(
        [str(python), "-c", "import sparsity_tune; print(sparsity_tune.__file__)"], tmp_path, env
    )
    assert str(python.parents[1]) in out.stdout, "the checkout, not the wheel, was imported"


def test_slurm_dry_run_from_the_wheel(venv, tmp_path):
    python, env = venv
    env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}  # no site file of the user's
    smoke = str(REPO / "search_spaces" / "smoke.yaml")
    cmd = [str(python), "-m", "sparsity_tune.slurm", "submit", smoke, "--dry-run"]
    out = run([*cmd, "--storage", str(tmp_path / "store")], tmp_path, env)
    assert out.stdout.startswith("#!/bin/bash") and "#SBATCH" in out.stdout


def test_one_epoch_train_and_console_command_from_the_wheel(venv, tmp_path, data_root):
    _, env = venv
    sets = ["--set", "train.epochs=1", "--set", "pruning.end_epoch=1"]
    sets += ["--set", f"dataset.root={data_root}", "--out", str(tmp_path / "run")]
    out = run(
        ["sparsity-tune", "train", str(REPO / "search_spaces" / "smoke.yaml"), *sets], tmp_path, env
    )
    assert "epoch   1/1" in out.stdout
    assert (tmp_path / "run" / "summary.json").exists()
    usage = run(["sparsity-tune", "--help"], tmp_path, env).stdout
    assert all(c in usage for c in ("train", "launch", "analysis", "slurm"))
