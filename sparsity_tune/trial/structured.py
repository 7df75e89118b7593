"""``granularity: structured``: whole units, i.e. hidden neurons of MLPs and output channels of
convolutions, removed with their slice of the next layer (:mod:`sparsity_tune.trial.units` has
the unit structure, the mask contract and the math).

Units are scored by their weights (``magnitude``: mean ``|w|``, the L1 norm per weight, Li et al.
2017; ``random``: the control), ``global`` (one ranking over all layers) or ``layerwise`` (every
layer loses the same fraction of its units), with every schedule (``one_shot``, ``gradual``,
``imp``). ``final_sparsity`` keeps its meaning, the fraction of prunable weights removed, so
fronts compare granularities at equal nonzero parameters: units go until the count is as close
to the target as whole units allow, and the record shows the value reached. A layer never loses
its last unit; the output layer's units are never removed, but its columns go with the last
hidden layer's units, so its weight is always among the prunable ones (``prune_output`` is
refused: it would promise something structured pruning never does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from sparsity_tune.trial.granularity import Granularity

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from sparsity_tune.trial.config import TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.schedule import Schedule
    from sparsity_tune.trial.scores import Score


class Structured(Granularity):
    """``structured``: remove whole units; see the module docstring."""

    name: ClassVar[str] = "structured"
    compacts: ClassVar[bool] = True

    @classmethod
    def check(cls, cfg: TrialConfig, schedule: type[Schedule]) -> None:
        super().check(cfg, schedule)
        if cfg.pruning.prune_output:
            raise ValueError(
                "pruning.prune_output=True does not combine with pruning.granularity='structured': "
                "the output layer's units (the classes) are never removed, and its columns are "
                "pruned with the last hidden layer's units anyway; leave prune_output false"
            )

    def bind(self, model: nn.Module, prunable: dict[str, nn.Parameter]) -> dict[str, nn.Parameter]:
        """Every weight a unit touches: all Linear/Conv weights, the output layer's included."""
        from sparsity_tune.trial.units import unit_groups, unit_parameters

        self.groups = unit_groups(model)
        self.params = unit_parameters(model, self.groups)
        return self.params

    def compute_masks(
        self,
        masks: Mapping[str, Tensor],
        target: float,
        score: Score,
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.units import structured_masks

        scores = score.units(self.weights(), masks, self.groups, generator, ctx)
        return structured_masks(masks, self.groups, scores, target, self.cfg.scope)

    def allowed_pruned(self, masks: Mapping[str, Tensor], target: float) -> tuple[int, int]:
        """Within half a step of the target (:meth:`UnitLayout.tolerance
        <sparsity_tune.trial.units.UnitLayout.tolerance>`), or short of it only as far as
        one unit per layer must stay."""
        from sparsity_tune.trial.units import UnitLayout

        layout = UnitLayout(self.groups, {n: tuple(m.shape) for n, m in masks.items()})
        k, tol = round(target * layout.total), layout.tolerance(self.cfg.scope)
        return max(0, min(k, layout.max_removed()) - tol), k + tol
