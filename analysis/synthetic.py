"""Synthetic experiment directories in the exact trial-file contract, for tests and the benchmark.

The numbers follow a simple, plausible model (accuracy falls off past a size-dependent sparsity,
sparse nets converge more slowly, time and memory shrink with density) so every report section
has something to say. They are inputs for exercising the analysis, never results.
"""

from __future__ import annotations

import itertools
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sparsity_tune import layout
from sparsity_tune.metrics import RECORD_KEYS

GRID: dict[str, list[Any]] = {
    "model.arch": ["mlp", "cnn"],
    "model.depth": [1, 2],
    "model.width": [32, 64],
    "pruning.final_sparsity": [0.0, 0.5, 0.8, 0.9, 0.95],
}


def _params(arch: str, depth: int, width: int) -> tuple[int, list[tuple[str, int]]]:
    """Total parameters and prunable layers (name, weights) of a toy mlp/cnn on 40-d input."""
    layers, total, fan_in = [], 0, 40
    for i in range(depth):
        w = fan_in * width if arch == "mlp" else 3 * (1 if i == 0 else width) * width
        layers.append((f"layers.{i}.weight", w))
        total += w + width
        fan_in = width
    total += fan_in * 10 + 10
    return total, layers


def trial_files(
    arch: str, depth: int, width: int, sparsity: float, seed: int, epochs: int = 6
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """config.json, records and summary of one synthetic trial."""
    rng = np.random.default_rng(zlib.crc32(repr((arch, depth, width, sparsity, seed)).encode()))
    total, layers = _params(arch, depth, width)
    prunable = sum(w for _, w in layers)
    capacity = (0.92 if arch == "cnn" else 0.88) + 0.01 * depth + 0.005 * (width // 32)
    knee = 0.75 + 0.05 * depth + 0.05 * (width // 64)
    final_acc = capacity - 1.5 * max(0.0, sparsity - knee) ** 1.5 + rng.normal(0, 0.004)
    tau = 1.0 + 1.0 * sparsity
    dense_time = 0.02 * total / 1000 * (1.5 if arch == "cnn" else 1.0)
    records = []
    for e in range(1, epochs + 1):
        s_e = sparsity * (1 - (1 - min(1.0, e / max(1, epochs - 1))) ** 3)
        acc = final_acc * (1 - 0.6 * math.exp(-e / tau)) + rng.normal(0, 0.002)
        pruned = round(s_e * prunable)
        nz = total - pruned
        train_t = dense_time * (0.6 + 0.4 * (1 - s_e)) * (1 + rng.normal(0, 0.03))
        eval_t = 0.2 * train_t
        rec = dict.fromkeys(RECORD_KEYS, 0.0)
        rec.update(
            epoch=e,
            train_loss=1.5 * math.exp(-e / tau) + 0.2 + sparsity * 0.1,
            train_acc=min(1.0, acc + 0.02),
            val_loss=1.4 * math.exp(-e / tau) + 0.3 + sparsity * 0.15,
            val_acc=acc,
            test_loss=1.4 * math.exp(-e / tau) + 0.31 + sparsity * 0.15,
            test_acc=acc - 0.003,
            sparsity=pruned / prunable,
            target_sparsity=s_e,
            total_params=total,
            nonzero_params=nz,
            dense_bytes=4 * total,
            sparse_bytes=4 * (total - prunable) + 8 * (prunable - pruned) + 4 * (width + 1) * depth,
            flops_dense=prunable,
            flops_sparse=prunable - pruned,
            epoch_time_s=train_t + eval_t,
            eval_time_s=eval_t,
            train_time_s=train_t,
            peak_mem_bytes=int(4 * total * 3 * (0.5 + 0.5 * (1 - s_e)) + 2e6),
            samples_per_s=4500 / train_t,
            lr=1e-3,
        )
        for name, w in layers:
            rec[f"layer_sparsity/{name}"] = round(s_e * w) / w
        records.append(rec)
    val = [r["val_acc"] for r in records]
    best = int(np.argmax(val))
    summary = {
        "best_val_acc": val[best],
        "best_epoch": best + 1,
        "test_acc_at_best_val": records[best]["test_acc"],
        "final_test_acc": records[-1]["test_acc"],
        "final_sparsity": records[-1]["sparsity"],
        "epochs_to_99pct": next(i + 1 for i, v in enumerate(val) if v >= 0.99 * val[best]),
        "deploy_format": "csr" if sparsity else "dense",
        "deploy_bytes": 4 * total * (1 - sparsity) * (2 if sparsity else 1),
        "infer_ms_b1": dense_time * (0.5 + 0.5 * (1 - sparsity)),
        "infer_ms_b256": dense_time * 10 * (0.3 + 0.7 * (1 - sparsity)),
        "infer_ms_dense_b1": dense_time,
        "infer_ms_dense_b256": dense_time * 10,
        "infer_speedup_b1": 1 / (0.5 + 0.5 * (1 - sparsity)),
        "infer_speedup_b256": 1 / (0.3 + 0.7 * (1 - sparsity)),
        "train_time_speedup": 1.0,
        "total_time_s": sum(r["epoch_time_s"] for r in records),
        "total_train_time_s": sum(r["train_time_s"] for r in records),
        "peak_mem_bytes_max": max(r["peak_mem_bytes"] for r in records),
        "peak_mem_kind": "cpu_live_tensors",
        "device": "cpu",
        "epochs": len(records),
    }
    method = "none" if sparsity == 0 else "gradual"
    nested = {
        "dataset": {"name": "mnist1d", "val_fraction": 0.1, "split_seed": 0},
        "model": {"arch": arch, "preset": None, "depth": depth, "width": width, "hidden": None},
        "train": {"epochs": epochs, "lr": 1e-3, "seed": seed, "optimizer": "adam"},
        "pruning": {"method": method, "final_sparsity": sparsity, "scope": "global"},
    }
    params = {
        "model.arch": arch,
        "model.depth": depth,
        "model.width": width,
        "pruning.final_sparsity": sparsity,
        "train.seed": seed,
    }
    tid = f"{arch}_d{depth}_w{width}_s{int(sparsity * 100):02d}_seed{seed}"
    config = {"trial_id": tid, "experiment": "synthetic", "seed": seed, "params": params}
    config["config"] = nested
    return config, records, summary


def write_experiment(
    root: Path,
    grid: dict[str, list[Any]] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 6,
    running: int = 0,
    failed: int = 0,
) -> list[Path]:
    """Write spec.yaml and one trial directory per grid point and seed; returns the trial dirs.

    The last ``running`` trials get only part of their records and no summary; the ``failed``
    before them get records, an error.txt and no summary.
    """
    grid = {**GRID, **(grid or {})}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spec = {"name": "synthetic", "search": {"seeds": list(seeds)}, "wandb": {"mode": "offline"}}
    (root / layout.SPEC).write_text(yaml.safe_dump(spec))
    combos = list(itertools.product(*grid.values(), seeds))
    dirs = []
    for i, (arch, depth, width, sparsity, seed) in enumerate(combos):
        cfg, records, summary = trial_files(arch, depth, width, sparsity, seed, epochs)
        d = root / "trials" / cfg["trial_id"]
        d.mkdir(parents=True, exist_ok=True)
        layout.write_json(d / layout.CONFIG, cfg)
        n_left = len(combos) - i
        if n_left <= running:
            layout.write_records(d, records[: max(1, epochs // 2)])
        elif n_left <= running + failed:
            layout.write_records(d, records[: max(1, epochs // 2)])
            (d / layout.ERROR).write_text("Traceback ...\nRuntimeError: synthetic failure\n")
        else:
            layout.write_records(d, records)
            layout.write_json(d / layout.SUMMARY, summary)
        dirs.append(d)
    return dirs


def write_trial(
    trial_dir: Path,
    config: dict[str, Any],
    records: list[dict[str, Any]],
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> Path:
    """Write one trial directory in the contract format (status follows from what is written)."""
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    layout.write_json(trial_dir / layout.CONFIG, config)
    layout.write_records(trial_dir, records)
    if summary is not None:
        layout.write_json(trial_dir / layout.SUMMARY, summary)
    if error is not None:
        (trial_dir / layout.ERROR).write_text(error)
    return trial_dir


def simple_trial(
    root: Path,
    *,
    arch: str = "mlp",
    width: int = 64,
    sparsity: float = 0.0,
    seed: int = 0,
    acc: float = 0.9,
    cost: float | None = None,
    status: str = "finished",
) -> Path:
    """A two-epoch trial whose final ``test_acc`` is ``acc`` and ``nonzero_params`` is ``cost``
    (default: width * 100 * (1 - sparsity)); for tests that need exact numbers."""
    cfg, records, summary = trial_files(arch, 1, width, sparsity, seed, epochs=2)
    total = width * 100
    nz = cost if cost is not None else total * (1 - sparsity)
    for r in records:
        r.update(total_params=total, nonzero_params=nz, test_acc=acc, sparsity=sparsity)
    summary.update(final_test_acc=acc, final_sparsity=sparsity)
    tid = cfg["trial_id"]
    d = Path(root) / tid
    if status == "finished":
        return write_trial(d, cfg, records, summary)
    if status == "failed":
        return write_trial(d, cfg, records[:1], error="Traceback\nValueError: boom\n")
    d = write_trial(d, cfg, records[:1])
    if status == "stopped":
        (d / layout.STOPPED).write_text("stopped early by the scheduler after epoch 1\n")
    return d
