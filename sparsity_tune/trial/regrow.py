"""Prune-and-regrow masks for dynamic sparse training (SET, RigL): the tensor math of
:mod:`sparsity_tune.trial.dst`.

Per layer, as RigL's ``generic_mask_update`` (google-research/rigl, ``sparse_optimizers.py``)
and jaxpruner's ``sparse_trainers.py``: of the ``n`` kept weights, ``k = round(fraction · n)``
of the smallest magnitude are dropped; then ``k`` weights are grown, the highest grow scores
among all weights not kept after the drop (a weight just dropped may come straight back, and
then keeps its value). Ties go by position (the earlier weight is dropped first and grown first),
so an update is deterministic; each layer keeps exactly its number of weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskUpdate:
    """A prune-and-regrow update: the new masks and, per layer, the weights that became active
    (zero-valued, their optimizer state to be reset) and how many were dropped."""

    masks: dict[str, Tensor]
    grown: dict[str, Tensor]
    dropped: dict[str, int]


def cosine_fraction(step: int, end_step: int, initial: float) -> float:
    """RigL's drop fraction at ``step``: ``initial / 2 · (1 + cos(π · step / end_step))``."""
    return initial / 2.0 * (1.0 + math.cos(math.pi * step / end_step))


def _lowest(scores: Tensor, k: int) -> Tensor:
    """Positions of the ``k`` lowest of a flat tensor, ties to the earlier position."""
    return scores.sort(stable=True).indices[:k]


def drop_and_grow(
    weights: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    grow_scores: Mapping[str, Tensor],
    fraction: float,
) -> MaskUpdate:
    """New masks after one update at drop ``fraction`` (see the module docstring); ``grown``
    marks the weights that were not kept before and are now (their value is zero and their
    optimizer state must be reset)."""
    new, grown, dropped = {}, {}, {}
    for name, mask in masks.items():
        flat = mask.reshape(-1)
        kept = int(flat.sum())
        k = round(fraction * kept)
        if k == 0:
            new[name], grown[name], dropped[name] = mask.clone(), torch.zeros_like(mask), 0
            continue
        magnitude = weights[name].detach().reshape(-1).abs().double()
        drop_rank = magnitude.masked_fill(~flat, math.inf)  # only kept weights may go
        after_drop = flat.clone()
        after_drop[_lowest(drop_rank, k)] = False
        grow = grow_scores[name].detach().reshape(-1).double().to(flat.device)
        grow_rank = (-grow).masked_fill(after_drop, math.inf)  # highest first, only free ones
        out = after_drop.clone()
        out[_lowest(grow_rank, k)] = True
        new[name] = out.view_as(mask)
        grown[name] = (out & ~flat).view_as(mask)
        dropped[name] = k
    return MaskUpdate(new, grown, dropped)
