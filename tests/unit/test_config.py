"""Config validation: every bad input names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from sparsity_tune.trial.config import ConfigError, config_hash, parse_overrides, trial_config


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


def test_config_hash_is_stable_and_sensitive():
    a, b = trial_config(), trial_config({}, {"train.lr": 0.5})
    assert config_hash(a) == config_hash(trial_config()) != config_hash(b)
