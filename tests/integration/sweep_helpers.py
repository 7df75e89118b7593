"""Helpers shared by the sweep integration tests: tiny specs, trial files, W&B offline runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from sparsity_tune import layout


def tiny_spec(path: Path, data_root: Path, name: str, search: dict[str, Any], **top: Any) -> Path:
    """A spec whose trials take a second or two: 600 MNIST-1D samples, a 32-unit MLP, 3 epochs."""
    spec = {
        "name": name,
        "dataset": {
            "name": "mnist1d",
            "root": str(data_root),
            "train_limit": 600,
            "test_limit": 300,
        },
        "model": {"arch": "mlp", "depth": 1, "width": 32},
        "train": {"epochs": 3, "batch_size": 100, "lr": 0.01},
        "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 2},
        "search": search,
        "resources": {"cpu": 1},
        "wandb": {"project": "it", "mode": "offline"},
        **top,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_dirs(exp: Path) -> list[Path]:
    return sorted(p.parent for p in exp.glob(f"*/{layout.CONFIG}"))


def trial_files(d: Path) -> tuple[dict, list[dict], dict | None]:
    summary = d / layout.SUMMARY
    return (
        layout.read_json(d / layout.CONFIG),
        layout.read_records(d),
        layout.read_json(summary) if summary.exists() else None,
    )


def wandb_records(run_dir: Path) -> list[dict]:
    """All records of one offline run, read by W&B's own reader (``wandb leet inspect --json``)."""
    out = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wandb_runs(exp: Path) -> dict[str, list[dict]]:
    """run id → its offline fragments (a resumed run has several), each a dict with the run's
    header record, the history rows, the last summary and the exit code."""
    runs: dict[str, list[dict]] = {}
    for run_dir in sorted((exp / "wandb").glob("offline-run-*")):
        recs = wandb_records(run_dir)
        run = next(r["run"] for r in recs if r["type"] == "run")
        history = [r["history"]["item"] for r in recs if r["type"] == "history"]
        summary: dict[str, Any] = {}
        for r in recs:
            if r["type"] == "summary":
                summary.update(r["summary"].get("update") or {})
        exit_code = next((r["exit"].get("exit_code", 0) for r in recs if r["type"] == "exit"), None)
        frag = {"run": run, "history": history, "summary": summary, "exit_code": exit_code}
        runs.setdefault(run["run_id"], []).append(frag)
    return runs
