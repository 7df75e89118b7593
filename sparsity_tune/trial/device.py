"""Where and how a run computes: the device, torch's CPU threads, subnormal floats, the memory
format of image batches.

Policies, not math: each says what the trainer does with the machine it was given and why, so
the training loop reads the same on a laptop, a shared CPU node and a GPU. Plain torch settings
do the work (``torch.set_num_threads``, ``torch.set_flush_denormal``, ``channels_last``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from sparsity_tune.machine import cpu_allowance


def resolve_device(name: str) -> torch.device:
    """``train.device``: ``auto`` is CUDA when available, else the CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def run_threads(threads: int | None, cpus: float | None) -> int:
    """Torch threads of a run: ``train.threads`` when given, else the whole CPUs of its share
    (a sweep's ``resources.cpu``, at least 1), else :func:`default_threads`."""
    if threads:
        return threads
    return max(1, math.floor(cpus)) if cpus else default_threads()


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


def channels_last(input_shape: Sequence[int]) -> bool:
    """Whether a model on inputs of ``input_shape`` runs channels-last (NHWC): images (3-D
    inputs) do, since oneDNN/cuDNN convolutions run faster on it (LeNet-5 on a 2-core CPU: 16%
    an epoch); 1-D signals and flat vectors have no channel layout to change."""
    return len(input_shape) == 3


def batch_layout(xb: Tensor, nhwc: bool) -> Tensor:
    """A gathered batch in the model's memory format. Batches are converted after the gather:
    gathering from NHWC-strided data is a slow strided copy (CIFAR: 290 vs 55 us a batch)."""
    return xb.contiguous(memory_format=torch.channels_last) if nhwc else xb


def synchronizer(device: torch.device) -> Callable[[], None] | None:
    """What waits for the device's queued work before a clock is read: CUDA runs kernels
    asynchronously; the CPU needs nothing (None)."""
    return torch.cuda.synchronize if device.type == "cuda" else None
