"""The model a user would ship, and its measured costs beside the dense model's.

A mask saves nothing by itself; what it saves depends on the kernel that runs the pruned layer.
This module builds the deployable model for each kind of sparsity and measures it, interleaved
with the dense model in the same process (median of repeats after warm-up,
:func:`sparsity_tune.trial.measure.interleaved_ms`), at batch 1 (latency) and 256 (throughput):

- ``compact``: structured pruning, compacted by :mod:`sparsity_tune.trial.compaction`: the trained
  model itself, physically smaller; plain dense kernels.
- ``csr``: unstructured pruning: each pruned ``nn.Linear`` becomes :class:`CSRLinear` (torch's
  sparse CSR matmul, MKL on CPU / cuSPARSE on CUDA) and each pruned convolution
  :class:`CSRConv` (unfold + CSR matmul), *where that timed faster* than the dense layer on that
  layer's own input at that batch size; other layers stay dense. Each batch size gets its own
  choice (CSR often wins at 256 and loses at 1), and the whole CSR model must then beat the dense
  one at that batch size too, else that batch size ships dense (:func:`measure`).
- ``semi_structured``: N:M 2:4 on a CUDA GPU of compute capability 8.0+: Linear weights through
  ``torch.sparse.to_sparse_semi_structured`` in float16 (the dense reference then runs in float16
  too, so the speedup compares like with like).
- ``dense``: nothing faster exists for it here (a dense run, N:M without such a GPU, or no layer
  that CSR made faster): the dense model is shipped, its figures are the dense ones and the
  speedups exactly 1.0.

``deploy_bytes`` is the size of ``torch.save`` of the deployable's state (CSR with int32 indices;
2:4 as its compressed values and metadata).
"""

from __future__ import annotations

import copy
import io
import statistics
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsity_tune.metrics import M
from sparsity_tune.trial.measure import interleaved_ms, interleaved_times, log_ratio_summary

BATCHES = (1, 256)
LAYER_REPEATS = 5  # per-layer CSR-or-dense choice (the whole model is then checked too)
#: A trial's end-of-run measurement times each batch size for about this long at most: 20
#: interleaved rounds, fewer (MEASURE_MIN_ROUNDS at least) when a round is slow (see
#: measure.interleaved_times). A 3-layer width-32 CNN at batch 256 (2 ms a forward) then costs
#: 25 ms instead of 40.
MEASURE_BUDGET_MS = 25.0
#: Fewest rounds a trial times: its speedup's interval comes from its own rounds (analysis.
#: repeats). Recorded on a busy 2-core machine, the 5 rounds the budget alone left for a depth-3
#: width-128 CNN at batch 256 gave one seed's log-ratios from -0.11 to 2.2: 4 degrees of freedom
#: and one-sided p-values of 0.01-0.05 for a 3-9x speedup, too weak to be resolved among the
#: report's points; 10 rounds cost that model 0.2-2.5 s once per trial.
MEASURE_MIN_ROUNDS = 10
MARGIN = 0.95  # CSR must be at least 5% faster to be chosen: a tie stays dense
#: log_ratio_summary of a batch size that ships the dense model: 1.0 by rule, nothing measured.
SHIPS_DENSE = (0.0, 0.0, 0.0)


def _csr(weight: Tensor) -> Tensor:
    """``weight`` (out x rest) in CSR with int32 indices (MKL's native index type: faster and
    half the index bytes of torch's default int64)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known
        warnings.simplefilter("ignore", UserWarning)
        csr = weight.detach().reshape(weight.shape[0], -1).contiguous().to_sparse_csr()
        return torch.sparse_csr_tensor(
            csr.crow_indices().int(), csr.col_indices().int(), csr.values(), size=csr.shape
        )


class CSRLinear(nn.Module):
    """``y = x Wᵀ + b`` with W stored in CSR."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", _csr(linear.weight))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        y = (self.weight @ x.reshape(-1, x.shape[-1]).t()).t()
        y = y.reshape(*x.shape[:-1], y.shape[-1])
        return y if self.bias is None else y + self.bias


class CSRConv(nn.Module):
    """A Conv1d/Conv2d as unfold (im2col) + CSR matmul: ``W (out x C·k) @ cols (C·k x N·L)``."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"CSRConv supports plain zero-padded convolutions, got {conv}")
        self.one_d = isinstance(conv, nn.Conv1d)
        pad = lambda v: (1, v[0]) if self.one_d else tuple(v)  # noqa: E731  Conv1d as 1 x L
        self.kernel = (1, conv.kernel_size[0]) if self.one_d else conv.kernel_size
        self.stride, self.dilation = pad(conv.stride), pad(conv.dilation)
        self.padding = (0, conv.padding[0]) if self.one_d else tuple(conv.padding)
        self.out_channels = conv.out_channels
        self.register_buffer("weight", _csr(conv.weight))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        x4 = x.unsqueeze(2) if self.one_d else x
        n, _, h, w = x4.shape
        cols = F.unfold(x4, self.kernel, self.dilation, self.padding, self.stride)  # N, C·k, L
        oh = h + 2 * self.padding[0] - self.dilation[0] * (self.kernel[0] - 1) - 1
        ow = w + 2 * self.padding[1] - self.dilation[1] * (self.kernel[1] - 1) - 1
        oh, ow = oh // self.stride[0] + 1, ow // self.stride[1] + 1
        flat = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # C·k, N·L
        y = (self.weight @ flat).reshape(self.out_channels, n, oh * ow).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(n, self.out_channels, ow) if self.one_d else y.reshape(n, -1, oh, ow)


@dataclass(frozen=True)
class Deployable:
    """The model shipped for each batch size, its format, and why (for the reader)."""

    format: str
    models: Mapping[int, nn.Module]
    note: str


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _layer_inputs(model: nn.Module, names: list[str], x: Tensor) -> dict[str, Tensor]:
    """Each named layer's input on a forward of ``x``."""
    seen: dict[str, Tensor] = {}
    handles = [
        model.get_submodule(n).register_forward_pre_hook(
            lambda _m, args, n=n: seen.__setitem__(n, args[0].detach())
        )
        for n in names
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def csr_model(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    x: Tensor,
    repeats: int = LAYER_REPEATS,
    margin: float = MARGIN,
) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` whose pruned layers run in CSR where that timed faster on ``x``
    (CSR time < ``margin`` x dense time; ``margin=inf`` forces every pruned layer to CSR).

    Returns the copy and the names of the layers that went CSR.
    """
    ship = copy.deepcopy(model).eval()
    pruned = [
        n.rsplit(".", 1)[0]
        for n, m in masks.items()
        if not bool(m.all())
        and isinstance(ship.get_submodule(n.rsplit(".", 1)[0]), nn.Linear | nn.Conv1d | nn.Conv2d)
    ]
    inputs = _layer_inputs(ship, pruned, x)
    chosen = []
    for name in pruned:
        dense = ship.get_submodule(name)
        try:
            sparse = CSRLinear(dense) if isinstance(dense, nn.Linear) else CSRConv(dense)
        except ValueError:
            continue
        inp = inputs[name]
        with torch.inference_mode():
            t_dense, t_csr = interleaved_ms(
                [lambda d=dense, i=inp: d(i), lambda s=sparse, i=inp: s(i)],
                repeats,
                warmup=1,
                sync=_sync(x),
            )
        if t_csr < margin * t_dense:
            _set(ship, name, sparse)
            chosen.append(name)
    return ship, chosen


def semi_structured_available(device: torch.device) -> bool:
    """2:4 kernels exist: a CUDA device of compute capability 8.0 or newer."""
    return (
        device.type == "cuda"
        and torch.cuda.is_available()
        and torch.cuda.get_device_capability(device)[0] >= 8
    )


def semi_structured_model(
    model: nn.Module, masks: Mapping[str, Tensor], dtype: torch.dtype = torch.float16
) -> tuple[nn.Module, list[str]]:
    """A ``dtype`` copy of ``model`` whose 2:4-masked Linear weights are semi-structured sparse.

    Layers whose shape the kernels do not take (rows/columns not multiples of the backend's
    minimum block) or whose mask is not 2:4 along the input dimension stay dense.
    """
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    ship = copy.deepcopy(model).to(dtype).eval()
    chosen = []
    backend = (
        torch.sparse.SparseSemiStructuredTensorCUTLASS
        if SparseSemiStructuredTensor._FORCE_CUTLASS
        else torch.sparse.SparseSemiStructuredTensorCUSPARSELT
    )
    limits = backend._DTYPE_SHAPE_CONSTRAINTS[dtype]
    for key, mask in masks.items():
        name = key.rsplit(".", 1)[0]
        layer = ship.get_submodule(name)
        rows, cols = mask.shape[0], mask[0].numel()
        if not isinstance(layer, nn.Linear) or cols % 4:
            continue
        if rows % limits.sparse_min_rows or cols % limits.sparse_min_cols:
            continue
        if bool((mask.reshape(-1, 4).sum(1) > 2).any()):
            continue  # not 2:4: the compressed format would drop kept weights
        layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()), False)
        chosen.append(name)
    return ship, chosen


def build(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    semi_structured: bool,
    x: Tensor,
    compacted: bool,
) -> Deployable:
    """The deployable model for each batch size of :data:`BATCHES` (see the module docstring).
    ``semi_structured``: the masks are N:M (the granularity's
    :attr:`~sparsity_tune.trial.granularity.Granularity.semi_structured`), so 2:4 is tried."""
    if compacted:
        return Deployable("compact", dict.fromkeys(BATCHES, model.eval()), "compacted layers")
    pruned = any(not bool(m.all()) for m in masks.values())
    if not pruned:
        return Deployable("dense", dict.fromkeys(BATCHES, model.eval()), "nothing pruned")
    if semi_structured:
        if semi_structured_available(x.device):
            ship, chosen = semi_structured_model(model, masks)
            if chosen:
                return Deployable(
                    "semi_structured", dict.fromkeys(BATCHES, ship), f"2:4 layers {chosen}"
                )
            return Deployable("dense", dict.fromkeys(BATCHES, model.eval()), "no 2:4 layer fits")
        return Deployable(
            "dense",
            dict.fromkeys(BATCHES, model.eval()),
            "N:M runs dense here: 2:4 kernels need a CUDA GPU of compute capability 8.0+",
        )
    models, chosen = {}, {}
    for b in BATCHES:
        models[b], chosen[b] = csr_model(model, masks, batch(x, b))
    if not chosen[BATCHES[-1]] and not chosen[BATCHES[0]]:
        return Deployable("dense", dict.fromkeys(BATCHES, model.eval()), "CSR was not faster")
    return Deployable("csr", models, f"CSR layers by batch size: {chosen}")


def batch(x: Tensor, size: int) -> Tensor:
    """``size`` samples of ``x`` (repeated when ``x`` has fewer), channels-last for images."""
    idx = torch.arange(size, device=x.device) % len(x)
    b = x.index_select(0, idx)
    return b.contiguous(memory_format=torch.channels_last) if b.dim() == 4 else b


def _sync(x: Tensor):
    return torch.cuda.synchronize if x.is_cuda else None


def saved_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save`` of the model's state; 2:4 weights as values + metadata."""
    state = {}
    for k, v in model.state_dict().items():
        parts = [getattr(v, a, None) for a in ("packed", "meta")]
        if any(isinstance(p, Tensor) for p in parts) and type(v) is not Tensor:
            state[k] = [p for p in parts if isinstance(p, Tensor)]
        else:
            state[k] = v
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.save(state, buf)
    return buf.getbuffer().nbytes


def measure(
    deployed: Deployable,
    dense: nn.Module,
    x: Tensor,
    repeats: int = 20,
    budget_ms: float | None = MEASURE_BUDGET_MS,
    timings: dict[int, dict[str, list[float]]] | None = None,
) -> dict[str, Any]:
    """Deploy figures: format, saved bytes, ms of the deployable and the dense model at each
    batch size (interleaved, after 3 warm-up rounds, median of ``repeats``, or of fewer but at
    least :data:`MEASURE_MIN_ROUNDS` where that many rounds would take longer than
    ``budget_ms``), and the speedups.

    The rounds themselves are kept as the summary of their paired log-ratios (estimate,
    standard error, degrees of freedom: ``infer_log_speedup_b1``/``_b256`` and their ``_se``,
    ``_df``, :func:`~sparsity_tune.trial.measure.log_ratio_summary`): what the analysis builds
    each run's speedup interval from. A batch size that ships the dense model has
    :data:`SHIPS_DENSE`: log-ratio exactly 0, error 0, no degrees of freedom: its speedup is 1.0
    by construction, not by measurement (the analysis tests nothing there).

    A substituted kernel (``csr``, ``semi_structured``) that is not faster than the dense model
    at a batch size as a whole is not shipped for it: that batch size gets the dense figures and
    speedup 1.0, and when no batch size keeps it the format is ``dense``. ``deploy_bytes`` is
    that of the model in ``deploy_format`` (for ``csr``: the one of the largest batch size that
    ships CSR); ``deploy_bytes_dense`` that of the dense model it was timed against (in the
    same dtype), so a run carries its own baseline for the bytes as for the times.

    ``timings``: when given, filled with each batch size's rounds, ``{"dense": [...], "ship":
    [...]}`` in ms (``ship`` empty where only the dense model ran): the raw recordings.
    """
    dense = dense.eval()
    models = dict(deployed.models)
    if deployed.format == "semi_structured":
        dtype = next(deployed.models[BATCHES[-1]].parameters()).dtype
        dense = copy.deepcopy(dense).to(dtype)  # like with like: both in half precision
        x = x.to(dtype)
    substituted = deployed.format in ("csr", "semi_structured")
    ms, ms_dense, rounds = {}, {}, {}
    with torch.inference_mode():
        for b in BATCHES:
            xb = batch(x, b)
            ship = models[b]
            if ship is dense or deployed.format == "dense":
                (t_dense,) = interleaved_times(
                    [lambda xb=xb: dense(xb)],
                    repeats,
                    sync=_sync(x),
                    budget_ms=budget_ms,
                    min_repeats=MEASURE_MIN_ROUNDS,
                )
                t_ship: list[float] = []
            else:
                t_dense, t_ship = interleaved_times(
                    [lambda xb=xb: dense(xb), lambda xb=xb, ship=ship: ship(xb)],
                    repeats,
                    sync=_sync(x),
                    budget_ms=budget_ms,
                    min_repeats=MEASURE_MIN_ROUNDS,
                )
            if timings is not None:
                timings[b] = {"dense": list(t_dense), "ship": list(t_ship)}
            ms_dense[b] = statistics.median(t_dense)
            ms[b] = statistics.median(t_ship) if t_ship else ms_dense[b]
            rounds[b] = len(t_dense)
            if t_ship and substituted and ms[b] >= ms_dense[b]:
                models[b], ms[b], t_ship = dense, ms_dense[b], []
            if t_ship:
                rounds[b] = log_ratio_summary(t_dense, t_ship)
            else:
                rounds[b] = SHIPS_DENSE  # exactly 1.0 by construction
    fmt = deployed.format
    shipping = [b for b in BATCHES if models[b] is not dense] or [BATCHES[-1]]
    if substituted and all(models[b] is dense for b in BATCHES):
        fmt = "dense"
    same = {b: models[b] is dense or deployed.format == "dense" for b in BATCHES}
    speedup = {b: 1.0 if same[b] else ms_dense[b] / ms[b] for b in BATCHES}
    dense_bytes = saved_bytes(dense)
    shipped = models[shipping[-1]]
    return {
        M.deploy_format: fmt,
        M.deploy_bytes: dense_bytes if shipped is dense else saved_bytes(shipped),
        M.deploy_bytes_dense: dense_bytes,
        M.infer_ms_b1: ms[1],
        M.infer_ms_b256: ms[256],
        M.infer_ms_dense_b1: ms_dense[1],
        M.infer_ms_dense_b256: ms_dense[256],
        M.infer_speedup_b1: speedup[1],
        M.infer_speedup_b256: speedup[256],
        M.infer_log_speedup_b1: rounds[1][0],
        M.infer_log_speedup_b1_se: rounds[1][1],
        M.infer_log_speedup_b1_df: rounds[1][2],
        M.infer_log_speedup_b256: rounds[256][0],
        M.infer_log_speedup_b256_se: rounds[256][1],
        M.infer_log_speedup_b256_df: rounds[256][2],
    }
