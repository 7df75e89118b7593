"""Sanity checks as controls for any pruning method: ``pruning.control`` (Frankle et al. 2021,
"Pruning neural networks at initialization: why are we missing the mark?").

A method that finds structure must beat its own controls at equal sparsity; one that only sets
per-layer densities will not:

- ``shuffle_layer``: each layer's mask permuted at random after every pruning event
  (:func:`shuffle_layer`): the same per-layer densities, no position information;
- ``reinit``: the mask with fresh random weights (:meth:`Rewind.fresh_init
  <sparsity_tune.trial.rewind.Rewind.fresh_init>`) once the masks are final; with ``imp`` it
  is the winning-ticket control of ``rewind: reinit`` (that key keeps working);
- ``invert``: the scores negated (:class:`Inverted`), so the *highest*-scored weights go first
  and the lowest-scored stay.

:func:`check_control` says which combinations are defined (called from
:class:`~sparsity_tune.trial.config.TrialConfig`); torch is imported only when a control runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from sparsity_tune.trial.scores import Score

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from sparsity_tune.trial.config import PruningConfig, TrialConfig
    from sparsity_tune.trial.granularity import Granularity
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.schedule import Schedule
    from sparsity_tune.trial.units import UnitGroup

CONTROLS = ("none", "shuffle_layer", "reinit", "invert")


def check_control(
    cfg: TrialConfig, schedule: type[Schedule], granularity: type[Granularity]
) -> None:
    """Raise ``ValueError`` naming ``pruning.control`` where the control is not defined for the
    run's schedule and granularity (their classes, from the registry)."""
    p = cfg.pruning
    if p.control == "none":
        return
    if schedule.regrows:
        raise ValueError(
            f"pruning.control={p.control!r} does not combine with pruning.method={p.method!r}: "
            "its mask changes all through training, so a control of one mask says nothing about "
            "it; allowed: control none"
        )
    if p.control == "shuffle_layer" and not granularity.free_elements:
        raise ValueError(
            f"pruning.control='shuffle_layer' does not combine with "
            f"pruning.granularity={p.granularity!r}: a shuffled mask is no longer of that "
            "pattern; allowed: granularity unstructured, or control invert/reinit"
        )


def shuffle_layer(masks: Mapping[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Each mask permuted at random within its layer (drawn on the CPU from ``generator`` in
    the mapping's order): every layer keeps exactly its number of kept weights."""
    import torch

    out = {}
    for name, mask in masks.items():
        perm = torch.randperm(mask.numel(), generator=generator, device="cpu").to(mask.device)
        out[name] = mask.reshape(-1)[perm].view_as(mask)
    return out


class Inverted(Score):
    """``control: invert``: another score with its order reversed (lowest-scored weights kept).
    Units already removed (score ``+inf``) stay last in line, so they are not counted again."""

    name: ClassVar[str] = "inverted"

    def __init__(self, inner: Score) -> None:
        self.inner = inner
        self.data_driven = inner.data_driven  # type: ignore[misc]

    def iterations(self, cfg: PruningConfig) -> int:  # type: ignore[override]
        return self.inner.iterations(cfg)

    def elements(
        self,
        weights: Mapping[str, Tensor],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        return {n: -s for n, s in self.inner.elements(weights, generator, ctx).items()}

    def units(
        self,
        weights: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        groups: list[UnitGroup],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        import torch

        scores = self.inner.units(weights, masks, groups, generator, ctx)
        return {n: torch.where(s.isinf(), s, -s) for n, s in scores.items()}
