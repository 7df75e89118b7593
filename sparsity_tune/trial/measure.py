"""What a run costs: counted sizes, measured peak memory and time, and the final summary.

Kept out of the trainer so that ``Trainer`` reads as a training loop. Two kinds of figures, as
the design asks, always labelled: *counted* (:func:`size_metrics`: parameters, CSR bytes, FLOPs,
from the masks) and *measured* (:class:`PeakMemory`, :func:`interleaved_ms`).

Peak memory must not depend on what ran before in the process (Ray reuses workers). On CUDA the
allocator's own counters do that. On CPU, process RSS does not (freed pages are kept or reused,
one-time library set-up lands in whichever trial comes first), so :class:`PeakMemory` counts live
tensor storages instead: during one full training step per epoch a ``TorchDispatchMode`` (torch
does the heavy lifting) sees every tensor an operator allocates, a weak reference tells when its
storage is freed, and the tensors the step starts with (weights, gradients, optimizer state,
masks) are counted from their owners. A step's allocations repeat from step to step, so one
step's peak is the epoch's. Watching every step would cost 40-240% of the epoch (measured on
MNIST-1D: depth-3 width-64 CNN and MLP); the one watched step costs about 3 ms (some 100 operators
at ~25 us each in Python): 5% of the default MLP's 50 ms epoch, 1% of a ``cnn.yaml`` epoch.
(``torch.profiler`` with ``profile_memory`` sees allocations too, but on CPU costs 20-210% of an
epoch while on, and its allocator total is kept only while profiling: tensors from before the
window are freed "of unknown size", with a warning each time.) Torch has no CPU allocator
counters of its own (``torch.cuda.max_memory_allocated`` has no CPU twin in 2.14).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from sparsity_tune.metrics import SUMMARY_KEYS, M
from sparsity_tune.trial import pruning

BYTES_PER_VALUE = 4  # float32 values
BYTES_PER_INDEX = 4  # int32 CSR indices

# ----------------------------------------------------------------------------- peak memory


class _LiveTensors(TorchDispatchMode):
    """Peak bytes of live CPU tensor storages while active.

    Storages alive at the start are given up front (``state``); others the window's operators
    read but did not allocate (e.g. cached float masks, the batch) were alive from the start too
    and are counted as such once seen. Storages are keyed by data pointer and sized by
    ``nbytes``, so views and in-place results count once.
    """

    def __init__(self, state: Iterable[Tensor]) -> None:
        super().__init__()
        self._clock = 0
        self._sizes: dict[int, int] = {}  # data_ptr -> bytes, every storage known to be alive
        self._pre: dict[int, int] = {}  # data_ptr -> bytes, those alive at the start
        self._pre_freed: list[tuple[int, int]] = []  # (clock, bytes) of start storages freed
        self._new_live = 0
        self._trace: list[tuple[int, int]] = []  # (clock, new bytes live) after each allocation
        self._refs: dict[int, weakref.ref] = {}
        for t in state:
            self._see(t, pre=True)

    def _see(self, t: Tensor, pre: bool) -> None:
        if t.device.type != "cpu" or t.layout != torch.strided:
            return
        st = t.untyped_storage()
        nbytes = st.nbytes()
        key = st.data_ptr()
        if nbytes == 0 or key in self._sizes:
            return
        self._sizes[key] = nbytes
        self._refs[key] = weakref.ref(st, lambda _, key=key: self._freed(key))
        if pre:
            self._pre[key] = nbytes
        else:
            self._clock += 1
            self._new_live += nbytes
            self._trace.append((self._clock, self._new_live))

    def _freed(self, key: int) -> None:
        nbytes = self._sizes.pop(key, 0)
        self._refs.pop(key, None)
        self._clock += 1
        if key in self._pre:
            self._pre_freed.append((self._clock, self._pre.pop(key)))
        else:
            self._new_live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for t in _tensors(args, kwargs.values()):
            self._see(t, pre=True)  # read but not allocated here: alive since the start
        out = func(*args, **kwargs)
        for t in _tensors((out,)):
            self._see(t, pre=False)
        return out

    def peak(self) -> int:
        """Largest sum of live bytes at any moment of the window."""
        start = sum(self._pre.values()) + sum(b for _, b in self._pre_freed)
        freed = sorted(self._pre_freed)
        best, gone, i = start, 0, 0
        for clock, new_live in self._trace:
            while i < len(freed) and freed[i][0] < clock:
                gone += freed[i][1]
                i += 1
            best = max(best, start - gone + new_live)
        return best

    def close(self) -> None:
        self._refs.clear()  # dead weak references: nothing calls back after the window


def _tensors(*groups: Iterable[Any]) -> Iterator[Tensor]:
    """Tensors among operator arguments or results: plain, or in a list/tuple (``_foreach``
    ops). Four times cheaper than a general pytree walk, and operators take nothing deeper."""
    for group in groups:
        for a in group:
            if isinstance(a, Tensor):
                yield a
            elif isinstance(a, list | tuple):
                yield from (b for b in a if isinstance(b, Tensor))


def training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, masks: Mapping[str, Tensor]
) -> Iterator[Tensor]:
    """Tensors a training run holds between steps: weights, gradients, buffers, optimizer
    state, masks."""
    for p in model.parameters():
        yield p
        if p.grad is not None:
            yield p.grad
    yield from model.buffers()
    for state in optimizer.state.values():
        yield from (v for v in state.values() if isinstance(v, Tensor))
    yield from masks.values()


class PeakMemory:
    """Measured peak memory of training, per epoch, independent of the process's history.

    ``cuda_allocator``: the CUDA caching allocator's peak of allocated bytes over the epoch's
    training, above what was allocated before the model was built (the dataset). ``cpu_live_
    tensors``: the peak of live tensor bytes during the step ``probe_step`` of each epoch (the
    first step with a full batch after the first one, so last step's gradients are still held
    as they are in every later step), tensors the step starts with included; see the module
    docstring. Both leave out the Python interpreter and the libraries.
    """

    def __init__(self, device: torch.device, probe_step: int = 1) -> None:
        self.cuda = device.type == "cuda"
        self.kind = "cuda_allocator" if self.cuda else "cpu_live_tensors"
        self.probe_step = probe_step
        self._base = torch.cuda.memory_allocated(device) if self.cuda else 0
        self._peak = 0

    def start(self) -> None:
        """Begin a new measuring window (one epoch)."""
        self._peak = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    @contextlib.contextmanager
    def step(self, index: int, state: Callable[[], Iterable[Tensor]]) -> Iterator[None]:
        """Wrap training step ``index`` of the epoch; on CPU the probe step is measured."""
        if self.cuda or index != self.probe_step:
            yield
            return
        live = _LiveTensors(state())
        try:
            with live:
                yield
            self._peak = max(self._peak, live.peak())
        finally:
            live.close()

    def peak(self) -> int:
        if self.cuda:
            return max(0, int(torch.cuda.max_memory_allocated()) - self._base)
        return self._peak


# ----------------------------------------------------------------------------- timing


def interleaved_times(
    calls: Sequence[Callable[[], Any]],
    repeats: int = 20,
    warmup: int = 3,
    sync: Callable[[], None] | None = None,
    budget_ms: float | None = None,
    min_repeats: int = 5,
) -> list[list[float]]:
    """Milliseconds of every timed repeat of each call, run in turns after ``warmup`` rounds:
    ``out[call][round]``. Round ``i`` of every call ran back to back, so ``out[0][i]`` and
    ``out[1][i]`` form a pair that shared the machine's load.

    Interleaving makes the calls share whatever else the machine is doing, so their ratio holds
    on a busy machine where each time alone would not. The order alternates from round to round
    (a, b, then b, a, ...): under a load that grows or falls during the rounds, or when going
    second is slower, a fixed order would favour one call in every pair. Recorded on this
    machine under load, a model timed against an exact copy of itself came out 0.86x at batch
    256 with the copy always second (all 5 rounds below 1); alternated, the bias cancels.

    ``budget_ms``: when ``repeats`` rounds would take longer than this (judged by the last
    warm-up round), fewer rounds are timed, never fewer than ``min_repeats``. Long calls vary
    less from run to run than short ones, so they need fewer samples for the same median; this
    keeps the end-of-run measurement of a trial from costing more than its last epochs.
    """
    sync = sync or (lambda: None)
    t_round = 0.0
    for _ in range(warmup):
        t0 = time.perf_counter()
        for call in calls:
            call()
        sync()
        t_round = (time.perf_counter() - t0) * 1e3
    if budget_ms is not None and warmup and t_round * repeats > budget_ms:
        repeats = max(min(min_repeats, repeats), math.ceil(budget_ms / max(t_round, 1e-6)))
    times: list[list[float]] = [[] for _ in calls]
    order = list(zip(calls, times, strict=True))
    for r in range(repeats):
        for call, out in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            call()
            sync()
            out.append((time.perf_counter() - t0) * 1e3)
    return times


def interleaved_ms(
    calls: Sequence[Callable[[], Any]],
    repeats: int = 20,
    warmup: int = 3,
    sync: Callable[[], None] | None = None,
    budget_ms: float | None = None,
    min_repeats: int = 5,
) -> list[float]:
    """Median milliseconds of each call over the rounds of :func:`interleaved_times`: the
    figure a trial reports (robust to the odd round a busy machine stalls)."""
    times = interleaved_times(calls, repeats, warmup, sync, budget_ms, min_repeats)
    return [statistics.median(t) for t in times]


#: Fraction of rounds :func:`log_ratio_summary` trims from each end.
TRIM: float = 0.1
#: :func:`log_ratio_summary` of a comparison that was not timed (no rounds).
NOT_TIMED: tuple[float, float, float] = (0.0, 0.0, 0.0)


def log_ratio_summary(
    reference_ms: Sequence[float], ms: Sequence[float], trim: float = TRIM
) -> tuple[float, float, float]:
    """The paired rounds' speedup on the log scale, as ``(estimate, standard error, degrees of
    freedom)``: the sufficient summary a t interval needs (the analysis's :mod:`analysis.
    repeats` builds each run's interval and combines seeds from it).

    Each round's ``log(reference_ms[i] / ms[i])`` (positive: ``ms`` is faster): the load a round
    ran under multiplies both of its times and cancels in the ratio, and on the log scale a 2x
    gain and a 2x loss are symmetric. The estimate is the ``trim``-trimmed mean of these
    (``g = floor(trim x n)`` rounds dropped at each end), its standard error Yuen's (1974) from
    the winsorized variance, ``sqrt((n - 1) s_w² / (h (h - 1)))`` with ``h = n - 2g``, on
    ``h - 1`` degrees of freedom. Why trimmed: a busy machine stalls the odd call 10-30x (a
    scheduler tick on a 0.1 ms forward), which would swing a plain mean and its deviation; the
    trimmed mean keeps the t interval and the seed combination that need a mean and a standard
    error. 10% each end keeps every round below 10 (the 5 a trial's time budget may leave) and
    drops 2 stalls of 20 at each end. With fewer than 2 rounds kept the error is NaN.
    """
    if len(reference_ms) != len(ms):
        raise ValueError(
            f"paired timings need as many rounds on each side: {len(reference_ms)} != {len(ms)}"
        )
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    logs = sorted(math.log(a / b) for a, b in zip(reference_ms, ms, strict=True))
    n = len(logs)
    g = math.floor(trim * n)
    h = n - 2 * g
    if h < 1:
        return math.nan, math.nan, math.nan
    est = statistics.fmean(logs[g : n - g])
    if h < 2:
        return est, math.nan, math.nan
    wins = [logs[g]] * g + logs[g : n - g] + [logs[n - g - 1]] * g
    se = math.sqrt((n - 1) * statistics.variance(wins) / (h * (h - 1)))
    return est, se, float(h - 1)


# ----------------------------------------------------------------------------- sizes


def size_metrics(
    masks: Mapping[str, Tensor],
    total_params: int,
    macs: Mapping[str, int],
    target: float,
    allowed: tuple[int, int],
) -> dict[str, Any]:
    """Counted sizes from dense-coordinate masks: sparsity, parameters, bytes (dense vs CSR),
    FLOPs. ``total_params`` and ``macs`` are those of the dense model.

    Raises ``RuntimeError`` when the number of pruned weights is outside ``allowed``, the
    granularity's own promise for ``target`` (unstructured: exactly ``round(target x n)``; N:M:
    its fixed count; structured: as close as whole units allow): the check the design asks for
    at every record.
    """
    pruned = pruning.count_pruned(masks)
    prunable = pruning.count_total(masks)
    sparse_bytes = (total_params - prunable) * BYTES_PER_VALUE
    flops_dense = flops_sparse = 0
    for name, n_macs in macs.items():
        flops_dense += 2 * n_macs
        mask = masks.get(name)
        flops_sparse += 2 * n_macs * (float(mask.float().mean()) if mask is not None else 1.0)
    for mask in masks.values():
        nnz = int(mask.count_nonzero())
        sparse_bytes += nnz * (BYTES_PER_VALUE + BYTES_PER_INDEX)
        sparse_bytes += (mask.shape[0] + 1) * BYTES_PER_INDEX
    achieved = pruned / prunable if prunable else 0.0
    lo, hi = allowed
    if not lo <= pruned <= hi:
        raise RuntimeError(
            f"achieved sparsity {achieved:.6f} ({pruned} pruned) is off target {target:.6f}: "
            f"the granularity allows {lo}..{hi} pruned"
        )
    return {
        M.sparsity: achieved,
        M.target_sparsity: target,
        M.total_params: total_params,
        M.nonzero_params: total_params - pruned,
        M.dense_bytes: total_params * BYTES_PER_VALUE,
        M.sparse_bytes: sparse_bytes,
        M.flops_dense: int(flops_dense),
        M.flops_sparse: round(flops_sparse),
    }


# ----------------------------------------------------------------------------- summary


def summary(
    records: Sequence[Mapping[str, Any]],
    measured: Mapping[str, Any],
    peak_mem_kind: str,
    device: str,
) -> dict[str, Any]:
    """Final figures (:data:`~sparsity_tune.metrics.SUMMARY_KEYS`, in that order): best val and
    convergence over the epochs trained with the final mask, the ``measured`` deploy and
    training-speed figures, totals."""
    if not records:
        return {}
    final_sp = records[-1][M.sparsity]
    final_mask_recs = [r for r in records if abs(r[M.sparsity] - final_sp) < 1e-9] or records
    if any(math.isnan(r[M.val_acc]) for r in records):  # no validation split: best = last
        best = records[-1]
    else:
        best = max(final_mask_recs, key=lambda r: r[M.val_acc])  # ties: the earliest
    # Convergence of the final network: counted over its own epochs, like best_val_acc. Over
    # all epochs, a 98%-sparse run would "converge" during its dense phase, to a low target.
    threshold = 0.99 * best[M.val_acc]
    to99 = next((r[M.epoch] for r in final_mask_recs if r[M.val_acc] >= threshold), None)
    out = {
        **measured,
        M.best_val_acc: best[M.val_acc],
        M.best_epoch: best[M.epoch],
        M.test_acc_at_best_val: best[M.test_acc],
        M.final_test_acc: records[-1][M.test_acc],
        M.final_sparsity: final_sp,
        M.epochs_to_99pct: to99,
        M.total_time_s: sum(r[M.epoch_time_s] for r in records),
        M.total_train_time_s: sum(r[M.train_time_s] for r in records),
        M.peak_mem_bytes_max: max(r[M.peak_mem_bytes] for r in records),
        M.peak_mem_kind: peak_mem_kind,
        M.device: device,
        M.epochs: len(records),
        M.all_converged: all_converged(records),
    }
    return {k: out[k] for k in SUMMARY_KEYS}


def all_converged(records: Sequence[Mapping[str, Any]]) -> bool | None:
    """Whether every segment ended on its plateau: the ``converged`` of each segment's last
    record (a segment ends where the next record starts over at ``epochs_trained`` 1, or at the
    last record). None when the run had no plateau rule (``converged`` null)."""
    ends = [
        r
        for r, nxt in zip(records, [*records[1:], None], strict=True)
        if nxt is None or nxt.get(M.epochs_trained) == 1
    ]
    flags = [r.get(M.converged) for r in ends]
    if not flags or any(f is None for f in flags):
        return None
    return all(flags)
