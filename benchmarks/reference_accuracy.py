"""Test accuracy on MNIST-1D with the defaults, next to Greydanus & Kobak's reference figures.

Run: ``python benchmarks/reference_accuracy.py [--seeds 0 1 2]``

The paper reports 68% (MLP) and 94% (CNN) test accuracy. Each row here is a dense run of the
trainer with the default train settings (Adam, lr 0.01, cosine, 30 epochs, batch 128), averaged
over seeds.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.trainer import Trainer

MODELS = {
    "mlp (default: 2 x 100)": ({"model.arch": "mlp"}, 0.68),
    "cnn (default: depth 2, width 100)": ({"model.arch": "cnn"}, 0.94),
    "mnist1d_cnn preset": ({"model.preset": "mnist1d_cnn"}, 0.94),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    print(f"{'model':<36}{'test_acc mean':>14}{'sd':>7}{'paper':>7}  per seed")
    for name, (overrides, paper) in MODELS.items():
        accs = []
        for seed in args.seeds:
            cfg = trial_config({}, {**overrides, "train.seed": seed, "train.threads": args.threads})
            accs.append(Trainer(cfg).run()["final_test_acc"])
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"{name:<36}{statistics.mean(accs):>14.4f}{sd:>7.4f}{paper:>7.2f}  "
            + " ".join(f"{a:.4f}" for a in accs),
            flush=True,
        )


if __name__ == "__main__":
    main()
