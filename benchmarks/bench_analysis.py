"""Time the analysis of a cluster-scale sweep: 100,000 synthetic trials (target: under 10 s).

Run: ``python benchmarks/bench_analysis.py [--trials 100000] [--seeds 5] [--epochs 10]
[--disk 2000]``

The trial and history tables are built in memory with numpy in the exact shape
:func:`analysis.load.load_experiment` returns (every record and summary key, dotted config
columns), with ``trials / seeds`` configurations drawn like a random search (continuous
sparsity and learning rate, so almost every configuration is distinct). Timed stages:

- **analyse**: seed aggregation, per-epoch seed means, the five Pareto fronts with hypervolume,
  every report section with its numbers and its chart data: the whole computation (the target);
- **figures**: the PNGs (one process per CPU) and report.html (points capped, big groups binned);
- **csv**: writing trials.csv, configs.csv, pareto_*.csv, hypervolume.csv (history.csv is skipped:
  at 10 epochs it is a million rows of plain I/O, timed separately with --history);
- **load from disk**: ``--disk N`` trial directories written with the synthetic writer and read
  back by ``load_experiment`` (trials per second), since reading files dominates real use.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import ID_COLUMNS, Experiment, load_experiment
from analysis.outputs import hypervolume_table, trials_table
from analysis.questions import analyse
from sparsity_tune.metrics import RECORD_KEYS, SUMMARY_KEYS


def synthetic_tables(n: int, seeds: int, epochs: int, rng: np.random.Generator):
    """(trials, history) of ``n`` finished trials, vectorised."""
    n_cfg = n // seeds
    arch = rng.choice(["mlp", "cnn"], n_cfg)
    depth = rng.integers(1, 5, n_cfg)
    width = rng.choice([32, 64, 128, 256], n_cfg)
    sparsity = np.where(rng.random(n_cfg) < 0.1, 0.0, rng.uniform(0.3, 0.99, n_cfg)).round(3)
    lr = 10 ** rng.uniform(-4, -2, n_cfg)
    rep = np.repeat(np.arange(n_cfg), seeds)
    seed = np.tile(np.arange(seeds), n_cfg)
    total = (depth * width * width + 40 * width)[rep].astype(float)
    s = sparsity[rep]
    cap = np.where(arch[rep] == "cnn", 0.93, 0.89) + 0.005 * depth[rep]
    acc = cap - 1.5 * np.clip(s - 0.8, 0, None) ** 1.5 + rng.normal(0, 0.004, n)
    t = 1e-6 * total * (0.6 + 0.4 * (1 - s)) * rng.lognormal(0, 0.05, n)
    ids = np.char.add("t", np.arange(n).astype(str))
    trials = pd.DataFrame(
        {
            "trial_id": ids,
            "experiment": "bench",
            "seed": seed,
            "status": "finished",
            "epochs_done": epochs,
            "trial_dir": ids,
            "error": None,
            "dataset.name": "mnist1d",
            "model.arch": arch[rep],
            "model.depth": depth[rep],
            "model.width": width[rep],
            "model.hidden": None,
            "model.preset": None,
            "train.epochs": epochs,
            "train.lr": lr[rep],
            "train.seed": seed,
            "pruning.method": np.where(s > 0, "gradual", "none"),
            "pruning.final_sparsity": s,
        }
    )
    rec = {k: np.zeros(n) for k in RECORD_KEYS}
    rec.update(
        epoch=np.full(n, epochs),
        test_acc=acc,
        val_acc=acc + 0.002,
        train_acc=acc + 0.02,
        val_loss=1 - acc,
        test_loss=1 - acc,
        train_loss=0.9 - acc,
        sparsity=s,
        target_sparsity=s,
        total_params=total,
        nonzero_params=total * (1 - s),
        dense_bytes=4 * total,
        sparse_bytes=8 * total * (1 - s) + 4 * width[rep],
        train_time_s=t,
        eval_time_s=0.2 * t,
        epoch_time_s=1.2 * t,
        peak_mem_bytes=12 * total * (0.5 + 0.5 * (1 - s)) + 2e6,
        samples_per_s=5e4 / t,
    )
    summ = {k: np.zeros(n) for k in SUMMARY_KEYS}
    summ.update(
        best_val_acc=acc + 0.003,
        epochs_to_99pct=np.round(epochs * (0.4 + 0.4 * s)),
        final_test_acc=acc,
        final_sparsity=s,
        epochs=np.full(n, epochs),
        deploy_format="dense",
        peak_mem_kind="cpu_live_tensors",
        device="cpu",
    )
    trials = pd.concat([trials, pd.DataFrame(rec), pd.DataFrame(summ)], axis=1)
    # history: one row per trial and epoch
    e = np.tile(np.arange(1, epochs + 1), n)
    r = np.repeat(np.arange(n), epochs)
    frac = 1 - 0.6 * np.exp(-e / (1 + s[r]))
    hist = {k: np.zeros(n * epochs) for k in RECORD_KEYS}
    hist.update(
        epoch=e,
        val_acc=acc[r] * frac,
        val_loss=(1 - acc[r]) / frac,
        test_acc=acc[r] * frac,
        sparsity=s[r] * np.minimum(1, e / (epochs - 1)),
        target_sparsity=s[r] * np.minimum(1, e / (epochs - 1)),
        nonzero_params=total[r],
        epoch_time_s=1.2 * t[r],
        train_time_s=t[r],
    )
    history = pd.DataFrame(hist)
    history.insert(0, "trial_id", ids[r])
    assert list(trials.columns[: len(ID_COLUMNS)]) == list(ID_COLUMNS)
    return trials, history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--disk", type=int, default=2000, help="trial dirs for the load timing (0: skip)"
    )
    ap.add_argument("--history", action="store_true", help="also time writing history.csv")
    args = ap.parse_args()
    trials, history = synthetic_tables(
        args.trials, args.seeds, args.epochs, np.random.default_rng(0)
    )
    exp = Experiment(root=Path("."), name="bench", trials=trials, history=history)
    print(
        f"{len(trials):,} trials, {len(history):,} history rows, "
        f"{args.trials // args.seeds:,} configurations x {args.seeds} seeds"
    )

    t0 = time.perf_counter()
    a = analyse(exp)
    t_analyse = time.perf_counter() - t0
    fronts = ", ".join(f"{x} {len(f.table)}" for x, f in a.fronts.items())
    print(
        f"analyse: {t_analyse:.2f} s  ({len(a.configs):,} configurations; front sizes: {fronts}; "
        f"{sum(len(s.charts) for s in a.sections)} charts)  target < 10 s: "
        f"{'PASS' if t_analyse < 10 else 'FAIL'}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        trials_table(a).to_csv(out / "trials.csv", index=False)
        a.configs.to_csv(out / "configs.csv", index=False)
        for x, f in a.fronts.items():
            f.table.to_csv(out / f"pareto_{x}.csv", index=False)
        hypervolume_table(a).to_csv(out / "hypervolume.csv", index=False)
        print(f"csv (trials, configs, fronts): {time.perf_counter() - t0:.2f} s")
        if args.history:
            t0 = time.perf_counter()
            history.to_csv(out / "history.csv", index=False)
            print(f"csv history ({len(history):,} rows): {time.perf_counter() - t0:.2f} s")

        from analysis import plots, report

        charts = [c for s in a.sections for c in s.charts]
        t0 = time.perf_counter()
        plots.save_pngs(charts, out / "plots")
        t_png = time.perf_counter() - t0
        t0 = time.perf_counter()
        report.write_report(a, out / "report.html")
        t_html = time.perf_counter() - t0
        size = (out / "report.html").stat().st_size / 1e6
        print(
            f"figures: {len(charts)} PNGs {t_png:.2f} s, report.html {t_html:.2f} s ({size:.1f} MB)"
        )

        if args.disk:
            from analysis.synthetic import write_experiment

            grid = {"model.arch": ["mlp", "cnn"], "model.depth": [1, 2], "model.width": [32, 64]}
            per = 2 * 2 * 2 * 5
            seeds = tuple(range(max(1, args.disk // per)))
            write_experiment(out / "disk", grid=grid, seeds=seeds, epochs=args.epochs)
            t0 = time.perf_counter()
            exp_disk = load_experiment(out / "disk", progress=False)
            dt = time.perf_counter() - t0
            n = len(exp_disk.trials)
            print(
                f"load from disk: {n:,} trial dirs ({len(exp_disk.history):,} records) in "
                f"{dt:.2f} s = {n / dt:,.0f} trials/s"
            )


if __name__ == "__main__":
    main()
