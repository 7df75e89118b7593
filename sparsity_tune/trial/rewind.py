"""IMP's rewinding (``pruning.rewind``) and the re-initialisation control (``reinit``).

Iterative magnitude pruning trains a round, prunes, and sets the survivors back before the next
round (Frankle & Carbin 2019): to their initial weights (``init``), to those of epoch ``K``
(``K``, "late rewinding", Frankle et al. 2020), to fresh random weights (``reinit``: the random
re-initialisation control), or leaves them trained (``none``). ``pruning.control: reinit`` is
the same control for any other method: the final mask with fresh weights.

:class:`Rewind` holds the rewind point and, for ``reinit``, the :class:`Ticket` trained beside
the run; the trainer asks it at its round ends and saves its state in the checkpoint.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sparsity_tune.trial import pruning
from sparsity_tune.trial.models import build_model
from sparsity_tune.trial.optimizer import Scheduler, train_step

if TYPE_CHECKING:
    from sparsity_tune.trial.compaction import Compaction
    from sparsity_tune.trial.config import TrialConfig

#: ``rewind: reinit`` draws its fresh weights from a seed stream apart from ``train.seed``'s.
REINIT_SEED_OFFSET = 2_000_003

#: The weights ``pruning.granularity`` prunes in a model (a copy of the run's, here).
Bind = Callable[[nn.Module], dict[str, nn.Parameter]]
#: A fresh optimizer and LR schedule for a model's parameters (one IMP round's).
OptimizerFor = Callable[[nn.Module], tuple[torch.optim.Optimizer, Scheduler]]


def weights_copy(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the model's whole state (weights, biases, buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Ticket:
    """The winning-ticket path of ``rewind: reinit`` (Frankle & Carbin's random
    re-initialisation control: the IMP mask, fresh random survivors).

    The mask of round k+1 must be the one IMP with ``rewind: init`` finds: that of the ticket
    (the initial weights under mask k) trained for round k. So a ``reinit`` run trains that
    ticket beside its re-initialised network, on the same batches, and prunes from the ticket's
    weights; with the same seed its masks equal the ``rewind: init`` run's, round by round. It
    costs one more training step per step in rounds 1..rounds-1, excluded from the run's
    ``train_time_s`` and peak memory (it is how the control is built, not what it costs).
    """

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, nn.Parameter],
        optimizer: torch.optim.Optimizer,
        scheduler: Scheduler,
    ) -> None:
        self.model, self.params = model, params
        self.optimizer, self.scheduler = optimizer, scheduler

    def step(self, xb: Tensor, yb: Tensor, masks: Mapping[str, Tensor]) -> float:
        """One training step on the run's batch; returns its wall seconds."""
        t0 = time.perf_counter()
        self.model.train()
        train_step(self.model, self.optimizer, xb, yb, self.params, masks)
        return time.perf_counter() - t0

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class Rewind:
    """Where a run's survivors go back to, and the ticket of ``reinit``.

    ``point`` is the rewind point (a state dict; ``None`` until taken, and always for
    ``rewind: none`` without ``reinit``): taken at construction for ``init``, ``reinit`` and
    ``0``, after epoch ``K`` for a late rewind (:meth:`after_epoch`). ``bind`` and
    ``optimizer_for`` build the ticket's pruned weights and optimizer as the run builds its own.
    """

    def __init__(
        self,
        cfg: TrialConfig,
        rewinds: bool,
        model: nn.Module,
        input_shape: Sequence[int],
        num_classes: int,
        bind: Bind,
        optimizer_for: OptimizerFor,
    ) -> None:
        p = cfg.pruning
        self.cfg = cfg
        self._input_shape, self._num_classes = input_shape, num_classes
        self._bind, self._optimizer_for = bind, optimizer_for
        #: fresh random weights under the mask: IMP's ``rewind: reinit``, or ``control: reinit``
        self.reinit = p.rewind == "reinit" or p.control == "reinit"
        self.point: dict[str, Tensor] | None = None
        if rewinds and (p.rewind in ("init", "reinit", 0) or self.reinit):
            self.point = weights_copy(model)
        #: ``rewind: reinit`` trains the winning-ticket path beside the re-initialised network,
        #: on the same batches, only to find the next round's mask
        self.ticket: Ticket | None = None

    def after_epoch(self, epoch: int, model: nn.Module) -> None:
        """Take the late rewinding point once epoch ``K`` is trained (``rewind: K``)."""
        rewind = self.cfg.pruning.rewind
        if isinstance(rewind, int) and epoch == rewind and self.point is None:
            self.point = weights_copy(model)

    def fresh_init(self, k: int) -> dict[str, Tensor]:
        """Frankle & Carbin's random re-initialisation control, for the ``k``-th rewind (1-based):
        the state of a newly built model (the model's own init distribution, biases included)
        under the ``k``-th seed drawn from a generator seeded with ``train.seed +
        REINIT_SEED_OFFSET``. Built on the CPU with the global RNG forked, so the batch order and
        every other stream are untouched, and the same seed gives the same weights anywhere."""
        stream = torch.Generator(device="cpu").manual_seed(self.cfg.train.seed + REINIT_SEED_OFFSET)
        seed = int(torch.randint(0, 2**62, (k,), generator=stream)[-1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = build_model(self.cfg.model, self._input_shape, self._num_classes)
        return fresh.state_dict()

    def start_ticket(self, model: nn.Module, masks: Mapping[str, Tensor], final: bool) -> None:
        """``reinit``: the winning ticket of the new mask (the rewind point, masked) starts a
        round beside the re-initialised network, unless no pruning event is left (``final``:
        then its training would find nothing)."""
        if final:
            self.ticket = None
            return
        ticket = copy.deepcopy(model)
        ticket.load_state_dict(self.point)
        params = self._bind(ticket)
        pruning.apply_masks_(params, masks)
        self.ticket = Ticket(ticket, params, *self._optimizer_for(ticket))

    def rewind_(
        self,
        model: nn.Module,
        params: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        k: int,
        final: bool,
    ) -> None:
        """The ``k``-th rewind of ``model``, in place: survivors back to the rewind point, or
        freshly drawn (``reinit``, its ticket started first from the same mask), or left as they
        are (``none``); the masks are applied either way. The optimizer is the caller's: IMP
        starts a fresh one."""
        if self.reinit:
            self.start_ticket(model, masks, final)
            model.load_state_dict(self.fresh_init(k))
        elif self.point is not None:
            model.load_state_dict(self.point)
        pruning.apply_masks_(params, masks)

    def shrink(self, comp: Compaction) -> None:
        """After compaction the rewind point follows the model to its smaller shapes."""
        if self.point is not None:
            self.point = {k: comp.shrink(k, v) for k, v in self.point.items()}

    def load_state(
        self,
        point: dict[str, Tensor] | None,
        ticket: dict[str, Any] | None,
        model: nn.Module,
        masks: Mapping[str, Tensor],
        final: bool,
    ) -> None:
        """Restore from a checkpoint's ``rewind_state`` and ``ticket`` (the ticket is rebuilt
        from the restored model and masks, then takes its saved values)."""
        self.point = point
        self.ticket = None
        if ticket is None:
            return
        self.start_ticket(model, masks, final)
        if self.ticket is None:
            raise ValueError(
                "checkpoint holds a reinit ticket, but this run has no pruning event left: "
                "not the same run"
            )
        self.ticket.load_state_dict(ticket)
