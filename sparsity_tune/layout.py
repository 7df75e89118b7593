"""Files of a trial directory: the contract between the trainer CLI, the sweep and analysis.

A trial directory holds::

    config.json     {"trial_id", "experiment", "seed", "params": {dotted: value}, "config": {nested}}
    records.jsonl   one trainer record per line (keys: metrics.RECORD_KEYS + layer_sparsity/*)
    summary.json    the final summary (metrics.SUMMARY_KEYS); present only when the trial finished
    error.txt       present when the trial failed (Ray writes it; so does the CLI)
    stopped.txt     present when the scheduler (ASHA) stopped the trial early (the launcher writes it)

An experiment directory holds trial directories anywhere below it (``**/records.jsonl``), plus
``spec.yaml`` (the resolved spec) at its top. Analysis reads only these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG = "config.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.json"
ERROR = "error.txt"
STOPPED = "stopped.txt"
SPEC = "spec.yaml"


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def append_record(trial_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(trial_dir) / RECORDS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def write_records(trial_dir: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole records file (used when a trial restarts from a checkpoint)."""
    path = Path(trial_dir) / RECORDS
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def read_records(trial_dir: Path) -> list[dict[str, Any]]:
    """Records of a trial; a torn last line (trial killed mid-write) is skipped."""
    path = Path(trial_dir) / RECORDS
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
