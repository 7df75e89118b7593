"""Adaptive seeds through the real launcher: a tiny sweep with ``seeds: {initial, max}`` and a
budget, interrupted (Ctrl-C) once its first wave of added seeds is decided and resumed with
--resume, adds exactly the seeds, in the same waves, that an uninterrupted run adds."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from sweep_helpers import interrupt_when, launcher, tiny_spec, trial_dirs, trial_files

from sparsity_tune.sweep import launch, replicate

pytestmark = pytest.mark.slow

SEARCH = {
    "parameters": {"pruning.final_sparsity": {"values": [0.0, 0.5, 0.95]}},
    "seeds": {"initial": 2, "max": 8},
    "budget": 40.0,
}


def seeds_run(exp: Path) -> set[tuple[float, int]]:
    """(sparsity, seed) of every finished trial, each counted once."""
    out = set()
    for d in trial_dirs(exp):
        cfg, _, summary = trial_files(d)
        if summary is not None:
            out.add((cfg["params"]["pruning.final_sparsity"], cfg["seed"]))
    return out


def waves(exp: Path) -> list[dict]:
    return [json.loads(x) for x in (exp / replicate.LOG).read_text().splitlines()]


def test_an_interrupted_adaptive_sweep_adds_the_same_seeds(
    ray_session, tmp_path: Path, data_root: Path
) -> None:
    # 2 epochs leave every network still improving, and a comparison with such a side reads
    # "not converged" and gets no seeds; a plateau rule that any loss satisfies (min_delta 10)
    # ends each run converged at its cap, so the comparisons are judged and seeds added.
    until = {"metric": "train_loss", "patience": 1, "min_delta": 10.0}
    train = {"epochs": 2, "batch_size": 100, "lr": 0.01, "until": until}
    common = {"train": train, "wandb": {"mode": "disabled"}}
    pruning = {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 1}
    ref_spec = tiny_spec(tmp_path / "ref.yaml", data_root, "ref", SEARCH, pruning=pruning, **common)
    cut_spec = tiny_spec(tmp_path / "cut.yaml", data_root, "cut", SEARCH, pruning=pruning, **common)
    storage = tmp_path / "res"
    exp = storage / "cut"
    log = tmp_path / "cut.log"
    # The run to interrupt (its own Ray) and the uninterrupted reference (this process, the
    # session's Ray) run side by side: the waves are decided in trial-epochs, not in seconds.
    with interrupt_when(
        launcher([str(cut_spec), "--storage", str(storage)], log),
        lambda: (exp / replicate.LOG).exists() and waves(exp) and waves(exp)[0]["trials"],
        "the first wave",
    ) as proc:
        assert launch.main([str(ref_spec), "--storage", str(storage)]) == 0
    ref = storage / "ref"
    expected = waves(ref)
    assert sum(len(w["trials"]) for w in expected) > 0, "the reference run added no seed"
    assert proc.returncode == 128 + signal.SIGINT, log.read_text()[-3000:]
    partial = seeds_run(exp)
    assert partial < seeds_run(ref), "the interruption came after the sweep had finished"

    assert launch.main([str(exp), "--resume"]) == 0
    assert seeds_run(exp) == seeds_run(ref)
    got = waves(exp)
    keep = ("wave", "spent_before", "trials", "states")
    assert [{k: w[k] for k in keep} for w in got] == [{k: w[k] for k in keep} for w in expected]
    assert [[d["config_index"] for d in w["decisions"]] for w in got] == [
        [d["config_index"] for d in w["decisions"]] for w in expected
    ]
    assert (exp / replicate.SPENT).read_text() == (ref / replicate.SPENT).read_text()
