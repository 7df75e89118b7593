"""The plateau stop: has the monitored metric stopped improving? Pure Python, no torch.

A training *segment* (the whole run, or one IMP round: the unit the schedule restarts its
optimizer on, :attr:`~sparsity_tune.trial.schedule.Schedule.segment_epochs`) stops when the
monitored metric (``train.until.metric``, default ``val_loss``; its direction comes from the
metric registry, :func:`sparsity_tune.metrics.direction`) has not improved by more than
``min_delta`` for ``patience`` epochs in a row, or at the segment's planned number of epochs
(the cap: ``train.epochs``, an IMP round's ``pruning.epochs_per_round``), whichever comes first.
This is Keras's and Lightning's ``EarlyStopping`` rule, kept here as a pure function of the
metric's history so it can be tested to the epoch and saved in a checkpoint as three numbers.

The exact rule, one observation ``v`` per epoch:

- ``v`` *improves* on the best so far when it is better by more than ``min_delta`` (minimised:
  ``v < best - min_delta``; maximised: ``v > best + min_delta``). The first finite value always
  improves. A tie (``v == best``) never does, nor does NaN (a diverged run plateaus).
- ``since`` counts the epochs since the last improvement (0 at an improvement).
- The segment has *converged* once ``since >= patience``: the rule stops it there. A segment
  that reaches its cap first has not converged (it was still improving within its last
  ``patience`` epochs), and says so.

>>> rule = Rule("min", patience=2)
>>> s = State()
>>> for v in (1.0, 0.5, 0.6, 0.5):
...     s = observe(rule, s, v)
>>> s.best, s.best_epoch, s.epochs, s.since, converged(rule, s)
(0.5, 2, 4, 2, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class Rule:
    """``mode``: which way is better; ``patience``: epochs without improvement that end a
    segment; ``min_delta``: the smallest change that counts as an improvement."""

    mode: Mode
    patience: int
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode={self.mode!r} is not allowed; use min or max")
        if not (isinstance(self.patience, int) and self.patience >= 1):
            raise ValueError(f"patience={self.patience!r} must be a whole number >= 1")
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ValueError(f"min_delta={self.min_delta!r} must be a finite number >= 0")

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (None: nothing seen yet) by more than
        ``min_delta``."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclass(frozen=True)
class State:
    """What the rule remembers of a segment: the best value (None before any finite one), the
    epoch (1-based, within the segment) it was seen, epochs seen, epochs since it improved."""

    best: float | None = None
    best_epoch: int = 0
    epochs: int = 0
    since: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain numbers, for a checkpoint (:meth:`from_dict` reads them back)."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float | int | None]) -> State:
        return cls(d["best"], int(d["best_epoch"]), int(d["epochs"]), int(d["since"]))


def observe(rule: Rule, state: State, value: float) -> State:
    """The state after one more epoch whose monitored metric is ``value``."""
    value = float(value)
    epochs = state.epochs + 1
    if rule.improves(value, state.best):
        return State(value, epochs, epochs, 0)
    return State(state.best, state.best_epoch, epochs, state.since + 1)


def converged(rule: Rule, state: State) -> bool:
    """True once ``patience`` epochs passed without an improvement: the rule stops here."""
    return state.since >= rule.patience


@dataclass(frozen=True)
class Outcome:
    """How a segment ended: after ``epochs`` epochs, ``converged`` (the rule fired) or not (the
    cap came first); ``best_epoch``: where its best value was."""

    epochs: int
    converged: bool
    best_epoch: int


def run(rule: Rule, values: Iterable[float], cap: int) -> Outcome:
    """Apply the rule to a whole history (at most ``cap`` epochs of it): where it stops and
    whether it converged. The trainer applies :func:`observe` epoch by epoch instead (it cannot
    see the future); this is the same rule on a recorded curve.

    >>> run(Rule("min", patience=3), [3, 2, 1, 1, 1, 1, 0], cap=10)
    Outcome(epochs=6, converged=True, best_epoch=3)
    >>> run(Rule("min", patience=3), [3, 2, 1], cap=3)
    Outcome(epochs=3, converged=False, best_epoch=3)
    """
    if cap < 1:
        raise ValueError(f"cap={cap} must be >= 1 epoch")
    state = State()
    for value in values:
        state = observe(rule, state, value)
        if converged(rule, state) or state.epochs >= cap:
            break
    if state.epochs == 0:
        raise ValueError("no value to judge: the history is empty")
    return Outcome(state.epochs, converged(rule, state), state.best_epoch)
