"""MLPs and CNNs for 1-D signals and images, plus the named presets pruning papers use.

Every model is a plain ``torch.nn.Sequential`` with named stages, so parameter names are readable
and become the per-layer columns (``layer_sparsity/fc1.weight``, ``layer_sparsity/conv2.weight``,
``layer_sparsity/out.weight``). The output layer is always the module named ``out``.

Architectures (``model.arch``; a ``model.preset`` overrides arch, depth and width):

* ``mlp``: Flatten -> [Linear, ReLU] x depth (``width`` units, or ``hidden`` sizes) -> Linear.
* ``cnn``: ``depth`` x [Conv (kernel 3, padding 1), ReLU, MaxPool 2 (ceil mode)] with ``width``
  channels -> Flatten -> Linear. Conv1d for 1-D inputs (C, L), Conv2d for images (C, H, W).
  Each layer halves the length (40 -> 20 -> 10 -> 5 -> 3 -> 2 -> 1, never below 1), so any depth
  fits MNIST-1D and 28x28/32x32 images. (Stride-2 convolutions instead of pooling, as in the
  MNIST-1D paper's CNN, reached only 73% on MNIST-1D at depth 3, width 64 in 20 epochs of Adam
  1e-3; max pooling reached 88-92%.)

Presets:

* ``lenet300_100``: MLP 300-100 (LeCun et al. 1998; Han et al. 2015): 266,610 parameters on MNIST.
* ``lenet5``: conv6 5x5 - maxpool - conv16 5x5 - maxpool - fc120 - fc84 - out, ReLU; the first
  convolution is padded so that 28x28 inputs behave like the original 32x32 (400 features).
* ``conv2``/``conv4``/``conv6``: Frankle & Carbin 2019 (lottery ticket): 3x3 convs
  64,64,pool | 128,128,pool | 256,256,pool, then fc 256, 256, out (on CIFAR-10: 4.30M, 2.43M,
  2.26M parameters; the paper's table lists 1.7M for Conv-6).
* ``mnist1d_cnn``: Greydanus & Kobak's MNIST-1D ``ConvBase``: Conv1d(1,25,5,s2,p1),
  Conv1d(25,25,3,s2,p1) x 2, ReLUs, Linear(125, 10).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from sparsity_tune.trial.config import IMAGE_DATASETS, ModelConfig

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
OUTPUT = "out"


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network named by ``cfg`` for samples of ``input_shape`` (channels first)."""
    input_shape = tuple(int(s) for s in input_shape)
    if cfg.preset == "lenet300_100":
        return _mlp(input_shape, [300, 100], num_classes)
    if cfg.preset == "lenet5":
        _need_image(cfg.preset, input_shape)
        pad = max(0, (32 - input_shape[1]) // 2)  # 28x28 -> behaves like 32x32
        convs = [(6, 5, pad, True), (16, 5, 0, True)]
        return _convnet(input_shape, convs, [120, 84], num_classes, pool="max", stride=1)
    if cfg.preset in ("conv2", "conv4", "conv6"):
        _need_image(cfg.preset, input_shape)
        n = int(cfg.preset[-1]) // 2
        convs = [(c, 3, 1, pooled) for c in (64, 128, 256)[:n] for pooled in (False, True)]
        return _convnet(input_shape, convs, [256, 256], num_classes, pool="max", stride=1)
    if cfg.preset == "mnist1d_cnn":
        if len(input_shape) != 2:
            raise ValueError(
                f"model.preset='mnist1d_cnn' needs 1-D inputs (C, L), got {input_shape}"
            )
        layers = OrderedDict()
        layers["conv1"] = nn.Conv1d(input_shape[0], 25, 5, stride=2, padding=1)
        layers["relu1"] = nn.ReLU()
        for i in (2, 3):
            layers[f"conv{i}"] = nn.Conv1d(25, 25, 3, stride=2, padding=1)
            layers[f"relu{i}"] = nn.ReLU()
        layers["flatten"] = nn.Flatten()
        features = _features(nn.Sequential(layers), input_shape)
        layers[OUTPUT] = nn.Linear(features, num_classes)
        return nn.Sequential(layers)
    if cfg.arch == "mlp":
        return _mlp(input_shape, cfg.hidden or [cfg.width] * cfg.depth, num_classes)
    if len(input_shape) not in (2, 3):
        raise ValueError(f"model.arch='cnn' needs inputs (C, L) or (C, H, W), got {input_shape}")
    convs = [(cfg.width, 3, 1, True)] * cfg.depth
    return _convnet(input_shape, convs, [], num_classes, pool="max", stride=1)


def _need_image(preset: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ValueError(
            f"model.preset={preset!r} needs image inputs (C, H, W), got {input_shape}: "
            f"use it with {', '.join(IMAGE_DATASETS)}"
        )


def _mlp(input_shape: tuple[int, ...], hidden: list[int], num_classes: int) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = math.prod(input_shape)
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, h)
        layers[f"relu{i}"] = nn.ReLU()
        width = h
    layers[OUTPUT] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


def _convnet(
    input_shape: tuple[int, ...],
    convs: list[tuple[int, int, int, bool]],
    hidden: list[int],
    num_classes: int,
    *,
    pool: str | None,
    stride: int,
) -> nn.Sequential:
    """Convs given as (channels, kernel, padding, pool after) -> Flatten -> fc hidden -> out."""
    two_d = len(input_shape) == 3
    conv_cls = nn.Conv2d if two_d else nn.Conv1d
    pool_cls = nn.MaxPool2d if two_d else nn.MaxPool1d
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = input_shape[0]
    for i, (out_ch, kernel, padding, pooled) in enumerate(convs, start=1):
        layers[f"conv{i}"] = conv_cls(channels, out_ch, kernel, stride=stride, padding=padding)
        # Max-pool before ReLU: the same function (ReLU is monotone, so they commute), with the
        # ReLU (and its backward) on a quarter (2-D) or half (1-D) of the elements.
        if pooled and pool == "max":
            layers[f"pool{i}"] = pool_cls(2, ceil_mode=True)
        layers[f"relu{i}"] = nn.ReLU()
        channels = out_ch
    layers["flatten"] = nn.Flatten()
    width = _features(nn.Sequential(layers), input_shape)
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, h)
        layers[f"fc_relu{i}"] = nn.ReLU()
        width = h
    layers[OUTPUT] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


def _features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Flattened size after ``features``, from one dummy forward (no lazy modules)."""
    with torch.no_grad():
        out = features(torch.zeros(1, *input_shape))
    if out.numel() == 0:
        raise ValueError(
            f"the convolutions shrink input {input_shape} to nothing; use fewer layers"
        )
    return out.shape[1]


def prunable_parameters(model: nn.Module, prune_output: bool = False) -> dict[str, nn.Parameter]:
    """Weights (not biases) of every Linear/Conv1d/Conv2d, by parameter name, in module order.

    The output layer (the last ``nn.Linear``) is left out unless ``prune_output``.
    """
    out_name = output_layer_name(model)
    params: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            key = f"{name}.weight" if name else "weight"
            if key != out_name or prune_output:
                params[key] = module.weight
    return params


def output_layer_name(model: nn.Module) -> str:
    """Parameter name of the output layer's weight (the last ``nn.Linear``), e.g. ``out.weight``."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ValueError("the model has no nn.Linear output layer")
    return f"{last}.weight" if last else "weight"


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates per sample of each Linear/Conv weight (output layer included).

    Linear: in x out; Conv: ``weight.numel()`` x output positions. Measured once with forward
    hooks on a dummy input of one sample; a dense layer's MACs times its density gives the MACs
    of its pruned version. Biases, activations and pooling are not counted.
    """
    macs: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            key = f"{name}.weight" if name else "weight"

            def hook(mod: nn.Module, args: tuple, out: torch.Tensor, key: str = key) -> None:
                positions = (
                    math.prod(out.shape[2:]) if isinstance(mod, nn.Conv1d | nn.Conv2d) else 1
                )
                if isinstance(mod, nn.Linear):
                    positions = math.prod(out.shape[1:-1])  # 1 for (N, features)
                macs[key] = macs.get(key, 0) + mod.weight.numel() * positions

            handles.append(module.register_forward_hook(hook))
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return macs
