"""The shared pruning trainer: one resolved config in, one record per epoch out.

It knows nothing of Ray, Optuna or W&B: callers pass a ``report`` callable (Ray Tune's reporter,
the CLI's printer, a test's list.append) and may save/restore the whole state for checkpoints.
Plain PyTorch does the heavy lifting, airbench-style: data lives as tensors on the device and is
batched by index; masks are bool tensors re-applied in place after every optimizer step, and the
optimizer state of pruned weights is zeroed, so momentum and Adam cannot revive them (no
``torch.nn.utils.prune`` hooks).

Order of one epoch: train (step-unit pruning events inside) → pruning event of the epoch (one-shot,
gradual) → evaluate → record → for IMP: prune + rewind for the next round. IMP records are taken
before its prune/rewind, so each round's record shows the network trained with that round's mask.
Pruning is three registered strategies (:mod:`sparsity_tune.trial.registry`) the trainer only
calls: the schedule (when, to what target), the score (what goes first) and the granularity
(single weights, N:M groups, whole units). It never branches on their names: it hands them a
:class:`~sparsity_tune.trial.method.PruneContext` at each pruning event and, for a schedule that
regrows (SET, RigL), after each optimizer step (:meth:`Trainer._update_masks`).

With structured pruning, the model is compacted (:mod:`~sparsity_tune.trial.compaction`) right
after the final pruning event (and IMP's rewind), and training goes on with the smaller model.

With ``train.until``, each segment (the run; an IMP round) ends on a plateau of the monitored
metric (:mod:`~sparsity_tune.trial.plateau`) or at its planned epochs. The schedule keeps its
fixed clock: an IMP round that plateaus early moves the clock to the round's planned end
(:meth:`Trainer._clock`), so the schedule's events, the rewinds and compaction fire as they would
after a full round.

What the run costs is measured and summarised in :mod:`~sparsity_tune.trial.measure` (sizes, peak
memory, timing) and :mod:`~sparsity_tune.trial.deploy` (the model a user would ship).

This module keeps the epoch loop and the order of events; what travels with it lives beside it:
:mod:`~sparsity_tune.trial.device` (device, threads, subnormals, memory format),
:mod:`~sparsity_tune.trial.optimizer` (optimizer, LR schedule, one masked step),
:mod:`~sparsity_tune.trial.rewind` (IMP's rewinding and the reinit ticket) and
:mod:`~sparsity_tune.trial.compacted` (the run carried onto its compacted model, step speedup).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, RECORD_KEYS, M, direction
from sparsity_tune.trial import (
    compacted,
    compaction,
    connectivity,
    deploy,
    measure,
    plateau,
    pruning,
)
from sparsity_tune.trial.config import TrialConfig
from sparsity_tune.trial.data import DataSplits, iterate_batches, load_dataset
from sparsity_tune.trial.device import (
    batch_layout,
    channels_last,
    flush_denormal,
    resolve_device,
    run_threads,
    synchronizer,
)
from sparsity_tune.trial.method import PruneContext, prune_event
from sparsity_tune.trial.models import build_model, count_macs, prunable_parameters
from sparsity_tune.trial.optimizer import Scheduler, make_optimizer, train_step
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES
from sparsity_tune.trial.rewind import Rewind

Record = dict[str, Any]
Report = Callable[[Record], None]

#: Data-driven scores draw their batches from a stream of their own (``+ step``), apart from the
#: run's batch order.
SCORE_BATCH_SEED_OFFSET = 3_000_017


class Trainer:
    """Train one configuration; see the module docstring for the order of events."""

    def __init__(
        self, config: TrialConfig, cpus: float | None = None, data: DataSplits | None = None
    ) -> None:
        self.cfg = config
        tc = config.train
        self.threads = run_threads(tc.threads, cpus)
        torch.set_num_threads(self.threads)
        self.device = resolve_device(tc.device)
        self.data = data if data is not None else load_dataset(config.dataset, self.device)

        n_train = len(self.data.train_y)
        # Peak memory is measured on the second step of each epoch when it has a full batch:
        # from then on the previous step's gradients are held during the forward, as in every
        # later step (see measure.PeakMemory).
        probe = 1 if n_train >= 2 * tc.batch_size else 0
        self.memory = measure.PeakMemory(self.device, probe)  # CUDA baseline: data, no model
        torch.manual_seed(tc.seed)
        self.model: nn.Module = build_model(
            config.model, self.data.input_shape, self.data.num_classes
        ).to(self.device)
        self._nhwc = channels_last(self.data.input_shape)  # images: NHWC model and batches
        if self._nhwc:
            self.model = self.model.to(memory_format=torch.channels_last)
        p = config.pruning
        self.granularity = GRANULARITIES[p.granularity](p)
        self.params = self.granularity.bind(
            self.model, prunable_parameters(self.model, p.prune_output)
        )
        self.score = SCORES[p.score]()
        self.masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in self.params.items()}
        self.macs = count_macs(self.model, self.data.input_shape)
        self.dense_params = sum(p.numel() for p in self.model.parameters())
        self.batch_gen = torch.Generator(device="cpu").manual_seed(tc.seed)
        self.score_gen = torch.Generator(device="cpu").manual_seed(tc.seed + 1_000_003)

        self.steps_per_epoch = math.ceil(n_train / tc.batch_size)
        self.schedule = SCHEDULES[p.method].from_config(config, self.steps_per_epoch)
        self._segment_epochs = self.schedule.segment_epochs
        self.optimizer, self.scheduler = self._make_optimizer(self.model)

        self.epoch = 0
        self.step = 0
        self.target = 0.0
        self.records: list[Record] = []
        self._pruned = False  # any zero in the masks: skip mask upkeep while dense
        #: (step, weights regrown) of every prune-and-regrow update (dynamic sparse training)
        self.mask_updates: list[tuple[int, int]] = []
        self.rewind = Rewind(
            config,
            self.schedule.rewinds,
            self.model,
            self.data.input_shape,
            self.data.num_classes,
            self._bind,
            self._make_optimizer,
        )
        self.ticket_time_s = 0.0  # this epoch's steps of the reinit ticket (not the run's cost)
        self.compaction: compaction.Compaction | None = None
        self.train_time_speedup = 1.0  # measured when the model is compacted
        self.train_log_speedup = measure.NOT_TIMED  # and the summary of its timed rounds
        until = tc.until
        self.until = (
            None
            if until is None
            else plateau.Rule(direction(until.metric).value, until.patience, until.min_delta)
        )
        self._plateau = plateau.State()  # of the network trained with the current mask
        self._seg_trained = 0  # epochs of the current segment (the run; an IMP round)
        self._skipped = 0  # planned epochs of IMP rounds that ended early on a plateau
        self._stopped = False  # the run's plateau ended it
        self._maybe_prune(self.schedule.after_epoch(0))  # pruning at initialisation
        self._maybe_compact()

    # ----------------------------------------------------------------- set-up helpers
    def _make_optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, Scheduler]:
        """A fresh optimizer and LR schedule over ``model``, over one segment's epochs."""
        return make_optimizer(self.cfg.train, model.parameters(), self._segment_epochs)

    def _bind(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The weights the granularity prunes in ``model`` (a compacted model, or a copy), by a
        fresh instance: ``self.granularity`` stays bound to the dense model, whose coordinates
        the records and the per-record sparsity check use."""
        prunable = prunable_parameters(model, self.cfg.pruning.prune_output)
        return type(self.granularity)(self.cfg.pruning).bind(model, prunable)

    # ----------------------------------------------------------------- pruning
    def _maybe_prune(self, target: float | None) -> None:
        """A pruning event when the schedule gave a target: new masks, applied to the weights
        and the optimizer state."""
        if target is None:
            return
        if self.compaction is not None:
            raise RuntimeError("a pruning event after compaction: the final event came earlier")
        self._plateau = plateau.State()  # a new network: its plateau is yet to come
        self.target = self.granularity.event_target(target)
        self.masks = prune_event(
            self.granularity, self.masks, self.target, self.score, self.prune_context()
        )
        self._pruned = pruning.count_pruned(self.masks) > 0
        final = self.schedule.is_final(self._clock(), self.step)
        if self.rewind.reinit and not self.schedule.rewinds and final:
            # control: reinit: the final mask with fresh weights, optimizer state dropped
            self.model.load_state_dict(self.rewind.fresh_init(1))
            self.optimizer.state.clear()
        pruning.apply_masks_(self.params, self.masks)
        pruning.mask_optimizer_state_(self.optimizer, self.params, self.masks)

    def prune_context(self) -> PruneContext:
        """What a pruning method may read now (:class:`~sparsity_tune.trial.method.PruneContext`)."""
        return PruneContext(
            cfg=self.cfg.pruning,
            model=self.model,
            params=self.params,
            masks=self.masks,
            loss=F.cross_entropy,
            batches=self._score_batches,
            input_shape=tuple(self.data.input_shape),
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            generator=self.score_gen,
        )

    def _score_batches(self, batch_size: int, n: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``n`` shuffled training batches for a data-driven score, from a stream seeded by the
        seed and the step (same run, same batches; the run's batch order untouched)."""
        seed = self.cfg.train.seed + SCORE_BATCH_SEED_OFFSET + self.step
        gen = torch.Generator(device="cpu").manual_seed(seed)
        d = self.data
        batches = iterate_batches(d.train_x, d.train_y, batch_size, shuffle=True, generator=gen)
        for _, (xb, yb) in zip(range(n), batches, strict=False):
            yield batch_layout(xb, self._nhwc), yb

    def _update_masks(self) -> None:
        """Dynamic sparse training: the schedule's prune-and-regrow update after this step, if
        one falls here; grown weights are zero and their optimizer state is reset."""
        update = self.schedule.update_masks(self.step, self.prune_context())
        if update is None:
            return
        self.masks = update.masks
        pruning.apply_masks_(self.params, self.masks)
        keep_state = {n: ~g for n, g in update.grown.items()}
        pruning.apply_masks_(self.params, keep_state)  # grown weights start at zero
        pruning.mask_optimizer_state_(self.optimizer, self.params, keep_state)
        pruning.mask_optimizer_state_(self.optimizer, self.params, self.masks)
        self.mask_updates.append((self.step, sum(int(g.sum()) for g in update.grown.values())))

    # ----------------------------------------------------------------- compaction
    def _final_event_done(self) -> bool:
        """The schedule's last pruning event is behind us and something was pruned."""
        return self.schedule.is_final(self._clock(), self.step) and self._pruned

    def _maybe_compact(self) -> None:
        """Structured pruning: after the final pruning event, rebuild the model without its
        removed units and go on training the smaller model. Called after every pruning site."""
        if self.compaction is not None or not self.granularity.compacts:
            return
        if self._final_event_done():
            self._compact(compaction.removed_units(self.model, self.masks), timed=True)

    def _compact(self, units: compaction.Units, timed: bool) -> None:
        """Compact the model; optimizer and LR state, masks and rewind weights follow it
        (:mod:`~sparsity_tune.trial.compacted`).

        ``timed``: also measure ``train_time_speedup`` (a training run); not when restoring a
        checkpoint, whose values then overwrite the compact model's.
        """
        before = copy.deepcopy((self.model, self.optimizer, self.masks)) if timed else None
        comp, self.optimizer, self.scheduler, self.masks = compacted.compact_training(
            self.model,
            self.optimizer,
            self.scheduler,
            self.masks,
            units,
            self.data.input_shape,
            timed,  # masks checked (and folded) only in a training run
            self._make_optimizer,
        )
        self.params = self._bind(self.model)
        self._pruned = pruning.count_pruned(self.masks) > 0
        self.rewind.shrink(comp)
        self.compaction = comp
        if before is not None:
            d, tc = self.data, self.cfg.train
            self.train_time_speedup, self.train_log_speedup = compacted.step_speedup(
                before,
                (self.model, self.optimizer, self.masks),
                d.train_x,
                d.train_y,
                tc.batch_size,
                tc.seed,
                self._bind,
                self._nhwc,
                synchronizer(self.device),
            )

    def dense_masks(self) -> dict[str, Tensor]:
        """The masks in the dense model's coordinates (compacted-away weights: False)."""
        return compacted.dense_masks(self.masks, self.compaction)

    def dense_model(self) -> nn.Module:
        """The model at its dense shapes, compacted-away weights zero: the reference the
        deployable model is timed against."""
        d = self.data
        return compacted.dense_model(
            self.model,
            self.compaction,
            lambda: build_model(self.cfg.model, d.input_shape, d.num_classes),
            self.device,
            self._nhwc,
        )

    # ----------------------------------------------------------------- the loop
    def _train_epoch(self) -> tuple[float, float, int]:
        self.model.train()
        d = self.data
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        step_unit = self.schedule.per_step
        batches = iterate_batches(
            d.train_x, d.train_y, self.cfg.train.batch_size, shuffle=True, generator=self.batch_gen
        )
        self.ticket_time_s = 0.0
        for i, (xb, yb) in enumerate(batches):
            xb = batch_layout(xb, self._nhwc)
            with self.memory.step(i, self._training_state):
                masks = self.masks if self._pruned else None
                loss, out = train_step(self.model, self.optimizer, xb, yb, self.params, masks)
            if self.rewind.ticket is not None:
                self.ticket_time_s += self.rewind.ticket.step(xb, yb, self.masks)
            self.step += 1
            if step_unit:
                self._maybe_prune(self.schedule.after_step(self.step))
            if self.schedule.regrows:
                self._update_masks()
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                correct += (out.argmax(1) == yb).sum()
        n = len(d.train_y)
        return loss_sum.item() / n, correct.item() / n, n

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        if len(y) == 0:
            return float("nan"), float("nan")
        self.model.eval()
        loss_sum, correct = 0.0, 0
        for xb, yb in iterate_batches(x, y, self.cfg.train.eval_batch_size, shuffle=False):
            xb = batch_layout(xb, self._nhwc)
            out = self.model(xb)
            loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
            correct += int((out.argmax(1) == yb).sum())
        return loss_sum / len(y), correct / len(y)

    def run(self, report: Report | None = None) -> dict[str, Any]:
        """Train the remaining epochs, calling ``report(record)`` after each; return the summary."""
        with flush_denormal(self.device.type == "cpu"):
            return self._run(report)

    def _run(self, report: Report | None) -> dict[str, Any]:
        d = self.data
        while not self.done:
            lr = self.optimizer.param_groups[0]["lr"]
            self.memory.start()
            t0 = time.perf_counter()
            train_loss, train_acc, n = self._train_epoch()
            self.epoch += 1
            if not self.schedule.rewinds:
                self._maybe_prune(self.schedule.after_epoch(self._clock()))
            if (sync := synchronizer(self.device)) is not None:
                sync()
            # the winning-ticket path of rewind: reinit is bookkeeping, not this network's cost
            t1 = time.perf_counter() - self.ticket_time_s
            peak_mem = self.memory.peak()
            if self.rewind.ticket is not None:
                self.rewind.ticket.scheduler.step()
            self.scheduler.step()  # before compaction, which carries the scheduler's state over
            if not self.schedule.rewinds:
                self._maybe_compact()  # in epoch_time_s, not in train_time_s (it times itself)
            t_eval = time.perf_counter()
            val_loss, val_acc = self.evaluate(d.val_x, d.val_y)
            test_loss, test_acc = self.evaluate(d.test_x, d.test_y)
            t2 = time.perf_counter() - self.ticket_time_s
            t_eval -= self.ticket_time_s
            watched = {M.val_loss: val_loss, M.val_acc: val_acc}
            watched.update({M.train_loss: train_loss, M.train_acc: train_acc})
            converged = self._plateau_step(watched)
            record = {
                M.epoch: self.epoch,
                M.train_loss: train_loss,
                M.train_acc: train_acc,
                M.val_loss: val_loss,
                M.val_acc: val_acc,
                M.test_loss: test_loss,
                M.test_acc: test_acc,
                **self.size_metrics(),
                M.epoch_time_s: t2 - t0,
                M.eval_time_s: t2 - t_eval,
                M.train_time_s: t1 - t0,
                M.peak_mem_bytes: peak_mem,
                M.samples_per_s: n / (t1 - t0),
                M.lr: lr,
                M.effective_sparsity: self.effective_sparsity(),
                M.epochs_trained: self._seg_trained,
                M.converged: converged,
            }
            record.update(
                {
                    f"{LAYER_SPARSITY_PREFIX}{k}": v
                    for k, v in pruning.layer_sparsity(self.dense_masks()).items()
                }
            )
            self.records.append(record)
            if self.schedule.rewinds:
                self._imp_round_end()
            if report is not None:
                report(record)
        return self.summary()

    def _imp_round_end(self) -> None:
        """IMP after a round's record: prune, rewind (:mod:`~sparsity_tune.trial.rewind`) with
        a fresh optimizer and LR schedule, compact after the last event."""
        self.rewind.after_epoch(self.epoch, self.model)  # late rewinding point (epoch K)
        target = self.schedule.after_epoch(self._clock())
        if target is not None:
            self._seg_trained = 0  # the next round starts
            ticket = self.rewind.ticket
            if ticket is not None:  # reinit: the mask comes from the winning ticket
                self.model.load_state_dict(ticket.model.state_dict())
            self._maybe_prune(target)
            k = self._clock() // self._segment_epochs
            final = self.schedule.is_final(self._clock(), self.step)
            self.rewind.rewind_(self.model, self.params, self.masks, k, final)
            self.optimizer, self.scheduler = self._make_optimizer(self.model)
            self._maybe_compact()

    # ----------------------------------------------------------------- plateau stop
    def _clock(self) -> int:
        """The schedule's epoch: epochs trained, plus the planned epochs of IMP rounds that
        ended early on a plateau (the schedule counts rounds of fixed length)."""
        return self.epoch + self._skipped

    @property
    def done(self) -> bool:
        """No epoch is left: the plateau ended the run, or the schedule's epochs are spent."""
        return self._stopped or self._clock() >= self.cfg.train.epochs

    def _may_stop(self) -> bool:
        """Whether a plateau may end the segment now: a run only once its last pruning event is
        behind it (a plateau of a network about to be pruned again says nothing about the final
        one), an IMP round 0 not before its late-rewind epoch ``K`` (the rewind point)."""
        if not self.schedule.rewinds:
            return self.schedule.is_final(self._clock(), self.step)
        rewind = self.cfg.pruning.rewind
        return not (isinstance(rewind, int) and self.epoch < rewind)

    def _plateau_step(self, watched: Mapping[str, float]) -> bool | None:
        """Count this epoch in its segment and feed the monitored metric to the plateau rule;
        when the rule fires, end the segment (the run, or jump the clock to the IMP round's
        planned end). Returns the record's ``converged``: None without a rule."""
        self._seg_trained += 1
        if self.until is None:
            return None
        metric = self.cfg.train.until.metric
        self._plateau = plateau.observe(self.until, self._plateau, watched[metric])
        fired = plateau.converged(self.until, self._plateau) and self._may_stop()
        if fired and self.schedule.rewinds:
            self._skipped += max(0, self._segment_epochs - self._seg_trained)
        elif fired:
            self._stopped = True
        return fired

    def _plateau_state(self) -> dict[str, Any]:
        return {
            "state": self._plateau.as_dict(),
            "seg_trained": self._seg_trained,
            "skipped": self._skipped,
            "stopped": self._stopped,
        }

    def _load_plateau_state(self, state: dict[str, Any] | None) -> None:
        """Restore the rule's state. A checkpoint written before the rule existed (no
        ``plateau`` key) had no rule and fixed segments: its state follows from the epoch."""
        if state is None:
            seg = self._segment_epochs
            state = {"state": {"best": None, "best_epoch": 0, "epochs": 0, "since": 0}}
            state |= {"skipped": 0, "stopped": False}
            state["seg_trained"] = self.epoch % seg if self.schedule.rewinds else self.epoch
        self._plateau = plateau.State.from_dict(state["state"])
        self._seg_trained = int(state["seg_trained"])
        self._skipped = int(state["skipped"])
        self._stopped = bool(state["stopped"])

    # ----------------------------------------------------------------- metrics
    def size_metrics(self) -> dict[str, Any]:
        """Counted sizes of the dense model under the current masks (see measure.size_metrics)."""
        masks = self.dense_masks()
        allowed = self.granularity.allowed_pruned(masks, self.target)
        return measure.size_metrics(masks, self.dense_params, self.macs, self.target, allowed)

    def effective_sparsity(self) -> float:
        """Pruned or disconnected weights / prunable weights (:mod:`~sparsity_tune.trial.connectivity`)."""
        return connectivity.effective_sparsity(
            self.dense_model(), self.dense_masks(), tuple(self.data.input_shape)
        )

    def _training_state(self) -> Iterator[Tensor]:
        return measure.training_state(self.model, self.optimizer, self.masks)

    def summary(self) -> dict[str, Any]:
        """Final figures (measure.summary), with the deployable model measured (deploy)."""
        if not self.records:
            return {}
        x = self.data.test_x
        with flush_denormal(self.device.type == "cpu"):
            shipped = deploy.build(
                self.model,
                self.masks,
                self.granularity.semi_structured,
                x,
                compacted=self.compaction is not None,
            )
            measured = deploy.measure(shipped, self.dense_model(), x)
        measured[M.train_time_speedup] = self.train_time_speedup
        (
            measured[M.train_log_speedup],
            measured[M.train_log_speedup_se],
            measured[M.train_log_speedup_df],
        ) = self.train_log_speedup
        return measure.summary(self.records, measured, self.memory.kind, str(self.device))

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: weights, masks, optimizer, RNG, clock;
        after compaction also the removed units, to rebuild the compact architecture."""
        return {
            "compaction": None if self.compaction is None else self.compaction.units,
            "train_time_speedup": self.train_time_speedup,
            "train_log_speedup": self.train_log_speedup,
            "model": self.model.state_dict(),
            "masks": {k: v.cpu() for k, v in self.masks.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "batch_gen": self.batch_gen.get_state(),
            "score_gen": self.score_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "target": self.target,
            "records": copy.deepcopy(self.records),
            "mask_updates": list(self.mask_updates),
            "rewind_state": self.rewind.point,
            "ticket": None if self.rewind.ticket is None else self.rewind.ticket.state_dict(),
            "plateau": self._plateau_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        units = state.get("compaction")
        if units is not None and self.compaction is None:
            self._compact(units, timed=False)  # the compact architecture, then its values
        elif units != (None if self.compaction is None else self.compaction.units):
            raise ValueError(
                f"checkpoint was compacted with units {units}, this trainer with "
                f"{self.compaction.units if self.compaction else None}: not the same run"
            )
        self.train_time_speedup = state.get("train_time_speedup", 1.0)
        self.train_log_speedup = tuple(state.get("train_log_speedup", measure.NOT_TIMED))
        self.model.load_state_dict(state["model"])
        self.masks = {k: v.to(self.device) for k, v in state["masks"].items()}
        self._pruned = pruning.count_pruned(self.masks) > 0
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batch_gen.set_state(state["batch_gen"])
        self.score_gen.set_state(state["score_gen"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step, self.target = state["epoch"], state["step"], state["target"]
        self._load_plateau_state(state.get("plateau"))
        self.records = copy.deepcopy(state["records"])
        self.mask_updates = list(state.get("mask_updates", []))
        final = self.schedule.is_final(self._clock(), self.step)
        self.rewind.load_state(
            state["rewind_state"], state.get("ticket"), self.model, self.masks, final
        )


def check_record(record: Record) -> None:
    """Records carry exactly RECORD_KEYS plus per-layer sparsity: one name per metric."""
    base = [k for k in record if not k.startswith(LAYER_SPARSITY_PREFIX)]
    if tuple(base) != RECORD_KEYS:
        raise AssertionError(f"record keys {base} != {RECORD_KEYS}")
