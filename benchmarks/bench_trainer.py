"""Epoch time of the shared trainer vs the naive loop a user would write, and vs the bare limit.

Run: ``python benchmarks/bench_trainer.py [--samples 20000] [--epochs 3] [--sparsity 0.9]``

Side by side in one process, same model, batch size, optimizer and sparsity, MNIST-shaped data
(random 28x28 uint8 images: timing does not depend on pixel values; no download needed):

- **ours**: :class:`sparsity_tune.trial.trainer.Trainer` (tensors in memory, index batching, masks
  re-applied after every step, optimizer state masked), its ``train_time_s``;
- **naive**: a torchvision-style Dataset (PIL image + ToTensor + Normalize per sample) with a
  DataLoader, pruned by ``torch.nn.utils.prune.global_unstructured`` (L1, forward hooks);
- **bare**: forward + backward + step over pre-batched tensors, no pruning, no shuffling: the
  limit.

The trainer turns on ``torch.set_flush_denormal`` (pruned nets produce subnormal floats, slow on
x86); it is process-wide, so this script sets it before all three loops: the comparison stays
like for like. The three run interleaved, one epoch each in turn; it prints the min (the least disturbed by
other load) and the median epoch time of each, and the ratios naive/ours (targets: >= 6x LeNet-300-100,
>= 2.5x LeNet-5) and ours/bare (target <= 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.data import DataSplits
from sparsity_tune.trial.models import build_model, prunable_parameters
from sparsity_tune.trial.trainer import Trainer

MEAN, STD = 0.1307, 0.3081


class NaiveMNIST(Dataset):
    """What torchvision.datasets.MNIST does per sample: uint8 -> PIL -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i], mode="L")
        return self.transform(img), int(self.labels[i])


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def config(preset: str, sparsity: float, batch: int, epochs: int):
    return trial_config(
        {},
        {
            "dataset.name": "mnist",
            "model.preset": preset,
            "train.batch_size": batch,
            "train.epochs": epochs,
            "train.optimizer": "sgd",
            "train.lr": 0.01,
            "train.threads": torch.get_num_threads(),
            "pruning.method": "one_shot" if sparsity > 0 else "none",
            "pruning.final_sparsity": sparsity,
            "pruning.start_epoch": 0,
        },
    )


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images).float().div(255).sub(MEAN).div(STD).unsqueeze(1)
    return x, torch.from_numpy(labels).long()


def naive_epoch(cfg, images, labels, sparsity: float) -> Callable[[], float]:
    """One epoch of the loop a user would write, as a closure returning its seconds."""
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), 10)
    params = prunable_parameters(model, cfg.pruning.prune_output)
    if sparsity > 0:
        modules = [(model.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in params]
        prune.global_unstructured(modules, pruning_method=prune.L1Unstructured, amount=sparsity)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(NaiveMNIST(images, labels), batch_size=cfg.train.batch_size, shuffle=True)

    def epoch() -> float:
        model.train()
        t0 = time.perf_counter()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return epoch


def bare_epoch(cfg, images, labels) -> Callable[[], float]:
    """The limit: forward + backward + step over pre-batched tensors, no pruning."""
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = to_tensors(images, labels)
    b = cfg.train.batch_size
    batches = [(x[i : i + b].contiguous(), y[i : i + b]) for i in range(0, len(y), b)]

    def epoch() -> float:
        model.train()
        t0 = time.perf_counter()
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return epoch


def compare(cfg, images, labels, sparsity: float) -> dict[str, list[float]]:
    """Epoch times of the three loops, interleaved so that load drift hits all of them alike:
    the trainer's ``report`` (called after each of its epochs) runs one naive and one bare epoch."""
    naive, bare = naive_epoch(cfg, images, labels, sparsity), bare_epoch(cfg, images, labels)
    x, y = to_tensors(images, labels)
    data = DataSplits(x, y, x[:0], y[:0], x[:256], y[:256], 10, (1, 28, 28), "mnist")
    times: dict[str, list[float]] = {"ours": [], "naive": [], "bare": []}

    def report(record: dict) -> None:
        times["ours"].append(record["train_time_s"])
        times["naive"].append(naive())
        times["bare"].append(bare())

    Trainer(cfg, data=data).run(report)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", nargs="+", default=["lenet300_100", "lenet5"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the trainer does; applies to all three loops
    images, labels = make_data(args.samples)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.samples} samples, "
        f"batch {args.batch_size}, sparsity {args.sparsity}, {args.epochs} interleaved epochs"
    )
    print(
        f"{'model, stat':<20}{'ours s':>9}{'naive s':>9}{'bare s':>9}{'naive/ours':>12}{'ours/bare':>11}"
    )
    for preset in args.presets:
        cfg = config(preset, args.sparsity, args.batch_size, args.epochs)
        times = compare(cfg, images, labels, args.sparsity)
        for stat in (min, statistics.median):
            o, n, b = (stat(times[k]) for k in ("ours", "naive", "bare"))
            print(
                f"{preset + ' ' + stat.__name__:<20}{o:>9.3f}{n:>9.3f}{b:>9.3f}{n / o:>11.2f}x"
                f"{o / b:>10.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
