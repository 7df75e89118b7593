"""Whole units for structured pruning: which weight feeds which, unit scores, which units to
remove, and their masks.

A *unit* is a hidden neuron of an MLP or an output channel of a convolution. Removing unit ``u``
of a *producer* layer removes its row ``W_l[u, ...]`` (the neuron's fan-in, or the filter) and
its slice of the next Linear/Conv layer, the *consumer*: the consumer's weight viewed as
``(out, units, per_unit)`` loses ``[:, u, :]``. For a Linear after a Linear that is one column;
for a convolution after a convolution one input channel ``W[:, u]``; for a Linear after
conv → (pool, ReLU) → Flatten the block of columns ``u·P ... u·P + P - 1`` that the channel's
``P`` positions flatten to. :func:`unit_groups` reads this structure off a model; compaction and
tests use it.

**Mask contract** (shared with physical compaction): masks are one bool tensor per prunable
weight, True = kept; a removed unit has its producer row all False *and* its consumer slice all
False, and nothing else is ever False. The unit's bias entry is not masked: the removed unit then
outputs a constant that only ever meets zero weights, so the masked network computes the same
function as the network with the unit physically removed (whose bias entry goes with it).

torch does the tensor work (scores summed per unit, masks built by broadcasting); the choice of
units is a small integer search, exact because a unit's cost in weights depends only on how many
units its neighbouring layers still have (see :class:`UnitLayout`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

#: The layers whose output units can be removed (those :mod:`sparsity_tune.trial.models` builds).
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Modules a unit passes through unchanged, one channel to one channel (Flatten: to P columns).
PASS_THROUGH = (
    nn.ReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
)


@dataclass(frozen=True)
class UnitGroup:
    """The units of one producer layer and the consumer slice each of them feeds.

    ``producer``/``consumer`` are parameter names (``"conv2.weight"``, ``"out.weight"``); unit
    ``u`` is ``producer_weight[u]`` plus ``consumer_weight.reshape(out, units, per_unit)[:, u]``
    (see :func:`consumer_slices`). ``bias`` is the producer's bias name, or None.
    """

    producer: str
    bias: str | None
    consumer: str
    units: int
    per_unit: int  # consumer entries per (output row, unit): 1, the kernel size, or positions P

    @property
    def producer_module(self) -> str:
        return self.producer.removesuffix(".weight")

    @property
    def consumer_module(self) -> str:
        return self.consumer.removesuffix(".weight")


def unit_groups(model: nn.Module) -> list[UnitGroup]:
    """The producer → consumer structure of a sequential MLP/CNN, in forward order.

    Every Linear/Conv layer but the last (the output layer, whose units are never removed) is a
    producer; its consumer is the next Linear/Conv layer. Between them only ReLU, pooling,
    dropout, identity and Flatten may stand (they keep channels apart). Raises ``ValueError``
    naming the module for anything else (a BatchNorm or a residual connection would need its
    own rule).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(
            f"structured pruning follows units through an nn.Sequential; got {type(model).__name__}"
        )
    leaves = [(n, mod) for n, mod in model.named_modules() if not any(mod.children())]
    groups: list[UnitGroup] = []
    prev: tuple[str, nn.Module] | None = None
    for name, mod in leaves:
        if isinstance(mod, LAYERS):
            if getattr(mod, "groups", 1) != 1:
                raise ValueError(f"structured pruning needs groups=1 convolutions; {name!r} has")
            if prev is not None:
                groups.append(_group(prev, (name, mod)))
            prev = (name, mod)
        elif isinstance(mod, nn.Flatten) and (mod.start_dim, mod.end_dim) != (1, -1):
            raise ValueError(f"structured pruning needs Flatten(1, -1); {name!r} is not")
        elif not isinstance(mod, PASS_THROUGH):
            allowed = ", ".join(t.__name__ for t in PASS_THROUGH)
            raise ValueError(
                f"structured pruning cannot follow units through module {name!r} "
                f"({type(mod).__name__}); between Linear/Conv layers only {allowed} may stand"
            )
    return groups


def _group(producer: tuple[str, nn.Module], consumer: tuple[str, nn.Module]) -> UnitGroup:
    (pname, pmod), (cname, cmod) = producer, consumer
    units = pmod.weight.shape[0]
    fan_in = cmod.weight.shape[1]
    if isinstance(cmod, nn.Linear):
        if fan_in % units:
            raise ValueError(
                f"{cname!r} takes {fan_in} features, not a multiple of {pname!r}'s {units} units"
            )
        per_unit = fan_in // units
    else:
        if fan_in != units:
            raise ValueError(f"{cname!r} takes {fan_in} channels, {pname!r} gives {units}")
        per_unit = math.prod(cmod.weight.shape[2:])
    bias = f"{pname}.bias" if getattr(pmod, "bias", None) is not None else None
    return UnitGroup(f"{pname}.weight", bias, f"{cname}.weight", units, per_unit)


def unit_parameters(model: nn.Module, groups: list[UnitGroup]) -> dict[str, nn.Parameter]:
    """Every producer and consumer weight of ``groups``, by name, in the model's order."""
    names = {g.producer for g in groups} | {g.consumer for g in groups}
    return {n: p for n, p in model.named_parameters() if n in names}


def consumer_slices(tensor: Tensor, group: UnitGroup) -> Tensor:
    """The consumer weight (or mask) as ``(out, units, per_unit)``: ``[:, u]`` is unit u's slice.

    A view when ``tensor`` is contiguous (assignments then write through), else a copy.
    """
    return tensor.reshape(tensor.shape[0], group.units, group.per_unit)


def removed_units(masks: Mapping[str, Tensor], group: UnitGroup) -> Tensor:
    """Bool vector over the group's units: True where the producer row is all False."""
    return ~masks[group.producer].reshape(group.units, -1).any(dim=1)


# ----------------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class _Weight:
    rows: int  # output rows
    cols: int  # input units (of the producing group), or 1 for the network's input
    per: int  # entries per (row, input unit)
    row_group: int | None  # group whose units are this weight's rows (None: the output layer)
    col_group: int | None  # group whose units feed this weight (None: the first layer)


class UnitLayout:
    """The counting model of unit-structured masks.

    With ``a[g]`` the units group ``g`` keeps, a weight whose rows are group ``g``'s units and
    whose inputs are group ``h``'s keeps exactly ``a[g] · a[h] · per`` entries (the output layer:
    all its rows; the first layer: all its inputs). So removing one unit of group ``g`` removes
    ``cost(g) = a[h]·per_producer + a[c]·per_consumer`` weights, the same for every unit of the
    group and independent of ``a[g]`` itself.
    """

    def __init__(self, groups: list[UnitGroup], shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.groups = groups
        self.names = list(shapes)
        row_of = {g.producer: i for i, g in enumerate(groups)}
        col_of = {g.consumer: i for i, g in enumerate(groups)}
        missing = sorted(({g.producer for g in groups} | set(col_of)) - set(shapes))
        if missing:
            raise ValueError(f"structured masks need a mask for every unit's weights: {missing}")
        self.weights: dict[str, _Weight] = {}
        for name, shape in shapes.items():
            rows, numel = shape[0], math.prod(shape)
            cg = col_of.get(name)
            cols = groups[cg].units if cg is not None else 1
            self.weights[name] = _Weight(rows, cols, numel // (rows * cols), row_of.get(name), cg)
        self.total = sum(math.prod(s) for s in shapes.values())
        self.units = [g.units for g in groups]

    def _kept(self, w: _Weight, alive: list[int]) -> int:
        a = alive[w.row_group] if w.row_group is not None else w.rows
        b = alive[w.col_group] if w.col_group is not None else w.cols
        return a * b * w.per

    def removed(self, alive: list[int]) -> int:
        """Pruned weights when group ``g`` keeps ``alive[g]`` units."""
        return self.total - sum(self._kept(w, alive) for w in self.weights.values())

    def cost(self, g: int, alive: list[int]) -> int:
        """Weights one more removed unit of group ``g`` prunes (or one restored unit brings back)."""
        group = self.groups[g]
        prod, cons = self.weights[group.producer], self.weights[group.consumer]
        b = alive[prod.col_group] if prod.col_group is not None else prod.cols
        a = alive[cons.row_group] if cons.row_group is not None else cons.rows
        return b * prod.per + a * cons.per

    def tolerance(self, scope: Literal["global", "layerwise"]) -> int:
        """How far (in weights) a chosen set of units may land from the target: half a step.

        A step is the largest unit (its cost with every unit kept) for ``global``; for
        ``layerwise`` one unit in every layer at once, as the common fraction moves.
        """
        full = [self.cost(g, self.units) for g in range(len(self.groups))]
        if not full:
            return 0
        return (sum(full) if scope == "layerwise" else max(full)) // 2

    def max_removed(self) -> int:
        """Pruned weights when every layer is down to one unit (the most structured can prune)."""
        return self.removed([1] * len(self.groups))


def alive_units(masks: Mapping[str, Tensor], groups: list[UnitGroup]) -> list[Tensor]:
    """Per group, a bool vector: True where the unit is still kept."""
    return [~removed_units(masks, g) for g in groups]


# ------------------------------------------------------------------------------------- scores


def mean_unit_scores(
    scores: Mapping[str, Tensor], masks: Mapping[str, Tensor], groups: list[UnitGroup]
) -> dict[str, Tensor]:
    """Each unit's mean element score over its kept weights (its row and its consumer slice).

    With magnitude scores that is the unit's L1 norm divided by its number of weights: within a
    layer every unit has as many weights, so it ranks them exactly as their L1 norm does (Li et
    al. 2017, who take the filter alone; the consumer slice goes with the unit, as in
    DepGraph/Torch-Pruning's group norm), and it makes units of different layers comparable
    under ``global`` scope (a raw L1 norm grows with fan-in). Removed units score ``+inf``.
    """
    out = {}
    for g in groups:
        p_mask, c_mask = masks[g.producer], masks[g.consumer]
        p = (scores[g.producer].to(p_mask.device) * p_mask).reshape(g.units, -1)
        c = consumer_slices(scores[g.consumer].to(c_mask.device) * c_mask, g)
        total = p.sum(dim=1, dtype=torch.float64) + c.sum(dim=(0, 2), dtype=torch.float64)
        count = p_mask.reshape(g.units, -1).sum(dim=1) + consumer_slices(c_mask, g).sum(dim=(0, 2))
        mean = total / count.clamp_min(1)
        if bool(mean.isnan().any()):
            raise ValueError(f"unit scores of {g.producer!r} contain NaN (did training diverge?)")
        out[g.producer] = mean.masked_fill(count == 0, float("inf")).cpu()
    return out


def random_unit_scores(groups: list[UnitGroup], generator: torch.Generator) -> dict[str, Tensor]:
    """One uniform draw per unit (the control), on the CPU in group order: same seed, same units."""
    return {
        g.producer: torch.rand(g.units, generator=generator, dtype=torch.float64) for g in groups
    }


# ------------------------------------------------------------------------------------- choice


def choose_units(
    layout: UnitLayout,
    unit_scores: list[list[float]],
    alive: list[list[bool]],
    target_count: int,
    scope: Literal["global", "layerwise"],
) -> list[list[bool]]:
    """Which units stay kept so that the pruned weights come as close to ``target_count`` as
    whole units allow; lower scores go first. Returns the new ``alive`` lists (masks only shrink).

    ``global``: one pass over the kept units in ascending score order (ties: earlier layer, then
    lower index) removes a unit when that brings the count closer to the target, and skips it
    otherwise (a smaller unit further on may still fit); then units removed in this call are
    restored, highest score first, when that brings it closer; both repeated until nothing moves.
    So no single removal or restoration gets closer. ``layerwise``: every layer loses the same
    fraction of its units, ``k_l = round(f · n_l)``, with ``f`` chosen so the count is closest.
    A layer always keeps at least one unit.
    """
    alive = [list(a) for a in alive]
    if scope == "layerwise":
        return _choose_layerwise(layout, unit_scores, alive, target_count)
    if scope != "global":
        raise ValueError(f"scope={scope!r} is not allowed; use 'global' or 'layerwise'")
    counts = [sum(a) for a in alive]
    order = sorted(
        ((s, g, u) for g, row in enumerate(unit_scores) for u, s in enumerate(row) if alive[g][u]),
        key=lambda t: t[0],
    )  # sorted() is stable and the generator runs in (layer, index) order: ties by position
    r = layout.removed(counts)
    taken: set[tuple[int, int]] = set()
    moved = True
    while moved:
        moved = False
        for _, g, u in order:
            if (g, u) in taken or counts[g] <= 1:
                continue
            c = layout.cost(g, counts)
            if abs(r + c - target_count) < abs(r - target_count):
                r, counts[g], moved = r + c, counts[g] - 1, True
                taken.add((g, u))
        for _, g, u in reversed(order):
            if (g, u) not in taken:
                continue
            c = layout.cost(g, counts)
            if abs(r - c - target_count) < abs(r - target_count):
                r, counts[g], moved = r - c, counts[g] + 1, True
                taken.discard((g, u))
    for g, u in taken:
        alive[g][u] = False
    return alive


def _choose_layerwise(
    layout: UnitLayout, unit_scores: list[list[float]], alive: list[list[bool]], target: int
) -> list[list[bool]]:
    n = layout.units
    already = [n_g - sum(a) for n_g, a in zip(n, alive, strict=True)]
    best: tuple[int, int, list[int]] | None = None
    seen = set()
    for n_h in n:
        for k in range(n_h):  # f = k / n_h; k_g = round-half-up(f · n_g), at most n_g - 1
            ks = tuple(
                max(already[g], min((2 * k * n_g + n_h) // (2 * n_h), n_g - 1))
                for g, n_g in enumerate(n)
            )
            if ks in seen:
                continue
            seen.add(ks)
            r = layout.removed([n_g - k_g for n_g, k_g in zip(n, ks, strict=True)])
            key = (abs(r - target), r)  # closest; ties: the fewer pruned
            if best is None or key < best[:2]:
                best = (*key, list(ks))
    if best is None:  # no groups
        return alive
    for g, k_g in enumerate(best[2]):
        kept = sorted((s, u) for u, s in enumerate(unit_scores[g]) if alive[g][u])
        for _, u in kept[: k_g - already[g]]:
            alive[g][u] = False
    return alive


# -------------------------------------------------------------------------------------- masks


def unit_masks(
    masks: Mapping[str, Tensor], groups: list[UnitGroup], alive: list[Tensor]
) -> dict[str, Tensor]:
    """Masks with every weight of the units not ``alive`` pruned: their producer rows and
    consumer slices, ANDed with ``masks`` (which stay untouched)."""
    layout = UnitLayout(groups, {n: tuple(m.shape) for n, m in masks.items()})
    out = {}
    for name, mask in masks.items():
        w = layout.weights[name]
        dev = mask.device
        rows = (
            alive[w.row_group].to(dev)
            if w.row_group is not None
            else torch.ones(w.rows, dtype=torch.bool, device=dev)
        )
        cols = (
            alive[w.col_group].to(dev)
            if w.col_group is not None
            else torch.ones(w.cols, dtype=torch.bool, device=dev)
        )
        keep = (rows.view(-1, 1, 1) & cols.view(1, -1, 1)).expand(w.rows, w.cols, w.per)
        out[name] = keep.reshape(mask.shape) & mask
    return out


def structured_masks(
    masks: Mapping[str, Tensor],
    groups: list[UnitGroup],
    unit_scores: Mapping[str, Tensor],
    target: float,
    scope: Literal["global", "layerwise"],
) -> dict[str, Tensor]:
    """New unit-structured masks with ``round(target · n)`` pruned weights as nearly as whole
    units allow (``n`` = all entries of ``masks``), removing the lowest-scored units first.

    ``masks`` must hold every producer and consumer weight of ``groups`` and be unit-structured
    (dense masks are); they are not modified. See :func:`choose_units` for the choice.
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target={target!r} must be a sparsity fraction in [0, 1]")
    layout = UnitLayout(groups, {n: tuple(m.shape) for n, m in masks.items()})
    alive = alive_units(masks, groups)
    counts = [int(a.sum()) for a in alive]
    pruned = sum(int(m.numel() - m.count_nonzero()) for m in masks.values())
    if layout.removed(counts) != pruned:
        raise ValueError(
            "masks are not unit-structured (some pruned weights belong to no removed unit); "
            "structured pruning cannot continue from masks another granularity made"
        )
    scores = [unit_scores[g.producer].tolist() for g in groups]
    new = choose_units(
        layout, scores, [a.tolist() for a in alive], round(target * layout.total), scope
    )
    return unit_masks(masks, groups, [torch.tensor(a, dtype=torch.bool) for a in new])
