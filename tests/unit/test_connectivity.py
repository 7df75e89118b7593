"""Effective sparsity on hand-made networks with disconnected units (MLP and CNN)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsity_tune.trial.connectivity import effective_masks, effective_sparsity


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2)
    )


def test_mlp_units_cut_off_from_input_or_output():
    net = mlp()
    m1 = torch.ones(4, 3, dtype=torch.bool)
    m2 = torch.ones(2, 4, dtype=torch.bool)
    m1[0] = False  # hidden unit 0 has no input: its 2 outgoing weights are dead
    m2[:, 1] = False  # hidden unit 1 feeds nothing: its 3 incoming weights are dead
    masks = {"1.weight": m1, "3.weight": m2}
    eff = effective_masks(net, masks, (3,))
    want1 = m1.clone()
    want1[1] = False
    want2 = m2.clone()
    want2[:, 0] = False
    assert torch.equal(eff["1.weight"], want1) and torch.equal(eff["3.weight"], want2)
    # 12 + 8 prunable: 3 + 2 pruned, 3 + 2 more cut off
    assert effective_sparsity(net, masks, (3,)) == pytest.approx(10 / 20)


def test_second_layer_unit_without_output_path_kills_its_whole_cone():
    net = mlp()
    masks = {
        "1.weight": torch.ones(4, 3, dtype=torch.bool),
        "3.weight": torch.ones(2, 4, dtype=torch.bool),
        "5.weight": torch.tensor([[True, False], [True, False]]),  # unit 1 of layer 2 unused
    }
    eff = effective_masks(net, masks, (3,))
    assert eff["3.weight"][1].sum() == 0 and eff["3.weight"][0].sum() == 4
    assert eff["1.weight"].all()  # every first-layer unit still reaches unit 0
    assert effective_sparsity(net, masks, (3,)) == pytest.approx(6 / 24)


def test_nothing_pruned_means_nothing_cut_off_and_the_model_is_untouched():
    net = mlp()
    before = [p.clone() for p in net.parameters()]
    masks = {
        n: torch.ones_like(p, dtype=torch.bool)
        for n, p in net.named_parameters()
        if n.endswith("weight")
    }
    assert effective_sparsity(net, masks, (3,)) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_cnn_channel_cut_off_through_pool_and_flatten():
    net = nn.Sequential(
        nn.Conv1d(1, 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool1d(2, ceil_mode=True),
        nn.Conv1d(2, 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool1d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    c1 = torch.ones(2, 1, 3, dtype=torch.bool)
    c2 = torch.ones(2, 2, 3, dtype=torch.bool)
    out = torch.ones(3, 4, dtype=torch.bool)
    c1[1] = False  # channel 1 of conv1 sees no input: conv2's taps from it are dead (2 x 3)
    out[:, 2:] = False  # conv2's channel 1 (flattened to columns 2, 3) reaches no class
    masks = {"0.weight": c1, "3.weight": c2, "7.weight": out}
    eff = effective_masks(net, masks, (1, 8))
    assert torch.equal(eff["0.weight"], c1)
    want2 = torch.zeros(2, 2, 3, dtype=torch.bool)
    want2[0, 0] = True  # only channel 0 -> channel 0 survives
    assert torch.equal(eff["3.weight"], want2)
    assert torch.equal(eff["7.weight"], out)
    # 6 + 12 + 12 prunable; kept and connected: 3 + 3 + 6
    assert effective_sparsity(net, masks, (1, 8)) == pytest.approx(1 - 12 / 30)


def test_the_trainer_records_it(small_config):
    from sparsity_tune.trial.trainer import Trainer

    cfg = small_config(
        **{
            "pruning.method": "one_shot",
            "pruning.final_sparsity": 0.95,
            "train.epochs": 1,
            "dataset.train_limit": 100,
        }
    )
    records: list[dict] = []
    Trainer(cfg).run(records.append)
    assert records[-1]["effective_sparsity"] >= records[-1]["sparsity"]
