"""pruning.control: shuffle_layer keeps each layer's density, invert keeps the lowest-scored
weights, reinit keeps the mask with fresh weights (and is IMP's rewind: reinit)."""

from __future__ import annotations

import pytest
import torch

from sparsity_tune.trial.controls import Inverted, shuffle_layer
from sparsity_tune.trial.pruning import count_pruned
from sparsity_tune.trial.scores import Magnitude
from sparsity_tune.trial.trainer import Trainer


def one_shot(small_config, **more):
    base = {
        "pruning.method": "one_shot",
        "pruning.final_sparsity": 0.7,
        "train.epochs": 1,
        **more,
    }
    return Trainer(small_config(**base))


def per_layer(masks):
    return {n: count_pruned({n: m}) for n, m in masks.items()}


def test_shuffle_layer_permutes_within_each_layer():
    masks = {
        "a": torch.tensor([[True, False, False], [True, True, False]]),
        "b": torch.ones(4, dtype=torch.bool),
    }
    masks["b"][0] = False
    g = torch.Generator().manual_seed(3)
    out = shuffle_layer(masks, g)
    assert per_layer(out) == per_layer(masks) and out["a"].shape == (2, 3)
    again = shuffle_layer(masks, torch.Generator().manual_seed(3))
    assert all(torch.equal(out[n], again[n]) for n in masks)  # same seed, same masks


def test_shuffle_layer_control_keeps_per_layer_density_not_positions(small_config):
    plain = one_shot(small_config)
    shuffled = one_shot(small_config, **{"pruning.control": "shuffle_layer"})
    assert per_layer(shuffled.masks) == per_layer(plain.masks)
    assert any(not torch.equal(shuffled.masks[n], plain.masks[n]) for n in plain.masks)
    dense = Trainer(small_config(**{"train.epochs": 1}))
    for n, p in shuffled.params.items():  # kept weights are their initial values, pruned zero
        assert torch.all(p[~shuffled.masks[n]] == 0)
        assert torch.equal(p[shuffled.masks[n]], dense.params[n][shuffled.masks[n]])


def test_invert_keeps_exactly_the_lowest_scored_weights(small_config):
    dense = Trainer(small_config(**{"train.epochs": 1}))
    w = torch.cat([p.detach().abs().reshape(-1) for p in dense.params.values()])
    inverted = one_shot(small_config, **{"pruning.control": "invert"})
    kept = torch.cat([m.reshape(-1) for m in inverted.masks.values()])
    n_kept = len(w) - round(0.7 * len(w))
    assert int(kept.sum()) == n_kept
    assert w[kept].max() <= w[~kept].min()  # every kept weight is below every pruned one
    plain = one_shot(small_config)
    plain_kept = torch.cat([m.reshape(-1) for m in plain.masks.values()])
    assert w[plain_kept].min() >= w[~plain_kept].max()


def test_inverted_unit_scores_keep_removed_units_last():
    class Fixed(Magnitude):
        def units(self, weights, masks, groups, generator, ctx=None):
            return {"fc": torch.tensor([1.0, float("inf"), 3.0])}

    got = Inverted(Fixed()).units({}, {}, [], torch.Generator())
    assert got["fc"].tolist() == [-1.0, float("inf"), -3.0]


def test_reinit_keeps_the_mask_with_fresh_weights(small_config):
    plain = one_shot(small_config)
    fresh = one_shot(small_config, **{"pruning.control": "reinit"})
    assert all(torch.equal(fresh.masks[n], plain.masks[n]) for n in plain.masks)
    drawn = plain.rewind.fresh_init(1)
    for n, p in fresh.params.items():
        assert torch.equal(p.detach(), drawn[n] * fresh.masks[n])
        assert not torch.equal(p.detach(), plain.params[n].detach())


def test_reinit_control_with_imp_is_rewind_reinit(small_config):
    base = {
        "pruning.method": "imp",
        "pruning.rounds": 1,
        "train.epochs": 2,
        "dataset.train_limit": 200,
    }
    a, b = [], []
    Trainer(small_config(**base, **{"pruning.rewind": "reinit"})).run(a.append)
    Trainer(small_config(**base, **{"pruning.control": "reinit"})).run(b.append)
    keys = ["train_loss", "test_acc", "sparsity"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


@pytest.mark.parametrize("control", ["shuffle_layer", "invert", "reinit"])
def test_every_control_trains_to_the_target(small_config, control):
    records: list[dict] = []
    trainer = one_shot(small_config, **{"pruning.control": control, "dataset.train_limit": 200})
    trainer.run(records.append)
    assert records[-1]["sparsity"] == pytest.approx(0.7, abs=1e-3)
