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
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsity_tune.machine import cpu_allowance
from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, RECORD_KEYS, M, direction
from sparsity_tune.trial import compaction, connectivity, deploy, measure, plateau, pruning
from sparsity_tune.trial.config import TrialConfig
from sparsity_tune.trial.data import DataSplits, iterate_batches, load_dataset
from sparsity_tune.trial.method import PruneContext, prune_event
from sparsity_tune.trial.models import build_model, count_macs, prunable_parameters
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES

Record = dict[str, Any]
Report = Callable[[Record], None]

#: ``rewind: reinit`` draws its fresh weights from a seed stream apart from ``train.seed``'s.
REINIT_SEED_OFFSET = 2_000_003
#: Data-driven scores draw their batches from a stream of their own (``+ step``), apart from the
#: run's batch order.
SCORE_BATCH_SEED_OFFSET = 3_000_017


@contextlib.contextmanager
def flush_denormal(enabled: bool) -> Iterator[None]:
    """Flush subnormal floats to zero for the duration, then restore the previous CPU state.

    Pruned nets drive activations and gradients into subnormal floats, which x86 CPUs compute
    many times slower (LeNet-5 at 90% sparsity: 1.6 s vs 0.6 s an epoch); flushing them changes
    nothing a float32 loss can see. The setting is process-wide, hence scoped to a run.
    """
    if not enabled:
        yield
        return
    was_on = torch.tensor([1e-40]).mul(1.0).item() == 0.0  # subnormals already flushed?
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def default_threads() -> int:
    """Torch threads for a run that names none (``train.threads``) and has no CPU share (the
    single-trial CLI; sweeps pass ``resources.cpu``): the CPU allowance less what other
    processes keep busy now, at least 1.

    "Busy" is the 1-minute load average (runnable processes, machine-wide), scaled to this
    process's share of the machine's CPUs, rounded half up. Why not simply every CPU: torch's
    intra-op threads meet at a barrier after every operator, so a thread that waits for a CPU
    another process holds stalls them all; on the busy 2-core dev box MNIST-1D epochs took
    2.2-40x longer with 2 threads than with 1, from a 2x100 MLP to a 3x128 CNN, while the default
    stayed within the noise of the best (``benchmarks/bench_threads.py``). A load that starts
    after the run does is not seen: set ``train.threads`` when that matters (it also keeps the
    float rounding of a rerun the same).
    """
    allowance = cpu_allowance()
    machine = max(allowance, os.cpu_count() or allowance)
    try:
        busy = os.getloadavg()[0] * allowance / machine
    except OSError:  # no load average on this platform
        busy = 0.0
    return max(1, min(allowance, math.floor(allowance - busy + 0.5)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    xb: Tensor,
    yb: Tensor,
    params: Mapping[str, Tensor] | None = None,
    masks: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One optimizer step; with ``masks``, pruned weights and their optimizer state stay zero."""
    out = model(xb)
    loss = F.cross_entropy(out, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if masks is not None:
        pruning.apply_masks_(params, masks)
        pruning.mask_optimizer_state_(optimizer, params, masks)
    return loss, out


class Trainer:
    """Train one configuration; see the module docstring for the order of events."""

    def __init__(
        self, config: TrialConfig, cpus: float | None = None, data: DataSplits | None = None
    ) -> None:
        self.cfg = config
        tc = config.train
        threads = tc.threads or (max(1, math.floor(cpus)) if cpus else default_threads())
        torch.set_num_threads(threads)
        self.threads = threads
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
        # Images go channels-last (NHWC): oneDNN/cuDNN convolutions run faster on it (LeNet-5
        # on a 2-core CPU: 16% an epoch). Batches are converted after the gather: gathering
        # from NHWC-strided data is a slow strided copy (CIFAR: 290 vs 55 us a batch).
        self._nhwc = len(self.data.input_shape) == 3
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
        self.optimizer, self.scheduler = self._make_optimizer(self._segment_epochs)

        self.epoch = 0
        self.step = 0
        self.target = 0.0
        self.records: list[Record] = []
        self._pruned = False  # any zero in the masks: skip mask upkeep while dense
        self._rewind_state: dict[str, torch.Tensor] | None = None
        # fresh random weights under the mask: IMP's rewind: reinit, or control: reinit
        self._reinit = p.rewind == "reinit" or p.control == "reinit"
        #: (step, weights regrown) of every prune-and-regrow update (dynamic sparse training)
        self.mask_updates: list[tuple[int, int]] = []
        if self.schedule.rewinds and (p.rewind in ("init", "reinit", 0) or self._reinit):
            self._rewind_state = self._weights_copy()
        # rewind: reinit trains the winning-ticket path beside the re-initialised network, on the
        # same batches, only to find the next round's mask (see _Ticket).
        self._ticket: _Ticket | None = None
        self.ticket_time_s = 0.0
        self.compaction: compaction.Compaction | None = None
        self.train_time_speedup = 1.0  # measured when the model is compacted
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
        self.train_log_speedup: tuple[float, float, float] = (
            measure.NOT_TIMED
        )  # its rounds' summary
        self._maybe_prune(self.schedule.after_epoch(0))  # pruning at initialisation
        self._maybe_compact()

    # ----------------------------------------------------------------- set-up helpers
    def _make_optimizer(self, epochs: int, model: nn.Module | None = None):
        tc = self.cfg.train
        params = (model or self.model).parameters()
        if tc.optimizer == "sgd":
            opt = torch.optim.SGD(
                params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
            )
        elif tc.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
        if tc.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        elif tc.lr_schedule == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, tc.lr_step_epochs, tc.lr_gamma)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        return opt, sched

    def _weights_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

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
        if self._reinit and not self.schedule.rewinds and final:
            # control: reinit: the final mask with fresh weights, optimizer state dropped
            self.model.load_state_dict(self.fresh_init(1))
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
            yield (xb.contiguous(memory_format=torch.channels_last) if self._nhwc else xb), yb

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

    def _rewind(self) -> None:
        """IMP: survivors back to their rewind point, or freshly drawn (``reinit``), or left as
        they are (``none``); optimizer and LR schedule start over either way."""
        if self._reinit:
            self._start_ticket()
            self.model.load_state_dict(self.fresh_init(self._clock() // self._segment_epochs))
        elif self._rewind_state is not None:
            self.model.load_state_dict(self._rewind_state)
        pruning.apply_masks_(self.params, self.masks)
        self.optimizer, self.scheduler = self._make_optimizer(self._segment_epochs)

    def _start_ticket(self) -> None:
        """``reinit``: the winning ticket of the new mask (the initial weights, masked) starts a
        round beside the re-initialised network, unless no pruning event is left (then its
        training would find nothing)."""
        if self.schedule.is_final(self._clock(), self.step):
            self._ticket = None
            return
        model = copy.deepcopy(self.model)
        model.load_state_dict(self._rewind_state)
        params = self._bind(model)
        pruning.apply_masks_(params, self.masks)
        optimizer, scheduler = self._make_optimizer(self._segment_epochs, model)
        self._ticket = _Ticket(model, params, optimizer, scheduler)

    def fresh_init(self, k: int) -> dict[str, torch.Tensor]:
        """Frankle & Carbin's random re-initialisation control, for the ``k``-th rewind (1-based):
        the state of a newly built model (the model's own init distribution, biases included)
        under the ``k``-th seed drawn from a generator seeded with ``train.seed +
        REINIT_SEED_OFFSET``. Built on the CPU with the global RNG forked, so the batch order and
        every other stream are untouched, and the same seed gives the same weights anywhere."""
        stream = torch.Generator(device="cpu").manual_seed(self.cfg.train.seed + REINIT_SEED_OFFSET)
        seed = int(torch.randint(0, 2**62, (k,), generator=stream)[-1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes)
        return fresh.state_dict()

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
        """Compact the model; optimizer and LR state, masks and rewind weights follow it.

        ``timed``: also measure ``train_time_speedup`` (a training run); not when restoring a
        checkpoint, whose values then overwrite the compact model's.
        """
        before = copy.deepcopy((self.model, self.optimizer, self.masks)) if timed else None
        names = [n for n, _ in self.model.named_parameters()]  # = the optimizer's order
        opt_state = self.optimizer.state_dict()
        sched_state = self.scheduler.state_dict()
        masks = self.masks if timed else None  # checked (and folded) only in a training run
        comp = compaction.compact_(self.model, self.data.input_shape, units, masks)
        opt_state["state"] = {
            i: {
                k: comp.shrink(names[i], v)
                if isinstance(v, Tensor) and v.shape == comp.dense_shapes[names[i]]
                else v
                for k, v in st.items()
            }
            for i, st in opt_state["state"].items()
        }
        self.optimizer, self.scheduler = self._make_optimizer(self._segment_epochs)
        self.optimizer.load_state_dict(opt_state)
        self.scheduler.load_state_dict(sched_state)
        self.params = self._bind(self.model)
        self.masks = {n: comp.shrink(n, m) for n, m in self.masks.items()}
        self._pruned = pruning.count_pruned(self.masks) > 0
        if self._rewind_state is not None:
            self._rewind_state = {k: comp.shrink(k, v) for k, v in self._rewind_state.items()}
        self.compaction = comp
        if before is not None:
            self.train_time_speedup = self._step_speedup(*before)

    def _step_speedup(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, masks: dict[str, Tensor]
    ) -> float:
        """Step time of the uncompacted model (dense shapes + mask upkeep: what training would
        have cost) / step time of the compact model, both on copies, interleaved on the same
        batch (gather included), median of 20; the run's own state and RNGs are untouched. The
        20 rounds are kept as ``train_log_speedup`` (measure.log_ratio_summary)."""
        small, small_opt = copy.deepcopy((self.model, self.optimizer))
        d = self.data
        g = torch.Generator().manual_seed(self.cfg.train.seed)
        idx = torch.randint(len(d.train_y), (self.cfg.train.batch_size,), generator=g)
        idx = idx.to(d.train_x.device)
        yb = d.train_y.index_select(0, idx)

        def step(m: nn.Module, opt: torch.optim.Optimizer, masks: dict | None) -> Callable:
            m.train()
            params = self._bind(m)
            masks = masks if masks and pruning.count_pruned(masks) else None

            def run() -> None:
                xb = d.train_x.index_select(0, idx)
                if self._nhwc:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                train_step(m, opt, xb, yb, params, masks)

            return run

        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        t_before, t_after = measure.interleaved_times(
            [step(model, optimizer, masks), step(small, small_opt, self.masks)], 20, 2, sync
        )
        self.train_log_speedup = measure.log_ratio_summary(t_before, t_after)
        return statistics.median(t_before) / statistics.median(t_after)

    def dense_masks(self) -> dict[str, Tensor]:
        """The masks in the dense model's coordinates (compacted-away weights: False)."""
        if self.compaction is None:
            return self.masks
        return {n: self.compaction.expand(n, m, False) for n, m in self.masks.items()}

    def dense_model(self) -> nn.Module:
        """The model at its dense shapes, compacted-away weights zero: the reference the
        deployable model is timed against."""
        if self.compaction is None:
            return self.model
        with torch.random.fork_rng(devices=[]):  # building draws an init: keep the run's RNG
            dense = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes)
        dense = dense.to(self.device)
        if self._nhwc:
            dense = dense.to(memory_format=torch.channels_last)
        state = {k: self.compaction.expand(k, v) for k, v in self.model.state_dict().items()}
        dense.load_state_dict(state)
        return dense

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
            if self._nhwc:
                xb = xb.contiguous(memory_format=torch.channels_last)  # no-op for 1 channel
            with self.memory.step(i, self._training_state):
                masks = self.masks if self._pruned else None
                loss, out = train_step(self.model, self.optimizer, xb, yb, self.params, masks)
            if self._ticket is not None:
                self.ticket_time_s += self._ticket.step(xb, yb, self.masks)
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
            if self._nhwc:
                xb = xb.contiguous(memory_format=torch.channels_last)
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
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            # the winning-ticket path of rewind: reinit is bookkeeping, not this network's cost
            t1 = time.perf_counter() - self.ticket_time_s
            peak_mem = self.memory.peak()
            if self._ticket is not None:
                self._ticket.scheduler.step()
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
        rewind = self.cfg.pruning.rewind
        if isinstance(rewind, int) and self.epoch == rewind and self._rewind_state is None:
            self._rewind_state = self._weights_copy()  # late rewinding point (epoch K)
        target = self.schedule.after_epoch(self._clock())
        if target is not None:
            self._seg_trained = 0  # the next round starts
            if self._ticket is not None:  # reinit: the mask comes from the winning ticket
                self.model.load_state_dict(self._ticket.model.state_dict())
            self._maybe_prune(target)
            self._rewind()
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
            "rewind_state": self._rewind_state,
            "ticket": None if self._ticket is None else self._ticket.state_dict(),
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
        self._rewind_state = state["rewind_state"]
        self._ticket = None
        if state.get("ticket") is not None:
            self._start_ticket()
            self._ticket.load_state_dict(state["ticket"])


class _Ticket:
    """The winning-ticket path of ``rewind: reinit`` (Frankle & Carbin's random
    re-initialisation control: the IMP mask, fresh random survivors).

    The mask of round k+1 must be the one IMP with ``rewind: init`` finds: that of the ticket
    (the initial weights under mask k) trained for round k. So a ``reinit`` run trains that
    ticket beside its re-initialised network, on the same batches, and prunes from the ticket's
    weights; with the same seed its masks equal the ``rewind: init`` run's, round by round. It
    costs one more training step per step in rounds 1..rounds-1, excluded from the run's
    ``train_time_s`` and peak memory (it is how the control is built, not what it costs).
    """

    def __init__(self, model: nn.Module, params: dict, optimizer: Any, scheduler: Any) -> None:
        self.model, self.params, self.optimizer, self.scheduler = (
            model,
            params,
            optimizer,
            scheduler,
        )

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


def check_record(record: Record) -> None:
    """Records carry exactly RECORD_KEYS plus per-layer sparsity: one name per metric."""
    base = [k for k in record if not k.startswith(LAYER_SPARSITY_PREFIX)]
    if tuple(base) != RECORD_KEYS:
        raise AssertionError(f"record keys {base} != {RECORD_KEYS}")
