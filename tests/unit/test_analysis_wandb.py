"""--wandb: an offline W&B run of job_type "analysis" in the project and group given on the
command line (never spec.yaml's), holding the tables, plots and report (read back with W&B's own
reader)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from analysis.__main__ import main
from analysis.synthetic import write_experiment


def wandb_records(run_dir: Path) -> list[dict]:
    """All records of an offline run, read by W&B's own reader (``wandb leet inspect --json``)."""
    out = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_wandb_offline_run_holds_the_analysis(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    root = tmp_path / "exp"
    write_experiment(root, grid={"model.depth": [1], "model.width": [32]}, seeds=(0, 1), epochs=3)
    spec = yaml.safe_load((root / "spec.yaml").read_text())
    spec["wandb"] = {"project": "proj-x", "group": "group-y", "mode": "offline"}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    argv = [str(root), "--out", str(out), "--x", "nonzero_params", "--wandb", "--quiet"]
    argv += ["--wandb-project", "proj-x", "--wandb-group", "group-y"]
    assert main(argv) == 0  # spec.yaml's online/entity/project are ignored: the flags decide
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = wandb_records(runs[0])
    run = next(r["run"] for r in records if r["type"] == "run")
    assert (run["job_type"], run["run_group"], run["project"]) == ("analysis", "group-y", "proj-x")
    keys = {k for r in records if r["type"] == "history" for k in r["history"]["item"]}
    assert any(k.startswith("pareto/nonzero_params.") for k in keys)
    assert any(k.startswith("plots/front_nonzero_params.") for k in keys)
    media = runs[0] / "files" / "media"
    assert len(list((media / "images" / "plots").glob("*.png"))) == len(
        list((out / "plots").glob("*.png"))
    )
    assert list((media / "html").glob("report_*.html"))
    assert list((media / "table").glob("configs_*.table.json"))
    assert list((media / "table").glob("measured_*.table.json"))  # ratios to dense, by axis
