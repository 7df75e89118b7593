"""Torch thread count of the single-trial CLI on a quiet and on a busy machine.

Runs ``python -m sparsity_tune.train search_spaces/reference.yaml`` (MNIST-1D) for each model,
with ``train.threads`` 1, 2, ... up to this machine's CPUs and with the CLI's default, once
without and once with a competing CPU load this script starts itself (``--load`` processes
spinning in pure Python), interleaved over ``--repeats`` rounds. Prints the trainer's median
epoch time (train + eval, ``epoch_time_s``) of each run and its ratio to the best thread count of
the same model and load: the default must stay within ~1.5x of the best in both.

    python benchmarks/bench_threads.py [--epochs 4] [--repeats 2] [--load 2]

The load average is printed with every round (other users of the machine are a load too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "mlp 2x100": ["model.arch=mlp"],
    "cnn 2x100": ["model.arch=cnn"],
    "cnn 3x128": ["model.arch=cnn", "model.depth=3", "model.width=128"],
}


def spin() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run(model: list[str], threads: int | None, epochs: int, out: Path) -> tuple[float, int]:
    """(median epoch_time_s, threads the run used) of one CLI run."""
    sets = [*model, f"train.epochs={epochs}"]
    if threads is not None:
        sets.append(f"train.threads={threads}")
    cmd = [sys.executable, "-m", "sparsity_tune.train", "search_spaces/reference.yaml"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], cwd=REPO, capture_output=True, text=True, check=True
    )
    used = re.search(r"torch threads (\d+)", proc.stdout)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    times = [r["epoch_time_s"] for r in records[1:]] or [records[0]["epoch_time_s"]]
    return statistics.median(times), int(used.group(1)) if used else -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--load", type=int, default=2, help="competing busy processes")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args()
    cpus = len(os.sched_getaffinity(0))
    settings: list[int | None] = [*range(1, cpus + 1), None]
    results: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    used: dict[tuple[str, int], set[int]] = defaultdict(set)
    tmp = Path(tempfile.mkdtemp(prefix="bench_threads_"))
    print(f"{cpus} CPUs; {args.epochs} epochs a run; median epoch time of epochs 2..N")
    for rep in range(args.repeats):
        for load in (0, args.load):
            spinners = [spin() for _ in range(load)]
            try:
                time.sleep(1.0 if load else 0.0)
                print(
                    f"round {rep + 1}, competing load {load}: load average "
                    f"{os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                for name in args.models:
                    for t in settings:
                        label = "default" if t is None else str(t)
                        s, n = run(MODELS[name], t, args.epochs, tmp / f"{rep}-{load}-{label}")
                        results[(name, load, label)].append(s)
                        if t is None:
                            used[(name, load)].add(n)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    labels = [str(t) for t in settings if t is not None] + ["default"]
    head = "".join(f"{'threads ' + lb:>16}" for lb in labels)
    print(f"{'model':<12}{'load':>6}{head}   (median s/epoch, x best)")
    worst = 0.0
    for name in args.models:
        for load in (0, args.load):
            med = {lb: statistics.median(results[(name, load, lb)]) for lb in labels}
            best = min(v for lb, v in med.items() if lb != "default")
            cells = "".join(f"{med[lb]:9.3f} {med[lb] / best:4.2f}x " for lb in labels)
            worst = max(worst, med["default"] / best)
            print(f"{name:<12}{load:>6}{cells}  default used {sorted(used[(name, load)])}")
    print(f"\ndefault / best, worst case: {worst:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
