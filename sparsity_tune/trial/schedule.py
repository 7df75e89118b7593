"""When to prune and to what target: a pure function of the pruning config and the clock.

The trainer asks :class:`PruningPlan` at two moments: after each epoch (``after_epoch``) and,
for ``frequency_unit: step``, after each optimizer step (``after_step``). Each returns the new
target sparsity when a pruning event falls there, else ``None``. Time ``t`` counts completed
epochs (or steps), so ``t = 0`` is "before any training" (pruning at initialisation).

Methods (vocabulary of SparseML's GMPruningModifier and Zhu & Gupta 2017):

- ``none``: never.
- ``one_shot``: once at ``t = start_epoch``, straight to ``final_sparsity``; then fine-tune.
- ``gradual``: at ``t = start, start+f, ...`` and at ``end``; target from
  :func:`sparsity_tune.trial.pruning.gradual_target` (cubic/linear/exponential).
- ``imp``: after each round of ``P`` epochs (``t = P, 2P, ..., rounds·P``) the target becomes
  ``1-(1-rate)^k``; the trainer then rewinds. The last mask is trained for one more round.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsity_tune.trial.config import TrialConfig
from sparsity_tune.trial.pruning import gradual_target, imp_target


@dataclass(frozen=True)
class PruningPlan:
    method: str
    start: int
    end: int
    frequency: int
    unit: str
    initial: float
    final: float
    kind: str
    rate: float
    rounds: int
    per_round: int
    steps_per_epoch: int

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> PruningPlan:
        p = cfg.pruning
        return cls(
            method=p.method,
            start=p.start_epoch,
            end=p.end_epoch if p.end_epoch is not None else cfg.train.epochs,
            frequency=p.frequency,
            unit=p.frequency_unit,
            initial=p.initial_sparsity,
            final=p.final_sparsity,
            kind=p.schedule,
            rate=p.rate,
            rounds=p.rounds,
            per_round=cfg.imp_epochs_per_round,
            steps_per_epoch=max(1, steps_per_epoch),
        )

    def _gradual(self, t: int, t0: int, t1: int) -> float | None:
        if t < t0 or t > t1:
            return None
        if (t - t0) % self.frequency == 0 or t == t1:
            return gradual_target(t, t0, t1, self.initial, self.final, self.kind)
        return None

    def after_epoch(self, epochs_done: int) -> float | None:
        """Target of a pruning event once ``epochs_done`` epochs are complete (0 = at init)."""
        if self.method == "one_shot":
            return self.final if epochs_done == self.start else None
        if self.method == "gradual" and self.unit == "epoch":
            return self._gradual(epochs_done, self.start, self.end)
        if self.method == "gradual" and self.unit == "step" and epochs_done == 0:
            return self.after_step(0)
        if self.method == "imp" and epochs_done > 0 and epochs_done % self.per_round == 0:
            k = epochs_done // self.per_round
            return imp_target(k, self.rate) if k <= self.rounds else None
        return None

    def after_step(self, steps_done: int) -> float | None:
        """Target of a pruning event after ``steps_done`` optimizer steps (step unit only)."""
        if self.method != "gradual" or self.unit != "step":
            return None
        spe = self.steps_per_epoch
        return self._gradual(steps_done, self.start * spe, self.end * spe)

    @property
    def rewinds(self) -> bool:
        """IMP prunes, then rewinds the survivors: the event comes after that epoch's record."""
        return self.method == "imp"
