"""Config validation: every bad input names the key, the value and what is allowed."""

from __future__ import annotations

import re

import pytest

from sparsity_tune.keys import (
    LATER_DEFAULTS,
    NOT_IDENTITY,
    ConfigError,
    config_id,
    is_config_id,
    parse_overrides,
)
from sparsity_tune.trial.config import trial_config


def test_defaults_are_valid_and_flatten_to_dotted_keys():
    cfg = trial_config()
    flat = cfg.flat()
    assert flat["dataset.name"] == "mnist1d" and flat["pruning.method"] == "none"
    assert flat["train.epochs"] == 30 and "model.hidden" in flat


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"model.widht": 3}, ["model.widht", "unknown key"]),
        ({"pruning.final_sparsity": 1.0}, ["pruning.final_sparsity", "1.0", "less than 1"]),
        ({"pruning.final_sparsity": -0.1}, ["pruning.final_sparsity", "-0.1"]),
        ({"dataset.name": "imagenet"}, ["dataset.name", "imagenet", "mnist1d"]),
        (
            {"pruning.method": "gradual", "pruning.end_epoch": 40},
            ["end_epoch=40", "train.epochs=30"],
        ),
        (
            {"pruning.method": "one_shot", "pruning.start_epoch": 30},
            ["start_epoch=30", "fine-tune"],
        ),
        (
            {"pruning.method": "imp", "pruning.rounds": 3, "pruning.epochs_per_round": 4},
            ["rounds=3", "train.epochs=16"],
        ),
        (
            {
                "pruning.method": "gradual",
                "pruning.initial_sparsity": 0.5,
                "pruning.final_sparsity": 0.2,
            },
            ["initial_sparsity=0.5", "final_sparsity=0.2"],
        ),
        ({"train.device": "tpu"}, ["train.device", "tpu", "cuda:N"]),
        ({"model.preset": "lenet5"}, ["lenet5", "mnist1d"]),
        ({"model.arch": "cnn", "model.hidden": [3]}, ["model.hidden", "mlp"]),
        ({"train.optimizer": "rmsprop"}, ["train.optimizer", "rmsprop", "sgd"]),
        ({"pruning.method": "lottery"}, ["pruning.method", "'lottery'", "one_shot", "imp"]),
        ({"pruning.score": "taylor"}, ["pruning.score", "'taylor'", "magnitude, random, snip"]),
        ({"pruning.control": "flip"}, ["pruning.control", "'flip'", "shuffle_layer", "invert"]),
        (
            {"pruning.control": "shuffle_layer", "pruning.granularity": "structured"},
            ["pruning.control='shuffle_layer'", "granularity='structured'", "unstructured"],
        ),
        (
            {"pruning.method": "rigl", "pruning.final_sparsity": 0.5, "pruning.control": "invert"},
            ["pruning.control='invert'", "pruning.method='rigl'", "control none"],
        ),
        (
            {"pruning.distribution": "erk", "pruning.granularity": "nm"},
            ["pruning.distribution='erk'", "granularity='nm'", "distribution scope"],
        ),
        (
            {
                "pruning.method": "set",
                "pruning.granularity": "structured",
                "pruning.final_sparsity": 0.5,
            },
            ["pruning.method='set'", "granularity='structured'", "unstructured"],
        ),
        ({"pruning.method": "set"}, ["pruning.final_sparsity=0.0", "method='set'", "(0, 1)"]),
        (
            {"pruning.score": "synflow", "pruning.granularity": "nm", "pruning.method": "one_shot"},
            ["pruning.synflow_iterations=100", "granularity='nm'", "synflow_iterations 1"],
        ),
        ({"pruning.drop_fraction": 0.0}, ["pruning.drop_fraction", "greater than 0"]),
        ({"pruning.granularity": "blocks"}, ["pruning.granularity", "'blocks'", "nm"]),
        (
            {"pruning.granularity": "nm", "pruning.method": "gradual"},
            ["pruning.method='gradual'", "granularity='nm'", "1 - n/m = 0.5", "one_shot"],
        ),
        (
            {"pruning.granularity": "nm", "pruning.method": "imp", "train.epochs": 4},
            ["pruning.method='imp'", "granularity='nm'", "one_shot"],
        ),
        ({"pruning.granularity": "nm", "pruning.n": 4}, ["pruning.n=4", "pruning.m=4", "below"]),
        ({"pruning.m": 1}, ["pruning.m=1", "greater than or equal to 2"]),
        (
            {"pruning.granularity": "structured", "pruning.prune_output": True},
            ["pruning.prune_output=True", "granularity='structured'", "never removed"],
        ),
        ({"pruning.rewind": "random"}, ["pruning.rewind", "'random'", "reinit", "epoch K"]),
        ({"pruning.rewind": -1}, ["pruning.rewind", "-1", "epoch K >= 0"]),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(overrides, fragments):
    with pytest.raises(ConfigError) as err:
        trial_config({}, overrides)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_imp_epochs_per_round_defaults_to_an_even_split():
    cfg = trial_config({}, {"pruning.method": "imp", "pruning.rounds": 2, "train.epochs": 12})
    assert cfg.imp_epochs_per_round == 4


def test_overrides_parse_yaml_values_and_reject_garbage():
    assert parse_overrides(["train.lr=0.1", "model.hidden=[3, 4]", "pruning.rewind=init"]) == {
        "train.lr": 0.1,
        "model.hidden": [3, 4],
        "pruning.rewind": "init",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["train.lr"])


def test_config_id_is_stable_and_sensitive():
    a, b = trial_config(), trial_config({}, {"train.lr": 0.5})
    assert config_id(a) == config_id(trial_config()) != config_id(b)
    assert is_config_id(config_id(a)) and not is_config_id("../etc")


def test_config_id_leaves_out_the_seed_and_the_settings_that_change_no_result():
    a = trial_config()
    same = {"train.seed": 7, "dataset.root": "/elsewhere", "train.threads": 3}
    assert set(same) - {"train.seed"} <= set(NOT_IDENTITY)
    assert config_id(a) == config_id(trial_config({}, same))
    # the nested JSON form (config.json's "config") gives the same id as the typed config
    assert config_id(a.model_dump(mode="json")) == config_id(a)


def test_strategy_keys_of_other_strategies_are_ignored_so_a_base_sweeps_over_methods():
    """A base config may carry keys of several strategies (end_epoch, rate, n/m): each strategy
    checks only its own, so sweeping pruning.method or granularity over one base validates."""
    base = {"pruning.end_epoch": 20, "pruning.rate": 0.5, "pruning.n": 1, "pruning.m": 8}
    for method in ("none", "one_shot", "gradual"):
        for granularity in ("unstructured", "structured"):
            cfg = trial_config(
                {}, {**base, "pruning.method": method, "pruning.granularity": granularity}
            )
            assert cfg.pruning.granularity == granularity
    nm = trial_config({}, {**base, "pruning.method": "one_shot", "pruning.granularity": "nm"})
    assert (nm.pruning.n, nm.pruning.m) == (1, 8)


def test_reinit_is_part_of_the_config_identity():
    imp = {"pruning.method": "imp", "train.epochs": 4, "pruning.rounds": 1}
    a = trial_config({}, {**imp, "pruning.rewind": "init"})
    b = trial_config({}, {**imp, "pruning.rewind": "reinit"})
    assert b.flat()["pruning.rewind"] == "reinit" and config_id(a) != config_id(b)


def test_keys_added_later_keep_old_identities_at_their_defaults():
    new = trial_config().model_dump(mode="json")
    old = {
        s: {k: v for k, v in sec.items() if f"{s}.{k}" not in LATER_DEFAULTS}
        for s, sec in new.items()
    }
    assert set(config_id(old) for _ in range(2)) == {config_id(new)}
    assert all(trial_config().flat()[k] == v for k, v in LATER_DEFAULTS.items())
    changed = trial_config({}, {"pruning.control": "invert"})
    assert config_id(changed) != config_id(new)


def test_train_until_is_validated_and_absent_when_unset():
    """No rule: no ``until`` key in the dump, the flat keys or the identity (every config written
    before the rule existed keeps its id); a rule is part of the identity."""
    plain = trial_config()
    assert "until" not in plain.model_dump(mode="json")["train"]
    assert not [k for k in plain.flat() if k.startswith("train.until")]
    ruled = trial_config({}, {"train.until": {"patience": 2}})
    assert ruled.train.until.model_dump() == {"metric": "val_loss", "patience": 2, "min_delta": 0.0}
    assert ruled.flat()["train.until.patience"] == 2
    assert config_id(ruled) != config_id(plain)
    assert config_id(ruled.model_dump(mode="json")) == config_id(ruled)
    assert trial_config({}, {"train.until": None}) == plain


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"train.until": {"max_epochs": 60}}, "max_epochs=60: the cap is train.epochs"),
        ({"train.until": {"metric": "test_acc"}}, "train.until.metric='test_acc': allowed:"),
        ({"train.until": {"patience": 0}}, "train.until.patience=0: allowed: greater than"),
        ({"train.until": {"min_delta": -1.0}}, "train.until.min_delta=-1.0: allowed: greater"),
        ({"train.until": {"patience": 2.0}}, "train.until.patience=2.0: allowed: a whole number"),
        ({"train.until": {"pateince": 2}}, "train.until.pateince: unknown key"),
        (
            {"train.until": {"metric": "val_acc"}, "dataset.val_fraction": 0.0},
            "needs a validation split, but dataset.val_fraction=0",
        ),
        (
            {"train.until": {"patience": 30}},
            "train.until.patience=30 can never end a segment of 30 epochs (train.epochs)",
        ),
        (
            {"train.until": {"patience": 4}, "pruning.method": "imp", "train.epochs": 16},
            "segment of 4 epochs (pruning.epochs_per_round (an IMP round))",
        ),
    ],
)
def test_bad_train_until_names_key_value_and_what_is_allowed(overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        trial_config({}, overrides)


def test_control_chars_names_each_control_character_once() -> None:
    """The one check behind the trial config's plain text and SLURM's script values."""
    from sparsity_tune.keys import control_chars

    assert control_chars("a\nb\tc\x7f\n\x00") == ["'\\n'", "'\\t'", "'\\x00'", "'\\x7f'"]
    assert control_chars("plain text, ünïcode and spaces") == []
