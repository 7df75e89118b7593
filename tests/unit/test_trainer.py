"""The shared trainer on small MNIST-1D runs: learning, masks, records, determinism, restore."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from sparsity_tune import metrics
from sparsity_tune.trial.trainer import Trainer, check_record


def _run(cfg):
    records: list[dict] = []
    trainer = Trainer(cfg)
    summary = trainer.run(records.append)
    return trainer, records, summary


def test_dense_run_learns_and_records_every_key(small_config):
    cfg = small_config(**{"train.epochs": 6})
    _, records, summary = _run(cfg)
    assert len(records) == 6
    for r in records:
        check_record(r)
        assert r["sparsity"] == 0.0 and r["target_sparsity"] == 0.0
        assert r["nonzero_params"] == r["total_params"]
        assert r["train_time_s"] > 0 and r["eval_time_s"] > 0
        assert r["epoch_time_s"] >= r["train_time_s"] + r["eval_time_s"]
        assert r["peak_mem_bytes"] >= 0
    assert records[-1]["train_loss"] < 0.8 * records[0]["train_loss"]
    assert records[-1]["test_acc"] > 0.25  # 10 classes: chance is 0.10 (sd 0.015 on 400)
    assert set(metrics.SUMMARY_KEYS) == set(summary)
    assert summary["epochs"] == 6 and summary["infer_ms_dense_b256"] > 0
    assert summary["deploy_format"] == "dense" and summary["infer_speedup_b256"] == 1.0
    assert 1 <= summary["epochs_to_99pct"] <= 6


def test_gradual_pruning_reaches_target_exactly_and_still_learns(small_config):
    cfg = small_config(
        **{
            "train.epochs": 6,
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.8,
            "pruning.start_epoch": 1,
            "pruning.end_epoch": 4,
        }
    )
    trainer, records, summary = _run(cfg)
    prunable = sum(m.numel() for m in trainer.masks.values())
    targets = [r["target_sparsity"] for r in records]
    assert targets[0] == 0.0 and targets[3:] == [0.8, 0.8, 0.8]
    assert targets[1] < targets[2] < 0.8  # cubic ramp
    for r in records:  # achieved within one weight of the target
        assert abs(r["sparsity"] - r["target_sparsity"]) * prunable <= 1
    zeros = sum(int((p == 0).sum()) for p in trainer.params.values())
    assert zeros == round(0.8 * prunable)  # masks are exact and applied to the weights
    assert records[-1]["nonzero_params"] == records[-1]["total_params"] - round(0.8 * prunable)
    assert records[-1]["sparse_bytes"] < records[0]["sparse_bytes"]
    assert summary["epochs_to_99pct"] >= 4  # the final network exists from end_epoch on
    assert records[-1]["flops_sparse"] < records[-1]["flops_dense"]
    assert summary["final_test_acc"] > 0.25


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_weights_stay_zero_through_training(small_config, optimizer):
    cfg = small_config(
        **{
            "train.optimizer": optimizer,
            "train.weight_decay": 1e-3,
            "pruning.method": "one_shot",
            "pruning.start_epoch": 1,
            "pruning.final_sparsity": 0.7,
        }
    )
    trainer, records, _ = _run(cfg)
    for name, p in trainer.params.items():
        mask = trainer.masks[name]
        assert torch.all(p[~mask] == 0), name
        state = trainer.optimizer.state[p]
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            if key in state and state[key] is not None:
                assert torch.all(state[key][~mask] == 0), (name, key)
    assert records[-1]["sparsity"] == pytest.approx(0.7, abs=1e-3)


def test_step_frequency_prunes_inside_epochs(small_config):
    cfg = small_config(
        **{
            "train.epochs": 3,
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.6,
            "pruning.end_epoch": 2,
            "pruning.frequency": 5,
            "pruning.frequency_unit": "step",
            "pruning.schedule": "linear",
        }
    )
    _, records, _ = _run(cfg)
    # 800*0.9=720 samples, batch 64 -> 12 steps/epoch; last event of epoch 1 at step 10 of 24.
    assert records[0]["target_sparsity"] == pytest.approx(0.6 * 10 / 24)
    assert records[1]["target_sparsity"] == pytest.approx(0.6)


def test_imp_rounds_follow_the_compound_rate(small_config):
    cfg = small_config(
        **{
            "train.epochs": 6,
            "pruning.method": "imp",
            "pruning.rate": 0.5,
            "pruning.rounds": 2,
            "pruning.epochs_per_round": 2,
            "pruning.rewind": "init",
        }
    )
    _, records, summary = _run(cfg)
    got = [round(r["target_sparsity"], 6) for r in records]
    # Records are taken before each round's prune + rewind: round k trains with 1-(1-rate)^k.
    assert got == [0.0, 0.0, 0.5, 0.5, 0.75, 0.75]
    assert summary["final_sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert summary["best_epoch"] in (5, 6)  # best is taken over the final mask's epochs
    assert summary["epochs_to_99pct"] in (5, 6)  # and so is convergence


def test_imp_rewinds_survivors_to_init(small_config):
    cfg = small_config(
        **{
            "train.epochs": 2,
            "pruning.method": "imp",
            "pruning.rate": 0.5,
            "pruning.rounds": 1,
            "pruning.rewind": "init",
        }
    )
    init = Trainer(cfg)
    w0 = {n: p.detach().clone() for n, p in init.params.items()}
    init._train_epoch()  # one round of training, then the round-end prune + rewind
    init.epoch = 1
    init.records.append({"sparsity": 0.0, "val_acc": 0.0, "test_acc": 0.0, "epoch": 1})
    init._imp_round_end()
    for name, p in init.params.items():
        mask = init.masks[name]
        assert torch.equal(p[mask], w0[name][mask])
        assert torch.all(p[~mask] == 0)


def test_imp_reinit_keeps_the_mask_and_draws_fresh_survivors(small_config):
    """Frankle & Carbin's control: after the round-1 prune, rewind: reinit has the same mask as
    rewind: init (round 1 trained the same) but freshly drawn survivors from the model's own
    init distribution; the same seed draws the same values, another seed others."""

    def rewound(rewind: str, seed: int = 0) -> Trainer:
        cfg = small_config(
            **{
                "train.epochs": 2,
                "train.seed": seed,
                "model.width": 128,
                "pruning.method": "imp",
                "pruning.rate": 0.5,
                "pruning.rounds": 1,
                "pruning.rewind": rewind,
            }
        )
        t = Trainer(cfg)
        t._train_epoch()  # round 1, then its prune + rewind
        t.epoch = 1
        t.records.append({"sparsity": 0.0, "val_acc": 0.0, "test_acc": 0.0, "epoch": 1})
        t._imp_round_end()
        return t

    w0 = {
        n: p.detach().clone()
        for n, p in Trainer(small_config(**{"model.width": 128})).params.items()
    }
    init, reinit, again, other = (
        rewound("init"),
        rewound("reinit"),
        rewound("reinit"),
        rewound("reinit", seed=1),
    )
    for name, p in reinit.params.items():
        mask, fresh = reinit.masks[name], p.detach()[reinit.masks[name]]
        assert torch.equal(mask, init.masks[name])  # same mask
        assert torch.equal(init.params[name][mask], w0[name][mask])  # init: back to w0
        assert torch.all(p[~mask] == 0)
        assert (fresh != w0[name][mask]).float().mean() > 0.99  # new values
        assert 0.8 < float(fresh.std() / w0[name].std()) < 1.25  # from the same distribution
        assert torch.equal(fresh, again.params[name].detach()[mask])  # deterministic per seed
        assert torch.equal(fresh, reinit.rewind.fresh_init(1)[name][mask])  # the documented draw
        assert not torch.equal(reinit.rewind.fresh_init(1)[name], other.rewind.fresh_init(1)[name])
        assert not torch.equal(reinit.rewind.fresh_init(1)[name], reinit.rewind.fresh_init(2)[name])
    assert init.cfg.flat()["pruning.rewind"] == "init" != reinit.cfg.flat()["pruning.rewind"]


def test_imp_reinit_masks_are_the_winning_tickets_in_every_round(small_config):
    """Over several rounds, rewind: reinit prunes with the masks rewind: init finds (it trains
    the ticket beside the re-initialised network), while its own survivors stay fresh draws;
    its records are its own network's, and time excludes the ticket's training."""
    base = {
        "train.epochs": 8,
        "model.width": 64,
        "pruning.method": "imp",
        "pruning.rate": 0.5,
        "pruning.rounds": 3,
    }
    masks: dict[str, list[dict[str, torch.Tensor]]] = {}
    records: dict[str, list[dict]] = {}
    for rewind in ("init", "reinit"):
        trainer = Trainer(small_config(**base, **{"pruning.rewind": rewind}))
        masks[rewind], records[rewind] = [], []

        def report(r, t=trainer, rw=rewind):
            records[rw].append(r)
            masks[rw].append({n: m.clone() for n, m in t.masks.items()})

        trainer.run(report)
        assert trainer.rewind.ticket is None  # dropped once no pruning event is left
    for a, b in zip(masks["init"], masks["reinit"], strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)
    sparsities = [r["sparsity"] for r in records["reinit"]]
    assert sparsities == [r["sparsity"] for r in records["init"]] and sparsities[-1] > 0.8
    # rounds 1+ train another network: its losses differ from the winning ticket's
    assert records["reinit"][1]["train_loss"] == records["init"][1]["train_loss"]  # round 0
    assert records["reinit"][3]["train_loss"] != records["init"][3]["train_loss"]


def test_imp_reinit_checkpoint_mid_round_continues_bit_for_bit(small_config):
    cfg = small_config(
        **{
            "train.epochs": 6,
            "pruning.method": "imp",
            "pruning.rate": 0.5,
            "pruning.rounds": 2,
            "pruning.rewind": "reinit",
        }
    )
    full: list[dict] = []
    Trainer(cfg).run(full.append)

    class Stop(Exception):
        pass

    def stop_at_3(r):
        if r["epoch"] == 3:  # inside round 1: the ticket is training
            raise Stop

    first = Trainer(cfg)
    with pytest.raises(Stop):
        first.run(stop_at_3)
    assert first.rewind.ticket is not None
    second = Trainer(cfg)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    rest: list[dict] = []
    second.run(rest.append)
    keys = ["epoch", "train_loss", "val_loss", "test_acc", "sparsity"]
    assert [[r[k] for k in keys] for r in second.records] == [[r[k] for k in keys] for r in full]


def test_random_scores_are_a_different_mask_from_magnitude(small_config):
    base = {"pruning.method": "one_shot", "pruning.final_sparsity": 0.5, "train.epochs": 1}
    mag = Trainer(small_config(**base, **{"pruning.score": "magnitude"}))
    rnd = Trainer(small_config(**base, **{"pruning.score": "random"}))
    name = next(iter(mag.masks))
    total = sum(m.numel() for m in mag.masks.values())
    assert sum(int((~m).sum()) for m in rnd.masks.values()) == round(0.5 * total)
    assert not torch.equal(mag.masks[name], rnd.masks[name])
    original = Trainer(small_config(**{"train.epochs": 1})).params[name].abs()  # same seed, dense
    kept = original[mag.masks[name]].min()
    dropped_by_rnd = original[~rnd.masks[name]].max()
    assert dropped_by_rnd > kept  # random prunes some weights magnitude would keep


def test_same_seed_same_numbers(small_config):
    cfg = small_config(**{"pruning.method": "one_shot", "pruning.final_sparsity": 0.5})
    _, a, _ = _run(cfg)
    _, b, _ = _run(cfg)
    keys = ["train_loss", "val_loss", "test_acc", "sparsity", "nonzero_params"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    _, c, _ = _run(
        small_config(
            **{"train.seed": 1, "pruning.method": "one_shot", "pruning.final_sparsity": 0.5}
        )
    )
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]


RESTORE_CASES = {
    "unstructured": {"pruning.method": "gradual", "pruning.final_sparsity": 0.5},
    "structured-random": {
        "pruning.method": "gradual",
        "pruning.final_sparsity": 0.5,
        "pruning.granularity": "structured",
        "pruning.score": "random",  # the score generator must come back too
    },
    "nm-after-restore": {
        "pruning.method": "one_shot",
        "pruning.granularity": "nm",
        "pruning.start_epoch": 3,  # the pruning event falls after the restart
    },
}


@pytest.mark.parametrize("case", sorted(RESTORE_CASES))
def test_restore_from_state_continues_bit_for_bit(small_config, case):
    cfg = small_config(
        **{
            "train.epochs": 4,
            "pruning.end_epoch": 3,
            "train.optimizer": "sgd",
            **RESTORE_CASES[case],
        }
    )
    _, full, _ = _run(cfg)

    first = Trainer(cfg)
    part: list[dict] = []
    stop_after = 2  # train two epochs, then "crash"

    class Stop(Exception):
        pass

    def report(r):
        part.append(r)
        if r["epoch"] == stop_after:
            raise Stop

    with pytest.raises(Stop):
        first.run(report)
    state = first.state_dict()
    torch.save(state, "/dev/null")  # the state is serialisable
    second = Trainer(cfg)
    second.load_state_dict(state)
    second.run(part.append)
    keys = ["epoch", "train_loss", "val_loss", "test_acc", "sparsity", "lr"]
    assert [[r[k] for k in keys] for r in part] == [[r[k] for k in keys] for r in full]
    assert len(second.records) == 4
    assert full[-1]["sparsity"] > 0.4  # every case prunes by the end


def test_lr_schedules(small_config):
    _, recs, _ = _run(small_config(**{"train.epochs": 4, "train.lr_schedule": "cosine"}))
    lrs = [r["lr"] for r in recs]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[2] == pytest.approx(0.01 * (1 + math.cos(math.pi * 2 / 4)) / 2)
    _, recs, _ = _run(
        small_config(
            **{
                "train.epochs": 3,
                "train.lr_schedule": "step",
                "train.lr_step_epochs": 2,
                "train.lr_gamma": 0.5,
            }
        )
    )
    assert [r["lr"] for r in recs] == pytest.approx([0.01, 0.01, 0.005])


def test_cnn_on_1d_signals_and_sparse_inference(small_config):
    cfg = small_config(
        **{
            "model.arch": "cnn",
            "model.depth": 3,
            "model.width": 16,
            "train.epochs": 2,
            "pruning.method": "one_shot",
            "pruning.final_sparsity": 0.9,
            "pruning.prune_output": True,
        }
    )
    trainer, records, summary = _run(cfg)
    assert any(k.startswith("layer_sparsity/conv") for k in records[-1])
    assert summary["deploy_format"] in ("csr", "dense") and summary["infer_ms_b256"] > 0
    # The CSR copy (every pruned layer forced to CSR) computes the masked model's function.
    from sparsity_tune.trial.deploy import csr_model

    x = trainer.data.test_x[:32]
    sparse, chosen = csr_model(trainer.model, trainer.masks, x, margin=float("inf"))
    assert sorted(chosen) == ["conv1", "conv2", "conv3", "out"]
    with torch.no_grad():
        dense = trainer.model.eval()(x)
        torch.testing.assert_close(sparse(x), dense, rtol=1e-4, atol=1e-5)


def test_no_validation_split_still_summarises(small_config):
    _, records, summary = _run(small_config(**{"dataset.val_fraction": 0.0, "train.epochs": 2}))
    assert all(math.isnan(r["val_acc"]) for r in records)
    assert summary["best_epoch"] == 2 and summary["epochs_to_99pct"] is None
    assert summary["test_acc_at_best_val"] == records[-1]["test_acc"]


def test_flush_denormal_is_scoped_to_the_run(small_config):
    subnormal = torch.tensor([1e-40])
    assert subnormal.mul(1.0).item() != 0.0  # the process starts with IEEE subnormals
    _run(small_config(**{"train.epochs": 1}))
    assert subnormal.mul(1.0).item() != 0.0  # and the trainer gave them back


def test_peak_memory_counts_the_model_and_its_optimizer_state(small_config):
    """A 1024-wide MLP holds ~4 MB per 1024x1024 weight, x4 with grads and Adam's two moments."""
    small = _run(small_config(**{"model.width": 16, "train.epochs": 2}))[1]
    big = _run(small_config(**{"model.width": 1024, "train.epochs": 2}))[1]
    for records in (small, big):
        assert all(r["peak_mem_bytes"] > 0 for r in records)
    assert min(r["peak_mem_bytes"] for r in big) > max(r["peak_mem_bytes"] for r in small) + 8e6


def test_images_train_channels_last(small_config):
    """3-channel images: NHWC model and batches, same sizes and counts as any other run."""
    from sparsity_tune.trial.data import DataSplits

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (96,), generator=g)
    data = DataSplits(
        x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], 10, (3, 16, 16), "cifar10"
    )
    cfg = small_config(
        **{
            "model.arch": "cnn",
            "model.depth": 2,
            "model.width": 8,
            "train.epochs": 2,
            "pruning.method": "one_shot",
            "pruning.final_sparsity": 0.5,
        }
    )
    trainer = Trainer(cfg, data=data)
    records: list[dict] = []
    trainer.run(records.append)
    conv = trainer.model.get_submodule("conv1").weight
    assert conv.dim() == 4 and conv.is_contiguous(memory_format=torch.channels_last)
    assert len(records) == 2 and records[-1]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert all(torch.all(p[~trainer.masks[n]] == 0) for n, p in trainer.params.items())


GRANULARITY_RUNS = {
    "structured-mlp": {"pruning.granularity": "structured", "pruning.method": "gradual"},
    "structured-cnn": {
        "pruning.granularity": "structured",
        "pruning.method": "gradual",
        "pruning.scope": "layerwise",
        "model.arch": "cnn",
        "model.width": 16,
    },
    "nm-mlp": {"pruning.granularity": "nm", "pruning.method": "one_shot", "pruning.start_epoch": 1},
    "nm-cnn": {
        "pruning.granularity": "nm",
        "pruning.method": "one_shot",
        "pruning.n": 1,
        "pruning.m": 4,
        "model.arch": "cnn",
        "model.width": 16,
    },
}


@pytest.mark.parametrize("case", sorted(GRANULARITY_RUNS))
def test_each_granularity_records_the_sparsity_asked(small_config, case):
    """A short run per granularity: every record's sparsity is what the masks hold, within what
    the granularity promises for the target, and the masks have the granularity's shape."""
    from sparsity_tune.trial.pruning import nm_pruned_count
    from sparsity_tune.trial.units import UnitLayout, alive_units, unit_masks

    cfg = small_config(
        **{"train.epochs": 3, "pruning.final_sparsity": 0.6, "pruning.end_epoch": 2}
        | GRANULARITY_RUNS[case]
    )
    trainer, records, summary = _run(cfg)
    p = cfg.pruning
    masks = trainer.dense_masks()  # structured runs are compacted: masks in dense coordinates
    total = sum(m.numel() for m in masks.values())
    pruned = round(records[-1]["sparsity"] * total)
    if p.granularity == "nm":
        assert [r["target_sparsity"] for r in records][-1] == 1 - p.n / p.m
        assert pruned == nm_pruned_count({n: m.shape for n, m in masks.items()}, p.n, p.m)
        for m in masks.values():
            flat = m.reshape(m.shape[0], -1)
            full = flat.shape[1] // p.m * p.m
            assert (flat[:, :full].reshape(m.shape[0], -1, p.m).sum(-1) == p.n).all()
        assert records[-1]["sparsity"] > 0.6 if p.n == 1 else records[-1]["sparsity"] > 0.45
    else:
        groups = trainer.granularity.groups
        assert "out.weight" in masks  # its columns go with the last hidden layer's units
        layout = UnitLayout(groups, {n: tuple(m.shape) for n, m in masks.items()})
        tol = layout.tolerance(p.scope)
        for r in records:
            assert abs(r["sparsity"] - r["target_sparsity"]) * total <= tol
        assert records[-1]["target_sparsity"] == pytest.approx(0.6)
        alive = alive_units(masks, groups)
        rebuilt = unit_masks({n: torch.ones_like(m) for n, m in masks.items()}, groups, alive)
        assert all(torch.equal(masks[n], rebuilt[n]) for n in masks)  # the mask contract
        assert all(a.any() for a in alive)
        assert records[-1]["flops_sparse"] < 0.7 * records[-1]["flops_dense"]
    for name, w in trainer.params.items():
        assert torch.all(w[~trainer.masks[name]] == 0), name
    assert records[-1]["nonzero_params"] == records[-1]["total_params"] - pruned
    assert summary["final_sparsity"] == records[-1]["sparsity"]


# ----------------------------------------------------------------------------- plateau stop
PLATEAU = {"train.lr_schedule": "constant", "train.until": {"patience": 2}}
_KEYS = ["epoch", "train_loss", "val_loss", "test_acc", "sparsity", "lr"]


def _same(a: list[dict], b: list[dict], keys=(*_KEYS, "epochs_trained")) -> bool:
    return [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


def test_plateau_stops_a_run_where_the_rule_says(small_config):
    """The stopped run is the fixed run's prefix, cut where the pure rule cuts its curve."""
    from sparsity_tune.trial.plateau import Rule, run

    _, fixed, _ = _run(small_config(**{"train.epochs": 12, "train.lr_schedule": "constant"}))
    trainer, recs, summary = _run(small_config(**{"train.epochs": 12, **PLATEAU}))
    expected = run(Rule("min", 2), [r["val_loss"] for r in fixed], cap=12)
    assert expected.converged and expected.epochs < 12  # the case the test is about
    assert len(recs) == expected.epochs == summary["epochs"] and trainer.done
    assert _same(recs, fixed[: expected.epochs], _KEYS)
    for r in recs:
        check_record(r)
    assert [r["epochs_trained"] for r in recs] == list(range(1, len(recs) + 1))
    assert [r["converged"] for r in recs] == [False] * (len(recs) - 1) + [True]
    assert summary["all_converged"] is True
    assert all(r["converged"] is None for r in fixed) and fixed[-1]["epochs_trained"] == 12


def test_plateau_cap_while_improving_is_not_converged(small_config):
    cfg = small_config(**{"train.epochs": 4, **PLATEAU, "train.until": {"patience": 3}})
    _, recs, summary = _run(cfg)
    assert len(recs) == 4 and [r["converged"] for r in recs] == [False] * 4
    assert recs[-1]["val_loss"] > min(r["val_loss"] for r in recs)  # it could not fire: since < 3
    assert summary["all_converged"] is False


def test_plateau_waits_for_the_last_pruning_event(small_config):
    """A gradual run's plateau counts only once its final mask is in place: patience 1 would
    stop a dense run after a few epochs, but not before end_epoch here."""
    cfg = small_config(
        **{
            "train.epochs": 12,
            **PLATEAU,
            "train.until": {"patience": 1, "metric": "train_acc", "min_delta": 0.5},
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.5,
            "pruning.end_epoch": 5,
        }
    )
    _, recs, summary = _run(cfg)
    # min_delta 0.5 of accuracy: nothing counts as an improvement after the first value, so
    # the rule fires as soon as it may: one epoch after the final event at epoch 5
    assert len(recs) == 6 and recs[-1]["converged"] is True
    assert recs[4]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert summary["all_converged"] is True


IMP_PLATEAU = {
    "train.epochs": 24,
    "pruning.method": "imp",
    "pruning.rate": 0.5,
    "pruning.rounds": 2,
    **PLATEAU,
}


def _rounds(recs: list[dict]) -> list[list[dict]]:
    out: list[list[dict]] = []
    for r in recs:
        if r["epochs_trained"] == 1:
            out.append([])
        out[-1].append(r)
    return out


def test_imp_rounds_each_stop_on_their_own_plateau(small_config):
    from sparsity_tune.trial.plateau import Rule, run
    from sparsity_tune.trial.schedule import imp_target

    _, recs, summary = _run(small_config(**IMP_PLATEAU))
    rounds = _rounds(recs)
    assert len(rounds) == 3 and len(recs) < 24  # every round prunes, and plateaus early
    for k, rnd in enumerate(rounds):
        out = run(Rule("min", 2), [r["val_loss"] for r in rnd], cap=8)
        assert len(rnd) == out.epochs and rnd[-1]["converged"] is out.converged
        assert [r["converged"] for r in rnd[:-1]] == [False] * (len(rnd) - 1)
        assert [r["target_sparsity"] for r in rnd] == pytest.approx([imp_target(k, 0.5)] * len(rnd))
    assert [r["epoch"] for r in recs] == list(range(1, len(recs) + 1))
    assert summary["all_converged"] is all(rnd[-1]["converged"] for rnd in rounds)


def test_plateau_resume_mid_round_is_bit_exact(small_config):
    """Stopped inside IMP round 1 with the rule's count running, restored, it stops at the
    same epochs with the same records as the uninterrupted run."""
    cfg = small_config(**IMP_PLATEAU)
    _, full, _ = _run(cfg)
    rounds = _rounds(full)
    stop_at = rounds[1][1]["epoch"]  # round 1's second epoch

    class Stop(Exception):
        pass

    def report(r):
        if r["epoch"] == stop_at:
            raise Stop

    first = Trainer(cfg)
    with pytest.raises(Stop):
        first.run(report)
    state = copy.deepcopy(first.state_dict())
    torch.save(state, "/dev/null")  # serialisable
    assert state["plateau"]["seg_trained"] == 2 and state["plateau"]["skipped"] > 0
    second = Trainer(cfg)
    second.load_state_dict(state)
    second.run()
    assert _same(second.records, full, (*_KEYS, "epochs_trained", "converged"))


def test_checkpoint_without_plateau_state_still_loads(small_config):
    """Checkpoints from before the rule existed (no "plateau" key) continue as they did."""
    cfg = small_config(**{"train.epochs": 4})
    _, full, _ = _run(cfg)
    first = Trainer(cfg)

    class Stop(Exception):
        pass

    def report(r):
        if r["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        first.run(report)
    state = first.state_dict()
    del state["plateau"]
    second = Trainer(cfg)
    second.load_state_dict(state)
    second.run()
    assert _same(second.records, full, (*_KEYS, "epochs_trained", "converged"))


def test_plateau_imp_structured_reinit_compacts_after_its_last_round(small_config):
    """The clock jump keeps the schedule's events: the last round is compacted (structured) and
    every rewind draws the k-th fresh weights (reinit), whatever epoch the rounds ended at."""
    cfg = small_config(
        **{**IMP_PLATEAU, "pruning.granularity": "structured", "pruning.rewind": "reinit"}
    )
    trainer, recs, summary = _run(cfg)
    rounds = _rounds(recs)
    assert len(rounds) == 3 and trainer.compaction is not None and trainer.rewind.ticket is None
    assert trainer._clock() == 24 and trainer.epoch == len(recs) < 24
    for r in recs:
        check_record(r)
    assert rounds[-1][-1]["sparsity"] == pytest.approx(0.75, abs=0.05)
    assert summary["deploy_format"] == "compact"
