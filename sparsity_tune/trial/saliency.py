"""Pruning-at-initialisation scores: ``snip``, ``grasp``, ``synflow`` (``pruning.score``).

Each ranks weights by a saliency computed from the network as pruned so far (the masks in the
event's :class:`~sparsity_tune.trial.method.PruneContext` are applied to a copy of the model, so
the run's weights, gradients and RNG streams are untouched); lower scores are pruned first, as
for every score. Their formulas follow the reference implementation of all three side by side,
Synaptic-Flow (ganguli-lab/Synaptic-Flow, ``Pruners/pruners.py``); the per-score normalisation
there (dividing by a positive sum) does not change a ranking and is left out. Units
(``granularity: structured``) get the mean element score over their kept weights, as magnitude
does (:meth:`Score.units <sparsity_tune.trial.scores.Score.units>`).

Data needs are config keys: ``pruning.score_batch_size`` (default 100: SNIP's MNIST batch, and
GraSP's 10 samples per class for the 10 classes of every dataset here) and
``pruning.score_batches`` (default 1, both papers); SynFlow needs no data, and
``pruning.synflow_iterations`` (default 100, its paper) passes per event; these keys are
declared here (:class:`ScoreDataKeys`, :class:`SynFlowKeys`) and collected into the ``pruning``
section by the registry. torch is imported on first use, so configs validate without it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, Field

from sparsity_tune.keys import MAX_COUNT
from sparsity_tune.trial.scores import Score, ScoringMemory

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from sparsity_tune.trial.config import PruningConfig
    from sparsity_tune.trial.method import PruneContext

#: GraSP divides the logits by this temperature in both gradient passes (alecwangcq/GraSP and
#: Synaptic-Flow use 200), which keeps the Hessian-gradient product away from saturated softmax.
GRASP_TEMPERATURE = 200.0


class ScoreDataKeys(BaseModel):
    """``pruning.*`` keys of the scores that read batches (``snip``, ``grasp``)."""

    score_batch_size: int = Field(
        100, ge=1, le=MAX_COUNT, description="snip, grasp: samples per scoring batch"
    )
    score_batches: int = Field(1, ge=1, le=10_000, description="snip, grasp: scoring batches")


class SynFlowKeys(BaseModel):
    """``pruning.*`` keys of ``synflow`` (data-free: no batch keys)."""

    synflow_iterations: int = Field(
        100, ge=1, le=10_000, description="synflow: score-and-prune passes per pruning event"
    )


def _need(ctx: PruneContext | None, name: str) -> PruneContext:
    if ctx is None:
        raise ValueError(f"score {name!r} is data-driven and needs the event's PruneContext")
    return ctx


def masked_copy(
    ctx: PruneContext, dtype: torch.dtype | None = None
) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """A copy of the model in eval mode with the masks applied (and cast to ``dtype``), and its
    parameters named as ``ctx.params``."""
    import torch

    model = copy.deepcopy(ctx.model).eval()
    if dtype is not None:
        model = model.to(dtype)
    named = dict(model.named_parameters())
    params = {n: named[n] for n in ctx.params}
    with torch.no_grad():
        for n, p in params.items():
            p.mul_(ctx.masks[n].to(p.dtype))
    return model, params


def snip_scores(ctx: PruneContext) -> dict[str, Tensor]:
    """SNIP (Lee et al. 2019, "SNIP: single-shot network pruning based on connection
    sensitivity"): ``|g ⊙ θ|``, ``g`` the gradient of the loss summed over
    ``pruning.score_batches`` batches (Synaptic-Flow's ``SNIP.score``; the gradient with respect
    to a multiplicative mask at 1 is ``g ⊙ θ``)."""
    import torch

    model, params = masked_copy(ctx)
    names = list(params)
    grads = [torch.zeros_like(params[n]) for n in names]
    for xb, yb in ctx.batches(ctx.cfg.score_batch_size, ctx.cfg.score_batches):
        loss = ctx.loss(model(xb), yb)
        for acc, g in zip(
            grads, torch.autograd.grad(loss, [params[n] for n in names]), strict=True
        ):
            acc += g
    return {n: (g * params[n]).detach().abs() for n, g in zip(names, grads, strict=True)}


def grasp_scores(ctx: PruneContext) -> dict[str, Tensor]:
    """GraSP (Wang et al. 2020, "Picking winning tickets before training by preserving gradient
    flow"): the paper removes the weights of highest ``S = -θ ⊙ Hg`` (``H`` the Hessian, ``g``
    the gradient of the loss at temperature :data:`GRASP_TEMPERATURE`, summed over batches);
    lowest-first here, so the score is ``-S = θ ⊙ Hg``, Synaptic-Flow's ``GraSP.score``. ``Hg``
    is one Hessian-vector product: the gradient of ``stop_grad(g) · g``."""
    import torch

    model, params = masked_copy(ctx)
    names = list(params)
    plist = [params[n] for n in names]
    batches = list(ctx.batches(ctx.cfg.score_batch_size, ctx.cfg.score_batches))
    stopped = [torch.zeros_like(p) for p in plist]
    for xb, yb in batches:
        loss = ctx.loss(model(xb) / GRASP_TEMPERATURE, yb)
        for acc, g in zip(stopped, torch.autograd.grad(loss, plist), strict=True):
            acc += g
    hg = [torch.zeros_like(p) for p in plist]
    for xb, yb in batches:
        loss = ctx.loss(model(xb) / GRASP_TEMPERATURE, yb)
        grads = torch.autograd.grad(loss, plist, create_graph=True)
        dot = sum((s * g).sum() for s, g in zip(stopped, grads, strict=True))
        for acc, h in zip(hg, torch.autograd.grad(dot, plist), strict=True):
            acc += h
    return {n: (params[n] * h).detach() for n, h in zip(names, hg, strict=True)}


def synflow_scores(ctx: PruneContext) -> dict[str, Tensor]:
    """SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
    conserving synaptic flow"): ``|θ ⊙ ∂R/∂θ|`` with ``R = 1ᵀ(∏ |W_l|)1``, the network with
    every weight replaced by its absolute value fed an all-ones input, in float64 (the products
    overflow float32 in deep nets). As in the paper's ``R``, biases are set to zero
    (Synaptic-Flow's ``SynFlow.score`` takes their absolute value instead); ReLUs and max-pools
    pass the all-positive signals linearly."""
    import torch

    model, params = masked_copy(ctx, torch.float64)
    with torch.no_grad():
        for p in model.parameters():  # weights (pruned or not) |w|; biases (1-D) zero
            p.abs_() if p.dim() > 1 else p.zero_()
    x = torch.ones(
        (1, *ctx.input_shape), dtype=torch.float64, device=next(iter(params.values())).device
    )
    total = model(x).sum()
    grads = torch.autograd.grad(total, list(params.values()))
    return {n: (g * params[n]).detach().abs() for n, g in zip(params, grads, strict=True)}


class _Saliency(Score):
    data_driven: ClassVar[bool] = True
    config_keys: ClassVar[type[BaseModel]] = ScoreDataKeys

    def elements(
        self,
        weights: Mapping[str, Tensor],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        return self._scores(_need(ctx, self.name))

    def _scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        raise NotImplementedError


class Snip(_Saliency):
    """``snip``: see :func:`snip_scores`."""

    name: ClassVar[str] = "snip"

    @classmethod
    def scoring_memory(cls, cfg: PruningConfig) -> ScoringMemory:
        """The masked copy; the gradient accumulators and one batch's gradients; one batch's
        graph; a layer's float mask, then its ``g ⊙ θ`` before the absolute value."""
        b = cfg.score_batch_size
        return ScoringMemory(
            model_copies=1, weight_buffers=2, graph_samples=b, held_samples=b, layer_temporaries=1
        )

    def _scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        return snip_scores(ctx)


class Grasp(_Saliency):
    """``grasp``: see :func:`grasp_scores`."""

    name: ClassVar[str] = "grasp"

    @classmethod
    def scoring_memory(cls, cfg: PruningConfig) -> ScoringMemory:
        """The masked copy; the stopped gradient, ``Hg``, the batch's gradients (kept in the
        graph) and its Hessian-vector product; a double-backward graph (two of a batch's); every
        scoring batch, gathered up front; two layer temporaries (the float mask, then the double
        backward's own: measured, a 40-2048-2048-10 MLP's peak RSS)."""
        b = cfg.score_batch_size
        return ScoringMemory(
            model_copies=1,
            weight_buffers=4,
            graph_samples=2 * b,
            held_samples=b * cfg.score_batches,
            layer_temporaries=2,
        )

    def _scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        return grasp_scores(ctx)


class SynFlow(_Saliency):
    """``synflow``: see :func:`synflow_scores`; ``pruning.synflow_iterations`` passes per event
    (100, the paper's; 1 is the one-shot form), the density decaying geometrically
    (:func:`~sparsity_tune.trial.method.event_targets`)."""

    name: ClassVar[str] = "synflow"
    config_keys: ClassVar[type[BaseModel]] = SynFlowKeys

    @classmethod
    def iterations(cls, cfg: PruningConfig) -> int:
        return cfg.synflow_iterations

    @classmethod
    def scoring_memory(cls, cfg: PruningConfig) -> ScoringMemory:
        """The masked copy in float64; its gradients and the scores, both float64 (the scores
        one float32 buffer more than the estimate counts); one all-ones sample in float64; a
        layer's float64 mask, then its ``g ⊙ θ`` before the absolute value."""
        return ScoringMemory(
            model_copies=2, weight_buffers=3, graph_samples=2, held_samples=0, layer_temporaries=2
        )

    def _scores(self, ctx: PruneContext) -> dict[str, Tensor]:
        return synflow_scores(ctx)
