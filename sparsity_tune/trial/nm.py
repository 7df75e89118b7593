"""``granularity: nm``: N:M sparsity, the pattern sparse tensor cores run (2:4 on NVIDIA Ampere
and later, through ``torch.sparse.to_sparse_semi_structured``).

Along each row of a weight viewed as ``(out, in·k)``, every group of ``m`` consecutive weights
keeps exactly ``n`` (the highest-scored: magnitude or random); the math is
:func:`sparsity_tune.trial.pruning.nm_masks`, which also says what happens at the end of a row
whose length is not a multiple of ``m``. The sparsity is fixed at ``1 - n/m`` by the pattern, so
``final_sparsity`` is not used and N:M combines only with schedules that prune at most once
(``none``, ``one_shot``: with ``start_epoch > 0`` the network trains dense first, as NVIDIA's ASP
recipe does). A gradual or iterative schedule has no meaning for a fixed pattern and is refused.
``scope`` does not apply (every group is its own scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from sparsity_tune.trial.granularity import Granularity

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from sparsity_tune.trial.config import TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.schedule import Schedule
    from sparsity_tune.trial.scores import Score


class NM(Granularity):
    """``nm``: keep ``pruning.n`` of every ``pruning.m`` consecutive weights of a row."""

    name: ClassVar[str] = "nm"
    fixed_sparsity: ClassVar[bool] = True
    semi_structured: ClassVar[bool] = True

    @classmethod
    def check(cls, cfg: TrialConfig, schedule: type[Schedule]) -> None:
        super().check(cfg, schedule)
        p = cfg.pruning
        if not p.n < p.m:
            raise ValueError(
                f"pruning.n={p.n} must be below pruning.m={p.m}: granularity nm keeps n of every "
                f"m weights (e.g. n: 2, m: 4)"
            )
        if not schedule.single_event:
            raise ValueError(
                f"pruning.method={p.method!r} does not combine with pruning.granularity='nm': "
                f"N:M fixes the sparsity at 1 - n/m = {1 - p.n / p.m:g} in one event; use "
                f"method one_shot (start_epoch > 0 trains dense first) or none"
            )

    def event_target(self, target: float) -> float:
        return 1.0 - self.cfg.n / self.cfg.m

    def compute_masks(
        self,
        masks: Mapping[str, Tensor],
        target: float,
        score: Score,
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.pruning import nm_masks

        return nm_masks(
            score.elements(self.weights(), generator, ctx), masks, self.cfg.n, self.cfg.m
        )

    def allowed_pruned(self, masks: Mapping[str, Tensor], target: float) -> tuple[int, int]:
        from sparsity_tune.trial.pruning import nm_pruned_count

        if target == 0.0:
            return 0, 0
        k = nm_pruned_count({n: tuple(m.shape) for n, m in masks.items()}, self.cfg.n, self.cfg.m)
        return k, k
