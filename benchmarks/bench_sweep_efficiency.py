"""How much of the machine a sweep spends training, and where the rest goes.

Two sweeps through the real harness (``launch.run``: Ray Tune, checkpoints, trial files, W&B
offline runs), each on a fresh local Ray, 1 CPU per trial, a 1-D CNN on MNIST-1D:

* ``long``: 16 trials of about 20 s (120 epochs);
* ``short``: 48 trials of about 3 s (18 epochs).

For each it prints the trainer's own time (``summary.total_time_s``: train + prune + eval of every
epoch) against the sweep's wall time x CPUs (Ray start-up reported apart): the *efficiency* and
the *overhead per trial* in CPU-slot seconds; then the CPU seconds of every process of the sweep
(psutil: user + system), and, with the probes of ``benchmarks/trial_profile.py`` (on unless
``--no-profile``), the per-trial breakdown of the trial workers' and the launcher's CPU and wall
time by item. A side-by-side table of both modes ends the output.

    python benchmarks/bench_sweep_efficiency.py [--mode both|long|short] [--no-wandb]

The load average is printed before and after each sweep: other processes' CPU use shows up as
wall-time overhead (the CPU figures are per process and hold up better on a busy machine).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trial_profile  # noqa: E402  (beside this file)

MODES = {"long": (16, 120), "short": (48, 18)}  # trials, epochs (~0.17 s an epoch, quiet)


def process_cpu() -> dict[int, tuple[str, float]]:
    """user+system CPU seconds of this process and all its descendants (Ray, wandb-core)."""
    import psutil

    me = psutil.Process()
    out: dict[int, tuple[str, float]] = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            name = "launcher (Tune loop, W&B)" if p.pid == me.pid else _label(p)
            out[p.pid] = (name, t.user + t.system)
        except psutil.Error:
            continue
    return out


class CpuSampler:
    """Samples :func:`process_cpu` every ``period`` s in a thread and keeps each process's last
    figure: trial workers exit when Tune ends the experiment, before a final snapshot could see
    them (up to ``period`` s of a process's last CPU can be missed)."""

    def __init__(self, period: float = 1.0) -> None:
        import threading

        self.period, self.seen = period, process_cpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.seen.update(process_cpu())

    def stop(self) -> dict[int, tuple[str, float]]:
        self._stop.set()
        self._thread.join()
        self.seen.update(process_cpu())
        return self.seen


def _label(p) -> str:
    name = p.name()
    cmd = p.cmdline()
    if name.startswith("ray::") or any("default_worker" in c for c in cmd):
        return "trial workers (ray::)" if "Agent" not in name else f"ray {name[5:]}"
    if name.startswith("python"):
        script = next((Path(c).name for c in cmd[1:] if c.endswith(".py")), name)
        return f"ray {script}"
    return name[:28]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


@dataclass
class Result:
    mode: str
    trials: int
    epochs: int
    wall: float
    init: float
    work: float  # sum of the trainers' total_time_s
    train_only: float
    cpus: int
    cpu_by_group: dict[str, float]
    load_before: str
    load_after: str
    rc: int = 0
    profile: dict = field(default_factory=dict)

    @property
    def efficiency(self) -> float:
        return self.work / (self.wall * self.cpus)

    @property
    def overhead(self) -> float:
        return (self.wall * self.cpus - self.work) / self.trials


def run_mode(mode: str, args: argparse.Namespace) -> Result:
    import ray

    from sparsity_tune import layout
    from sparsity_tune.sweep import launch, trainable
    from sparsity_tune.sweep import plan as planner
    from sparsity_tune.sweep.summary import trials_frame
    from sparsity_tune.sweep.validate import check
    from sparsity_tune.trial.data import load_dataset

    trials, epochs = MODES[mode]
    trials = args.trials or trials
    epochs = args.epochs or epochs
    spec, base = check(
        {
            "name": f"bench_sweep_{mode}",
            "dataset": {"name": "mnist1d", "root": str(REPO / "data")},
            "model": {"arch": "cnn", "depth": 3, "width": 32},
            "train": {"epochs": epochs, "batch_size": 100, "lr": 0.003, "threads": 1},
            "pruning": {"method": "gradual", "final_sparsity": 0.9, "end_epoch": epochs // 2},
            "search": {
                "algorithm": "grid",
                "seeds": list(range(trials)),
                "checkpoint_every": args.checkpoint_every,
            },
            "resources": {"cpu": 1},
            "wandb": {"project": "bench", "mode": "offline"},
        }
    )
    load_dataset(base.dataset)  # MNIST-1D generated/cached before the clock starts

    storage = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    exp = str(storage / spec.name)
    prof_dir = storage / "profile"
    prof_dir.mkdir()
    original = trainable.train_trial
    if args.profile:
        os.environ[trial_profile.ENV] = str(prof_dir)
        trainable.train_trial = trial_profile.profiled_train_trial
    load_before = load()
    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    t1, t1_epoch = time.perf_counter(), time.time()
    cpu_before = process_cpu()
    sampler = CpuSampler()
    driver_before = trial_profile.driver_totals()
    try:
        plan = planner.build(spec, exp, str(storage), base=base, use_wandb=not args.no_wandb)
        rc = launch.run(plan)
    finally:
        trainable.train_trial = original
    t2, t2_epoch = time.perf_counter(), time.time()
    cpu_after = sampler.stop()
    driver_after = trial_profile.driver_totals()
    ray.shutdown()
    load_after = load()

    df = trials_frame(exp)
    n = len(df)
    work = float(df["total_time_s"].sum())
    train_only = sum(
        r["train_time_s"] for d in Path(exp).glob("trial_*") for r in layout.read_records(d)
    )
    groups: dict[str, float] = defaultdict(float)
    for pid, (name, cpu) in cpu_after.items():
        groups[name] += cpu - cpu_before.get(pid, (name, 0.0))[1]
    res = Result(
        mode, n, epochs, t2 - t1, t1 - t0, work, train_only, args.cpus, dict(groups),
        load_before, load_after, rc,
    )  # fmt: skip
    if args.profile:
        res.profile = _profile(prof_dir, driver_before, driver_after, t1_epoch, t2_epoch)
    _print_mode(res, args)
    if args.keep:
        print(f"kept {storage}")
    else:
        shutil.rmtree(storage, ignore_errors=True)
    os.environ.pop(trial_profile.ENV, None)
    return res


def _profile(prof_dir: Path, before: dict, after: dict, t_start: float, t_end: float) -> dict:
    lines = []
    with contextlib.suppress(OSError):
        lines = [json.loads(x) for x in (prof_dir / "workers.jsonl").read_text().splitlines()]
    worker: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for line in lines:
        for k, v in line["items"].items():
            for i in range(3):
                worker[k][i] += v[i]
    # slot time a worker spent between two of its trials (Tune: result, stop, reset, start)
    by_pid: dict[int, list[dict]] = defaultdict(list)
    for line in lines:
        by_pid[line["pid"]].append(line)
    gaps, first_extra, later_outside = 0.0, 0.0, []
    for spans in by_pid.values():
        spans.sort(key=lambda x: x["start"])
        gaps += sum(
            b["start"] - a["end"] for a, b in itertools.pairwise(spans) if b["start"] > a["end"]
        )
        later_outside += [_outside(x) for x in spans[1:]]
    typical = statistics.fmean(later_outside) if later_outside else 0.0
    for spans in by_pid.values():  # a worker's first trial pays its one-time imports and loads
        first_extra += _outside(spans[0]) - typical
    zero = [0.0, 0.0, 0]
    driver = {
        k: [v[i] - before.get(k, zero)[i] for i in range(3)]
        for k, v in after.items()
        if v[2] != before.get(k, zero)[2]
    }
    return {
        "worker": dict(worker),
        "driver": driver,
        "trials": len(lines),
        "trial_thread_cpu": sum(x["thread_cpu"] for x in lines),
        "trial_process_cpu": sum(x["process_cpu"] for x in lines),
        "trial_wall": sum(x["end"] - x["start"] for x in lines),
        "gaps": gaps,
        "workers": len(by_pid),
        "typical_outside": typical,  # mean wall outside the trainer of a worker's later trial
        "first_extra": first_extra,  # what the workers' first trials took beyond that
        # per worker: sweep start -> its first trial (launcher set-up, worker start, imports),
        # its last trial -> sweep end (waiting for the other slots, end of the sweep)
        "head": [min(x["start"] for x in spans) - t_start for spans in by_pid.values()],
        "tail": [t_end - max(x["end"] for x in spans) for spans in by_pid.values()],
    }


TRAINER = "trainer: epochs (train+prune+eval)"


def _outside(line: dict) -> float:
    """Wall seconds of one trial's ``train_trial`` not spent in the trainer."""
    return (line["end"] - line["start"]) - line["items"].get(TRAINER, [0.0, 0.0])[1]


def split(r: Result) -> tuple[float, float, float] | None:
    """The overhead's CPU-slot seconds per trial as (start-up, marginal, end): start-up is each
    worker slot's wait for its first trial plus what that first trial took beyond a later one
    (imports of torch and Ray Tune, the dataset); marginal is what every trial costs outside the
    trainer (its own start and end, reporting, checkpoints, the gap to the next trial): the part
    that grows with the number of trials; end is a slot's wait from its last trial to the end of
    the sweep (other slots still running, Tune's and W&B's shut-down). They add up to
    :attr:`Result.overhead` when every CPU had a worker."""
    p = r.profile
    if not p or p["workers"] != r.cpus:
        return None
    n = r.trials
    start = (sum(p["head"]) + p["first_extra"]) / n
    marginal = (p["typical_outside"] * n + p["gaps"]) / n
    end = sum(p["tail"]) / n
    return start, marginal, end


def _print_mode(r: Result, args: argparse.Namespace) -> None:
    n = r.trials
    print(f"\n=== sweep efficiency: {r.mode} ===")
    print(
        f"trials {n}, {r.epochs} epochs each, 1 CPU per trial, {r.cpus} CPUs, wandb "
        f"{'off' if args.no_wandb else 'offline'}, checkpoint every {args.checkpoint_every} "
        f"epochs; load average before {r.load_before}, after {r.load_after}"
    )
    print(f"ray.init                      {r.init:7.2f} s (not counted)")
    print(f"sweep wall                    {r.wall:7.2f} s")
    print(f"mean trial time (trainer)     {r.work / n:7.2f} s  (train+prune+eval of all epochs)")
    print(f"efficiency  trainer/(wall x CPUs) = {r.efficiency:.3f}")
    print(f"efficiency  train steps only      = {r.train_only / (r.wall * r.cpus):.3f}")
    print(f"overhead per trial (CPU-slot seconds not spent in the trainer) {r.overhead:.2f} s")
    total = sum(r.cpu_by_group.values())
    print(f"CPU seconds during the sweep by process (psutil), total {total:.1f} s:")
    for name, cpu in sorted(r.cpu_by_group.items(), key=lambda kv: -kv[1]):
        if cpu >= 0.05:
            print(f"  {name:<34} {cpu:8.2f} s  {cpu / n:6.3f} s/trial")
    if not r.profile:
        return
    p = r.profile
    w, d = p["worker"], p["driver"]
    parts = split(r)
    if parts is not None:
        start, marginal, end = parts
        print(
            f"  = start-up {start:.2f} (per worker slot "
            f"{start * n / p['workers']:.2f} s, once) + marginal {marginal:.2f} (every trial) "
            f"+ end {end:.2f} (other slots still running, shut-down) + rest "
            f"{r.overhead - start - marginal - end:.2f}"
        )
    trainer_cpu = w.get(TRAINER, [0.0])[0]
    print(
        f"CPU outside the trainer: {(total - trainer_cpu) / n:.3f} s/trial "
        f"(all processes {total:.1f} s - trainer threads {trainer_cpu:.1f} s); "
        f"CPU efficiency trainer/all = {trainer_cpu / total:.3f}"
    )
    print("per-trial breakdown (exclusive thread CPU and wall; probes of trial_profile.py):")
    print(f"  {'item':<50} {'CPU s':>7} {'wall s':>7} {'calls':>6}")
    for k, v in sorted(w.items(), key=lambda kv: kv[0]):
        print(f"  worker  {k:<42} {v[0] / n:7.3f} {v[1] / n:7.3f} {v[2] / n:6.1f}")
    workers_cpu = r.cpu_by_group.get("trial workers (ray::)", 0.0)
    outside = p["trial_process_cpu"] - p["trial_thread_cpu"]
    between = workers_cpu - p["trial_process_cpu"]
    print(f"  worker  {'Ray threads during a trial (not the trial thread)':<42} {outside / n:7.3f}")
    print(f"  worker  {'between trials (reset, start-up, imports)':<42} {between / n:7.3f}")
    print(f"  worker  {'slot idle between trials (per worker)':<42} {'':>7} {p['gaps'] / n:7.3f}")
    print(
        f"  worker  {'slot idle before first / after last trial':<42} {'':>7} "
        f"{(r.wall * p['workers'] - p['trial_wall'] - p['gaps']) / n:7.3f}"
    )
    head = ", ".join(f"{x:.2f}" for x in sorted(p["head"]))
    tail = ", ".join(f"{x:.2f}" for x in sorted(p["tail"]))
    print(f"  worker  {'  sweep start -> first trial, s per worker':<42} {head}")
    print(f"  worker  {'  last trial -> sweep end, s per worker':<42} {tail}")
    launcher = r.cpu_by_group.get("launcher (Tune loop, W&B)", 0.0)
    for k, v in sorted(d.items(), key=lambda kv: kv[0]):
        print(f"  driver  {k:<42} {v[0] / n:7.3f} {v[1] / n:7.3f} {v[2] / n:6.1f}")
    probed = sum(v[0] for v in d.values())
    print(
        f"  driver  {'unprobed (Ray core threads, imports, ...)':<42} {(launcher - probed) / n:7.3f}"
    )


def _side_by_side(results: list[Result]) -> None:
    print("\n=== side by side ===")
    print(
        f"{'':<40}" + "".join(f"{r.mode + f' ({r.trials} x {r.epochs} ep)':>24}" for r in results)
    )
    rows = [
        ("load average before / after", lambda r: f"{r.load_before.split()[0]} / {r.load_after.split()[0]}"),
        ("sweep wall s", lambda r: f"{r.wall:.1f}"),
        ("mean trial time (trainer) s", lambda r: f"{r.work / r.trials:.2f}"),
        ("efficiency trainer/(wall x CPUs)", lambda r: f"{r.efficiency:.3f}"),
        ("overhead per trial, CPU-slot s", lambda r: f"{r.overhead:.2f}"),
        ("CPU of all processes per trial s", lambda r: f"{sum(r.cpu_by_group.values()) / r.trials:.2f}"),
    ]  # fmt: skip
    if all(split(r) for r in results):
        rows += [
            ("  start-up, once per worker slot s", lambda r: f"{split(r)[0] * r.trials / r.cpus:.2f}"),
            ("  marginal per trial s", lambda r: f"{split(r)[1]:.3f}"),
        ]  # fmt: skip
    if all(r.profile for r in results):
        rows.append(
            (
                "CPU outside the trainer per trial s",
                lambda r: (
                    f"{(sum(r.cpu_by_group.values()) - r.profile['worker'].get(TRAINER, [0])[0]) / r.trials:.3f}"
                ),
            )
        )
    for name, fn in rows:
        print(f"{name:<40}" + "".join(f"{fn(r):>24}" for r in results))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["both", "long", "short"], default="both")
    ap.add_argument("--trials", type=int, help="override the mode's trial count")
    ap.add_argument("--epochs", type=int, help="override the mode's epochs (~0.17 s each, quiet)")
    ap.add_argument("--checkpoint-every", type=int, default=5)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--no-wandb", action="store_true")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--keep", action="store_true", help="keep the experiment directories")
    args = ap.parse_args()
    if args.profile:
        # Ray's workers import trial_profile by name (it wraps the trainable): put this
        # directory on their path (they inherit the environment of the Ray this script starts)
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (here, os.environ.get("PYTHONPATH")) if p
        )
        trial_profile.install_driver_probes()
    modes = ["long", "short"] if args.mode == "both" else [args.mode]
    results = [run_mode(m, args) for m in modes]
    if len(results) > 1:
        _side_by_side(results)
    return max(r.rc for r in results)


if __name__ == "__main__":
    sys.exit(main())
