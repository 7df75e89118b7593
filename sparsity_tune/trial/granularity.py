"""What a pruned weight is: single weights, N:M groups, or whole units. One class per
``pruning.granularity``, registered in :mod:`sparsity_tune.trial.registry`.

A granularity is built from ``cfg.pruning`` and bound to a model (:meth:`Granularity.bind`): it
names the prunable weights, turns a schedule's target into masks
(:meth:`Granularity.compute_masks`, asking a :class:`~sparsity_tune.trial.scores.Score` for the
ranking), and says how close to a target its masks must be (:meth:`Granularity.allowed_pruned`,
checked at every record). Its class methods validate its own keys and which schedules it
combines with, without torch: the tensor math lives in :mod:`sparsity_tune.trial.pruning`
(unstructured, N:M) and :mod:`sparsity_tune.trial.units` (structured) and is imported on first
use, so that configs validate without importing torch.

This module holds the base class and ``unstructured``; :mod:`~sparsity_tune.trial.nm` and
:mod:`~sparsity_tune.trial.structured` the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch
    from pydantic import BaseModel
    from torch import Tensor, nn

    from sparsity_tune.trial.config import PruningConfig, TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.schedule import Schedule
    from sparsity_tune.trial.scores import Score


class Granularity:
    """A pruning granularity bound to one model. Subclasses set :attr:`name` and implement
    :meth:`compute_masks` and :meth:`allowed_pruned`."""

    name: ClassVar[str]
    #: Masks remove whole units, so the model can be rebuilt smaller once they are final.
    compacts: ClassVar[bool] = False
    #: The pattern fixes the sparsity (N:M: 1 - n/m): a target does not move it.
    fixed_sparsity: ClassVar[bool] = False
    #: Masks are free per weight: a mask may be shuffled within its layer, given per-layer
    #: densities (``pruning.distribution: erk``), or pruned and regrown weight by weight.
    free_elements: ClassVar[bool] = False
    #: Masks fit the 2:4 semi-structured format of sparse tensor cores (deploy tries it).
    semi_structured: ClassVar[bool] = False
    #: The ``pruning.*`` keys this piece owns, declared as a pydantic model in its module (fields
    #: only), added to the pruning section by :func:`~sparsity_tune.trial.registry.piece_keys`.
    config_keys: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def check(cls, cfg: TrialConfig, schedule: type[Schedule]) -> None:
        """Raise ``ValueError`` naming the key, the value and what is allowed. Default: the
        element-wise choices (``distribution: erk``, a schedule that regrows) need
        :attr:`free_elements`."""
        p = cfg.pruning
        if cls.free_elements:
            return
        if p.distribution == "erk":
            raise ValueError(
                f"pruning.distribution='erk' does not combine with "
                f"pruning.granularity={p.granularity!r}: ERK sets a density per layer weight by "
                "weight; allowed: granularity unstructured, or distribution scope"
            )
        if schedule.regrows:
            raise ValueError(
                f"pruning.method={p.method!r} does not combine with "
                f"pruning.granularity={p.granularity!r}: it drops and regrows single weights; "
                "allowed: granularity unstructured"
            )

    def __init__(self, cfg: PruningConfig) -> None:
        self.cfg = cfg
        self.params: dict[str, nn.Parameter] = {}

    def bind(self, model: nn.Module, prunable: dict[str, nn.Parameter]) -> dict[str, nn.Parameter]:
        """Attach to ``model`` and return the weights this granularity prunes. ``prunable`` are
        the model's usual prunable weights (:func:`~sparsity_tune.trial.models.prunable_parameters`
        with ``prune_output``), which is what the default keeps."""
        self.params = dict(prunable)
        return self.params

    def weights(self) -> dict[str, Tensor]:
        return {n: p.detach() for n, p in self.params.items()}

    def event_target(self, target: float) -> float:
        """The sparsity a pruning event aims at when the schedule asks for ``target``."""
        return target

    def compute_masks(
        self,
        masks: Mapping[str, Tensor],
        target: float,
        score: Score,
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        """New masks for ``target`` (a fraction of all prunable weights); ``masks`` untouched."""
        raise NotImplementedError

    def allowed_pruned(self, masks: Mapping[str, Tensor], target: float) -> tuple[int, int]:
        """Inclusive range of pruned-weight counts that masks at ``target`` may have."""
        raise NotImplementedError


class Unstructured(Granularity):
    """``unstructured``: single weights; exactly ``round(target · n)`` pruned (global: ``n`` =
    all prunable weights; layer-wise: per layer). Combines with every schedule."""

    name: ClassVar[str] = "unstructured"
    free_elements: ClassVar[bool] = True

    def compute_masks(
        self,
        masks: Mapping[str, Tensor],
        target: float,
        score: Score,
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.pruning import compute_masks

        scores = score.elements(self.weights(), generator, ctx)
        if self.cfg.distribution == "erk":
            targets = self.layer_targets(masks, target)
            return {
                n: compute_masks({n: scores[n]}, {n: m}, targets[n], "layerwise")[n]
                for n, m in masks.items()
            }
        return compute_masks(scores, masks, target, self.cfg.scope)

    def layer_targets(self, masks: Mapping[str, Tensor], target: float) -> dict[str, float]:
        """Per-layer targets of ``pruning.distribution: erk``
        (:func:`~sparsity_tune.trial.distribution.layer_targets`)."""
        from sparsity_tune.trial.distribution import layer_targets

        return layer_targets({n: tuple(m.shape) for n, m in masks.items()}, target)

    def allowed_pruned(self, masks: Mapping[str, Tensor], target: float) -> tuple[int, int]:
        if self.cfg.distribution == "erk":
            targets = self.layer_targets(masks, target)
            k = sum(round(targets[n] * m.numel()) for n, m in masks.items())
        elif self.cfg.scope == "layerwise":
            k = sum(round(target * m.numel()) for m in masks.values())
        else:
            k = round(target * sum(m.numel() for m in masks.values()))
        return k, k
