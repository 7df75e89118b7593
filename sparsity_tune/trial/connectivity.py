"""Effective sparsity (Vysogorets & Kempe 2021, "Connectivity matters: neural network pruning
through the lens of effective sparsity"): the fraction of prunable weights that are pruned *or*
cut off from the input or the output by pruned neighbours, which then do nothing.

A kept weight from unit ``i`` to unit ``j`` is effective when some path of kept weights leads
from the input to ``i`` and from ``j`` to the output. Autograd does the path counting, as in
SynFlow: on a float64 copy of the network whose every weight is its mask (0 or 1; weights that
are not pruned count as 1), biases 0 and max-pools replaced by average pools (a max-pool's
output depends on every input of its window; its gradient reaches only one), the all-ones
input gives ``R = 1ᵀ(∏ M_l)1``, and ``∂R/∂w`` is the number of input paths into ``i`` times the
number of output paths out of ``j``: nonzero exactly for effective weights. Biases are left out
on purpose: a unit fed only by its bias is a constant, not a function of the input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

_POOLS = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d}


def _avg_pools_(model: nn.Module) -> None:
    for name, child in model.named_children():
        if type(child) in _POOLS:
            avg = _POOLS[type(child)](
                child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode
            )
            setattr(model, name, avg)
        else:
            _avg_pools_(child)


def effective_masks(
    model: nn.Module, masks: Mapping[str, Tensor], input_shape: tuple[int, ...]
) -> dict[str, Tensor]:
    """The kept weights of ``masks`` (dense coordinates of ``model``) on an input-output path."""
    net = copy.deepcopy(model).double().eval()
    _avg_pools_(net)
    named = dict(net.named_parameters())
    with torch.no_grad():
        for name, p in named.items():
            if name in masks:
                p.copy_(masks[name].to(p.device, torch.float64))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    device = next(iter(named.values())).device
    total = net(torch.ones((1, *input_shape), dtype=torch.float64, device=device)).sum()
    targets = [named[n] for n in masks]
    grads = torch.autograd.grad(total, targets, allow_unused=True)
    out = {}
    for (name, mask), g in zip(masks.items(), grads, strict=True):
        flows = torch.zeros_like(mask) if g is None else (g > 0).to(mask.device)
        out[name] = mask.to(torch.bool) & flows
    return out


def effective_sparsity(
    model: nn.Module, masks: Mapping[str, Tensor], input_shape: tuple[int, ...]
) -> float:
    """1 - effective weights / prunable weights (0.0 with no prunable weight)."""
    total = sum(m.numel() for m in masks.values())
    if not total:
        return 0.0
    eff = effective_masks(model, masks, input_shape)
    return 1.0 - sum(int(m.sum()) for m in eff.values()) / total
