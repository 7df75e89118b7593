"""Physical compaction of structured masks: same function, smaller model, training carries on.

The compaction functions are tested on hand-made masks (lowest-L1 units per layer, built by
``compaction.unit_masks``); the trainer tests run the real ``granularity: structured``, against
``MaskedOnly``, the same trainer with compaction turned off (the masked reference run).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sparsity_tune.metrics import M
from sparsity_tune.trial import compaction, pruning
from sparsity_tune.trial.config import ModelConfig
from sparsity_tune.trial.data import DataSplits, load_dataset
from sparsity_tune.trial.models import (
    PRUNABLE_TYPES,
    build_model,
    output_layer_name,
    prunable_parameters,
)
from sparsity_tune.trial.trainer import Trainer


def l1_units(model: nn.Module, fraction: float) -> compaction.Units:
    """The ``fraction`` of units with the smallest L1 norm in every layer but the output."""
    out = output_layer_name(model).rsplit(".", 1)[0]
    units = {}
    for name, m in model.named_modules():
        if isinstance(m, PRUNABLE_TYPES) and name != out:
            norms = m.weight.detach().abs().reshape(m.weight.shape[0], -1).sum(1)
            k = min(round(fraction * len(norms)), len(norms) - 1)
            units[name] = sorted(norms.argsort()[:k].tolist())
    return units


class MaskedOnly(Trainer):
    """The trainer with compaction turned off: structured masks, dense shapes."""

    def _maybe_compact(self) -> None:
        return


def _images(n: int = 96) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    a, b = n * 2 // 3, n * 5 // 6
    return DataSplits(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], 10, (3, 16, 16), "cifar10")


# ------------------------------------------------------------------------- the function


MODELS = {
    "mlp": (ModelConfig(arch="mlp", depth=3, width=64), "mnist1d"),
    "cnn1d": (ModelConfig(arch="cnn", depth=3, width=32), "mnist1d"),
    "mnist1d_cnn": (ModelConfig(preset="mnist1d_cnn"), "mnist1d"),
    "cnn2d_nhwc": (ModelConfig(arch="cnn", depth=2, width=16), "images"),
    "lenet5_nhwc": (ModelConfig(preset="lenet5"), "images28"),
}


def _test_set(kind: str, data_root) -> torch.Tensor:
    if kind == "mnist1d":
        from sparsity_tune.trial.config import DatasetConfig

        return load_dataset(DatasetConfig(root=str(data_root)), torch.device("cpu")).test_x
    g = torch.Generator().manual_seed(1)
    side = 28 if kind == "images28" else 16
    channels = 1 if kind == "images28" else 3
    x = torch.randn(256, channels, side, side, generator=g)
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("prune_output", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_compact_model_computes_the_masked_model(name, prune_output, data_root):
    cfg, kind = MODELS[name]
    x = _test_set(kind, data_root)
    shape = tuple(x.shape[1:])
    torch.manual_seed(0)
    model = build_model(cfg, shape, 10)
    if len(shape) == 3:
        model = model.to(memory_format=torch.channels_last)
    params = prunable_parameters(model, prune_output)
    units = l1_units(model, 0.5)
    masks = compaction.unit_masks(model, shape, units, params)
    pruning.apply_masks_(params, masks)
    model.eval()
    with torch.no_grad():
        masked = model(x)
    n_before = sum(p.numel() for p in model.parameters())
    out_before = model.get_submodule("out").out_features

    assert compaction.removed_units(model, masks) == units
    comp = compaction.compact_(model, shape, units, masks)
    with torch.no_grad():
        compact = model(x)

    assert (compact - masked).abs().max().item() <= 1e-5
    assert model.get_submodule("out").out_features == out_before  # output units never removed
    assert sum(p.numel() for p in model.parameters()) == n_before - comp.removed
    assert comp.removed > 0.3 * n_before
    for name_, module in model.named_modules():
        if name_ in units and isinstance(module, PRUNABLE_TYPES):
            assert module.weight.shape[0] == masks[f"{name_}.weight"].shape[0] - len(units[name_])
            if module.weight.dim() == 4:
                assert module.weight.is_contiguous(memory_format=torch.channels_last)


def test_shrink_and_expand_are_inverse_on_kept_entries():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn", depth=2, width=8), (1, 40), 10)
    units = {"conv1": [0, 5], "conv2": [1, 2, 7]}
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    comp = compaction.compact_(model, (1, 40), units)
    for name, p in model.named_parameters():
        back = comp.expand(name, p.detach())
        assert back.shape == dense[name].shape
        assert torch.equal(comp.shrink(name, back), p.detach())
        assert torch.equal(comp.shrink(name, dense[name]), p.detach())
    assert model.get_submodule("conv2").weight.shape == (5, 6, 3)
    assert model.get_submodule("out").weight.shape == (10, 5 * 10)  # 10 positions per channel


def test_masks_that_do_not_remove_a_unit_everywhere_are_refused():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn", depth=2, width=8), (1, 40), 10)
    params = prunable_parameters(model)
    masks = compaction.unit_masks(model, (1, 40), {"conv1": [3]}, params)
    masks["conv2.weight"][:, 3] = True  # the consumer still reads the removed channel
    pruning.apply_masks_(params, masks)
    with pytest.raises(ValueError, match="consumer slices"):
        compaction.compact_(model, (1, 40), {"conv1": [3]}, masks)
    masks["conv1.weight"][:] = False
    with pytest.raises(ValueError, match="at least one"):
        compaction.removed_units(model, masks)


# ------------------------------------------------------------------------- in the trainer


def _structured(small_config, **dotted):
    base = {
        "model.depth": 3,
        "model.width": 128,
        "train.epochs": 5,
        "pruning.method": "one_shot",
        "pruning.start_epoch": 1,
        "pruning.granularity": "structured",
        "pruning.scope": "layerwise",
        "pruning.final_sparsity": 0.75,
    }
    return small_config(**{**base, **dotted})


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.1), ("adam", 0.01)])
def test_training_after_compaction_follows_the_masked_run(small_config, optimizer, lr):
    """Same losses epoch by epoch: weights, momentum / Adam moments and step carried over."""
    records = {}
    trainers = {}
    for compact in (True, False):
        cfg = _structured(small_config, **{"train.optimizer": optimizer, "train.lr": lr})
        trainers[compact] = (Trainer if compact else MaskedOnly)(cfg)
        records[compact] = []
        trainers[compact].run(records[compact].append)
    small, masked = trainers[True], trainers[False]
    assert small.compaction is not None and masked.compaction is None
    for a, b in zip(records[True], records[False], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=0.01)
        for key in ("sparsity", "nonzero_params", "total_params", "sparse_bytes", "flops_sparse"):
            assert a[key] == b[key], key  # counted in the dense model's coordinates
        layers = [k for k in a if k.startswith("layer_sparsity/")]
        assert layers and all(a[k] == b[k] for k in layers)
    # Measured costs fall once the model is compact (epochs 2+), and only then.
    r = records[True]
    assert r[0]["peak_mem_bytes"] == records[False][0]["peak_mem_bytes"]
    assert r[-1]["peak_mem_bytes"] < 0.5 * records[False][-1]["peak_mem_bytes"]
    assert small.model.get_submodule("out").out_features == 10
    assert small.train_time_speedup > 0 and masked.train_time_speedup == 1.0


def test_compaction_waits_for_the_final_event_of_a_gradual_schedule(small_config):
    cfg = _structured(
        small_config,
        **{
            "pruning.method": "gradual",
            "pruning.start_epoch": 1,
            "pruning.end_epoch": 3,
            "pruning.final_sparsity": 0.5,
            "train.epochs": 4,
        },
    )
    trainer = Trainer(cfg)
    sizes = []
    trainer.run(lambda r: sizes.append(trainer.model.get_submodule("fc1").out_features))
    assert sizes[:2] == [128, 128]  # the events of epochs 1, 2 are not the last
    assert sizes[2] == sizes[3] < 128


def test_imp_rewinds_then_compacts(small_config):
    cfg = _structured(
        small_config,
        **{
            "pruning.method": "imp",
            "pruning.rate": 0.5,
            "pruning.rounds": 1,
            "train.epochs": 4,
            "pruning.rewind": "init",
        },
    )
    trainer = Trainer(cfg)
    init = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer._train_epoch()
    trainer._train_epoch()
    trainer.epoch = 2
    trainer._imp_round_end()
    comp = trainer.compaction
    assert comp is not None
    for name, p in trainer.model.named_parameters():  # the survivors, back at their init
        if name.endswith("weight"):
            assert torch.equal(p.detach(), comp.shrink(name, init[name]))


def test_a_compacted_run_keeps_the_rounds_of_its_speedups(small_config):
    """summary.json carries each timed comparison's rounds summary (estimate, error, degrees
    of freedom), and a checkpoint keeps the training steps' one (timed once, at compaction)."""
    cfg = _structured(
        small_config,
        **{"pruning.method": "one_shot", "pruning.start_epoch": 0, "train.epochs": 1},
    )
    trainer = Trainer(cfg)
    summary = trainer.run(lambda r: None)
    assert summary[M.deploy_format] == "compact"
    for b in ("b1", "b256"):
        assert summary[f"infer_log_speedup_{b}_df"] >= 8  # at least 10 rounds, 10% trimmed
        assert summary[f"infer_log_speedup_{b}_se"] >= 0
    est, se, df = (
        summary[k] for k in (M.train_log_speedup, M.train_log_speedup_se, M.train_log_speedup_df)
    )
    assert (
        df == 15 and se >= 0 and est == trainer.train_log_speedup[0]
    )  # 20 steps, 2 trimmed each end
    again = Trainer(cfg)
    again.load_state_dict(trainer.state_dict())
    assert again.train_log_speedup == trainer.train_log_speedup


def test_checkpoint_after_compaction_restores_and_continues_bit_for_bit(small_config):
    cfg = _structured(small_config, **{"train.optimizer": "adam"})
    full: list[dict] = []
    Trainer(cfg).run(full.append)

    class Stop(Exception):
        pass

    part: list[dict] = []

    def report(r):
        part.append(r)
        if r["epoch"] == 3:
            raise Stop

    first = Trainer(cfg)
    with pytest.raises(Stop):
        first.run(report)
    state = first.state_dict()
    path = "/dev/null"
    torch.save(state, path)
    second = Trainer(cfg)
    assert second.compaction is None
    second.load_state_dict(copy.deepcopy(state))
    assert second.compaction.units == first.compaction.units
    assert (
        second.model.get_submodule("fc1").out_features
        == first.model.get_submodule("fc1").out_features
        < 128
    )
    second.run(part.append)
    keys = ["epoch", "train_loss", "val_loss", "test_acc", "sparsity", "lr", "nonzero_params"]
    assert [[r[k] for k in keys] for r in part] == [[r[k] for k in keys] for r in full]


def test_channels_last_images_compact_and_keep_training(small_config):
    cfg = _structured(small_config, **{"model.arch": "cnn", "model.depth": 2, "model.width": 16})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 3})})
    trainer = Trainer(cfg, data=_images())
    records: list[dict] = []
    summary = trainer.run(records.append)
    conv = trainer.model.get_submodule("conv2").weight
    assert conv.shape[0] < 16 and conv.is_contiguous(memory_format=torch.channels_last)
    assert all(r["train_loss"] == r["train_loss"] for r in records)  # no NaN
    assert summary["deploy_format"] == "compact"
    x = trainer.data.test_x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        dense = trainer.dense_model().eval()(x)
        small = trainer.model.eval()(x)
    assert (dense - small).abs().max().item() <= 1e-5
