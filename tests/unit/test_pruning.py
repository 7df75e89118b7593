"""Pruning math and mask upkeep: exact counts, ties, scopes, schedules, weights that stay zero."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsity_tune.trial.pruning import (
    apply_masks_,
    compute_masks,
    count_pruned,
    dense_masks,
    layer_sparsity,
    magnitude_scores,
    mask_optimizer_state_,
    random_scores,
    sparsity,
)
from sparsity_tune.trial.schedule import gradual_target, imp_target


def _weights(sizes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in sizes.items()}


def _zeros(m: torch.Tensor) -> int:
    return int((~m).sum())


# ------------------------------------------------------------------------------- exact counts

SIZES = [
    {"a": (1,)},
    {"a": (7,)},
    {"a": (3, 3)},
    {"a": (10, 10), "b": (5,)},
    {"a": (13, 7), "b": (3, 2, 2), "c": (1,)},
    {"a": (300, 100), "b": (100, 10), "c": (4, 1, 5)},
]
TARGETS = [0.0, 0.01, 0.1, 1 / 3, 0.25, 0.5, 0.55, 2 / 3, 0.8, 0.9, 0.95, 0.999, 1.0]


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(str(v) for v in s.values()))
def test_global_prunes_exactly_round_target_times_total(sizes):
    w = _weights(sizes)
    total = sum(t.numel() for t in w.values())
    for target in TARGETS:
        m = compute_masks(magnitude_scores(w), dense_masks(w), target, "global")
        assert count_pruned(m) == round(target * total), target
        assert abs(count_pruned(m) - target * total) <= 0.5  # within half a weight of the target
        assert sparsity(m) == pytest.approx(round(target * total) / total)
        assert {n: t.shape for n, t in m.items()} == {n: t.shape for n, t in w.items()}
        assert all(t.dtype == torch.bool for t in m.values())


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(str(v) for v in s.values()))
def test_layerwise_prunes_round_target_times_n_in_every_layer(sizes):
    w = _weights(sizes)
    for target in TARGETS:
        m = compute_masks(magnitude_scores(w), dense_masks(w), target, "layerwise")
        for name, t in w.items():
            assert _zeros(m[name]) == round(target * t.numel()), (name, target)
        expected = {n: round(target * t.numel()) / t.numel() for n, t in w.items()}
        assert layer_sparsity(m) == expected


def test_fractional_k_rounds_to_nearest_weight():
    w = {"a": torch.arange(1.0, 11.0)}  # 10 weights
    cases = {0.04: 0, 0.06: 1, 0.14: 1, 0.16: 2, 0.33: 3, 0.37: 4, 0.99: 10}
    for target, k in cases.items():
        m = compute_masks(magnitude_scores(w), dense_masks(w), target, "global")
        assert count_pruned(m) == k, target
        assert m["a"].tolist() == [False] * k + [True] * (10 - k)  # the k smallest


# ----------------------------------------------------------------------------------------- ties


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_all_equal_scores_still_give_exactly_k_deterministically(scope):
    for n, target in itertools.product([1, 2, 7, 100, 1001], [0.1, 0.5, 0.7, 0.93]):
        s = {"a": torch.ones(n), "b": torch.full((n, 3), 1.0)}
        m = compute_masks(s, dense_masks(s), target, scope)
        if scope == "global":
            assert count_pruned(m) == round(target * 4 * n), (n, target)
        else:
            assert _zeros(m["a"]) == round(target * n), (n, target)
            assert _zeros(m["b"]) == round(target * 3 * n), (n, target)
        again = compute_masks(s, dense_masks(s), target, scope)
        assert all(torch.equal(m[k], again[k]) for k in m)


def test_ties_are_broken_by_position():
    s = {"a": torch.tensor([1.0, 1, 1, 2, 2, 2, 3, 3])}
    m = compute_masks(s, dense_masks(s), 0.5, "global")["a"]
    assert m.tolist() == [False, False, False, False, True, True, True, True]
    # all equal: the earliest layer, then the lowest flat index, goes first
    s = {"x": torch.zeros(2, 2), "y": torch.zeros(3)}
    m = compute_masks(s, dense_masks(s), 5 / 7, "global")
    assert m["x"].tolist() == [[False, False], [False, False]]
    assert m["y"].tolist() == [False, True, True]


def test_duplicates_straddling_the_threshold():
    scores = torch.tensor([5.0, 0.1, 3.0, 3.0, 0.2, 3.0, 9.0, 3.0, 3.0, 1.0])
    m = compute_masks({"a": scores}, {"a": torch.ones(10, dtype=torch.bool)}, 0.6, "global")["a"]
    # 0.1, 0.2, 1.0 must go; then 3 of the five 3.0s, the earliest ones (indices 2, 3, 5)
    assert sorted((~m).nonzero().squeeze(1).tolist()) == [1, 2, 3, 4, 5, 9]


# -------------------------------------------------------------------------- global vs layerwise


def test_global_takes_low_scoring_layers_first_layerwise_takes_each_layers_share():
    w = {
        "small": torch.tensor([0.01, -0.02, 0.03, -0.04]),  # a layer of small weights
        "big": torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 6.0]]),
    }
    g = compute_masks(magnitude_scores(w), dense_masks(w), 0.5, "global")
    assert g["small"].tolist() == [False] * 4  # all of the small layer ...
    assert g["big"].tolist() == [[False, True, True], [True, True, True]]  # ... then |1.0|
    assert layer_sparsity(g) == {"small": 1.0, "big": 1 / 6}
    lw = compute_masks(magnitude_scores(w), dense_masks(w), 0.5, "layerwise")
    assert lw["small"].tolist() == [False, False, True, True]
    assert lw["big"].tolist() == [[False, False, False], [True, True, True]]
    assert layer_sparsity(lw) == {"small": 0.5, "big": 0.5}
    assert sparsity(g) == sparsity(lw) == 0.5


# ---------------------------------------------------------------------------- masks only shrink


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_targets_are_fractions_of_the_total_and_masks_only_shrink(scope):
    w = _weights({"a": (40, 25), "b": (100,), "c": (7, 3)})
    total = 1000 + 100 + 21
    m1 = compute_masks(magnitude_scores(w), dense_masks(w), 0.5, scope)
    # training moves weights: make the pruned ones the largest now, they must still stay pruned
    w2 = {n: torch.where(m1[n], w[n], torch.full_like(w[n], 100.0)) for n in w}
    m2 = compute_masks(magnitude_scores(w2), m1, 0.75, scope)
    assert sparsity(m2) == pytest.approx(0.75, abs=0.5 * len(w) / total)
    assert sparsity(m2) != pytest.approx(1 - 0.5 * 0.5 * 0.5)  # not 87.5%
    if scope == "global":
        assert count_pruned(m2) == round(0.75 * total)
    else:
        assert all(_zeros(m2[n]) == round(0.75 * t.numel()) for n, t in w.items())
    for n in w:
        assert not (m2[n] & ~m1[n]).any(), "a pruned weight came back"
    # a lower target prunes nothing more and revives nothing
    m3 = compute_masks(magnitude_scores(w2), m2, 0.3, scope)
    assert all(torch.equal(m3[n], m2[n]) for n in w)
    # inputs are not modified in place
    assert count_pruned(dense_masks(w)) == 0
    assert sparsity(m1) == pytest.approx(0.5, abs=0.5 * len(w) / total)


def test_layerwise_keeps_a_layer_already_above_target():
    s = {"a": torch.arange(10.0), "b": torch.arange(10.0)}
    prior = {"a": torch.tensor([False] * 8 + [True] * 2), "b": torch.ones(10, dtype=torch.bool)}
    m = compute_masks(s, prior, 0.5, "layerwise")
    assert torch.equal(m["a"], prior["a"])
    assert _zeros(m["b"]) == 5


def test_already_pruned_weights_count_towards_the_global_target():
    s = {"a": torch.arange(10.0)}
    prior = {"a": torch.tensor([True] * 7 + [False] * 3)}  # the three largest already pruned
    m = compute_masks(s, prior, 0.5, "global")["a"]
    assert m.tolist() == [False, False, True, True, True, True, True, False, False, False]


# ----------------------------------------------------------------------------- magnitude, random


def test_magnitude_prunes_exactly_the_smallest_absolute_values():
    g = torch.Generator().manual_seed(3)
    values = torch.linspace(0.01, 3.0, 300)
    signs = torch.where(torch.rand(300, generator=g) < 0.5, -1.0, 1.0)
    perm = torch.randperm(300, generator=g)
    w = {"a": (values * signs)[perm[:200]].reshape(20, 10), "b": (values * signs)[perm[200:]]}
    m = compute_masks(magnitude_scores(w), dense_masks(w), 0.3, "global")
    pruned = torch.cat([w["a"][~m["a"]], w["b"][~m["b"]]]).abs().sort().values
    assert torch.equal(pruned, values[:90])  # the 90 smallest |w|, signs regardless
    kept = torch.cat([w["a"][m["a"]], w["b"][m["b"]]]).abs()
    assert kept.min() > pruned.max()


def test_magnitude_scores_do_not_track_gradients_or_alias_weights():
    p = nn.Parameter(torch.tensor([-1.0, 2.0]))
    s = magnitude_scores({"p": p})["p"]
    assert not s.requires_grad
    assert s.tolist() == [1.0, 2.0]


def test_random_control_is_exact_reproducible_and_unlike_magnitude():
    # weights from another seed than the scores: randn and rand from one seed are correlated
    w = _weights({"a": (50, 20), "b": (30,)}, seed=123)
    total = 1030

    def masks(seed):
        s = random_scores(w, torch.Generator().manual_seed(seed))
        return compute_masks(s, dense_masks(w), 0.6, "global")

    m0, m0b, m1 = masks(0), masks(0), masks(1)
    assert count_pruned(m0) == count_pruned(m1) == round(0.6 * total)
    assert all(torch.equal(m0[n], m0b[n]) for n in w)
    assert not all(torch.equal(m0[n], m1[n]) for n in w)
    mag = compute_masks(magnitude_scores(w), dense_masks(w), 0.6, "global")
    assert not all(torch.equal(m0[n], mag[n]) for n in w)
    # random pruning does not favour small weights: mean |w| pruned ~ mean |w| kept
    pruned_mean = torch.cat([w[n][~m0[n]] for n in w]).abs().mean()
    kept_mean = torch.cat([w[n][m0[n]] for n in w]).abs().mean()
    assert abs(pruned_mean - kept_mean) < 0.15
    mag_pruned_mean = torch.cat([w[n][~mag[n]] for n in w]).abs().mean()
    assert mag_pruned_mean < 0.6 * kept_mean


# ------------------------------------------------------------------------------------- sparsity


def test_sparsity_helpers_count_from_masks():
    m = {
        "a": torch.tensor([[True, False], [False, False]]),
        "b": torch.tensor([True, True, True, False]),
    }
    assert count_pruned(m) == 4
    assert sparsity(m) == 0.5
    assert layer_sparsity(m) == {"a": 0.75, "b": 0.25}
    assert sparsity({}) == 0.0


# ----------------------------------------------------------- masks along a schedule (math: test_schedule)


def test_imp_rounds_through_compute_masks_prune_rate_of_what_remains():
    w = _weights({"a": (50, 40)})
    m = dense_masks(w)
    for r in range(1, 6):
        before = 2000 - count_pruned(m)
        m = compute_masks(magnitude_scores(w), m, imp_target(r, 0.2), "global")
        assert count_pruned(m) == round(imp_target(r, 0.2) * 2000)
        assert (2000 - count_pruned(m)) == pytest.approx(0.8 * before, abs=1)


@pytest.mark.parametrize("kind", ["cubic", "linear", "exponential"])
def test_a_gradual_run_prunes_monotonically_to_exactly_the_final_target(kind):
    w = _weights({"a": (30, 20), "b": (50,), "c": (7, 7)})
    total = 600 + 50 + 49
    m = dense_masks(w)
    counts = []
    for epoch in range(12):  # prune at the start of every epoch, start 2, end 8
        target = gradual_target(epoch, 2, 8, 0.05, 0.9, kind)
        previous = {n: t.clone() for n, t in m.items()}
        m = compute_masks(magnitude_scores(w), m, target, "global")
        assert count_pruned(m) == round(target * total)
        assert all(not (m[n] & ~previous[n]).any() for n in w)
        counts.append(count_pruned(m))
    assert counts[:2] == [0, 0]
    assert counts[2] == round(0.05 * total)
    assert counts[8:] == [round(0.9 * total)] * 4
    assert counts == sorted(counts)


# --------------------------------------------------------------------------------- bad inputs


def test_compute_masks_rejects_bad_inputs():
    s = {"a": torch.ones(4)}
    m = dense_masks(s)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="target"):
            compute_masks(s, m, bad, "global")
    with pytest.raises(ValueError, match="scope"):
        compute_masks(s, m, 0.5, "per_channel")
    with pytest.raises(ValueError, match="only in masks"):
        compute_masks(s, {"b": torch.ones(4, dtype=torch.bool)}, 0.5, "global")
    with pytest.raises(ValueError, match="shape"):
        compute_masks(s, {"a": torch.ones(2, 2, dtype=torch.bool)}, 0.5, "global")
    with pytest.raises(ValueError, match="bool"):
        compute_masks(s, {"a": torch.ones(4)}, 0.5, "global")
    with pytest.raises(ValueError, match="NaN"):
        compute_masks({"a": torch.tensor([1.0, float("nan"), 2.0, 3.0])}, m, 0.5, "global")


def test_score_and_target_types():
    ints = {"a": torch.tensor([[3, 1], [2, 0]])}
    m = compute_masks(ints, dense_masks(ints), np.float32(0.5), "global")
    assert m["a"].tolist() == [[True, False], [True, False]]
    f64 = {"a": torch.tensor([1e-300, 2e-300, 1.0], dtype=torch.float64)}
    assert compute_masks(f64, dense_masks(f64), 1 / 3, "layerwise")["a"].tolist() == [
        False,
        True,
        True,
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_masks_and_keeps_pruned_weights_zero():
    w = _weights({"a": (64, 32), "b": (100,)})
    w["b"][:50] = 0.5  # ties
    for scope in ("global", "layerwise"):
        cpu = compute_masks(magnitude_scores(w), dense_masks(w), 0.7, scope)
        wc = {n: t.cuda() for n, t in w.items()}
        gpu = compute_masks(magnitude_scores(wc), dense_masks(wc), 0.7, scope)
        assert all(gpu[n].is_cuda and torch.equal(gpu[n].cpu(), cpu[n]) for n in w)
        r_cpu = compute_masks(random_scores(w, torch.Generator().manual_seed(5)), cpu, 0.8, scope)
        r_gpu = compute_masks(random_scores(wc, torch.Generator().manual_seed(5)), gpu, 0.8, scope)
        assert all(torch.equal(r_gpu[n].cpu(), r_cpu[n]) for n in w)
    model = _model().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    params = _prunable(model)
    masks = compute_masks(magnitude_scores(params), dense_masks(params), 0.8, "global")
    x, y = (t.cuda() for t in _task())
    for i in range(20):
        _step(model, opt, x, y, i)
        apply_masks_(params, masks)
        mask_optimizer_state_(opt, params, masks)
        for n, p in params.items():
            assert torch.count_nonzero(p[~masks[n]]) == 0
            assert torch.count_nonzero(opt.state[p]["exp_avg"][~masks[n]]) == 0


def test_full_target_and_empty_mapping():
    s = {"a": torch.randn(5), "b": torch.randn(2, 2)}
    m = compute_masks(s, dense_masks(s), 1.0, "global")
    assert count_pruned(m) == 9
    assert compute_masks({}, {}, 0.5, "global") == {}


def test_a_million_weights_is_fast_and_exact():
    w = _weights({"a": (1000, 784), "b": (300, 700), "c": (10, 100)})
    total = 784_000 + 210_000 + 1000
    start = time.perf_counter()
    m = compute_masks(magnitude_scores(w), dense_masks(w), 0.9, "global")
    m = compute_masks(magnitude_scores(w), m, 0.95, "global")
    elapsed = time.perf_counter() - start
    assert count_pruned(m) == round(0.95 * total)
    assert elapsed < 5.0  # vectorised: well under a second; a Python loop would take minutes


# ---------------------------------------------------------------------------- property tests


@st.composite
def _problem(draw):
    n_layers = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 60)) for _ in range(n_layers)]
    # few distinct integer scores: plenty of ties
    scores = {
        f"l{i}": torch.tensor(
            draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=torch.float32
        )
        for i, n in enumerate(sizes)
    }
    prior = {
        f"l{i}": torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        for i, n in enumerate(sizes)
    }
    if draw(st.booleans()):
        prior = {k: torch.ones_like(v) for k, v in prior.items()}
    target = draw(st.floats(0.0, 1.0, allow_nan=False))
    return scores, prior, target


@settings(max_examples=150, deadline=None)
@given(_problem(), st.sampled_from(["global", "layerwise"]))
def test_property_exact_count_monotone_and_lowest_scores_first(problem, scope):
    scores, prior, target = problem
    m = compute_masks(scores, prior, target, scope)
    groups = [list(scores)] if scope == "global" else [[n] for n in scores]
    for names in groups:
        n_total = sum(scores[n].numel() for n in names)
        prior_zeros = sum(_zeros(prior[n]) for n in names)
        assert sum(_zeros(m[n]) for n in names) == max(round(target * n_total), prior_zeros)
        newly = torch.cat([scores[n][prior[n] & ~m[n]] for n in names])
        kept = torch.cat([scores[n][m[n]] for n in names])
        if newly.numel() and kept.numel():
            assert newly.max() <= kept.min()
    for n in scores:
        assert not (m[n] & ~prior[n]).any()
    again = compute_masks(scores, prior, target, scope)
    assert all(torch.equal(m[n], again[n]) for n in m)


# ----------------------------------------------------------- weights stay exactly zero in training


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is fastest and avoids fighting other jobs for the two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _task(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 20, generator=g)
    teacher = torch.randn(20, 10, generator=g)
    y = (x @ teacher).argmax(1)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))


def _optimizer(kind, model):
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    if kind == "adam_amsgrad":
        return torch.optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)


def _prunable(model):
    return {n: p for n, p in model.named_parameters() if n.endswith("weight")}


def _step(model, opt, x, y, i):
    idx = torch.arange(i * 64, i * 64 + 64) % x.shape[0]
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
    return loss.item()


def _warm_up_and_prune(kind, target=0.8):
    """Train dense a little (so momentum/Adam state is nonzero), then prune by magnitude."""
    x, y = _task()
    model = _model()
    opt = _optimizer(kind, model)
    for i in range(10):
        _step(model, opt, x, y, i)
    params = _prunable(model)
    masks = compute_masks(magnitude_scores(params), dense_masks(params), target, "global")
    return x, y, model, opt, params, masks


@pytest.mark.parametrize("kind", ["sgd", "adam", "adam_amsgrad", "adamw"])
def test_pruned_weights_and_their_state_stay_exactly_zero_over_200_steps(kind):
    x, y, model, opt, params, masks = _warm_up_and_prune(kind)
    apply_masks_(params, masks)
    mask_optimizer_state_(opt, params, masks)
    first = {n: p.detach().clone() for n, p in params.items()}
    losses = []
    for i in range(200):
        losses.append(_step(model, opt, x, y, i))
        apply_masks_(params, masks)
        mask_optimizer_state_(opt, params, masks)
        for n, p in params.items():
            assert torch.count_nonzero(p[~masks[n]]) == 0, f"step {i}: {n} revived"
            state = opt.state[p]
            buffers = [v for v in state.values() if torch.is_tensor(v) and v.shape == p.shape]
            assert buffers, f"{kind}: no elementwise state found for {n}"
            for b in buffers:
                assert torch.count_nonzero(b[~masks[n]]) == 0, f"step {i}: state of {n}"
    assert sparsity(masks) == pytest.approx(0.8, abs=1e-3)
    # training really ran: the kept weights moved and the loss went down
    assert all(not torch.equal(first[n][masks[n]], p[masks[n]]) for n, p in params.items())
    assert sum(losses[-20:]) / 20 < 0.9 * sum(losses[:20]) / 20


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_control_masking_only_before_the_step_lets_weights_come_back(kind):
    x, y, model, opt, params, masks = _warm_up_and_prune(kind)
    revived = 0
    for i in range(20):
        apply_masks_(params, masks)  # the mistake: masks applied before the step, not after
        _step(model, opt, x, y, i)
        revived = max(
            revived, sum(int(torch.count_nonzero(p[~masks[n]])) for n, p in params.items())
        )
    assert revived > 0


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_control_momentum_revives_weights_unless_the_state_is_masked(kind):
    """Even with gradients of pruned weights zeroed, stale momentum/Adam state moves them."""

    def run(mask_state):
        x, y, model, opt, params, masks = _warm_up_and_prune(kind)
        apply_masks_(params, masks)
        if mask_state:
            mask_optimizer_state_(opt, params, masks)
        worst = 0
        for i in range(30):
            idx = torch.arange(i * 64, i * 64 + 64) % x.shape[0]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            for n, p in params.items():
                p.grad.masked_fill_(~masks[n], 0.0)
            opt.step()  # no apply_masks_ after the step: only the state keeps them at zero
            worst = max(
                worst, sum(int(torch.count_nonzero(p[~masks[n]])) for n, p in params.items())
            )
        return worst

    assert run(mask_state=False) > 0
    assert run(mask_state=True) == 0


def test_mask_optimizer_state_before_any_step_and_leaves_step_count():
    model = _model()
    opt = _optimizer("adam", model)
    params = _prunable(model)
    masks = compute_masks(magnitude_scores(params), dense_masks(params), 0.5, "global")
    mask_optimizer_state_(opt, params, masks)  # no state yet: nothing to do, no error
    x, y = _task()
    _step(model, opt, x, y, 0)
    mask_optimizer_state_(opt, params, masks)
    for n, p in params.items():
        assert float(opt.state[p]["step"]) == 1.0
        assert torch.count_nonzero(opt.state[p]["exp_avg"][~masks[n]]) == 0
        assert torch.count_nonzero(opt.state[p]["exp_avg"][masks[n]]) > 0


def test_apply_masks_is_in_place_on_parameters():
    p = nn.Parameter(torch.tensor([1.0, 2.0, -3.0, -4.0]))
    data_ptr = p.data_ptr()
    apply_masks_({"w": p}, {"w": torch.tensor([True, False, True, False])})
    assert p.data_ptr() == data_ptr
    assert p.tolist() == [1.0, 0.0, -3.0, 0.0]
    assert p.requires_grad and p.grad_fn is None
    assert p.to_sparse().values().tolist() == [1.0, -3.0]  # -0.0 counts as a zero
    with pytest.raises(KeyError, match="nope"):
        apply_masks_({"w": p}, {"nope": torch.ones(4, dtype=torch.bool)})


def test_a_mask_modified_in_place_is_not_served_stale():
    p = torch.ones(4)
    m = torch.ones(4, dtype=torch.bool)
    apply_masks_({"w": p}, {"w": m})
    assert p.tolist() == [1.0] * 4
    m[1] = False  # a caller edits the same mask object
    apply_masks_({"w": p}, {"w": m})
    assert p.tolist() == [1.0, 0.0, 1.0, 1.0]
    half = torch.ones(4, dtype=torch.float16)
    apply_masks_({"w": half}, {"w": m})  # another dtype gets its own copy
    assert half.dtype == torch.float16 and half.tolist() == [1.0, 0.0, 1.0, 1.0]
