"""Test accuracy on MNIST-1D with the defaults, next to Greydanus & Kobak's reference figures.

Run: ``python benchmarks/reference_accuracy.py [--seeds 0 1 2]``

The paper reports 68% (MLP) and 94% (CNN) test accuracy. Each row here is a dense run of the
trainer with the default train settings (Adam, lr 0.01, cosine, 30 epochs, batch 128), averaged
over seeds.

``--demo [--epochs 60]``: the long-training reference of the main job instead, one row per model
size of ``search_spaces/demo.yaml`` (its grid of ``model.*`` values): a dense run of the demo's
own train settings (optimizer, learning rate, schedule, batch) for ``--epochs`` epochs with no
plateau stop, twice an IMP round's cap. The demo's dense baselines (IMP round 0, stopped by
``train.until``) are judged against these figures: within 2 points means the plateau stop ended
them trained, not early. ``--arch`` runs one architecture (two processes share two cores).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.trainer import Trainer

MODELS: dict[str, tuple[dict[str, Any], float | None]] = {
    "mlp (default: 2 x 100)": ({"model.arch": "mlp"}, 0.68),
    "cnn (default: depth 2, width 100)": ({"model.arch": "cnn"}, 0.94),
    "mnist1d_cnn preset": ({"model.preset": "mnist1d_cnn"}, 0.94),
}


DEMO = Path(__file__).resolve().parents[1] / "search_spaces" / "demo.yaml"


def demo_models(spec_path: Path, epochs: int, arch: str | None) -> dict[str, tuple[dict, None]]:
    """One dense long-training run per model size of the demo's grid: its ``dataset``/``train``
    settings (no ``train.until``, ``epochs`` fixed), the searched ``model.*`` values crossed."""
    spec = yaml.safe_load(spec_path.read_text())
    train = {f"train.{k}": v for k, v in spec.get("train", {}).items() if k != "until"}
    data = {f"dataset.{k}": v for k, v in spec.get("dataset", {}).items()}
    grid = {
        k: p["values"]
        for k, p in spec["search"]["parameters"].items()
        if k.startswith("model.") and "values" in p
    }
    out: dict[str, tuple[dict[str, Any], None]] = {}
    for vals in itertools.product(*grid.values()):
        size = dict(zip(grid, vals, strict=True))
        if arch is not None and size.get("model.arch", arch) != arch:
            continue
        name = " ".join(f"{k.removeprefix('model.')}={v}" for k, v in size.items())
        out[name] = ({**data, **train, **size, "train.epochs": epochs}, None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--demo", action="store_true", help="the demo's sizes, long training")
    ap.add_argument("--epochs", type=int, default=60, help="--demo: epochs of each run")
    ap.add_argument("--arch", choices=["mlp", "cnn"], help="--demo: this architecture only")
    args = ap.parse_args()
    models = demo_models(DEMO, args.epochs, args.arch) if args.demo else MODELS
    print(f"{'model':<36}{'test_acc mean':>14}{'sd':>7}{'paper':>7}  per seed")
    for name, (overrides, paper) in models.items():
        accs = []
        for seed in args.seeds:
            cfg = trial_config({}, {**overrides, "train.seed": seed, "train.threads": args.threads})
            accs.append(Trainer(cfg).run()["final_test_acc"])
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        shown = "-" if paper is None else f"{paper:.2f}"
        print(
            f"{name:<36}{statistics.mean(accs):>14.4f}{sd:>7.4f}{shown:>7}  "
            + " ".join(f"{a:.4f}" for a in accs),
            flush=True,
        )


if __name__ == "__main__":
    main()
