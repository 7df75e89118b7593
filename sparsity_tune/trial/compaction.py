"""Physical compaction: a structured-pruned model rebuilt with its removed units gone.

A mask saves nothing by itself; removing whole units does, once the layers are rebuilt smaller.
Torch-Pruning (``torch_pruning``, DepGraph, Fang et al. 2023) does the heavy lifting: its
``DependencyGraph`` traces the model once and knows which slices of which layers belong to one
unit (a Linear row and the next Linear's column; a filter and the next conv's input channel;
across ``Flatten`` the block of columns of that channel), and its pruning functions rebuild the
layers. This module adds what a training run needs around it:

- units are read from the masks (:func:`removed_units`: a producer row with no kept weight), and
  the masks are checked to remove each unit everywhere, so the compact model computes exactly
  the masked model's function (a consumer outside the masks, e.g. an unpruned output layer, gets
  the unit's constant output folded into its bias);
- :class:`Compaction` remembers the kept indices of every parameter, so optimizer state, masks and
  rewind weights follow (:meth:`Compaction.shrink`), dense-coordinate figures can still be
  computed (:meth:`Compaction.expand`), and a checkpoint stores only ``units`` and rebuilds the
  compact architecture from the dense one (:func:`compact_` with the stored units);
- every rebuilt parameter is checked against the kept indices (Torch-Pruning and this module must
  agree), and channels-last weights stay channels-last.

Mask contract (shared with the structured pruning strategy): one bool mask per prunable weight,
``True`` = kept; a removed unit has its whole producer row ``W[u, ...]`` False and its consumers'
input slices False. The output layer's units are never removed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import Tensor, nn

from sparsity_tune.trial.models import PRUNABLE_TYPES, output_layer_name

Units = dict[str, list[int]]  # module name -> removed output units, in dense coordinates


@dataclass(frozen=True)
class Compaction:
    """What compaction removed, and how dense-coordinate tensors map to the compact model.

    ``kept[param][dim]`` holds the kept indices of that dimension (dimensions not listed are
    whole); ``dense_shapes[param]`` the shape before compaction.
    """

    units: Units
    kept: dict[str, dict[int, Tensor]]
    dense_shapes: dict[str, tuple[int, ...]]

    def shrink(self, name: str, tensor: Tensor) -> Tensor:
        """``tensor`` (shaped like dense parameter ``name``) restricted to the kept entries."""
        for dim, idx in self.kept.get(name, {}).items():
            tensor = tensor.index_select(dim, idx.to(tensor.device))
        return tensor

    def expand(self, name: str, tensor: Tensor, fill: float | bool = 0) -> Tensor:
        """A compact ``tensor`` put back into dense coordinates, ``fill`` where units were removed."""
        kept = self.kept.get(name, {})
        if not kept:
            return tensor
        out = tensor
        for dim, idx in sorted(kept.items(), reverse=True):
            shape = list(out.shape)
            shape[dim] = self.dense_shapes[name][dim]
            full = torch.full(shape, fill, dtype=out.dtype, device=out.device)
            out = full.index_copy(dim, idx.to(out.device), out)
        return out

    @property
    def removed(self) -> int:
        """Number of parameters (weights and biases) compaction removed."""
        n = 0
        for name, shape in self.dense_shapes.items():
            kept = 1
            for dim, size in enumerate(shape):
                kept *= len(self.kept[name][dim]) if dim in self.kept.get(name, {}) else size
            total = 1
            for size in shape:
                total *= size
            n += total - kept
        return n


def removed_units(model: nn.Module, masks: Mapping[str, Tensor]) -> Units:
    """Units whose producer row keeps no weight, per module (the output layer never has any).

    Raises ``ValueError`` when a layer would lose every unit: the mask is then not a structured
    mask this module can compact.
    """
    out_name = output_layer_name(model).rsplit(".", 1)[0]
    units: Units = {}
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(module, PRUNABLE_TYPES) or name == out_name or key not in masks:
            continue
        mask = masks[key]
        alive = mask.reshape(mask.shape[0], -1).any(1)
        if not bool(alive.any()):
            raise ValueError(
                f"structured mask of {key!r} removes all {mask.shape[0]} units; a layer must keep "
                f"at least one (the structured pruning strategy guarantees this)"
            )
        dead = (~alive).nonzero().flatten().tolist()
        if dead:
            units[name] = dead
    return units


def _remove_units_fn(module: nn.Module):
    """Torch-Pruning's function that removes output units of ``module``."""
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    return tp.prune_conv_out_channels


def _unit_slices(
    model: nn.Module, example: Tensor, units: Units
) -> tuple[dict[str, dict[int, list[int]]], tp.DependencyGraph]:
    """Removed indices per (parameter, dim), as the dependency graph couples them."""
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    removed: dict[str, dict[int, set[int]]] = {}
    for name, idxs in units.items():
        module = model.get_submodule(name)
        for dep, group_idxs in dg.get_pruning_group(module, _remove_units_fn(module), idxs):
            target = dep.target.module
            if not isinstance(target, PRUNABLE_TYPES):
                continue  # ReLU, pooling, Flatten: no parameters
            if isinstance(target, nn.Conv1d | nn.Conv2d) and (
                target.groups != 1 or target.transposed
            ):
                raise ValueError(
                    f"compaction supports plain convolutions only; {names[target]!r} is not"
                )
            tname = names[target]
            if dg.is_out_channel_pruning_fn(dep.handler):
                dims = [(f"{tname}.weight", 0)] + (
                    [(f"{tname}.bias", 0)] if target.bias is not None else []
                )
            elif dg.is_in_channel_pruning_fn(dep.handler):
                dims = [(f"{tname}.weight", 1)]
            else:
                continue
            for pname, dim in dims:
                removed.setdefault(pname, {}).setdefault(dim, set()).update(group_idxs)
    return {p: {d: sorted(s) for d, s in dims.items()} for p, dims in removed.items()}, dg


def _example(model: nn.Module, input_shape: Sequence[int], batch: int = 1) -> Tensor:
    param = next(model.parameters())
    g = torch.Generator().manual_seed(0)  # private: the run's RNG streams stay untouched
    x = torch.randn(batch, *input_shape, generator=g).to(param.device, param.dtype)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def _check_and_fold(
    model: nn.Module,
    input_shape: Sequence[int],
    removed: Mapping[str, Mapping[int, list[int]]],
    masks: Mapping[str, Tensor],
) -> None:
    """Make removal exact: consumers' slices of removed units must be masked, or foldable.

    A removed unit's weights are zero, so its output is a constant (its activated bias). A masked
    consumer ignores it; a Linear consumer outside the masks (an unpruned output layer) gets
    ``W[:, cols] @ constant`` added to its bias, so the function is unchanged. Anything else is a
    mask this module cannot compact exactly: ``ValueError``.
    """
    inputs: dict[str, Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        dims = removed.get(f"{name}.weight", {})
        if 1 not in dims:
            continue
        mask = masks.get(f"{name}.weight")
        if mask is not None and not bool(mask[:, dims[1]].any()):
            continue  # masked consumer: its slice is already zero
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f"structured masks remove input channels {dims[1][:5]}... of {name!r} but do not "
                f"zero them in its mask; the structured strategy must mask a removed unit's "
                f"consumer slices too"
            )

        def grab(mod: nn.Module, args: tuple, name: str = name) -> None:
            inputs[name] = args[0].detach()

        handles.append(module.register_forward_pre_hook(grab))
    if not handles:
        return
    was_training = model.training
    try:
        model.eval()
        model(_example(model, input_shape, batch=2))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for name, x in inputs.items():
        cols = torch.tensor(removed[f"{name}.weight"][1], device=x.device)
        const = x.reshape(x.shape[0], -1).index_select(1, cols)
        if not torch.allclose(const[0], const[1], rtol=1e-6, atol=1e-7):
            raise ValueError(
                f"inputs of {name!r} from removed units are not constant: their producers' "
                f"weights are not all zero (apply the masks before compacting)"
            )
        layer = model.get_submodule(name)
        w = layer.weight.index_select(1, cols)
        if layer.bias is None:
            raise ValueError(f"{name!r} has no bias to fold the removed units' outputs into")
        layer.bias.add_(w @ const[0])


def compact_(
    model: nn.Module,
    input_shape: Sequence[int],
    units: Units,
    masks: Mapping[str, Tensor] | None = None,
) -> Compaction:
    """Remove ``units`` from ``model`` in place with Torch-Pruning; return the index maps.

    With ``masks`` (a training run), they are checked to remove each unit entirely (see
    :func:`_check_and_fold`). Without them (restoring a checkpoint) the layers are only
    reshaped: the values are about to be overwritten by the checkpoint's.
    """
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    channels_last = {n for n, p in dense.items() if p.dim() == 4 and _is_nhwc(p)}
    example = _example(model, input_shape)
    removed, dg = _unit_slices(model, example, units)
    if masks is not None:
        _check_and_fold(model, input_shape, removed, masks)
        dense = {n: p.detach().clone() for n, p in model.named_parameters()}  # folded biases
    for name, idxs in units.items():
        module = model.get_submodule(name)
        group = dg.get_pruning_group(module, _remove_units_fn(module), idxs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group.prune()
    kept: dict[str, dict[int, Tensor]] = {}
    for pname, dims in removed.items():
        device = dense[pname].device
        kept[pname] = {
            d: torch.tensor(
                sorted(set(range(dense[pname].shape[d])) - set(r)), dtype=torch.long, device=device
            )
            for d, r in dims.items()
        }
    comp = Compaction(
        units={k: list(v) for k, v in units.items()},
        kept=kept,
        dense_shapes={n: tuple(p.shape) for n, p in dense.items()},
    )
    for name, p in model.named_parameters():
        want = comp.shrink(name, dense[name])
        if p.shape != want.shape or not torch.equal(p.detach(), want):
            raise RuntimeError(
                f"Torch-Pruning rebuilt {name!r} as {tuple(p.shape)}, expected {tuple(want.shape)} "
                f"from the units {units}: the dependency graph and the kept indices disagree"
            )
        if name in channels_last:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return comp


def _is_nhwc(p: Tensor) -> bool:
    return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()


def unit_masks(
    model: nn.Module, input_shape: Sequence[int], units: Units, names: Iterable[str]
) -> dict[str, Tensor]:
    """Structured masks for the weights ``names`` that remove ``units`` (rows and every coupled
    consumer slice among ``names``).

    The masks this module expects, built from the same dependency graph: used by tests and the
    deploy benchmark; the structured pruning strategy builds its own (same contract).
    """
    removed, _ = _unit_slices(model, _example(model, input_shape), units)
    wanted = set(names)
    masks = {}
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if isinstance(module, PRUNABLE_TYPES) and key in wanted:
            mask = torch.ones_like(module.weight, dtype=torch.bool)
            for dim, idxs in removed.get(key, {}).items():
                idx = torch.tensor(idxs, dtype=torch.long, device=mask.device)
                mask.index_fill_(dim, idx, False)
            masks[key] = mask
    return masks
