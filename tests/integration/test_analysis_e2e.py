"""End to end: a small real sweep (Ray Tune, real trainer), then ``python -m analysis`` on it,
every output file and its columns checked, and report.html opened in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from headless_chromium import check_page, chromium_binary
from sweep_helpers import tiny_spec

from analysis.load import ID_COLUMNS
from analysis.questions import DEFAULT_X
from sparsity_tune import layout
from sparsity_tune.metrics import RECORD_KEYS, SUMMARY_KEYS
from sparsity_tune.sweep import launch

REPO = Path(__file__).resolve().parents[2]
X = tuple(DEFAULT_X)  # counted and measured costs
PNGS = {
    "measured_vs_sparsity",
    "learning_curves",
    "sparsity_schedule",
    "convergence",
    "acc_vs_sparsity",
    "robustness",
    "cost_vs_sparsity",
    "arch_compare",
    *(f"front_{x}" for x in X),
}

needs_chromium = pytest.mark.skipif(
    chromium_binary() is None, reason="chromium missing: run scripts/setup_system.sh (as root)"
)


def run_analysis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory, data_root) -> Path:
    """8 real trials: mlp and cnn, dense (final_sparsity 0) and 80% sparse, two seeds each."""
    tmp = tmp_path_factory.mktemp("e2e")
    search = {
        "parameters": {
            "model.arch": {"values": ["mlp", "cnn"]},
            "pruning.final_sparsity": {"values": [0.0, 0.8]},
        },
        "seeds": [0, 1],
    }
    spec = tiny_spec(tmp / "e2e.yaml", data_root, "e2e", search)
    assert launch.main([str(spec), "--storage", str(tmp / "res"), "--no-wandb"]) == 0
    return tmp / "res" / "e2e"


def check_outputs(out: Path, n_trials: int, n_finished: int) -> None:
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == n_trials
    assert list(trials.columns[: len(ID_COLUMNS)]) == list(ID_COLUMNS)
    assert {
        *RECORD_KEYS,
        *SUMMARY_KEYS,
        "config_id",
        "model.arch",
        "pruning.final_sparsity",
        "train.seed",
    } <= set(trials.columns)
    assert (trials["status"] == "finished").sum() == n_finished
    history = pd.read_csv(out / "history.csv")
    assert ["trial_id", *RECORD_KEYS] == list(history.columns[: len(RECORD_KEYS) + 1])
    assert len(history) == trials["epochs_done"].sum()
    configs = pd.read_csv(out / "configs.csv")
    assert len(configs) == 4 and (configs["n_seeds"] >= 1).all()
    for m in ("test_acc", *X):
        assert {m, f"{m}_std", f"{m}_ci95_lo", f"{m}_ci95_hi"} <= set(configs.columns)
    finished_ids = set(trials.loc[trials["status"] == "finished", "config_id"])
    for x in X:
        front = pd.read_csv(out / f"pareto_{x}.csv")
        assert {
            "config_id",
            "label",
            "n_seeds",
            x,
            f"{x}_std",
            "test_acc",
            "test_acc_std",
            "test_acc_ci95_lo",
            "test_acc_ci95_hi",
            "hypervolume",
            "hv_ref_x",
            "hv_ref_y",
            "hv_reference",
        } <= set(front.columns)
        assert len(front) >= 1 and set(front["config_id"]) <= finished_ids
    hv = pd.read_csv(out / "hypervolume.csv")
    assert hv["x"].tolist() == list(X) and hv["hypervolume"].notna().all()
    assert set(hv["versus_dense"]) <= {"moves", "flat: within seed noise", "unjudged"}
    assert hv.set_index("x")["kind"].to_dict()["nonzero_params"] == "counted"
    assert hv.set_index("x")["kind"].to_dict()["infer_ms_b256"] == "measured"
    measured = pd.read_csv(out / "measured.csv")
    assert {"axis", "kind", "axis_state", "granularity", "ratio", "ratio_ci95_lo"} <= set(
        measured.columns
    )
    assert set(measured["axis"]) <= set(X) and (measured["ratio"] > 0).all()
    assert (measured["sparsity"] > 0).all() and set(measured["granularity"]) == {"unstructured"}
    pngs = {p.stem for p in (out / "plots").glob("*.png")}
    assert pngs >= PNGS
    assert all(p.stat().st_size > 5_000 for p in (out / "plots").glob("*.png"))


@pytest.mark.slow
def test_real_sweep_analysed_and_report_renders(sweep: Path) -> None:
    r = run_analysis(str(sweep))
    assert r.returncode == 0, r.stderr
    out = sweep / "analysis"
    check_outputs(out, n_trials=8, n_finished=8)
    text = r.stdout
    # every question is answered with numbers from this sweep (both archs have a dense baseline)
    for arch in ("mlp", "cnn"):  # either answer is a sentence about the 80% sparse config
        assert (
            f"{arch}: up to sparsity 0.8" in text
            or f"{arch}: no pruned point is resolved within 1 point(s) of dense" in text
        )
        assert "95% CI [" in text  # every claim carries its interval
    assert "Not available: the finished trials cover one architecture" not in text
    html = (out / "report.html").read_text()
    for sid in ("dynamics", "tolerance", "robustness", "tradeoffs", "arch", "matched"):
        assert f"<section id='sec-{sid}'>" in html
    if chromium_binary() is None:
        pytest.skip("chromium missing: run scripts/setup_system.sh (as root) to check rendering")
    page = check_page(out / "report.html")
    assert page.errors == []
    assert page.plots == page.rendered == len(PNGS)
    assert page.duplicate_ids == []
    assert sorted(page.rendered_ids) == sorted(f"DIV#fig-{k}" for k in PNGS)


@pytest.mark.slow
def test_running_experiment_is_analysed(sweep: Path, tmp_path: Path) -> None:
    """A copy of the sweep where one trial is still running and one has failed."""
    exp = tmp_path / "running"
    shutil.copytree(sweep, exp, ignore=shutil.ignore_patterns("analysis", "checkpoint_*"))
    dirs = sorted(p.parent for p in exp.glob(f"*/{layout.RECORDS}"))
    running, failed = dirs[0], dirs[1]
    (running / layout.SUMMARY).unlink()
    records = layout.read_records(running)
    layout.write_records(running, records[:1])
    (failed / layout.SUMMARY).unlink()
    (failed / layout.ERROR).write_text("Traceback (most recent call last):\nRuntimeError: oom\n")
    r = run_analysis(str(exp), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    check_outputs(tmp_path / "out", n_trials=8, n_finished=6)
    trials = pd.read_csv(tmp_path / "out" / "trials.csv").set_index("trial_dir")
    assert trials.loc[running.name, "status"] == "running"
    assert trials.loc[running.name, "epochs_done"] == 1
    assert trials.loc[failed.name, "status"] == "failed"
    assert trials.loc[failed.name, "error"] == "RuntimeError: oom"


@pytest.mark.slow
def test_single_trial_output_dir(tmp_path: Path, data_root: Path) -> None:
    spec = tiny_spec(tmp_path / "one.yaml", data_root, "one", {})
    r = subprocess.run(
        [sys.executable, "-m", "sparsity_tune.train", str(spec), "--out", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    r = run_analysis(str(tmp_path / "run"), "--no-plots")
    assert r.returncode == 0, r.stderr
    trials = pd.read_csv(tmp_path / "run" / "analysis" / "trials.csv")
    assert len(trials) == 1 and trials.loc[0, "status"] == "finished"
    assert trials.loc[0, "trial_dir"] == "."
    front = pd.read_csv(tmp_path / "run" / "analysis" / "pareto_nonzero_params.csv")
    assert len(front) == 1 and front.loc[0, "n_seeds"] == 1
    assert "Not available" in r.stdout  # one configuration: most questions cannot be answered


@needs_chromium
def test_page_check_catches_errors_and_unrendered_figures(tmp_path: Path) -> None:
    """The browser check itself can fail: a broken page reports its errors and empty figure."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><div class='js-plotly-plot' id='f'></div>"
        "<p id='f'></p><script>console.error('boom'); notDefined();</script></body></html>"
    )
    page = check_page(bad)
    assert page.plots == 1 and page.rendered == 0 and page.duplicate_ids == ["f"]
    assert any("boom" in e for e in page.errors)
    assert any("notDefined" in e for e in page.errors)
