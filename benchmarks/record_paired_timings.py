"""Record the interleaved rounds a trial times, as a JSON fixture for the measured-cost tests.

Run: ``python benchmarks/record_paired_timings.py OUT.json [--busy 2] [--seeds 0 1 2]``

The recordings are what a trial's end-of-run measurement takes, taken by the same code:
:func:`sparsity_tune.trial.deploy.build` and :func:`~sparsity_tune.trial.deploy.measure` with
their defaults (3 warm-up rounds, 20 rounds or fewer within the trial's time budget, one torch
thread as a trial has), on models a :class:`~sparsity_tune.trial.trainer.Trainer` prunes once at
initialisation with the registered structured strategy and compacts (timing depends on the
shapes, not on what the weights learned). Three cases, each once per seed:

- ``cnn_d3w128_structured_87.5``: the demo's largest CNN at its highest structured sparsity,
  where compaction buys a large speedup;
- ``cnn_d2w32_structured_50``: the demo's smallest CNN at 50%, where the README says the gains
  do not show (a ratio near 1);
- ``null_copy``: the dense d3 x w128 CNN timed against an exact copy of itself, shipped as if
  compacted: a true ratio of 1.0, measured the same way.

``--busy N`` starts N processes that spin on a CPU for the whole recording (and ends them, by
their own ids): a loaded machine. The file keeps each batch size's rounds in ms (``dense``,
``ship``), the trial's own summary figures, the load average before and after, and the command.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from sparsity_tune.trial import deploy
from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "cnn_d3w128_structured_87.5": ({"model.depth": 3, "model.width": 128}, 0.875),
    "cnn_d2w32_structured_50": ({"model.depth": 2, "model.width": 32}, 0.5),
    "null_copy": ({"model.depth": 3, "model.width": 128}, 0.0),
}


def trainer(model: dict, target: float, seed: int, root: str) -> Trainer:
    """A CNN trainer pruned once at initialisation (structured, layer-wise) and compacted."""
    keys = {
        "dataset.root": root,
        "model.arch": "cnn",
        **model,
        "train.seed": seed,
        "train.threads": 1,
        "train.epochs": 1,
    }
    if target > 0:
        keys |= {
            "pruning.method": "one_shot",
            "pruning.granularity": "structured",
            "pruning.scope": "layerwise",
            "pruning.final_sparsity": target,
            "pruning.start_epoch": 0,
        }
    return Trainer(trial_config({}, keys))


def record(case: str, seed: int, root: str) -> dict:
    model, target = CASES[case]
    tr = trainer(model, target, seed, root)
    x = tr.data.test_x
    if target > 0:
        shipped = deploy.build(
            tr.model, tr.masks, tr.granularity.semi_structured, x, tr.compaction is not None
        )
    else:  # the dense model against its exact copy, measured as if it were a compact one
        twin = copy.deepcopy(tr.model).eval()
        shipped = deploy.Deployable("compact", dict.fromkeys(deploy.BATCHES, twin), "copy")
    rounds: dict[int, dict[str, list[float]]] = {}
    with torch.no_grad():
        fig = deploy.measure(shipped, tr.dense_model(), x, timings=rounds)
    return {
        "seed": seed,
        "format": fig["deploy_format"],
        "summary": {k: v for k, v in fig.items() if k.startswith(("infer_",))},
        **{f"b{b}": {k: [round(t, 5) for t in v] for k, v in r.items()} for b, r in rounds.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--busy", type=int, default=0, help="spinning processes during the recording")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--root", type=Path, default=REPO / "data", help="dataset cache")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the trainer does while it measures
    before = os.getloadavg()
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    try:
        cases = {c: [record(c, s, str(args.root)) for s in args.seeds] for c in args.cases}
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    out = {
        "command": "python benchmarks/record_paired_timings.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, 1 thread",
        "busy_processes": args.busy,
        "load_before": [round(v, 2) for v in before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "cases": cases,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for c, seeds in cases.items():
        s = [r["summary"]["infer_speedup_b256"] for r in seeds]
        print(c, "b256 speedups", [f"{v:.2f}" for v in s], "rounds", len(seeds[0]["b256"]["dense"]))


if __name__ == "__main__":
    main()
