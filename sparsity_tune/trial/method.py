"""The one interface a pruning method acts through: a :class:`PruneContext` handed to its pieces
at a pruning event, and :func:`prune_event`, the event itself.

A method is the registered pieces of :mod:`sparsity_tune.trial.registry`: a schedule (when, to
what target; and for dynamic sparse training how masks change, :meth:`Schedule.update_masks
<sparsity_tune.trial.schedule.Schedule.update_masks>`), a score (what goes first, data-driven or
not) and a granularity (what a pruned thing is). The context gives them what they may need (the
model, a batch source for data-driven scores, the loss, the gradients on the parameters, the
optimizer, the clock) so that a new method is one module and one registry line: the trainer
builds the context and calls the pieces, it never asks which method it runs (the questions it
has are properties: :attr:`Score.data_driven <sparsity_tune.trial.scores.Score.data_driven>`,
:attr:`Schedule.regrows <sparsity_tune.trial.schedule.Schedule.regrows>`,
:attr:`Granularity.compacts <sparsity_tune.trial.granularity.Granularity.compacts>`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from sparsity_tune.trial.controls import Inverted, shuffle_layer

if TYPE_CHECKING:
    from sparsity_tune.trial.config import PruningConfig
    from sparsity_tune.trial.granularity import Granularity
    from sparsity_tune.trial.scores import Score

Batches = Callable[[int, int], Iterator[tuple[Tensor, Tensor]]]


@dataclass
class PruneContext:
    """What a pruning method may read at an event (read-only by convention; the trainer owns
    the objects). ``params`` are the weights being pruned, by name, as live parameters (their
    ``.grad`` holds the last step's dense gradient during training); ``masks`` the current
    masks; ``batches(batch_size, n)`` yields ``n`` training batches from a stream of its own (the
    run's batch order is untouched; same seed and step, same batches); ``loss(logits, y)``."""

    cfg: PruningConfig
    model: nn.Module
    params: Mapping[str, nn.Parameter]
    masks: Mapping[str, Tensor]
    loss: Callable[[Tensor, Tensor], Tensor]
    batches: Batches
    input_shape: tuple[int, ...]
    optimizer: torch.optim.Optimizer | None
    step: int
    epoch: int
    generator: torch.Generator


def event_targets(target: float, iterations: int) -> list[float]:
    """Targets of the passes of one event: ``[target]``, or for ``k`` passes the density
    decaying geometrically, ``1 - (1 - target)**(i/k)`` for ``i = 1..k`` (SynFlow's iterative
    form, Tanaka et al. 2020, Algorithm 1), the last exactly ``target``."""
    k = max(1, iterations)
    return [1.0 - (1.0 - target) ** (i / k) for i in range(1, k)] + [target]


def prune_event(
    granularity: Granularity,
    masks: Mapping[str, Tensor],
    target: float,
    score: Score,
    ctx: PruneContext,
) -> dict[str, Tensor]:
    """New masks at ``target``: the score's passes (:meth:`Score.iterations`), each ranking
    with the masks of the previous one applied, then ``pruning.control`` (``invert`` reverses
    the ranking, ``shuffle_layer`` permutes each layer's mask; ``reinit`` acts on the weights,
    in the trainer). The weights are not touched: a data-driven score sees the network as
    pruned so far through ``ctx.masks``."""
    control = ctx.cfg.control
    if control == "invert":
        score = Inverted(score)
    new = dict(masks)
    for t in event_targets(target, score.iterations(ctx.cfg)):
        ctx.masks = new
        new = granularity.compute_masks(new, t, score, ctx.generator, ctx)
    if control == "shuffle_layer":
        new = shuffle_layer(new, ctx.generator)
    ctx.masks = new
    return new
