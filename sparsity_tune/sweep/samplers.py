"""Optuna samplers that Ray Tune can pickle.

Ray Tune pickles the search algorithm twice: with the whole ``TuneConfig`` when the ``Tuner`` is
built (``tuner.pkl``, what ``--resume`` restores) and at every searcher checkpoint
(``OptunaSearch.save`` pickles the sampler with its study). Optuna 5's genetic samplers
(``NSGAIISampler``, ``NSGAIIISampler``) keep a ``threading.Lock`` in ``_thread_lock`` that neither
``pickle`` nor Ray's cloudpickle can copy, so every multi-objective sweep crashed in
``tune.Tuner(...)``. Optuna's own storages solve the same problem with ``__getstate__`` /
``__setstate__`` that drop the lock and make a new one (``JournalStorage``); the samplers here do
exactly that and nothing else, so the pickled state (RNG, generation cache) is Optuna's own.

Optuna does the sampling; this module only makes its objects travel.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class LockFreePickle:
    """Mixin: pickle every attribute but locks; unpickle with fresh, unlocked ones.

    A lock guards a process's threads; a copy in another process (or after a restore) has no
    holder, so a new lock is the faithful copy.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key, value in self.__dict__.items():
            if isinstance(value, _LOCK_TYPES):
                state[key] = _LockPlaceholder(reentrant=not isinstance(value, _LOCK_TYPES[0]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if isinstance(value, _LockPlaceholder):
                state[key] = threading.RLock() if value.reentrant else threading.Lock()
        self.__dict__.update(state)


class _LockPlaceholder:
    """What a lock pickles as: only whether it was re-entrant."""

    def __init__(self, reentrant: bool) -> None:
        self.reentrant = reentrant


class NSGAIISampler(LockFreePickle, optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler`` that survives ``pickle`` (see the module docstring)."""


class TPESampler(LockFreePickle, optuna.samplers.TPESampler):
    """``optuna.samplers.TPESampler``; picklable today, kept lock-safe should it gain a lock."""
