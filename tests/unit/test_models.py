"""Architectures, presets, prunable parameters and MAC counts, checked against hand arithmetic."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from sparsity_tune.keys import ConfigError
from sparsity_tune.trial.config import ModelConfig, check_preset, trial_config
from sparsity_tune.trial.models import (
    build_model,
    count_macs,
    output_layer_name,
    prunable_parameters,
)

SHAPES = {
    "mnist1d": (1, 40),
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}
IMAGE_PRESETS = ["lenet5", "conv2", "conv4", "conv6"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear(i: int, o: int) -> int:
    return i * o + o


def conv(i: int, o: int, k: int, dims: int = 2) -> int:
    return i * o * k**dims + o


GENERIC = [
    ModelConfig(arch="mlp"),
    ModelConfig(arch="mlp", hidden=[7, 5, 3]),
    ModelConfig(arch="cnn", depth=1, width=4),
    ModelConfig(arch="cnn", depth=3, width=8),
    ModelConfig(arch="cnn", depth=8, width=4),  # deeper than the input halves: still fits
    ModelConfig(preset="lenet300_100"),
]
CASES = [(cfg, ds) for cfg in GENERIC for ds in SHAPES]
CASES += [(ModelConfig(preset=p), ds) for p in IMAGE_PRESETS for ds in SHAPES if ds != "mnist1d"]
CASES += [(ModelConfig(preset="mnist1d_cnn"), "mnist1d")]


@pytest.mark.parametrize(
    ("cfg", "dataset"),
    CASES,
    ids=[f"{c.preset or f'{c.arch}-{c.depth}x{c.width}-{c.hidden}'}-{d}" for c, d in CASES],
)
def test_output_shape_for_every_arch_and_preset(cfg: ModelConfig, dataset: str) -> None:
    shape = SHAPES[dataset]
    model = build_model(cfg, shape, 10)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 10)
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters())


def test_cnn_uses_conv1d_for_signals_and_conv2d_for_images() -> None:
    cfg = ModelConfig(arch="cnn", depth=2, width=4)
    kinds_1d = {type(m) for m in build_model(cfg, (1, 40), 10).modules()}
    kinds_2d = {type(m) for m in build_model(cfg, (3, 32, 32), 10).modules()}
    assert nn.Conv1d in kinds_1d and nn.Conv2d not in kinds_1d
    assert nn.Conv2d in kinds_2d and nn.Conv1d not in kinds_2d


def test_preset_overrides_arch_depth_width() -> None:
    a = build_model(
        ModelConfig(arch="cnn", depth=5, width=3, preset="lenet300_100"), (1, 28, 28), 10
    )
    b = build_model(ModelConfig(preset="lenet300_100"), (1, 28, 28), 10)
    assert n_params(a) == n_params(b)


# --- parameter counts by hand ---------------------------------------------------------------


def test_param_counts_of_presets() -> None:
    count = {
        # LeNet-300-100 on 28x28: the well-known 266,610
        ("lenet300_100", (1, 28, 28)): linear(784, 300) + linear(300, 100) + linear(100, 10),
        # LeNet-5: conv1 padded on 28x28 so both sizes give 16 x 5 x 5 = 400 features
        ("lenet5", (1, 28, 28)): conv(1, 6, 5)
        + conv(6, 16, 5)
        + linear(400, 120)
        + linear(120, 84)
        + linear(84, 10),
        ("lenet5", (3, 32, 32)): conv(3, 6, 5)
        + conv(6, 16, 5)
        + linear(400, 120)
        + linear(120, 84)
        + linear(84, 10),
        # Frankle & Carbin on CIFAR-10: 32 -> 16 (conv2) -> 8 (conv4) -> 4 (conv6)
        ("conv2", (3, 32, 32)): conv(3, 64, 3)
        + conv(64, 64, 3)
        + linear(16 * 16 * 64, 256)
        + linear(256, 256)
        + linear(256, 10),
        ("conv4", (3, 32, 32)): conv(3, 64, 3)
        + conv(64, 64, 3)
        + conv(64, 128, 3)
        + conv(128, 128, 3)
        + linear(8 * 8 * 128, 256)
        + linear(256, 256)
        + linear(256, 10),
        ("conv6", (3, 32, 32)): conv(3, 64, 3)
        + conv(64, 64, 3)
        + conv(64, 128, 3)
        + conv(128, 128, 3)
        + conv(128, 256, 3)
        + conv(256, 256, 3)
        + linear(4 * 4 * 256, 256)
        + linear(256, 256)
        + linear(256, 10),
        # MNIST-1D paper CNN: lengths 40 -> 19 -> 10 -> 5, 25 channels -> 125 features
        ("mnist1d_cnn", (1, 40)): conv(1, 25, 5, 1) + 2 * conv(25, 25, 3, 1) + linear(125, 10),
    }
    for (preset, shape), expected in count.items():
        assert n_params(build_model(ModelConfig(preset=preset), shape, 10)) == expected, preset
    assert count[("lenet300_100", (1, 28, 28))] == 266_610
    assert count[("conv2", (3, 32, 32))] == 4_301_642  # the paper's "4.3M"


def test_param_counts_of_mlp_and_cnn() -> None:
    mlp = build_model(ModelConfig(arch="mlp", depth=3, width=16), (1, 40), 10)
    assert n_params(mlp) == linear(40, 16) + 2 * linear(16, 16) + linear(16, 10)
    hidden = build_model(ModelConfig(arch="mlp", hidden=[32, 8]), (3, 32, 32), 5)
    assert n_params(hidden) == linear(3072, 32) + linear(32, 8) + linear(8, 5)
    # cnn: kernel 3, pool 2 per layer: 40 -> 20 -> 10 -> 5 positions
    cnn1d = build_model(ModelConfig(arch="cnn", depth=3, width=8), (1, 40), 10)
    assert n_params(cnn1d) == conv(1, 8, 3, 1) + 2 * conv(8, 8, 3, 1) + linear(8 * 5, 10)
    # 28 -> 14 -> 7 -> 4 (ceil) on images
    cnn2d = build_model(ModelConfig(arch="cnn", depth=3, width=8), (1, 28, 28), 10)
    assert n_params(cnn2d) == conv(1, 8, 3) + 2 * conv(8, 8, 3) + linear(8 * 4 * 4, 10)


# --- presets vs datasets --------------------------------------------------------------------


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
def test_check_preset_image_presets_need_images(preset: str) -> None:
    with pytest.raises(ValueError, match="needs image data") as info:
        check_preset(preset, "mnist1d")
    assert f"model.preset={preset!r}" in str(info.value)
    assert "dataset.name='mnist1d'" in str(info.value) and "mnist1d_cnn" in str(info.value)
    for ds in ("mnist", "fashion_mnist", "cifar10"):
        check_preset(preset, ds)


def test_check_preset_mnist1d_cnn_needs_mnist1d() -> None:
    check_preset("mnist1d_cnn", "mnist1d")
    with pytest.raises(ValueError, match=re.escape("dataset.name='cifar10'")) as info:
        check_preset("mnist1d_cnn", "cifar10")
    assert "lenet5" in str(info.value)
    for ds in SHAPES:
        check_preset("lenet300_100", ds)


def test_bad_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("model.preset='conv4' needs image data")):
        trial_config({"model": {"preset": "conv4"}, "dataset": {"name": "mnist1d"}})
    assert trial_config({"model": {"preset": "conv4"}, "dataset": {"name": "cifar10"}})


def test_build_model_rejects_wrong_input_rank() -> None:
    with pytest.raises(ValueError, match="image inputs"):
        build_model(ModelConfig(preset="lenet5"), (1, 40), 10)
    with pytest.raises(ValueError, match="1-D inputs"):
        build_model(ModelConfig(preset="mnist1d_cnn"), (1, 28, 28), 10)


# --- prunable parameters --------------------------------------------------------------------


def test_prunable_parameters_are_weights_without_output() -> None:
    model = build_model(ModelConfig(preset="lenet5"), (1, 28, 28), 10)
    params = prunable_parameters(model)
    assert list(params) == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    named = dict(model.named_parameters())
    assert all(params[k] is named[k] for k in params)  # the live parameters, not copies
    assert output_layer_name(model) == "out.weight"
    with_out = prunable_parameters(model, prune_output=True)
    assert list(with_out) == [*params, "out.weight"]
    assert not any(k.endswith("bias") for k in with_out)


def test_prunable_parameters_of_mlp_and_mnist1d_cnn() -> None:
    mlp = build_model(ModelConfig(arch="mlp", depth=3, width=4), (1, 40), 10)
    assert list(prunable_parameters(mlp)) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    cnn = build_model(ModelConfig(preset="mnist1d_cnn"), (1, 40), 10)
    assert list(prunable_parameters(cnn)) == ["conv1.weight", "conv2.weight", "conv3.weight"]
    assert sum(p.numel() for p in prunable_parameters(cnn).values()) == 25 * 5 + 2 * 25 * 25 * 3


def test_output_layer_is_the_last_linear_of_any_module() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    net = Net()
    assert output_layer_name(net) == "head.weight"
    assert list(prunable_parameters(net)) == ["body.0.weight"]
    assert count_macs(net, (4,)) == {"body.0.weight": 12, "head.weight": 6}


# --- MACs -----------------------------------------------------------------------------------


def test_count_macs_mlp() -> None:
    model = build_model(ModelConfig(arch="mlp", hidden=[6, 5]), (1, 8), 3)
    assert count_macs(model, (1, 8)) == {"fc1.weight": 8 * 6, "fc2.weight": 6 * 5, "out.weight": 15}


def test_count_macs_conv1d_and_conv2d() -> None:
    cnn1d = build_model(ModelConfig(arch="cnn", depth=2, width=4), (1, 8), 10)
    # conv1: 4*1*3 weights at 8 positions; pool -> 4; conv2: 4*4*3 at 4; pool -> 2; out: 8*10
    assert count_macs(cnn1d, (1, 8)) == {"conv1.weight": 96, "conv2.weight": 192, "out.weight": 80}
    cnn2d = build_model(ModelConfig(arch="cnn", depth=1, width=2), (3, 6, 6), 10)
    # conv1: 2*3*9 weights at 6x6 positions; pool -> 3x3 x 2 channels = 18 features
    assert count_macs(cnn2d, (3, 6, 6)) == {"conv1.weight": 54 * 36, "out.weight": 180}
    paper = build_model(ModelConfig(preset="mnist1d_cnn"), (1, 40), 10)
    assert count_macs(paper, (1, 40)) == {
        "conv1.weight": 125 * 19,
        "conv2.weight": 1875 * 10,
        "conv3.weight": 1875 * 5,
        "out.weight": 1250,
    }


def test_count_macs_leaves_the_model_as_it_was() -> None:
    model = build_model(ModelConfig(preset="lenet5"), (1, 28, 28), 10)
    model.train()
    first = count_macs(model, (1, 28, 28))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert count_macs(model, (1, 28, 28)) == first  # no hooks left behind to double-count
    # lenet5 on 28x28: conv1 at 28x28, conv2 at 10x10
    assert first["conv1.weight"] == 6 * 25 * 28 * 28 and first["conv2.weight"] == 16 * 6 * 25 * 100
