"""SNIP, GraSP and SynFlow against a direct computation of their formulas on a small network,
their iterative form, and their data needs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.granularity import Unstructured
from sparsity_tune.trial.method import PruneContext, event_targets, prune_event
from sparsity_tune.trial.pruning import count_pruned, dense_masks
from sparsity_tune.trial.saliency import (
    GRASP_TEMPERATURE,
    Grasp,
    Snip,
    SynFlow,
    grasp_scores,
    snip_scores,
    synflow_scores,
)

IN, HID, OUT = 3, 4, 2


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(IN, HID), nn.ReLU(), nn.Linear(HID, OUT)).double()
    return net


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(5, IN, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])


def context(net: nn.Module, masks=None, **cfg) -> PruneContext:
    params = {"0.weight": net[0].weight, "2.weight": net[2].weight}
    x, y = data()
    return PruneContext(
        cfg=trial_config({}, {f"pruning.{k}": v for k, v in cfg.items()}).pruning,
        model=net,
        params=params,
        masks=masks or dense_masks(params),
        loss=F.cross_entropy,
        batches=lambda size, n: itertools.islice(itertools.repeat((x, y)), n),
        input_shape=(IN,),
        optimizer=None,
        step=0,
        epoch=0,
        generator=torch.Generator().manual_seed(0),
    )


def flat_loss(net: nn.Module, temperature: float = 1.0):
    """The loss as a function of the two weight matrices, flattened (for a Hessian)."""
    x, y = data()
    b1, b2 = net[0].bias.detach(), net[2].bias.detach()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w1 = theta[: HID * IN].view(HID, IN)
        w2 = theta[HID * IN :].view(OUT, HID)
        logits = torch.relu(x @ w1.T + b1) @ w2.T + b2
        return F.cross_entropy(logits / temperature, y)

    theta = torch.cat([net[0].weight.detach().reshape(-1), net[2].weight.detach().reshape(-1)])
    return loss, theta


def split(v: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"0.weight": v[: HID * IN].view(HID, IN), "2.weight": v[HID * IN :].view(OUT, HID)}


def test_snip_is_abs_gradient_times_weight_summed_over_batches():
    net = small_net()
    loss, theta = flat_loss(net)
    x, y = data()
    # by hand: dL/dlogits = (softmax - onehot) / B, then back through the ReLU
    pre = x @ net[0].weight.detach().T + net[0].bias.detach()
    h = torch.relu(pre)
    logits = h @ net[2].weight.detach().T + net[2].bias.detach()
    d = (logits.softmax(1) - F.one_hot(y, OUT)) / len(y)
    g2 = d.T @ h
    g1 = ((d @ net[2].weight.detach()) * (pre > 0)).T @ x
    got = snip_scores(context(net, score_batches=3))
    torch.testing.assert_close(got["0.weight"], (3 * g1 * net[0].weight.detach()).abs())
    torch.testing.assert_close(got["2.weight"], (3 * g2 * net[2].weight.detach()).abs())
    # the hand-made gradient is the loss's (so the check above tests the formula, not autograd)
    torch.testing.assert_close(
        torch.func.grad(loss)(theta), torch.cat([g1.reshape(-1), g2.reshape(-1)])
    )


def test_grasp_is_minus_the_papers_score_theta_times_hessian_gradient():
    net = small_net()
    loss, theta = flat_loss(net, GRASP_TEMPERATURE)
    g = torch.func.grad(loss)(theta)
    hessian = torch.autograd.functional.hessian(loss, theta)
    paper = -(hessian @ g) * theta  # S = -(Hg) ⊙ θ, the highest removed first
    got = grasp_scores(context(net))
    for name, want in split(-paper).items():  # lowest first here: -S
        torch.testing.assert_close(got[name], want)
    assert float(paper.abs().max()) > 0  # a formula that can fail


def test_synflow_is_theta_times_path_flow_gradient_of_the_absolute_network():
    net = small_net()
    a1, a2 = net[0].weight.detach().abs(), net[2].weight.detach().abs()
    # R = 1ᵀ|W2||W1|1: dR/dW1[i,j] = Σ_k |W2[k,i]|, dR/dW2[k,i] = Σ_j |W1[i,j]|
    want1 = a1 * a2.sum(0)[:, None]
    want2 = a2 * a1.sum(1)[None, :]
    got = synflow_scores(context(net))
    torch.testing.assert_close(got["0.weight"], want1)
    torch.testing.assert_close(got["2.weight"], want2)
    # masked: the flow through a pruned weight is gone
    masks = dense_masks({"0.weight": a1, "2.weight": a2})
    masks["2.weight"][:, 0] = False  # hidden unit 0 reaches no output
    got = synflow_scores(context(net, masks))
    assert torch.all(got["0.weight"][0] == 0) and torch.all(got["2.weight"][:, 0] == 0)
    torch.testing.assert_close(
        got["0.weight"][1:], (a1 * (a2 * masks["2.weight"]).sum(0)[:, None])[1:]
    )
    assert torch.equal(net[2].weight.detach().abs(), a2)  # the run's model is untouched


def test_synflow_flows_through_weights_that_are_not_pruned():
    """The output layer is usually not prunable: its |W| still carries the flow."""
    net = small_net()
    ctx = context(net)
    ctx.params = {"0.weight": net[0].weight}
    ctx.masks = {"0.weight": torch.ones(HID, IN, dtype=torch.bool)}
    a1, a2 = net[0].weight.detach().abs(), net[2].weight.detach().abs()
    got = synflow_scores(ctx)
    torch.testing.assert_close(got["0.weight"], a1 * a2.sum(0)[:, None])


def test_event_targets_decay_the_density_geometrically_and_end_on_the_target():
    assert event_targets(0.9, 1) == [0.9]
    ts = event_targets(0.99, 100)
    assert len(ts) == 100 and ts[-1] == 0.99
    assert ts[0] == pytest.approx(1 - 0.01**0.01)
    assert ts[49] == pytest.approx(0.9)  # half the passes: density 0.01**0.5 = 0.1
    assert ts == sorted(ts)


@pytest.mark.parametrize("score", [Snip(), Grasp(), SynFlow()])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_each_score_prunes_exactly_the_target_count(score, scope):
    net = small_net()
    ctx = context(net, scope=scope, synflow_iterations=10, score="synflow")
    gran = Unstructured(ctx.cfg)
    gran.bind(net, dict(ctx.params))
    masks = prune_event(gran, dense_masks(ctx.params), 0.5, score, ctx)
    if scope == "global":
        assert count_pruned(masks) == round(0.5 * (HID * IN + OUT * HID))
    else:
        assert [count_pruned({n: m}) for n, m in masks.items()] == [6, 4]


def test_iterative_synflow_reprunes_from_the_masked_network():
    """With 10 passes, each pass scores the network under the previous pass's mask: the final
    mask equals doing those passes by hand."""
    net = small_net()
    ctx = context(net, synflow_iterations=10)
    gran = Unstructured(ctx.cfg)
    gran.bind(net, dict(ctx.params))
    got = prune_event(gran, dense_masks(ctx.params), 0.75, SynFlow(), ctx)
    masks = dense_masks(ctx.params)
    for t in event_targets(0.75, 10):
        ctx.masks = masks
        from sparsity_tune.trial.pruning import compute_masks

        masks = compute_masks(synflow_scores(ctx), masks, t, "global")
    assert all(torch.equal(got[n], masks[n]) for n in masks)
    one_shot = prune_event(gran, dense_masks(ctx.params), 0.75, SynFlow(), context(net))
    assert count_pruned(one_shot) == count_pruned(got) == round(0.75 * 20)


def test_the_trainer_hands_scores_the_configured_batches(small_config):
    from sparsity_tune.trial.trainer import Trainer

    cfg = small_config(**{"pruning.score_batch_size": 7, "pruning.score_batches": 3})
    trainer = Trainer(cfg)
    batches = list(trainer.prune_context().batches(7, 3))
    assert [len(y) for _, y in batches] == [7, 7, 7]
    again = list(trainer.prune_context().batches(7, 3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize("score", ["snip", "grasp", "synflow"])
def test_same_seed_same_masks_and_the_batch_order_untouched(small_config, score):
    from sparsity_tune.trial.trainer import Trainer

    settings = {
        "pruning.method": "one_shot",
        "pruning.score": score,
        "pruning.final_sparsity": 0.8,
        "pruning.synflow_iterations": 5,
        "train.epochs": 1,
    }
    a, b = Trainer(small_config(**settings)), Trainer(small_config(**settings))
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    dense = Trainer(small_config(**{"train.epochs": 1}))
    assert torch.equal(a.batch_gen.get_state(), dense.batch_gen.get_state())
    assert count_pruned(a.masks) == round(0.8 * sum(m.numel() for m in a.masks.values()))
