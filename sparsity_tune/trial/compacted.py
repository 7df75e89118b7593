"""A training run carried onto its compacted model, and what the compaction buys per step.

:mod:`~sparsity_tune.trial.compaction` rebuilds the model smaller (Torch-Pruning); a run also
holds optimizer state, an LR schedule and masks shaped like the old model, and its records are
in the dense model's coordinates. This module is that glue:

- :func:`compact_training` compacts the model in place and carries the optimizer and LR state
  and the masks over to the smaller shapes (:meth:`Compaction.shrink
  <sparsity_tune.trial.compaction.Compaction.shrink>`);
- :func:`dense_masks` and :func:`dense_model` put them back into dense coordinates, for the
  records and as the reference a deployed model is timed against;
- :func:`step_speedup` times one training step before and after, ``train_time_speedup`` and
  ``train_log_speedup`` (:func:`~sparsity_tune.trial.measure.interleaved_times` does the timing).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sparsity_tune.trial import compaction, measure, pruning
from sparsity_tune.trial.device import batch_layout
from sparsity_tune.trial.optimizer import Scheduler, train_step

#: A fresh optimizer and LR schedule for the (compacted) model's parameters.
OptimizerFor = Callable[[nn.Module], tuple[torch.optim.Optimizer, Scheduler]]
#: The weights the granularity prunes in a model.
Bind = Callable[[nn.Module], dict[str, nn.Parameter]]
#: What a model trains with between steps: itself, its optimizer, its masks.
Training = tuple[nn.Module, torch.optim.Optimizer, dict[str, Tensor]]

#: Timed rounds and warm-up steps of :func:`step_speedup`.
SPEEDUP_ROUNDS, SPEEDUP_WARMUP = 20, 2


def shrink_optimizer_state(
    state: dict[str, Any], names: Sequence[str], comp: compaction.Compaction
) -> dict[str, Any]:
    """An optimizer's ``state_dict`` with every per-parameter tensor shaped like its dense
    parameter (momentum, Adam's moments) restricted to the kept entries; scalars (Adam's step)
    as they are. ``names`` are the parameter names in the optimizer's order."""
    return {
        **state,
        "state": {
            i: {
                k: comp.shrink(names[i], v)
                if isinstance(v, Tensor) and v.shape == comp.dense_shapes[names[i]]
                else v
                for k, v in st.items()
            }
            for i, st in state["state"].items()
        },
    }


def compact_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler,
    masks: dict[str, Tensor],
    units: compaction.Units,
    input_shape: Sequence[int],
    check_masks: bool,
    optimizer_for: OptimizerFor,
) -> tuple[compaction.Compaction, torch.optim.Optimizer, Scheduler, dict[str, Tensor]]:
    """Compact ``model`` in place by removing ``units``; return the compaction and the new
    optimizer and LR schedule (built by ``optimizer_for``, carrying the old state) and masks.
    ``check_masks``: check (and fold) the masks against the units, as a training run does; a
    restored checkpoint skips it, its values overwrite the compact model's."""
    names = [n for n, _ in model.named_parameters()]  # = the optimizer's order
    opt_state = optimizer.state_dict()
    sched_state = scheduler.state_dict()
    comp = compaction.compact_(model, input_shape, units, masks if check_masks else None)
    optimizer, scheduler = optimizer_for(model)
    optimizer.load_state_dict(shrink_optimizer_state(opt_state, names, comp))
    scheduler.load_state_dict(sched_state)
    return comp, optimizer, scheduler, {n: comp.shrink(n, m) for n, m in masks.items()}


def dense_masks(masks: dict[str, Tensor], comp: compaction.Compaction | None) -> dict[str, Tensor]:
    """The masks in the dense model's coordinates (compacted-away weights: False)."""
    if comp is None:
        return masks
    return {n: comp.expand(n, m, False) for n, m in masks.items()}


def dense_model(
    model: nn.Module,
    comp: compaction.Compaction | None,
    build: Callable[[], nn.Module],
    device: torch.device,
    nhwc: bool,
) -> nn.Module:
    """The model at its dense shapes (``build`` makes one), compacted-away weights zero: the
    reference the deployable model is timed against. The run's RNG is untouched."""
    if comp is None:
        return model
    with torch.random.fork_rng(devices=[]):  # building draws an init: keep the run's RNG
        dense = build()
    dense = dense.to(device)
    if nhwc:
        dense = dense.to(memory_format=torch.channels_last)
    dense.load_state_dict({k: comp.expand(k, v) for k, v in model.state_dict().items()})
    return dense


def step_speedup(
    before: Training,
    after: Training,
    x: Tensor,
    y: Tensor,
    batch_size: int,
    seed: int,
    bind: Bind,
    nhwc: bool,
    sync: Callable[[], None] | None,
) -> tuple[float, tuple[float, float, float]]:
    """Step time of the uncompacted model (``before``: dense shapes + mask upkeep, what
    training would have cost) / step time of the compact one (``after``), both on copies,
    interleaved on the same batch of ``(x, y)`` drawn with ``seed`` (gather included), median of
    :data:`SPEEDUP_ROUNDS`; the run's own state and RNGs are untouched. Also returns the rounds'
    :func:`~sparsity_tune.trial.measure.log_ratio_summary` (``train_log_speedup``)."""
    model, optimizer, masks = before
    small, small_opt = copy.deepcopy(after[:2])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(y), (batch_size,), generator=g).to(x.device)
    yb = y.index_select(0, idx)

    def step(m: nn.Module, opt: torch.optim.Optimizer, masks: Mapping[str, Tensor] | None):
        m.train()
        params = bind(m)
        masks = masks if masks and pruning.count_pruned(masks) else None

        def run() -> None:
            train_step(m, opt, batch_layout(x.index_select(0, idx), nhwc), yb, params, masks)

        return run

    t_before, t_after = measure.interleaved_times(
        [step(model, optimizer, masks), step(small, small_opt, after[2])],
        SPEEDUP_ROUNDS,
        SPEEDUP_WARMUP,
        sync,
    )
    speedup = statistics.median(t_before) / statistics.median(t_after)
    return speedup, measure.log_ratio_summary(t_before, t_after)
