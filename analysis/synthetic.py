"""Synthetic experiment directories in the exact trial-file contract, for tests and the benchmark.

The numbers follow a simple, plausible model (accuracy falls off past a size-dependent sparsity,
earlier for random pruning, random re-initialisation and coarse granularities; sparse nets
converge more slowly) so every report section has something to say; IMP trials write one climb
per round, as a rewound run does. Measured costs follow the granularity, as the trainer's do
(:func:`deploy_figures`): masked training runs at dense shapes (unstructured and N:M epochs take
dense time, plus noise), a structured run is compacted after its final pruning event (faster
epochs, less memory, a smaller and faster deployable model, gains growing with width), and the
deploy figures describe the final network only. They are inputs for exercising the analysis,
never results.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sparsity_tune import layout
from sparsity_tune.metrics import RECORD_KEYS, SUMMARY_KEYS, M

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


#: Pruning settings a synthetic trial understands (grid keys beside the four above).
PRUNING_KEYS = ("pruning.method", "pruning.score", "pruning.rewind", "pruning.granularity")


def _knee(depth: int, width: int, score: str, rewind: str, granularity: str) -> float:
    """Sparsity where accuracy starts to fall: later for bigger models; earlier for the random
    controls and coarser granularities (the order the literature reports, not a measurement)."""
    knee = 0.75 + 0.05 * depth + 0.05 * (width // 64)
    knee -= {"random": 0.45}.get(score, 0.0)
    knee -= {"reinit": 0.2, "none": 0.05}.get(rewind, 0.0)
    knee -= {"structured": 0.25, "nm": 0.1}.get(granularity, 0.0)
    return max(0.05, knee)


#: Run-to-run spread of measured times: between runs (machine load) and within one run's
#: interleaved dense-vs-deployable timing (what an in-run ratio sees).
LOAD_NOISE, RATIO_NOISE = 0.15, 0.03
#: Seed-to-seed spread of a configuration's final accuracy when its true mean is set.
SEED_SD = 0.01


def seed_acc(
    config: str,
    mean: float,
    seed: int,
    sd: float = SEED_SD,
    shared: float = 0.0,
    sweep: str = "",
) -> float:
    """Final test accuracy of seed ``seed`` of ``config`` whose true seed mean is ``mean``
    (normal, spread ``sd``): drawn from ``(config, seed)`` alone, so a seed's value is the same
    in whatever order seeds run, on disk (:func:`trial_files` with ``true_acc``) or in memory
    (``benchmarks/bench_allocation.py``). True differences between configurations are then
    exactly the differences of the ``mean`` given.

    ``shared``: the share of the seed variance that is a seed effect common to every
    configuration of ``sweep`` (a lucky seed is lucky for all of them, as the same
    initialisation and data order are in a real sweep), so two configurations' draws of the
    same seed correlate by ``shared``: their per-seed differences have variance
    ``sd_a² + sd_b² - 2 * shared * sd_a * sd_b`` (``(1 - shared)`` times the independent one at
    equal spreads). 0, the default: the configurations are independent draws, bit for bit the
    values drawn without the option.
    """
    if not 0.0 <= shared < 1.0:
        raise ValueError(
            f"shared: the seed effect's share of the variance, in [0, 1), got {shared}"
        )
    rng = np.random.default_rng(zlib.crc32(f"{config}|{seed}".encode()))
    own = rng.standard_normal()
    if shared == 0.0:
        return float(mean + sd * own)
    common = np.random.default_rng(zlib.crc32(f"{sweep}|seed {seed}".encode())).standard_normal()
    return float(mean + sd * (math.sqrt(shared) * common + math.sqrt(1.0 - shared) * own))


def deploy_figures(
    arch: str,
    width: int,
    total: int,
    sparsity: float,
    granularity: str,
    dense_ms: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The summary's deploy figures of a synthetic final network: ``compact`` for structured
    (speedups of the FLOP ratio ``1/(1-s)``, scaled by ``width/(width+64)``: gains grow with
    width, less on an MLP), ``csr`` for an unstructured MLP at 90% or more (a modest gain at
    batch 256), ``dense`` otherwise (speedup exactly 1, as the trainer reports). Dense times
    carry :data:`LOAD_NOISE` between runs, ratios :data:`RATIO_NOISE`."""
    ms1 = dense_ms * float(np.exp(rng.normal(0, LOAD_NOISE)))
    ms256 = 10 * dense_ms * float(np.exp(rng.normal(0, LOAD_NOISE)))
    gain = width / (width + 64) * (1.0 if arch == "cnn" else 0.6)
    fmt, b1, b256, train = "dense", 1.0, 1.0, 1.0
    nbytes = 4 * total + 2000
    if sparsity > 0 and granularity == "structured":
        flop = 1 / (1 - sparsity)
        fmt, b256 = "compact", 1 + (flop - 1) * gain
        b1, train = 1 + (b256 - 1) * 0.3, 1 + (flop - 1) * gain * 0.5
        b1, b256, train = (v * float(np.exp(rng.normal(0, RATIO_NOISE))) for v in (b1, b256, train))
        nbytes = 4 * total * (1 - sparsity) + 2000
    elif sparsity >= 0.9 and granularity == "unstructured" and arch == "mlp":
        fmt, b256 = (
            "csr",
            (1 + (sparsity - 0.85) * 10 * gain) * float(np.exp(rng.normal(0, RATIO_NOISE))),
        )
        nbytes = 8 * total * (1 - sparsity) + 2000
    return {
        M.deploy_format: fmt,
        M.deploy_bytes: nbytes,
        M.deploy_bytes_dense: 4 * total + 2000,
        M.infer_ms_b1: ms1 / b1,
        M.infer_ms_b256: ms256 / b256,
        M.infer_ms_dense_b1: ms1,
        M.infer_ms_dense_b256: ms256,
        M.infer_speedup_b1: b1,
        M.infer_speedup_b256: b256,
        M.train_time_speedup: train,
    }


def trial_files(
    arch: str,
    depth: int,
    width: int,
    sparsity: float,
    seed: int,
    epochs: int = 6,
    *,
    method: str | None = None,
    score: str = "magnitude",
    rewind: str = "init",
    granularity: str = "unstructured",
    rounds: int = 3,
    rate: float = 0.5,
    experiment: str = "synthetic",
    true_acc: float | None = None,
    seed_sd: float = SEED_SD,
    seed_corr: float = 0.0,
    converged: bool | None = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """config.json, records and summary of one synthetic trial.

    ``converged``: what the records say of each segment's end (the run; an IMP round): True,
    as if a plateau rule had ended it there (the default: the analysis then judges no point
    "still improving"); False, as if each ended at its cap still improving; None, a fixed-epoch
    run without a rule (the analysis judges it from its curve).

    ``method`` defaults to ``none`` at sparsity 0 and ``gradual`` otherwise. With ``imp``,
    ``epochs`` is the length of each of the ``rounds + 1`` rounds, the sparsity after round
    ``k`` is ``1 - (1 - rate)^k`` (``sparsity`` is ignored) and each round's records restart
    their climb, as a rewound IMP run does. With ``true_acc``, the final round's accuracies
    are shifted so that the last record's ``test_acc`` is :func:`seed_acc` of the trial's
    configuration (its id without the seed): a known truth for checking verdicts;
    ``seed_corr``: the share of that seed spread common to every configuration of the
    experiment (:func:`seed_acc`'s ``shared``; 0: independent configurations).
    """
    method = method or ("none" if sparsity == 0 else "gradual")
    key = (arch, depth, width, sparsity, seed)
    if (score, rewind, granularity) != ("magnitude", "init", "unstructured") or method == "imp":
        key += (method, score, rewind, granularity, rounds, rate)
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    total, layers = _params(arch, depth, width)
    prunable = sum(w for _, w in layers)
    capacity = (0.92 if arch == "cnn" else 0.88) + 0.01 * depth + 0.005 * (width // 32)
    knee = _knee(depth, width, score, rewind, granularity)
    dense_time = 0.02 * total / 1000 * (1.5 if arch == "cnn" else 1.0)
    imp = method == "imp"
    n_rounds = rounds + 1 if imp else 1
    seg_len = epochs
    final_s = 1 - (1 - rate) ** rounds if imp else sparsity
    structured = granularity == "structured"
    records, e = [], 0
    for k in range(n_rounds):
        s_round = 1 - (1 - rate) ** k if imp else sparsity
        final_acc = capacity - 1.5 * max(0.0, s_round - knee) ** 1.5 + rng.normal(0, 0.004)
        tau = 1.0 + 1.0 * s_round
        for j in range(1, seg_len + 1):
            e += 1
            ramp = 1 - (1 - min(1.0, j / max(1, epochs - 1))) ** 3  # gradual: cubic schedule
            s_e = s_round if imp else sparsity * ramp
            acc = final_acc * (1 - 0.6 * math.exp(-j / tau)) + rng.normal(0, 0.002)
            pruned = round(s_e * prunable)
            nz = total - pruned
            # compacted after the final pruning event; masked training runs at dense shapes
            compact = structured and s_e > 0 and s_e == final_s
            density = 0.2 + 0.8 * (1 - s_e) if compact else 1.0
            train_t = dense_time * density * float(np.exp(rng.normal(0, 0.03)))
            eval_t = 0.2 * train_t
            rec = dict.fromkeys(RECORD_KEYS, 0.0)
            rec.update(
                epoch=e,
                train_loss=1.5 * math.exp(-j / tau) + 0.2 + s_round * 0.1,
                train_acc=min(1.0, acc + 0.02),
                val_loss=1.4 * math.exp(-j / tau) + 0.3 + s_round * 0.15,
                val_acc=acc,
                test_loss=1.4 * math.exp(-j / tau) + 0.31 + s_round * 0.15,
                test_acc=acc - 0.003,
                sparsity=pruned / prunable,
                target_sparsity=s_e,
                total_params=total,
                nonzero_params=nz,
                dense_bytes=4 * total,
                sparse_bytes=4 * (total - prunable)
                + 8 * (prunable - pruned)
                + 4 * (width + 1) * depth,
                flops_dense=prunable,
                flops_sparse=prunable - pruned,
                epoch_time_s=train_t + eval_t,
                eval_time_s=eval_t,
                train_time_s=train_t,
                peak_mem_bytes=int(4 * total * 3 * density + (prunable if s_e > 0 else 0) + 2e6),
                samples_per_s=4500 / train_t,
                lr=1e-3,
                epochs_trained=j,
                converged=None if converged is None else bool(converged and j == seg_len),
            )
            assert list(rec) == list(RECORD_KEYS), "a record key that is not in the registry"
            for name, w in layers:
                rec[f"layer_sparsity/{name}"] = round(s_e * w) / w
            records.append(rec)
    last = [r for r in records if r[M.sparsity] == records[-1][M.sparsity]]
    if true_acc is not None:
        name = _trial_id(arch, depth, width, sparsity, method, score, rewind, granularity, imp)
        drawn = seed_acc(name, true_acc, seed, seed_sd, seed_corr, experiment)
        shift = drawn - records[-1][M.test_acc]
        for r in records[-seg_len:]:
            for k in (M.train_acc, M.val_acc, M.test_acc):
                r[k] += shift
    val = [r[M.val_acc] for r in last]
    best = int(np.argmax(val))
    summary = {
        M.best_val_acc: val[best],
        M.best_epoch: last[best][M.epoch],
        M.test_acc_at_best_val: last[best][M.test_acc],
        M.final_test_acc: records[-1][M.test_acc],
        M.final_sparsity: records[-1][M.sparsity],
        M.epochs_to_99pct: next(r[M.epoch] for r in last if r[M.val_acc] >= 0.99 * val[best]),
        **deploy_figures(arch, width, total, final_s, granularity, dense_time, rng),
        M.total_time_s: sum(r[M.epoch_time_s] for r in records),
        M.total_train_time_s: sum(r[M.train_time_s] for r in records),
        M.peak_mem_bytes_max: max(r[M.peak_mem_bytes] for r in records),
        M.peak_mem_kind: "cpu_live_tensors",
        M.device: "cpu",
        M.epochs: len(records),
        M.all_converged: converged,
    }
    assert set(summary) <= set(SUMMARY_KEYS)
    pruning = {"method": method, "final_sparsity": sparsity, "scope": "global"}
    pruning.update(score=score, rewind=rewind, granularity=granularity)
    if imp:
        pruning.update(final_sparsity=0.0, rounds=rounds, rate=rate, epochs_per_round=epochs)
    nested = {
        "dataset": {"name": "mnist1d", "val_fraction": 0.1, "split_seed": 0},
        "model": {"arch": arch, "preset": None, "depth": depth, "width": width, "hidden": None},
        "train": {"epochs": len(records), "lr": 1e-3, "seed": seed, "optimizer": "adam"},
        "pruning": pruning,
    }
    params = {
        "model.arch": arch,
        "model.depth": depth,
        "model.width": width,
        "pruning.final_sparsity": sparsity,
        "train.seed": seed,
    }
    tid = _trial_id(arch, depth, width, sparsity, method, score, rewind, granularity, imp)
    tid = f"{tid}_seed{seed}"
    config = {"trial_id": tid, "experiment": experiment, "seed": seed, "params": params}
    config["config"] = nested
    return config, records, summary


def _trial_id(
    arch: str,
    depth: int,
    width: int,
    sparsity: float,
    method: str,
    score: str,
    rewind: str,
    granularity: str,
    imp: bool,
) -> str:
    """A synthetic configuration's name: its trial id without the ``_seed<k>`` suffix."""
    tid = f"{arch}_d{depth}_w{width}_s{int(sparsity * 100):02d}"
    if imp or score != "magnitude" or rewind != "init" or granularity != "unstructured":
        tid = f"{arch}_d{depth}_w{width}_{method}_{score}_{rewind}_{granularity}"
        if not imp:
            tid = tid.replace(f"_{method}_", f"_{method}{int(sparsity * 100):02d}_")
    return tid


def write_experiment(
    root: Path,
    grid: dict[str, list[Any]] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 6,
    running: int = 0,
    failed: int = 0,
    name: str = "synthetic",
    truth: Callable[[dict[str, Any]], float | None] | None = None,
    **fixed: Any,
) -> list[Path]:
    """Write spec.yaml and one trial directory per grid point and seed; returns the trial dirs.

    ``grid`` overrides :data:`GRID` and may add :data:`PRUNING_KEYS` axes (e.g.
    ``{"pruning.method": ["imp"], "pruning.score": ["magnitude", "random"]}``); ``fixed`` are
    more keyword arguments of :func:`trial_files` for every trial (``rounds=4``; ``seed_corr=0.2``:
    a seed effect shared by the experiment's configurations). The last
    ``running`` trials get only part of their records and no summary; the ``failed`` before
    them get records, an error.txt and no summary. ``truth`` maps a grid point (its dict of
    grid keys) to the true seed-mean final ``test_acc`` of its configuration (None: the model's
    own), so the true difference of any two configurations is known (:func:`seed_acc`).
    """
    grid = {**GRID, **(grid or {})}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spec = {"name": name, "search": {"seeds": list(seeds)}, "wandb": {"mode": "offline"}}
    (root / layout.SPEC).write_text(yaml.safe_dump(spec))
    keys = list(grid)
    combos = list(itertools.product(*grid.values(), seeds))
    dirs = []
    for i, values in enumerate(combos):
        point = dict(zip(keys, values[:-1], strict=True))
        extra = {k.split(".")[1]: point[k] for k in PRUNING_KEYS if k in point}
        if extra.get("method") == "imp" and point["pruning.final_sparsity"] != 0.0:
            continue  # an IMP run covers every sparsity itself: one per grid point, not per target
        cfg, records, summary = trial_files(
            point["model.arch"],
            point["model.depth"],
            point["model.width"],
            point["pruning.final_sparsity"],
            values[-1],
            epochs,
            experiment=name,
            **extra,
            **fixed,
            **({"true_acc": truth(point)} if truth else {}),
        )
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
    experiment: str = "synthetic",
    **pruning: Any,
) -> Path:
    """A two-epoch trial whose final ``test_acc`` is ``acc`` and ``nonzero_params`` is ``cost``
    (default: width * 100 * (1 - sparsity)); for tests that need exact numbers. ``pruning``:
    ``method``, ``score``, ``rewind``, ``granularity`` of :func:`trial_files` (not ``imp``)."""
    cfg, records, summary = trial_files(
        arch, 1, width, sparsity, seed, epochs=2, experiment=experiment, **pruning
    )
    total = width * 100
    nz = cost if cost is not None else total * (1 - sparsity)
    for r in records:
        r.update(
            {M.total_params: total, M.nonzero_params: nz, M.test_acc: acc, M.sparsity: sparsity}
        )
    summary.update({M.final_test_acc: acc, M.final_sparsity: sparsity})
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
