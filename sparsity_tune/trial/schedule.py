"""When to prune and to what target: one schedule class per ``pruning.method``, no torch.

The trainer asks its schedule at two moments: after each epoch (:meth:`Schedule.after_epoch`)
and, when :attr:`Schedule.per_step` is set, after each optimizer step (:meth:`Schedule.after_step`).
Each returns the new target sparsity when a pruning event falls there, else ``None``. Time counts
*completed* epochs (or steps), so ``t = 0`` is "before any training" (pruning at initialisation).
The trainer never branches on a method name: what differs between methods is answered here
(:attr:`~Schedule.rewinds`, :attr:`~Schedule.segment_epochs`, :meth:`~Schedule.is_final`).

The schedules (vocabulary of SparseML's ``GMPruningModifier`` and Zhu & Gupta 2017; the shape of
jaxpruner's ``sparsity_schedules.py``), registered by name in :mod:`sparsity_tune.trial.registry`:

- :class:`NoPruning` ``none``: never (the dense baseline).
- :class:`OneShot` ``one_shot``: once at ``t = start_epoch``, straight to ``final_sparsity``.
- :class:`Gradual` ``gradual``: at ``t = start, start+f, ...`` and at ``end``; target from
  :func:`gradual_target` (cubic/linear/exponential); ``frequency_unit: step`` counts steps.
- :class:`Iterative` ``imp``: after each round of ``P`` epochs (``t = P, 2P, ..., rounds·P``) the
  target becomes :func:`imp_target`; the trainer then rewinds. The last mask trains one more round.

Pure Python on purpose: :mod:`sparsity_tune.trial.config` validates each method's keys through
:meth:`Schedule.check` without importing torch (a bad spec fails in a fraction of a second).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sparsity_tune.trial.config import TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.regrow import MaskUpdate

ScheduleKind = Literal["cubic", "linear", "exponential"]


# ------------------------------------------------------------------------------------ the math


def gradual_target(
    t: float, t0: float, t1: float, s_i: float, s_f: float, kind: ScheduleKind
) -> float:
    """Target sparsity at time ``t`` of a gradual schedule from ``(t0, s_i)`` to ``(t1, s_f)``.

    Before ``t0`` nothing is pruned (0.0); at ``t0`` the target is ``s_i``; from ``t1`` on it is
    ``s_f``. In between, with progress ``p = (t - t0) / (t1 - t0)``:

    - ``cubic`` (Zhu & Gupta 2017; SparseML's default): ``s_f + (s_i - s_f) * (1 - p)**3``,
      fast at first while many redundant weights remain, slow near the end;
    - ``linear``: ``s_i + (s_f - s_i) * p``;
    - ``exponential``: the density ``1 - s`` decays geometrically,
      ``1 - (1 - s_i) * ((1 - s_f) / (1 - s_i))**p``.

    ``t`` may count epochs or steps; only its ratio to ``t1 - t0`` matters.
    """
    _check_fraction("s_i", s_i)
    _check_fraction("s_f", s_f)
    if t1 < t0:
        raise ValueError(f"schedule end t1={t1} is before its start t0={t0}; need t0 <= t1")
    if kind not in ("cubic", "linear", "exponential"):
        raise ValueError(f"schedule kind={kind!r} is not allowed; use cubic, linear or exponential")
    if kind == "exponential" and s_i >= 1.0:
        raise ValueError(f"exponential schedule needs s_i < 1, got s_i={s_i}")
    if t < t0:
        return 0.0
    if t >= t1:
        return float(s_f)
    p = (t - t0) / (t1 - t0)
    if p <= 0.0:
        return float(s_i)
    if kind == "cubic":
        return s_f + (s_i - s_f) * (1.0 - p) ** 3
    if kind == "linear":
        return s_i + (s_f - s_i) * p
    return 1.0 - (1.0 - s_i) * ((1.0 - s_f) / (1.0 - s_i)) ** p


def imp_target(round_index: int, rate: float) -> float:
    """Sparsity after ``round_index`` rounds of iterative magnitude pruning at ``rate`` per round.

    Each round prunes ``rate`` of the weights that remain, so ``1 - (1 - rate)**round_index``.
    """
    if round_index < 0:
        raise ValueError(f"round_index={round_index} must be >= 0")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate={rate} must be in [0, 1)")
    return 1.0 - (1.0 - rate) ** round_index


def _check_fraction(what: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what}={value!r} must be a sparsity fraction in [0, 1]")


# ------------------------------------------------------------------------------- the schedules


class Schedule:
    """A pruning schedule: "prune now, and to what target?" as a function of the clock.

    Subclasses set :attr:`name` (the ``pruning.method`` value), validate their own keys in
    :meth:`check` and build themselves in :meth:`from_config`.
    """

    name: ClassVar[str]
    #: Prune *after* the epoch's record and rewind the survivors (IMP); otherwise the event comes
    #: before the record, so a record shows the network evaluated with that epoch's mask.
    rewinds: ClassVar[bool] = False
    #: At most one pruning event: a granularity whose sparsity is fixed (N:M) needs this.
    single_event: ClassVar[bool] = False
    #: Masks also grow during training (dynamic sparse training, :mod:`~sparsity_tune.trial.dst`):
    #: the trainer calls :meth:`update_masks` after every optimizer step.
    regrows: ClassVar[bool] = False
    #: Ever prunes (``none`` does not): what a run costs in masks and scores.
    prunes: ClassVar[bool] = True
    #: Reaches its final mask only at ``pruning.end_epoch``, after many events in one run
    #: (gradual): a figure counted from the final mask cannot come before that epoch.
    final_at_end_epoch: ClassVar[bool] = False
    #: The ``pruning.*`` keys this piece owns, declared as a pydantic model in its module (fields
    #: only), added to the pruning section by :func:`~sparsity_tune.trial.registry.piece_keys`.
    config_keys: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        """Raise ``ValueError`` naming the key, the value and what is allowed. Default: no keys."""

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> Schedule:
        raise NotImplementedError

    def after_epoch(self, epochs_done: int) -> float | None:
        """Target of a pruning event once ``epochs_done`` epochs are complete (0 = at init)."""
        return None

    def after_step(self, steps_done: int) -> float | None:
        """Target of a pruning event after ``steps_done`` optimizer steps (if :attr:`per_step`)."""
        return None

    @property
    def per_step(self) -> bool:
        """Whether the trainer must call :meth:`after_step` after every optimizer step."""
        return False

    def update_masks(self, steps_done: int, ctx: PruneContext) -> MaskUpdate | None:
        """Prune-and-regrow after ``steps_done`` optimizer steps (only if :attr:`regrows`)."""
        return None

    @property
    def segment_epochs(self) -> int:
        """Epochs of one optimizer/LR-schedule segment: the whole run, or one IMP round."""
        raise NotImplementedError

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        """True when no pruning event comes after this time: the masks are final from now on.

        Meant to be asked right after a pruning event (the trainer's, and the compaction hook
        that rebuilds a structurally pruned model smaller once its masks stop changing): at the
        time of the last event it is already True. For ``none`` it is always True (no event).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class NoPruning(Schedule):
    """``none``: the dense baseline; never prunes."""

    name: ClassVar[str] = "none"
    single_event: ClassVar[bool] = True
    prunes: ClassVar[bool] = False
    epochs: int

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> NoPruning:
        return cls(epochs=cfg.train.epochs)

    @property
    def segment_epochs(self) -> int:
        return self.epochs

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        return True


@dataclass(frozen=True)
class OneShot(Schedule):
    """``one_shot``: once, after ``start_epoch`` epochs (0 = at init), to ``final_sparsity``."""

    name: ClassVar[str] = "one_shot"
    single_event: ClassVar[bool] = True
    start: int
    final: float
    epochs: int

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        p, epochs = cfg.pruning, cfg.train.epochs
        if p.start_epoch >= epochs:
            raise ValueError(
                f"pruning.start_epoch={p.start_epoch} leaves no epoch to fine-tune; "
                f"allowed: 0 <= start_epoch < train.epochs={epochs}"
            )

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> OneShot:
        p = cfg.pruning
        return cls(start=p.start_epoch, final=p.final_sparsity, epochs=cfg.train.epochs)

    def after_epoch(self, epochs_done: int) -> float | None:
        return self.final if epochs_done == self.start else None

    @property
    def segment_epochs(self) -> int:
        return self.epochs

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        return epochs_done >= self.start


@dataclass(frozen=True)
class Gradual(Schedule):
    """``gradual`` (Zhu & Gupta 2017): from ``initial`` at ``start`` to ``final`` at ``end``,
    every ``frequency`` epochs (or optimizer steps with ``frequency_unit: step``)."""

    name: ClassVar[str] = "gradual"
    final_at_end_epoch: ClassVar[bool] = True
    start: int
    end: int
    frequency: int
    unit: Literal["epoch", "step"]
    initial: float
    final: float
    kind: ScheduleKind
    steps_per_epoch: int
    epochs: int

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        p, epochs = cfg.pruning, cfg.train.epochs
        if p.initial_sparsity > p.final_sparsity:
            raise ValueError(
                f"pruning.initial_sparsity={p.initial_sparsity} is above "
                f"pruning.final_sparsity={p.final_sparsity}; gradual pruning only adds zeros"
            )
        end = p.end_epoch if p.end_epoch is not None else epochs
        if end > epochs:
            raise ValueError(
                f"pruning.end_epoch={end} is beyond train.epochs={epochs}; "
                f"allowed: start_epoch <= end_epoch <= {epochs}"
            )
        if p.start_epoch > end:
            raise ValueError(f"pruning.start_epoch={p.start_epoch} is after end_epoch={end}")

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> Gradual:
        p = cfg.pruning
        return cls(
            start=p.start_epoch,
            end=p.end_epoch if p.end_epoch is not None else cfg.train.epochs,
            frequency=p.frequency,
            unit=p.frequency_unit,
            initial=p.initial_sparsity,
            final=p.final_sparsity,
            kind=p.schedule,
            steps_per_epoch=max(1, steps_per_epoch),
            epochs=cfg.train.epochs,
        )

    def _at(self, t: int, t0: int, t1: int) -> float | None:
        if t < t0 or t > t1:
            return None
        if (t - t0) % self.frequency == 0 or t == t1:
            return gradual_target(t, t0, t1, self.initial, self.final, self.kind)
        return None

    def after_epoch(self, epochs_done: int) -> float | None:
        if self.unit == "epoch":
            return self._at(epochs_done, self.start, self.end)
        return self.after_step(0) if epochs_done == 0 else None  # step 0: pruning at init

    def after_step(self, steps_done: int) -> float | None:
        if self.unit != "step":
            return None
        spe = self.steps_per_epoch
        return self._at(steps_done, self.start * spe, self.end * spe)

    @property
    def per_step(self) -> bool:
        return self.unit == "step"

    @property
    def segment_epochs(self) -> int:
        return self.epochs

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        if self.unit == "step":
            return steps_done >= self.end * self.steps_per_epoch
        return epochs_done >= self.end


@dataclass(frozen=True)
class Iterative(Schedule):
    """``imp`` (Frankle & Carbin 2019): train a round, prune ``rate`` of what remains, rewind;
    ``rounds`` times, then train the last mask for one more round."""

    name: ClassVar[str] = "imp"
    rewinds: ClassVar[bool] = True
    rate: float
    rounds: int
    per_round: int

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        p, epochs = cfg.pruning, cfg.train.epochs
        per = cfg.imp_epochs_per_round
        if per * (p.rounds + 1) != epochs:
            fit = per * (p.rounds + 1) if p.epochs_per_round else "a multiple of rounds+1"
            raise ValueError(
                f"pruning.rounds={p.rounds} with epochs_per_round={p.epochs_per_round} does not "
                f"fit train.epochs={epochs}: imp trains rounds+1 segments, so set "
                f"train.epochs={fit}"
            )
        if isinstance(p.rewind, int) and p.rewind >= per:
            raise ValueError(
                f"pruning.rewind={p.rewind} must be an epoch inside the first round (< {per})"
            )

    @classmethod
    def from_config(cls, cfg: TrialConfig, steps_per_epoch: int) -> Iterative:
        p = cfg.pruning
        return cls(rate=p.rate, rounds=p.rounds, per_round=cfg.imp_epochs_per_round)

    def after_epoch(self, epochs_done: int) -> float | None:
        if epochs_done > 0 and epochs_done % self.per_round == 0:
            k = epochs_done // self.per_round
            return imp_target(k, self.rate) if k <= self.rounds else None
        return None

    @property
    def segment_epochs(self) -> int:
        return self.per_round

    def is_final(self, epochs_done: int, steps_done: int) -> bool:
        return epochs_done >= self.rounds * self.per_round
