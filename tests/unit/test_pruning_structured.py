"""Structured pruning: the unit structure of every model, the mask contract (a masked network
computes what the physically smaller one does), and the choice of units: never a layer emptied,
never an output unit, as close to the target as whole units allow, global and layer-wise."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsity_tune.trial.config import ModelConfig
from sparsity_tune.trial.models import build_model, prunable_parameters
from sparsity_tune.trial.pruning import count_pruned, dense_masks, magnitude_scores
from sparsity_tune.trial.units import (
    UnitLayout,
    alive_units,
    consumer_slices,
    mean_unit_scores,
    random_unit_scores,
    removed_units,
    structured_masks,
    unit_groups,
    unit_masks,
    unit_parameters,
)

MODELS = [
    (ModelConfig(arch="mlp", hidden=[7, 5, 3]), (1, 40)),
    (ModelConfig(arch="cnn", depth=3, width=6), (1, 40)),
    (ModelConfig(arch="cnn", depth=2, width=4), (1, 28, 28)),
    (ModelConfig(arch="cnn", depth=2, width=4), (3, 32, 32)),
    (ModelConfig(preset="lenet300_100"), (1, 28, 28)),
    (ModelConfig(preset="lenet5"), (1, 28, 28)),
    (ModelConfig(preset="conv2"), (3, 32, 32)),
    (ModelConfig(preset="conv4"), (3, 32, 32)),
    (ModelConfig(preset="conv6"), (3, 32, 32)),
    (ModelConfig(preset="mnist1d_cnn"), (1, 40)),
]
IDS = [f"{c.preset or c.arch}-{'x'.join(map(str, s))}" for c, s in MODELS]


def _compact(model: nn.Sequential, groups, alive) -> nn.Sequential:
    """The physically smaller network: removed units' rows, biases and consumer slices cut out.
    Written here from the documented structure alone, independently of the masks."""
    small = copy.deepcopy(model)
    for g, keep in zip(groups, alive, strict=True):
        idx = keep.nonzero().squeeze(1)
        prod, cons = small.get_submodule(g.producer_module), small.get_submodule(g.consumer_module)
        prod.weight = nn.Parameter(prod.weight.detach()[idx].clone())
        if prod.bias is not None:
            prod.bias = nn.Parameter(prod.bias.detach()[idx].clone())
        w = cons.weight.detach()
        if isinstance(cons, nn.Linear):
            cons.weight = nn.Parameter(consumer_slices(w, g)[:, idx].reshape(w.shape[0], -1))
            cons.in_features = cons.weight.shape[1]
        else:
            cons.weight = nn.Parameter(w[:, idx].clone())
            cons.in_channels = len(idx)
    return small


def _masked(model: nn.Module, masks) -> nn.Module:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    return out


def _random_alive(groups, gen: torch.Generator) -> list[torch.Tensor]:
    alive = []
    for g in groups:
        keep = torch.rand(g.units, generator=gen) < 0.5
        keep[torch.randint(g.units, (1,), generator=gen)] = True  # a layer keeps a unit
        alive.append(keep)
    return alive


@pytest.mark.parametrize(("cfg", "shape"), MODELS, ids=IDS)
def test_every_model_has_a_unit_chain_and_masked_equals_compacted(cfg, shape):
    torch.manual_seed(0)
    model = build_model(cfg, shape, 10).eval()
    groups = unit_groups(model)
    layers = [
        n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)
    ]
    assert [g.producer_module for g in groups] == layers[:-1]  # the output layer is no producer
    assert [g.consumer_module for g in groups] == layers[1:]
    params = unit_parameters(model, groups)
    assert list(params) == list(prunable_parameters(model, prune_output=True))
    for g in groups:
        prod, cons = model.get_parameter(g.producer), model.get_parameter(g.consumer)
        assert prod.shape[0] == g.units
        assert cons.numel() == cons.shape[0] * g.units * g.per_unit
    masks = unit_masks(
        dense_masks(params), groups, _random_alive(groups, torch.Generator().manual_seed(1))
    )
    alive = alive_units(masks, groups)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = _masked(model, masks)(x)
        got = _compact(model, groups, alive)(x)
    assert got.shape == expected.shape == (3, 10)
    assert (got - expected).abs().max() <= 1e-5
    with torch.no_grad():  # and the masks did remove something that matters
        assert not torch.allclose(model(x), expected)


def test_flatten_slices_are_channel_blocks():
    """conv(4 channels, 5 positions) -> Flatten -> Linear: unit u owns columns 5u .. 5u+4."""
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(20, 3))
    (g,) = unit_groups(model)
    assert (g.producer, g.consumer, g.units, g.per_unit, g.bias) == (
        "0.weight",
        "3.weight",
        4,
        5,
        "0.bias",
    )
    masks = unit_masks(
        dense_masks(unit_parameters(model, [g])), [g], [torch.tensor([True, False, True, True])]
    )
    assert masks["3.weight"].all(dim=0).tolist() == [True] * 5 + [False] * 5 + [True] * 10
    assert masks["0.weight"][:, 0, :].all(dim=1).tolist() == [True, False, True, True]
    assert removed_units(masks, g).tolist() == [False, True, False, False]


def test_modules_that_mix_channels_are_refused_by_name():
    bn = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * 6, 2))
    with pytest.raises(ValueError, match=r"'1' \(BatchNorm1d\)"):
        unit_groups(bn)
    with pytest.raises(ValueError, match=r"nn\.Sequential"):
        unit_groups(nn.Linear(3, 2))


def test_masks_of_another_granularity_are_refused():
    model = build_model(ModelConfig(arch="mlp", hidden=[4]), (1, 6), 2)
    groups = unit_groups(model)
    masks = dense_masks(unit_parameters(model, groups))
    masks["fc1.weight"][0, 0] = False  # a single weight: no unit
    scores = random_unit_scores(groups, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="not unit-structured"):
        structured_masks(masks, groups, scores, 0.5, "global")


# ------------------------------------------------------------------------------------- scores


def test_magnitude_unit_score_is_mean_abs_over_row_and_consumer_slice():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -3.0], [0.5, 0.5]]))
        model[2].weight.copy_(torch.tensor([[2.0, 1.0], [0.0, -1.0], [-4.0, 1.0]]))
    groups = unit_groups(model)
    params = unit_parameters(model, groups)
    masks = dense_masks(params)
    s = mean_unit_scores(magnitude_scores(params), masks, groups)["0.weight"]
    assert s.tolist() == pytest.approx([(1 + 3 + 2 + 0 + 4) / 5, (0.5 + 0.5 + 1 + 1 + 1) / 5])
    masks["2.weight"][0] = False  # pretend an output row were gone: means over what is kept
    s = mean_unit_scores(magnitude_scores(params), masks, groups)["0.weight"]
    assert s.tolist() == pytest.approx([(1 + 3 + 0 + 4) / 4, (0.5 + 0.5 + 1 + 1) / 4])


def test_random_unit_scores_are_one_draw_per_unit_and_reproducible():
    model = build_model(ModelConfig(arch="mlp", hidden=[5, 3]), (1, 4), 2)
    groups = unit_groups(model)
    a = random_unit_scores(groups, torch.Generator().manual_seed(7))
    b = random_unit_scores(groups, torch.Generator().manual_seed(7))
    assert [v.shape[0] for v in a.values()] == [5, 3]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------- choice


@st.composite
def _problem(draw):
    if draw(st.booleans()):
        cfg = ModelConfig(
            arch="mlp", hidden=draw(st.lists(st.integers(1, 7), min_size=1, max_size=3))
        )
        shape = (1, draw(st.integers(1, 6)))
    else:
        cfg = ModelConfig(arch="cnn", depth=draw(st.integers(1, 3)), width=draw(st.integers(1, 6)))
        shape = (1, draw(st.integers(2, 9)))
    model = build_model(cfg, shape, draw(st.integers(2, 4)))
    groups = unit_groups(model)
    scores = {  # few distinct values: plenty of ties
        g.producer: torch.tensor(
            draw(st.lists(st.integers(0, 3), min_size=g.units, max_size=g.units)),
            dtype=torch.float64,
        )
        for g in groups
    }
    targets = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=2)))
    return groups, dense_masks(unit_parameters(model, groups)), scores, targets


def _distance(masks, groups, alive, k: int) -> int:
    return abs(count_pruned(unit_masks(masks, groups, alive)) - k)


def _check_contract(masks, groups, out_name: str) -> list[torch.Tensor]:
    """Masks are exactly the unit pattern of their removed units; every layer keeps a unit; the
    output layer loses columns only (its rows, the classes, all stay)."""
    alive = alive_units(masks, groups)
    rebuilt = unit_masks(dense_masks(masks), groups, alive)
    assert all(torch.equal(masks[n], rebuilt[n]) for n in masks)
    assert all(int(a.sum()) >= 1 for a in alive)
    out = consumer_slices(masks[out_name], groups[-1])
    assert torch.equal(out.all(dim=2).all(dim=0), alive[-1])
    assert out.any(dim=(1, 2)).all()
    return alive


@settings(max_examples=120, deadline=None)
@given(_problem())
def test_property_global_is_as_close_as_whole_units_allow(problem):
    groups, dense, scores, targets = problem
    out_name = groups[-1].consumer
    masks = dense
    for target in targets:  # one event, or two as a gradual schedule would
        before = masks
        masks = structured_masks(before, groups, scores, target, "global")
        assert all(not (masks[n] & ~before[n]).any() for n in masks)  # masks only shrink
        alive = _check_contract(masks, groups, out_name)
        was = alive_units(before, groups)
        k = round(target * sum(m.numel() for m in masks.values()))
        d = _distance(dense, groups, alive, k)
        for gi, a in enumerate(alive):
            for u in range(len(a)):
                other = [x.clone() for x in alive]
                if a[u] and int(a.sum()) >= 2:  # one more unit removed
                    other[gi][u] = False
                elif not a[u] and was[gi][u]:  # a unit of this event restored
                    other[gi][u] = True
                else:
                    continue
                assert _distance(dense, groups, other, k) >= d, (gi, u, d)
        layout = UnitLayout(groups, {n: tuple(m.shape) for n, m in masks.items()})
        lo = min(k, layout.max_removed()) - layout.tolerance("global")
        assert lo <= count_pruned(masks) <= k + layout.tolerance("global")


def _half_up(x: int, n: int, d: int) -> int:
    return (2 * x * n + d) // (2 * d)


@settings(max_examples=120, deadline=None)
@given(_problem())
def test_property_layerwise_removes_one_fraction_of_every_layer_lowest_scores_first(problem):
    groups, dense, scores, targets = problem
    target = targets[-1]
    masks = structured_masks(dense, groups, scores, target, "layerwise")
    alive = _check_contract(masks, groups, groups[-1].consumer)
    removed = [g.units - int(a.sum()) for g, a in zip(groups, alive, strict=True)]
    n = [g.units for g in groups]
    k = round(target * sum(m.numel() for m in masks.values()))
    # Every candidate fraction f = j / n_h, by brute force over real masks.
    candidates = {
        tuple(min(_half_up(j, n_g, n_h), n_g - 1) for n_g in n) for n_h in n for j in range(n_h)
    }
    assert tuple(removed) in candidates  # one common fraction for every layer

    def dist(ks):
        kept = [torch.arange(n_g) >= k_g for n_g, k_g in zip(n, ks, strict=True)]
        return _distance(dense, groups, kept, k)

    assert dist(removed) == min(dist(c) for c in candidates)
    for g, a in zip(groups, alive, strict=True):  # within a layer, the lowest scores go
        s = scores[g.producer]
        gone, kept = s[~a], s[a]
        if gone.numel():
            assert gone.max() <= kept.min()


def test_equal_units_go_in_score_order():
    """One hidden layer: every unit costs the same, so exactly the lowest-scored go."""
    model = build_model(ModelConfig(arch="mlp", hidden=[10]), (1, 8), 2)  # unit: 8 + 2 weights
    groups = unit_groups(model)
    dense = dense_masks(unit_parameters(model, groups))
    scores = {"fc1.weight": torch.tensor([5.0, 1, 9, 3, 7, 0, 8, 2, 6, 4])}
    masks = structured_masks(dense, groups, scores, 0.41, "global")  # 41 of 100: 4 units
    assert alive_units(masks, groups)[0].tolist() == [
        True, False, True, False, True, False, True, False, True, True,
    ]  # fmt: skip
    assert count_pruned(masks) == 40
    all_but_one = structured_masks(dense, groups, scores, 0.999, "global")
    assert alive_units(all_but_one, groups)[0].tolist() == [False, False, True] + [False] * 7


def test_a_big_unit_that_would_overshoot_is_skipped_for_a_smaller_one():
    """The lowest-scored unit (51 weights) is skipped when removing it lands further from the
    target (6 weights) than keeping it; two small units (3 weights each) go instead."""
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 50), nn.ReLU(), nn.Linear(50, 1))
    groups = unit_groups(model)  # unit of layer 0: 1 + 50 weights; of layer 2: 2 + 1
    dense = dense_masks(unit_parameters(model, groups))
    scores = {"0.weight": torch.tensor([0.0, 5.0]), "2.weight": torch.linspace(1, 2, 50)}
    total = sum(m.numel() for m in dense.values())  # 2 + 100 + 50 = 152
    masks = structured_masks(dense, groups, scores, 6 / total, "global")
    alive = alive_units(masks, groups)
    assert alive[0].all() and int((~alive[1]).sum()) == 2 and count_pruned(masks) == 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_masks_for_nm_and_structured():
    from sparsity_tune.trial.pruning import nm_masks

    model = build_model(ModelConfig(arch="cnn", depth=2, width=8), (1, 40), 10)
    groups = unit_groups(model)
    params = {n: p.detach() for n, p in unit_parameters(model, groups).items()}
    on_gpu = {n: p.cuda() for n, p in params.items()}
    for scope in ("global", "layerwise"):
        cpu = structured_masks(
            dense_masks(params),
            groups,
            mean_unit_scores(magnitude_scores(params), dense_masks(params), groups),
            0.6,
            scope,
        )
        gpu = structured_masks(
            dense_masks(on_gpu),
            groups,
            mean_unit_scores(magnitude_scores(on_gpu), dense_masks(on_gpu), groups),
            0.6,
            scope,
        )
        assert all(gpu[n].is_cuda and torch.equal(gpu[n].cpu(), cpu[n]) for n in cpu)
    cpu = nm_masks(magnitude_scores(params), dense_masks(params), 2, 4)
    gpu = nm_masks(magnitude_scores(on_gpu), dense_masks(on_gpu), 2, 4)
    assert all(gpu[n].is_cuda and torch.equal(gpu[n].cpu(), cpu[n]) for n in cpu)
