"""Spec validation: every bad search section is refused with a message naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sparsity_tune.keys import ConfigError, parse_overrides
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep.plan import configurations
from sparsity_tune.sweep.spec import Spec
from sparsity_tune.sweep.validate import load, load_spec, validate_spec
from sparsity_tune.sweep.wandb_sweep import from_wandb_sweep

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "name": "t",
    "dataset": {"name": "mnist1d", "train_limit": 500},
    "model": {"arch": "mlp", "depth": 2, "width": 32},
    "train": {"epochs": 4},
    "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 3},
}


def spec_with(search: dict, **top) -> dict:
    return {**BASE, "search": search, **top}


def plan_of(spec: Spec) -> planner.Plan:
    return planner.build(spec, "/nowhere/t", "/nowhere", use_wandb=False)


def refused(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate_spec(data)
    return str(err.value)


@pytest.mark.parametrize(
    "path", sorted((REPO / "search_spaces").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_specs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert plan_of(spec).trials >= 1


def test_the_demos_adaptive_variant_is_the_same_job_with_adaptive_seeds() -> None:
    """The command demo.yaml's header gives for adaptive seeds validates, and changes nothing
    but the seeds: 3 first of each configuration, up to 6, within the budget."""
    path = REPO / "search_spaces" / "demo.yaml"
    sets = [a or b for a, b in re.findall(r"--set (?:'([^']+)'|(\S+))", path.read_text())]
    assert sets == ["search.seeds={initial: 3, max: 6}", "search.budget=7560"]
    fixed = load(path).spec
    adaptive = load(path, parse_overrides(sets)).spec
    assert fixed.search.adaptive is None and fixed.search.seeds == [0, 1, 2, 3]
    assert (adaptive.search.adaptive.initial, adaptive.search.adaptive.max) == (3, 6)
    assert adaptive.search.seeds == [0, 1, 2] and adaptive.search.budget == 7560
    assert adaptive.model_dump(exclude={"search"}) == fixed.model_dump(exclude={"search"})
    assert adaptive.search.parameters == fixed.search.parameters


def test_grid_counts_configs_times_seeds() -> None:
    spec = validate_spec(
        spec_with(
            {
                "parameters": {
                    "pruning.final_sparsity": {"values": [0.5, 0.8, 0.9]},
                    "model.width": {"values": [16, 32]},
                },
                "seeds": [0, 1],
            }
        )
    )
    plan = plan_of(spec)
    assert (plan.search.configurations, plan.trials) == (6, 12)


def test_unknown_parameter_path_names_the_key_and_the_section_keys() -> None:
    msg = refused(spec_with({"parameters": {"model.widht": {"values": [1, 2]}}}))
    assert "search.parameters.model.widht" in msg
    assert "width" in msg  # lists the keys that do exist


def test_unknown_section_in_parameter_path() -> None:
    msg = refused(spec_with({"parameters": {"optim.lr": {"values": [0.1]}}}))
    assert "search.parameters.optim.lr" in msg and "dataset, model, train, pruning" in msg


def test_min_above_max_is_refused() -> None:
    msg = refused(
        spec_with(
            {
                "algorithm": "random",
                "parameters": {"train.lr": {"distribution": "uniform", "min": 0.1, "max": 0.01}},
            }
        )
    )
    assert "train.lr" in msg and "min=0.1 is above max=0.01" in msg


def test_log_distribution_needs_positive_min() -> None:
    msg = refused(
        spec_with(
            {
                "algorithm": "random",
                "parameters": {
                    "train.lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}
                },
            }
        )
    )
    assert "min > 0" in msg


def test_values_out_of_range_for_the_trainer_are_refused() -> None:
    msg = refused(spec_with({"parameters": {"pruning.final_sparsity": {"values": [0.5, 1.5]}}}))
    assert "search.parameters.pruning.final_sparsity" in msg and "1.5" in msg


def test_range_end_checked_against_the_trainer_config() -> None:
    msg = refused(
        spec_with(
            {
                "algorithm": "random",
                "parameters": {
                    "pruning.final_sparsity": {"distribution": "uniform", "min": 0.5, "max": 1.0}
                },
            }
        )
    )
    assert "final_sparsity" in msg and "1.0" in msg


def test_grid_point_clash_between_keys_is_found() -> None:
    # end_epoch 6 is beyond epochs 4 only in combination with the searched epochs value
    msg = refused(
        spec_with(
            {
                "parameters": {
                    "train.epochs": {"values": [4, 8]},
                    "pruning.end_epoch": {"values": [3, 6]},
                }
            }
        )
    )
    assert "grid point" in msg and "end_epoch" in msg


def test_objective_must_be_a_metric_name() -> None:
    msg = refused(spec_with({"algorithm": "optuna", "objectives": {"accuracy": "max"}}))
    assert "search.objectives.accuracy" in msg and "val_acc" in msg


def test_summary_keys_are_valid_objectives() -> None:
    spec = validate_spec(
        spec_with(
            {"algorithm": "optuna", "objectives": {"best_val_acc": "max", "sparse_bytes": "min"}}
        )
    )
    assert plan_of(spec).search.objectives == {"best_val_acc": "max", "sparse_bytes": "min"}


def test_asha_with_several_objectives_needs_a_metric() -> None:
    msg = refused(
        spec_with(
            {
                "algorithm": "optuna",
                "scheduler": "asha",
                "objectives": {"val_acc": "max", "sparse_bytes": "min"},
            }
        )
    )
    assert "search.metric" in msg and "asha" in msg


def test_asha_metric_must_be_reported_every_epoch() -> None:
    msg = refused(spec_with({"scheduler": "asha", "metric": "best_val_acc"}))
    assert "per-epoch record key" in msg


def test_asha_takes_the_single_objective_as_its_metric() -> None:
    spec = validate_spec(
        spec_with({"algorithm": "optuna", "scheduler": "asha", "objectives": {"val_loss": "min"}})
    )
    sch = plan_of(spec).scheduler
    assert (sch.metric, sch.mode, sch.max_t) == ("val_loss", "min", 4)


def test_grid_cannot_enumerate_a_distribution() -> None:
    msg = refused(
        spec_with(
            {"parameters": {"train.lr": {"distribution": "uniform", "min": 0.001, "max": 0.1}}}
        )
    )
    assert "algorithm grid" in msg


def test_optuna_needs_an_objective() -> None:
    assert "needs at least one objective" in refused(spec_with({"algorithm": "optuna"}))


def test_seed_is_not_a_parameter() -> None:
    assert "search.seeds" in refused(spec_with({"parameters": {"train.seed": {"values": [0, 1]}}}))


def test_repeated_seeds_refused() -> None:
    assert "repeats a seed" in refused(spec_with({"seeds": [0, 0]}))


def test_unknown_search_key_refused() -> None:
    assert "search.algoritm" in refused(spec_with({"algoritm": "grid"}))


def test_parameter_without_value_values_or_range() -> None:
    msg = refused(spec_with({"parameters": {"train.lr": {"q": 0.1}}}))
    assert "search.parameters.train.lr" in msg and "values" in msg


def test_int_min_max_infers_int_uniform_like_wandb() -> None:
    spec = validate_spec(
        spec_with({"algorithm": "random", "parameters": {"model.width": {"min": 8, "max": 64}}})
    )
    assert spec.search.parameters["model.width"].distribution == "int_uniform"
    spec = validate_spec(
        spec_with({"algorithm": "random", "parameters": {"train.lr": {"min": 0.001, "max": 0.1}}})
    )
    assert spec.search.parameters["train.lr"].distribution == "uniform"


def test_optuna_refuses_list_valued_choices() -> None:
    msg = refused(
        spec_with(
            {
                "algorithm": "optuna",
                "objectives": {"val_acc": "max"},
                "parameters": {"model.hidden": {"values": [[64, 32], [128]]}},
            }
        )
    )
    assert "scalar" in msg


def test_wandb_sweep_file_maps_onto_a_spec(tmp_path: Path) -> None:
    sweep = {
        "method": "bayes",
        "name": "wb",
        "project": "proj",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {
            "train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
            "pruning": {
                "parameters": {
                    "final_sparsity": {"values": [0.5, 0.9]},
                    "method": {"value": "gradual"},
                }
            },
            "train.epochs": {"value": 3},
            "train.seed": {"values": [0, 1]},
            "dataset.train_limit": {"value": 500},
        },
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "run_cap": 6,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    spec = load_spec(path)
    s = spec.search
    assert (spec.name, spec.wandb.project) == ("wb", "proj")
    assert s.algorithm == "optuna" and s.objectives == {"val_acc": "max"}
    assert set(s.parameters) == {"train.lr", "pruning.final_sparsity"}
    assert spec.pruning.method == "gradual" and spec.train.epochs == 3  # value: → base config
    assert s.seeds == [0, 1]
    # run_cap counts W&B runs (one per seed here): 6 runs = 3 configurations x 2 seeds
    assert (s.scheduler, s.grace_period, s.reduction_factor, s.num_samples) == ("asha", 2, 2.0, 3)
    assert plan_of(spec).trials == 6


def test_wandb_sweep_unknown_key_and_method() -> None:
    with pytest.raises(ConfigError, match="unknown top-level"):
        from_wandb_sweep({"method": "grid", "parameter": {}})
    with pytest.raises(ConfigError, match="method='hyperopt'"):
        from_wandb_sweep({"method": "hyperopt", "parameters": {}})


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_with({"parameters": {"model.width": {"values": [8, 16]}}})))
    spec = load_spec(path, {"search.seeds": [3, 4, 5]})
    assert plan_of(spec).trials == 6
    with pytest.raises(ConfigError, match=r"search\.num_samples"):
        load_spec(path, {"search.num_samples": 0})


@pytest.mark.parametrize(
    ("file_extra", "overrides", "head", "lines"),
    [
        # a typo given with --set is blamed on --set, with the closest key
        (
            {},
            {"model.widht": 3},
            "--set:",
            ["--set model.widht: unknown key, did you mean model.width?"],
        ),
        (
            {},
            {"serch.num_samples": 3},
            "--set:",
            ["--set serch: unknown key, did you mean search?"],
        ),
        ({}, {"train.epochs": "x"}, "--set:", ["--set train.epochs='x': allowed: a whole number"]),
        # one from the file, one from --set: both sources named
        (
            {"trian": {"epochs": 1}},
            {"pruning.final_sparsty": 0.5},
            "s.yaml and --set:",
            [
                "trian: unknown key, did you mean train?",
                "--set pruning.final_sparsty: unknown key, did you mean pruning.final_sparsity?",
            ],
        ),
        # in the file: the file is named; nothing close: no guess
        (
            {"search": {"zzzzzz": 1}},
            {},
            "s.yaml:",
            ["search.zzzzzz: unknown key (check the spelling"],
        ),
    ],
)
def test_a_bad_key_names_its_source_and_the_closest_allowed_key(
    tmp_path: Path, file_extra: dict, overrides: dict, head: str, lines: list[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, **file_extra}))
    with pytest.raises(ConfigError) as err:
        load_spec(path, overrides)
    first, *rest = str(err.value).splitlines()
    assert first.endswith(head) and (head != "--set:" or first == "--set:")
    assert len(rest) == len(lines)
    for want in lines:
        assert any(got.startswith(want) for got in rest), (want, rest)


def test_a_nested_key_can_be_searched_and_its_values_are_checked() -> None:
    """train.until is a nested section: its keys are searched and checked like any other."""
    base = {**BASE, "train": {"epochs": 4, "until": {"patience": 2}}}
    ok = validate_spec(
        {**base, "search": {"parameters": {"train.until.patience": {"values": [1, 2]}}}}
    )
    assert configurations(ok) == 2
    msg = refused({**base, "search": {"parameters": {"train.until.patience": {"values": [0, 2]}}}})
    assert "search.parameters.train.until.patience: train.until.patience=0: allowed: greater" in msg
    msg = refused({**base, "search": {"parameters": {"train.until.patience": {"values": [4]}}}})
    assert "train.until.patience=4 can never end a segment of 4 epochs (train.epochs)" in msg
