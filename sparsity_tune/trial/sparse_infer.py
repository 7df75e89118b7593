"""Measured inference speed of the final model, dense and through torch's sparse kernels.

So the time axis of a Pareto front can be real, not only FLOP counts: the pruned ``nn.Linear``
layers of a copy of the model are swapped for :class:`CSRLinear`, whose weight is a
``torch.sparse_csr_tensor`` multiplied by torch's sparse matmul (MKL / cuSPARSE). Convolutions
stay dense: torch has no sparse convolution kernel.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Mapping

import torch
from torch import nn

INFER_BATCH = 256


class CSRLinear(nn.Module):
    """``y = x Wᵀ + b`` with W stored in CSR."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": we know
            warnings.simplefilter("ignore", UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (self.weight @ x.t()).t()
        return y if self.bias is None else y + self.bias


def sparse_copy(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` whose pruned Linear layers compute through CSR weights."""
    sparse = copy.deepcopy(model).eval()
    for name, mask in masks.items():
        if bool(mask.all()):
            continue
        path = name.rsplit(".", 1)[0]
        module = sparse.get_submodule(path)
        if isinstance(module, nn.Linear):
            parent_path, _, child = path.rpartition(".")
            parent = sparse.get_submodule(parent_path) if parent_path else sparse
            setattr(parent, child, CSRLinear(module))
    return sparse


@torch.inference_mode()
def _median_ms(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(3):
        model(x)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_inference(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    repeats: int = 20,
) -> dict[str, float]:
    """Median milliseconds of one forward of a fixed batch (the first 256 test samples)."""
    batch = x[:INFER_BATCH]
    model.eval()
    dense = _median_ms(model, batch, repeats)
    sparse = _median_ms(sparse_copy(model, masks), batch, repeats)
    return {"infer_ms_dense": dense, "infer_ms_sparse": sparse}
