"""Record the MNIST-1D grid that ``bench_mo_stopping.py`` replays: every trial's per-epoch curves.

Run: ``nice -n 10 python benchmarks/mo_grid_record.py [--out benchmarks/data/mo_grid_curves.csv.gz]``

The grid (gradual magnitude pruning, cubic, epochs 0 -> ``END_EPOCH``, then recovery to
``EPOCHS``): arch mlp/cnn x width 32/64/128 x (dense + sparsity 0.5/0.75/0.9/0.95/0.98 x
unstructured/structured) x seeds 0/1 = 132 trials. The dense point is run once per arch and
width (granularity does not change a dense run). The trainer runs directly (no Ray), one trial
at a time, one thread, the data loaded once. One row per trial and epoch: the record's accuracy
and counted sizes, plus the trial's summary figures (``deploy_bytes``, ``infer_ms_b256``: the
model a user would ship, measured at the end) repeated on each row.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd

from sparsity_tune.metrics import M
from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.data import load_dataset
from sparsity_tune.trial.device import resolve_device
from sparsity_tune.trial.trainer import Trainer

EPOCHS, END_EPOCH = 16, 6
ARCHS, WIDTHS, SEEDS = ("mlp", "cnn"), (32, 64, 128), (0, 1)
SPARSITIES = (0.5, 0.75, 0.9, 0.95, 0.98)
GRANULARITIES = ("unstructured", "structured")
PER_EPOCH = (M.epoch, M.val_acc, M.test_acc, M.sparsity, M.target_sparsity, M.nonzero_params)
SUMMARY = (M.deploy_bytes, M.infer_ms_b256)


def grid() -> list[dict]:
    """The grid's trial settings, in a fixed order (the replay shuffles it)."""
    cells = [("unstructured", 0.0), *itertools.product(GRANULARITIES, SPARSITIES)]
    return [
        {"arch": a, "width": w, "granularity": g, "final_sparsity": s, "seed": seed}
        for a, w, (g, s), seed in itertools.product(ARCHS, WIDTHS, cells, SEEDS)
    ]


def config(t: dict):
    return trial_config(
        {
            "dataset": {"name": "mnist1d"},
            "model": {"arch": t["arch"], "depth": 2, "width": t["width"]},
            "train": {
                "epochs": EPOCHS,
                "batch_size": 100,
                "optimizer": "adam",
                "lr": 0.01,
                "seed": t["seed"],
                "threads": 1,
                "device": "cpu",
            },
            "pruning": {
                "method": "gradual" if t["final_sparsity"] > 0 else "none",
                "final_sparsity": t["final_sparsity"],
                "start_epoch": 0,
                "end_epoch": END_EPOCH,
                "frequency": 1,
                "granularity": t["granularity"],
            },
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/mo_grid_curves.csv.gz"))
    args = ap.parse_args()
    trials = grid()
    data = load_dataset(config(trials[0]).dataset, resolve_device("cpu"))
    rows, t0 = [], time.perf_counter()
    for i, t in enumerate(trials):
        trainer = Trainer(config(t), data=data)
        records: list[dict] = []
        summary = trainer.run(records.append)
        for r in records:
            rows.append({**t, **{k: r[k] for k in PER_EPOCH}, **{k: summary[k] for k in SUMMARY}})
        print(
            f"{i + 1}/{len(trials)} {t} test_acc {records[-1][M.test_acc]:.3f} "
            f"({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False, float_format="%.6g")
    print(f"wrote {args.out}: {len(rows)} rows, {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
