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
(single weights, N:M groups, whole units). It never branches on their names.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import math
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, RECORD_KEYS
from sparsity_tune.trial import pruning
from sparsity_tune.trial.config import TrialConfig
from sparsity_tune.trial.data import DataSplits, iterate_batches, load_dataset
from sparsity_tune.trial.models import build_model, count_macs, prunable_parameters
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES
from sparsity_tune.trial.sparse_infer import time_inference

Record = dict[str, Any]
Report = Callable[[Record], None]

BYTES_PER_VALUE = 4  # float32 values
BYTES_PER_INDEX = 4  # int32 CSR indices
#: ``rewind: reinit`` draws its fresh weights from a seed stream apart from ``train.seed``'s.
REINIT_SEED_OFFSET = 2_000_003


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _release_free_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: reused pages may read low
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Measured peak memory of training, above a baseline taken before the model is built.

    So the figure holds the model, gradients, optimizer state, masks and activations, not the
    dataset or the interpreter: on GPU the CUDA allocator's peak; on CPU the process's peak RSS
    (Linux ``VmHWM``, reset at each epoch's start through ``/proc/self/clear_refs``; the
    lifetime ``ru_maxrss`` where that reset is not allowed). Before the baseline, freed memory is
    handed back to the OS (``gc.collect`` + glibc ``malloc_trim``): otherwise a trial that shares
    a process with an earlier, larger one (Ray reuses workers) reuses its pages and reads low.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.kind = "cuda_allocator" if self.cuda else "cpu_rss"
        # torch.optim imports torch._dynamo at its first step (~150 MB of Python modules on
        # CPU): take that step on a throwaway parameter so the import is not counted as training.
        warm = nn.Parameter(torch.zeros(1))
        warm.grad = torch.zeros(1)
        torch.optim.SGD([warm], lr=0.0).step()
        if not self.cuda:
            _release_free_memory()
        self._base = torch.cuda.memory_allocated(device) if self.cuda else self._status("VmRSS")

    @staticmethod
    def _status(field: str) -> int:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def start(self) -> None:
        """Begin a new measuring window (one epoch)."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass

    def peak(self) -> int:
        if self.cuda:
            return max(0, int(torch.cuda.max_memory_allocated()) - self._base)
        return max(0, self._status("VmHWM") - self._base)


class Trainer:
    """Train one configuration; see the module docstring for the order of events."""

    def __init__(
        self, config: TrialConfig, cpus: float | None = None, data: DataSplits | None = None
    ) -> None:
        self.cfg = config
        tc = config.train
        threads = tc.threads or (max(1, math.floor(cpus)) if cpus else None)
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(tc.device)
        self.data = data if data is not None else load_dataset(config.dataset, self.device)

        self.memory = PeakMemory(self.device)  # baseline: data loaded, no model yet
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
        self.batch_gen = torch.Generator(device="cpu").manual_seed(tc.seed)
        self.score_gen = torch.Generator(device="cpu").manual_seed(tc.seed + 1_000_003)

        n_train = len(self.data.train_y)
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
        if self.schedule.rewinds and p.rewind in ("init", 0):
            self._rewind_state = self._weights_copy()
        self._maybe_prune(self.schedule.after_epoch(0))  # pruning at initialisation

    # ----------------------------------------------------------------- set-up helpers
    def _make_optimizer(self, epochs: int):
        tc = self.cfg.train
        params = self.model.parameters()
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

    # ----------------------------------------------------------------- pruning
    def _maybe_prune(self, target: float | None) -> None:
        """A pruning event when the schedule gave a target: new masks, applied to the weights
        and the optimizer state. (``self.schedule.is_final(self.epoch, self.step)`` then says
        whether the masks are final: the point where structured models can be compacted.)"""
        if target is None:
            return
        self.target = self.granularity.event_target(target)
        self.masks = self.granularity.compute_masks(
            self.masks, self.target, self.score, self.score_gen
        )
        self._pruned = pruning.count_pruned(self.masks) > 0
        pruning.apply_masks_(self.params, self.masks)
        pruning.mask_optimizer_state_(self.optimizer, self.params, self.masks)

    def _rewind(self) -> None:
        """IMP: survivors back to their rewind point, or freshly drawn (``reinit``), or left as
        they are (``none``); optimizer and LR schedule start over either way."""
        if self.cfg.pruning.rewind == "reinit":
            self.model.load_state_dict(self.fresh_init(self.epoch // self._segment_epochs))
        elif self._rewind_state is not None:
            self.model.load_state_dict(self._rewind_state)
        pruning.apply_masks_(self.params, self.masks)
        self.optimizer, self.scheduler = self._make_optimizer(self._segment_epochs)

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

    # ----------------------------------------------------------------- the loop
    def _train_epoch(self) -> tuple[float, float, int]:
        self.model.train()
        d = self.data
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        step_unit = self.schedule.per_step
        for xb, yb in iterate_batches(
            d.train_x, d.train_y, self.cfg.train.batch_size, shuffle=True, generator=self.batch_gen
        ):
            if self._nhwc:
                xb = xb.contiguous(memory_format=torch.channels_last)  # no-op for 1 channel
            out = self.model(xb)
            loss = F.cross_entropy(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self._pruned:
                pruning.apply_masks_(self.params, self.masks)
                pruning.mask_optimizer_state_(self.optimizer, self.params, self.masks)
            self.step += 1
            if step_unit:
                self._maybe_prune(self.schedule.after_step(self.step))
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
        while self.epoch < self.cfg.train.epochs:
            lr = self.optimizer.param_groups[0]["lr"]
            self.memory.start()
            t0 = time.perf_counter()
            train_loss, train_acc, n = self._train_epoch()
            self.epoch += 1
            if not self.schedule.rewinds:
                self._maybe_prune(self.schedule.after_epoch(self.epoch))
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            val_loss, val_acc = self.evaluate(d.val_x, d.val_y)
            test_loss, test_acc = self.evaluate(d.test_x, d.test_y)
            t2 = time.perf_counter()
            self.scheduler.step()
            record = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                **self.size_metrics(),
                "epoch_time_s": t2 - t0,
                "eval_time_s": t2 - t1,
                "train_time_s": t1 - t0,
                "peak_mem_bytes": self.memory.peak(),
                "samples_per_s": n / (t1 - t0),
                "lr": lr,
            }
            record.update(
                {
                    f"{LAYER_SPARSITY_PREFIX}{k}": v
                    for k, v in pruning.layer_sparsity(self.masks).items()
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
        target = self.schedule.after_epoch(self.epoch)
        if target is not None:
            self._maybe_prune(target)
            self._rewind()

    # ----------------------------------------------------------------- metrics
    def size_metrics(self) -> dict[str, Any]:
        """Sparsity from the masks, parameter counts, bytes (dense vs CSR) and FLOPs."""
        total_params = sum(p.numel() for p in self.model.parameters())
        pruned = pruning.count_pruned(self.masks)
        prunable = sum(m.numel() for m in self.masks.values())
        sparse_bytes = (total_params - prunable) * BYTES_PER_VALUE
        flops_dense = flops_sparse = 0
        for name, macs in self.macs.items():
            flops_dense += 2 * macs
            mask = self.masks.get(name)
            flops_sparse += 2 * macs * (float(mask.float().mean()) if mask is not None else 1.0)
        for mask in self.masks.values():
            rows = mask.shape[0]
            nnz = int(mask.sum())
            sparse_bytes += nnz * (BYTES_PER_VALUE + BYTES_PER_INDEX) + (rows + 1) * BYTES_PER_INDEX
        achieved = pruned / prunable if prunable else 0.0
        # Checked at every record, to the granularity's own promise (unstructured: exactly
        # round(target * n); N:M: its fixed count; structured: as close as whole units allow).
        lo, hi = self.granularity.allowed_pruned(self.masks, self.target)
        if not lo <= pruned <= hi:
            raise RuntimeError(
                f"achieved sparsity {achieved:.6f} ({pruned} pruned) is off target "
                f"{self.target:.6f}: {self.cfg.pruning.granularity} allows {lo}..{hi} pruned"
            )
        return {
            "sparsity": achieved,
            "target_sparsity": self.target,
            "total_params": total_params,
            "nonzero_params": total_params - pruned,
            "dense_bytes": total_params * BYTES_PER_VALUE,
            "sparse_bytes": sparse_bytes,
            "flops_dense": int(flops_dense),
            "flops_sparse": round(flops_sparse),
        }

    def summary(self) -> dict[str, Any]:
        """Final figures: best val and convergence (over the epochs trained with the final mask),
        measured inference speed, totals."""
        recs = self.records
        if not recs:
            return {}
        final_sp = recs[-1]["sparsity"]
        final_mask_recs = [r for r in recs if abs(r["sparsity"] - final_sp) < 1e-9] or recs
        if any(math.isnan(r["val_acc"]) for r in recs):  # no validation split: best = last
            best = recs[-1]
        else:
            best = max(final_mask_recs, key=lambda r: r["val_acc"])  # ties: the earliest
        # Convergence of the final network: counted over its own epochs, like best_val_acc. Over
        # all epochs, a 98%-sparse run would "converge" during its dense phase, to a low target.
        threshold = 0.99 * best["val_acc"]
        to99 = next((r["epoch"] for r in final_mask_recs if r["val_acc"] >= threshold), None)
        infer = time_inference(self.model, self.masks, self.data.test_x)
        return {
            "best_val_acc": best["val_acc"],
            "best_epoch": best["epoch"],
            "test_acc_at_best_val": best["test_acc"],
            "final_test_acc": recs[-1]["test_acc"],
            "final_sparsity": final_sp,
            "epochs_to_99pct": to99,
            **infer,
            "total_time_s": sum(r["epoch_time_s"] for r in recs),
            "total_train_time_s": sum(r["train_time_s"] for r in recs),
            "peak_mem_bytes_max": max(r["peak_mem_bytes"] for r in recs),
            "peak_mem_kind": self.memory.kind,
            "device": str(self.device),
            "epochs": len(recs),
        }

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: weights, masks, optimizer, RNG, clock."""
        return {
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
            "rewind_state": self._rewind_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.masks = {k: v.to(self.device) for k, v in state["masks"].items()}
        self._pruned = pruning.count_pruned(self.masks) > 0
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batch_gen.set_state(state["batch_gen"])
        self.score_gen.set_state(state["score_gen"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step, self.target = state["epoch"], state["step"], state["target"]
        self.records = copy.deepcopy(state["records"])
        self._rewind_state = state["rewind_state"]


def check_record(record: Record) -> None:
    """Records carry exactly RECORD_KEYS plus per-layer sparsity: one name per metric."""
    base = [k for k in record if not k.startswith(LAYER_SPARSITY_PREFIX)]
    if tuple(base) != RECORD_KEYS:
        raise AssertionError(f"record keys {base} != {RECORD_KEYS}")
