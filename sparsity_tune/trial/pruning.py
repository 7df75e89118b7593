"""Pruning math: scores -> masks -> sparsity, and in-place mask upkeep.

Pure functions over ``{name: tensor}`` mappings; torch does the heavy lifting (one ``torch.cat``
and one ``torch.kthvalue`` select the pruned weights, one stable sort per N:M group, with no
Python loop over elements). Masks are bool tensors shaped like their weight, ``True`` = kept.
(Schedules, target(t), are in :mod:`sparsity_tune.trial.schedule`; whole units in
:mod:`sparsity_tune.trial.units`.)

Conventions every caller can rely on:

- A sparsity target is a fraction of *all* prunable weights, not of what remains: pruning to 0.5
  and then to 0.75 leaves 75% zeros in total.
- Exactly ``k = round(target * n)`` weights are zero afterwards (Python's ``round``, half to
  even), even when scores tie: ties are broken by position (earlier layer, then lower flat
  index, is pruned first), so results are deterministic.
- N:M (:func:`nm_masks`): in every group of ``m`` consecutive weights of a row exactly ``n`` are
  kept, ties broken the same way; see there for rows whose length is not a multiple of ``m``.
- Masks only shrink: weights already pruned stay pruned, and a target below the current
  sparsity prunes nothing more.

As in Zhu & Gupta 2017 and SparseML's ``GMPruningModifier``, masks are re-applied in place after
every optimizer step (:func:`apply_masks_`) and the optimizer's state of pruned weights is zeroed
(:func:`mask_optimizer_state_`), because momentum and Adam's moving averages would otherwise
revive pruned weights. ``torch.nn.utils.prune`` is deliberately not used: it keeps a dense copy
and a mask per weight and adds forward hooks.

Example::

    >>> import torch
    >>> w = {"fc": torch.tensor([[0.3, -0.1], [2.0, 0.05]])}
    >>> m = compute_masks(magnitude_scores(w), dense_masks(w), 0.5, "global")
    >>> m["fc"].tolist(), sparsity(m)
    ([[True, False], [True, False]], 0.5)
    >>> nm_masks({"fc": torch.tensor([[4.0, 1, 3, 2, 9]])}, {"fc": torch.ones(1, 5, dtype=torch.bool)}, 2, 4)["fc"].tolist()
    [[True, False, True, False, True]]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

Scope = Literal["global", "layerwise"]

# Per-parameter optimizer state that is not elementwise (e.g. Adam's scalar ``step``) is skipped
# by shape; these are the elementwise buffers of torch's SGD, Adam, AdamW, named for the reader.
ELEMENTWISE_STATE = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


# --------------------------------------------------------------------------------------- scores


def magnitude_scores(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``|w|`` per weight: the smallest magnitudes are pruned first."""
    return {name: w.detach().abs() for name, w in weights.items()}


def random_scores(weights: Mapping[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Uniform random scores: the control every pruning result needs (same seed, same masks).

    Drawn on the CPU from ``generator`` in the mapping's order, then moved to each weight's
    device, so a seed gives the same masks on every device.
    """
    out = {}
    for name, w in weights.items():
        s = torch.rand(w.shape, generator=generator, device="cpu", dtype=torch.float32)
        out[name] = s.to(w.device)
    return out


# ---------------------------------------------------------------------------------------- masks


def dense_masks(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """All-``True`` masks (nothing pruned yet), one per weight."""
    return {
        name: torch.ones(w.shape, dtype=torch.bool, device=w.device) for name, w in weights.items()
    }


def target_count(target: float, total: int) -> int:
    """How many of ``total`` weights a ``target`` sparsity prunes: ``round(target * total)``."""
    _check_fraction("target", target)
    return round(target * total)


def compute_masks(
    scores: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    target: float,
    scope: Scope,
) -> dict[str, Tensor]:
    """New masks with exactly ``round(target * n)`` zeros, pruning the lowest scores first.

    ``scope="global"`` ranks all layers together (``n`` = all prunable weights), so layers with
    small scores give up more; ``"layerwise"`` prunes ``round(target * n_l)`` in every layer.
    Weights already pruned in ``masks`` stay pruned and count towards the target; if they already
    reach it, the masks are returned unchanged (as new tensors; the inputs are never modified).
    """
    _check_fraction("target", target)
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope={scope!r} is not allowed; use 'global' or 'layerwise'")
    _check_pairs(scores, masks)
    names = list(masks)
    if scope == "layerwise":
        return {
            n: _prune_flat(scores[n].reshape(-1), masks[n].reshape(-1), target).view_as(masks[n])
            for n in names
        }
    if not names:
        return {}
    flat_scores = torch.cat([scores[n].reshape(-1).to(masks[n].device) for n in names])
    flat_masks = torch.cat([masks[n].reshape(-1) for n in names])
    new = _prune_flat(flat_scores, flat_masks, target)
    sizes = [masks[n].numel() for n in names]
    return {n: part.view_as(masks[n]) for n, part in zip(names, new.split(sizes), strict=True)}


def _prune_flat(scores: Tensor, mask: Tensor, target: float) -> Tensor:
    """Prune the lowest-scored kept entries of a flat mask until ``round(target*n)`` are zero."""
    mask = mask.to(torch.bool).clone()
    k = round(target * mask.numel())
    more = k - int((~mask).sum())
    if more <= 0:
        return mask
    kept = mask.nonzero().squeeze(1)  # ascending flat index: the tie-break order
    vals = scores.to(mask.device)[kept]
    if vals.is_floating_point() and bool(vals.isnan().any()):
        raise ValueError("pruning scores contain NaN; cannot rank weights (did training diverge?)")
    if more >= vals.numel():
        mask[kept] = False
        return mask
    if not vals.is_floating_point():
        vals = vals.double()
    thr = vals.kthvalue(more).values  # the more-th smallest score, O(n) selection
    below = vals < thr
    ties = vals == thr
    # Of the entries equal to the threshold, take the earliest ones until exactly `more` are pruned.
    need = more - int(below.sum())
    chosen = below | (ties & (ties.cumsum(0) <= need))
    mask[kept[chosen]] = False
    return mask


# ------------------------------------------------------------------------------------------ N:M


def nm_masks(
    scores: Mapping[str, Tensor], masks: Mapping[str, Tensor], n: int, m: int
) -> dict[str, Tensor]:
    """N:M masks: along each row of every weight viewed as ``(out, in·k)`` (the layout
    ``torch.sparse.to_sparse_semi_structured`` takes, a convolution im2col'd), in every group of
    ``m`` consecutive weights the ``n`` highest-scored are kept and ``m - n`` pruned.

    A row whose length ``L`` is not a multiple of ``m`` ends in a short group of ``r = L % m``
    weights, which keeps ``min(n, r)`` of them: what zero-padding the row to a multiple of ``m``
    (as semi-structured storage does) allows, the padding counting as pruned. Sparsity is then a
    little below ``1 - n/m`` (:func:`nm_pruned_count` gives the exact count). Ties are broken by
    position (the earlier weight is pruned first); weights already pruned count among a group's
    ``m - n`` (masks only shrink).
    """
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n < m):
        raise ValueError(f"N:M needs integers 1 <= n < m, got n={n!r}, m={m!r}")
    _check_pairs(scores, masks)
    out = {}
    for name, mask in masks.items():
        rows = mask.shape[0] if mask.dim() else 1
        flat_mask = mask.reshape(rows, -1)
        length = flat_mask.shape[1]
        s = scores[name].to(mask.device).reshape(rows, length)
        s = s.double() if not s.is_floating_point() else s
        if bool(s.isnan().any()):
            raise ValueError(f"pruning scores of {name!r} contain NaN (did training diverge?)")
        groups = -(-length // m)
        padded = s.new_full((rows, groups * m), float("-inf"))
        padded[:, :length] = s.masked_fill(~flat_mask, float("-inf"))
        order = padded.view(rows, groups, m).sort(dim=-1, stable=True).indices
        keep = torch.ones(rows, groups, m, dtype=torch.bool, device=mask.device)
        keep.scatter_(-1, order[..., : m - n], False)
        out[name] = (keep.view(rows, groups * m)[:, :length] & flat_mask).reshape(mask.shape)
    return out


def nm_pruned_count(shapes: Mapping[str, torch.Size | tuple[int, ...]], n: int, m: int) -> int:
    """Weights :func:`nm_masks` prunes from dense masks of these shapes (short row ends too)."""
    total = 0
    for shape in shapes.values():
        rows = shape[0] if len(shape) else 1
        length = math.prod(shape) // rows if rows else 0
        full, rest = divmod(length, m)
        total += rows * (full * (m - n) + max(0, rest - n))
    return total


# ------------------------------------------------------------------------------------- sparsity


def count_pruned(masks: Mapping[str, Tensor]) -> int:
    """Number of pruned (``False``) entries over all masks."""
    return sum(int(m.numel() - m.count_nonzero()) for m in masks.values())


def count_total(masks: Mapping[str, Tensor]) -> int:
    """Number of entries over all masks (the prunable weights)."""
    return sum(m.numel() for m in masks.values())


def sparsity(masks: Mapping[str, Tensor]) -> float:
    """Fraction of pruned entries over all masks (0.0 when there are none), from the masks."""
    total = count_total(masks)
    return count_pruned(masks) / total if total else 0.0


def layer_sparsity(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction of pruned entries in each mask."""
    return {
        n: (float(m.numel() - m.count_nonzero()) / m.numel() if m.numel() else 0.0)
        for n, m in masks.items()
    }


# --------------------------------------------------------------------------- in-place upkeep

# Multiplying by a float copy of a mask is ~10x faster on CPU than ``masked_fill_(~mask, 0)`` or
# a multiply by the bool mask (both convert or allocate every call); these run after every step,
# so the float copies are cached per mask object (dropped with it) and refreshed when the mask
# is modified in place (its ``_version`` changes).
_FLOAT_MASKS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _float_mask(mask: Tensor, like: Tensor) -> Tensor:
    per_mask = _FLOAT_MASKS.get(mask)
    if per_mask is None:
        per_mask = _FLOAT_MASKS[mask] = {}
    key = (like.dtype, like.device)
    hit = per_mask.get(key)
    if hit is None or hit[0] != mask._version:
        hit = per_mask[key] = (mask._version, mask.to(device=like.device, dtype=like.dtype))
    return hit[1]


def _mul_(tensors: list[Tensor], factors: list[Tensor]) -> None:
    if tensors:
        torch._foreach_mul_(tensors, factors)  # one call for all layers, as torch's optimizers do


@torch.no_grad()
def apply_masks_(params: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned entries of each named parameter in place (call after every step).

    Pruned entries become 0.0 (``-0.0`` for a negative weight, which equals zero and is dropped
    by sparse formats); a NaN or inf weight would stay NaN, as training has then diverged anyway.
    """
    tensors = [params[_has(params, name, "params")] for name in masks]
    _mul_(tensors, [_float_mask(m, t) for m, t in zip(masks.values(), tensors, strict=True)])


@torch.no_grad()
def mask_optimizer_state_(
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
) -> None:
    """Zero the optimizer state of pruned weights in place, so momentum/Adam cannot revive them.

    Every per-parameter state tensor shaped like its parameter is masked: SGD's
    ``momentum_buffer``, Adam/AdamW's ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (and the
    like of other torch optimizers); scalars such as ``step`` are left alone. Parameters without
    state yet (before the first step) are skipped. State is looked up by the parameter object.
    """
    tensors, factors = [], []
    for name, mask in masks.items():
        p = params[_has(params, name, "params")]
        state = optimizer.state.get(p)
        if not state:
            continue
        for value in state.values():
            if isinstance(value, Tensor) and value.shape == p.shape:
                tensors.append(value)
                factors.append(_float_mask(mask, value))
    _mul_(tensors, factors)


# -------------------------------------------------------------------------------------- helpers


def _check_fraction(what: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what}={value!r} must be a sparsity fraction in [0, 1]")


def _check_pairs(scores: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    if set(scores) != set(masks):
        raise ValueError(
            f"scores and masks must name the same weights; only in scores: "
            f"{sorted(set(scores) - set(masks))}, only in masks: {sorted(set(masks) - set(scores))}"
        )
    for n, m in masks.items():
        if tuple(scores[n].shape) != tuple(m.shape):
            raise ValueError(
                f"score of {n!r} has shape {tuple(scores[n].shape)}, its mask {tuple(m.shape)}"
            )
        if m.dtype != torch.bool:
            raise ValueError(f"mask of {n!r} must be a bool tensor (True = kept), got {m.dtype}")


def _has(mapping: Mapping[str, Tensor], name: str, what: str) -> str:
    if name not in mapping:
        raise KeyError(f"mask {name!r} has no matching entry in {what}; names: {sorted(mapping)}")
    return name
