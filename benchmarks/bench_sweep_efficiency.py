"""How much of the machine a sweep spends training: sum(trial time) / (wall x CPUs).

A sweep of 16 trials of about 20 s each (1-D CNN on MNIST-1D, 1 CPU per trial) on this machine's
CPUs, run through the real harness (``launch.run``: Ray Tune, checkpoints, trial files, W&B
offline runs). Prints, per trial and in total, the trainer's own time (``summary.total_time_s``:
train + prune + eval of every epoch; and ``total_train_time_s``: training steps only) against the
wall time of the sweep (Ray start-up reported apart), the efficiency and the overhead per trial.

    python benchmarks/bench_sweep_efficiency.py [--trials 16] [--epochs 40] [--no-wandb]

Run it on a quiet machine: other processes' CPU use shows up as harness overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def process_cpu() -> dict[int, tuple[str, float]]:
    """user+system CPU seconds of this process and all its descendants (Ray, wandb-core)."""
    import psutil

    me = psutil.Process()
    out: dict[int, tuple[str, float]] = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            name = "launcher (Tune loop)" if p.pid == me.pid else _label(p)
            out[p.pid] = (name, t.user + t.system)
        except psutil.Error:
            continue
    return out


def _label(p) -> str:
    name = p.name()
    cmd = " ".join(p.cmdline()[:3])
    if name.startswith("ray::") or "default_worker" in cmd:
        return "ray worker " + name.removeprefix("ray::")[:16]
    return name[:28]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument(
        "--epochs", type=int, default=120, help="epochs per trial (~0.17 s each, quiet)"
    )
    ap.add_argument("--checkpoint-every", type=int, default=5)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--no-wandb", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the experiment directory")
    args = ap.parse_args()

    from sparsity_tune.sweep.spec import validate_spec

    spec = validate_spec(
        {
            "name": "bench_sweep",
            "dataset": {"name": "mnist1d", "root": str(REPO / "data")},
            "model": {"arch": "cnn", "depth": 3, "width": 32},
            "train": {"epochs": args.epochs, "batch_size": 100, "lr": 0.003, "threads": 1},
            "pruning": {"method": "gradual", "final_sparsity": 0.9, "end_epoch": args.epochs // 2},
            "search": {
                "algorithm": "grid",
                "seeds": list(range(args.trials)),
                "checkpoint_every": args.checkpoint_every,
            },
            "resources": {"cpu": 1},
            "wandb": {"project": "bench", "mode": "offline"},
        }
    )
    from sparsity_tune.trial.data import load_dataset

    load_dataset(spec.base().dataset)  # MNIST-1D generated/cached before the clock starts

    import ray

    from sparsity_tune import layout
    from sparsity_tune.sweep import launch
    from sparsity_tune.sweep.summary import trials_frame

    storage = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    exp = str(storage / spec.name)
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    t1 = time.perf_counter()
    cpu_before = process_cpu()
    rc = launch.run(spec, str(storage), exp, use_wandb=not args.no_wandb)
    t2 = time.perf_counter()
    cpu_after = process_cpu()
    ray.shutdown()

    df = trials_frame(exp)
    work = float(df["total_time_s"].sum())
    train_only = sum(
        r["train_time_s"] for d in Path(exp).glob("trial_*") for r in layout.read_records(d)
    )
    wall = t2 - t1
    n = len(df)
    print("\n=== sweep efficiency ===")
    print(
        f"trials {n} (finished {int((df['status'] == 'finished').sum())}), {args.epochs} epochs each, "
        f"1 CPU per trial, {args.cpus} CPUs, wandb {'off' if args.no_wandb else 'offline'}, "
        f"checkpoint every {args.checkpoint_every} epochs"
    )
    print(f"ray.init                      {t1 - t0:7.2f} s (not counted)")
    print(f"sweep wall                    {wall:7.2f} s")
    print(f"mean trial time (trainer)     {work / n:7.2f} s  (train+prune+eval of all epochs)")
    print(f"efficiency  trainer/(wall x CPUs) = {work / (wall * args.cpus):.3f}")
    print(f"efficiency  train steps only      = {train_only / (wall * args.cpus):.3f}")
    print(
        f"overhead per trial (CPU-slot seconds not spent in the trainer) "
        f"{(wall * args.cpus - work) / n:.2f} s"
    )
    print("CPU seconds used during the sweep, by process (psutil; trial workers do the training):")
    groups: dict[str, float] = {}
    for pid, (name, cpu) in cpu_after.items():
        groups[name] = groups.get(name, 0.0) + cpu - cpu_before.get(pid, (name, 0.0))[1]
    for name, cpu in sorted(groups.items(), key=lambda kv: -kv[1]):
        if cpu >= 0.5:
            print(f"  {name:<28} {cpu:8.1f} s")
    if not args.keep:
        shutil.rmtree(storage, ignore_errors=True)
    else:
        print(f"kept {storage}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
