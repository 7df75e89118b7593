"""Dynamic sparse training: ``pruning.method: set`` (Mocanu et al. 2018, "Scalable training of
artificial neural networks with adaptive sparse connectivity") and ``rigl`` (Evci et al. 2020,
"Rigging the lottery: making all tickets winners").

The sparsity is constant: the network is pruned to ``final_sparsity`` before training (the
initial mask ranked by ``pruning.score``; the papers draw it at random, ``score: random``; per
layer as ``pruning.distribution`` says, RigL's ``erk`` or ``scope``: ``layerwise`` is RigL's
``uniform``). Then after every ``update_every``-th optimizer step before ``end_step`` (default:
75% of the run's steps, RigL's) each layer drops the fraction ``drop_fraction · (1 + cos(π t /
end_step)) / 2`` of its kept weights by magnitude and grows as many: at random (SET) or where the
dense gradient of that step's batch is largest (RigL; gradients are read only at update steps,
from the step the trainer just took). Grown weights start at zero with their optimizer state
reset (:mod:`sparsity_tune.trial.regrow` has the math). Pure Python here, so configs validate
without torch.

Their keys are declared here (:class:`DynamicSparseKeys`) and collected into the ``pruning``
section by the registry: adding them touched no other module but the docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, Field

from sparsity_tune.keys import MAX_COUNT
from sparsity_tune.trial.schedule import Schedule

if TYPE_CHECKING:
    from torch import Tensor

    from sparsity_tune.trial.config import TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.regrow import MaskUpdate

#: RigL stops updating masks after this fraction of training by default.
END_FRACTION = 0.75


class DynamicSparseKeys(BaseModel):
    """``pruning.*`` keys of ``set`` and ``rigl`` (RigL's defaults); the pruning section's
    strict rules apply to them there (:class:`~sparsity_tune.trial.config.Strict`)."""

    update_every: int = Field(
        100, ge=1, le=MAX_COUNT, description="set, rigl: optimizer steps between mask updates"
    )
    end_step: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="set, rigl: last mask update; default 75% of steps"
    )
    drop_fraction: float = Field(
        0.3, gt=0.0, le=1.0, description="set, rigl: fraction of kept weights dropped, cosine decay"
    )


@dataclass(frozen=True)
class DynamicSparse(Schedule):
    """Constant sparsity with prune-and-regrow updates; subclasses choose the grow scores."""

    regrows: ClassVar[bool] = True
    config_keys: ClassVar[type[BaseModel]] = DynamicSparseKeys
    final: float
    epochs: int
    update_every: int
    end_step: int
    drop_fraction: float

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        p = cfg.pruning
        if p.final_sparsity <= 0.0:
            raise ValueError(
                f"pruning.final_sparsity={p.final_sparsity} with pruning.method={p.method!r}: "
                "dynamic sparse training keeps a constant sparsity above 0; allowed: (0, 1)"
            )

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> DynamicSparse:
        p = cfg.pruning
        total = cfg.train.epochs * max(1, steps_per_epoch)
        end = p.end_step if p.end_step is not None else max(1, round(END_FRACTION * total))
        return cls(
            final=p.final_sparsity,
            epochs=cfg.train.epochs,
            update_every=p.update_every,
            end_step=end,
            drop_fraction=p.drop_fraction,
        )

    def after_epoch(self, epochs_done: int) -> float | None:
        return self.final if epochs_done == 0 else None

    @property
    def segment_epochs(self) -> int:
        return self.epochs

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        return steps_done >= self.end_step

    def fraction_at(self, steps_done: int) -> float | None:
        """Drop fraction of an update after ``steps_done`` steps, or ``None`` (no update)."""
        if steps_done % self.update_every or steps_done >= self.end_step or steps_done <= 0:
            return None
        from sparsity_tune.trial.regrow import cosine_fraction

        return cosine_fraction(steps_done, self.end_step, self.drop_fraction)

    def update_masks(self, steps_done: int, ctx: PruneContext) -> MaskUpdate | None:
        fraction = self.fraction_at(steps_done)
        if fraction is None:
            return None
        from sparsity_tune.trial.regrow import drop_and_grow

        weights = {n: p.detach() for n, p in ctx.params.items()}
        return drop_and_grow(weights, ctx.masks, self.grow_scores(ctx), fraction)

    def grow_scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class SET(DynamicSparse):
    """``set``: grow at random (uniform draws from the run's score generator)."""

    name: ClassVar[str] = "set"

    def grow_scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        from sparsity_tune.trial.pruning import random_scores

        return random_scores(ctx.masks, ctx.generator)


@dataclass(frozen=True)
class RigL(DynamicSparse):
    """``rigl``: grow where ``|∂L/∂w|`` of the step's batch is largest (the dense gradient the
    trainer's step left on the parameters)."""

    name: ClassVar[str] = "rigl"

    def grow_scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        out = {}
        for n, p in ctx.params.items():
            if p.grad is None:
                raise RuntimeError(f"rigl: no gradient on {n!r} at step {ctx.step}")
            out[n] = p.grad.detach().abs()
        return out
