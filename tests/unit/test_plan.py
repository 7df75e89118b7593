"""The sweep plan: built once from the spec, printed by --dry-run, saved in launch.json and run
again as saved by --resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from sparsity_tune import layout
from sparsity_tune.keys import ConfigError
from sparsity_tune.sweep import launch, resolve, state
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep.spec import ParameterSpec
from sparsity_tune.sweep.validate import validate_spec

SPEC = {
    "name": "s",
    "train": {"epochs": 4},
    "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 2},
    "search": {
        "algorithm": "optuna",
        "objectives": {"val_acc": "max", "nonzero_params": "min"},
        "parameters": {"train.lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 0.1}},
        "num_samples": 4,
        "seeds": [0, 1],
    },
}


def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return p


def test_the_plan_resolves_every_default_once() -> None:
    p = planner.build(validate_spec(SPEC), "/r/s", "/r")
    assert p.trials == 8 and p.search.sampler == "nsga2" and p.search.population == 2
    assert p.search.tune_samples == 8 and p.scheduler is None and p.max_epochs == 4
    assert p.wandb is not None and p.wandb.group == "s" and p.wandb.directory == "/r/s"
    text = p.describe()
    assert "trials      8 = 4 configuration(s) x 2 seed(s) [0, 1]" in text
    assert "optuna (nsga2)" in text and "wandb       offline → /r/s/wandb" in text


def test_results_leave_out_what_may_change_on_resume() -> None:
    a = planner.build(validate_spec(SPEC), "/r/s", "/r")
    other = {**SPEC, "dataset": {"root": "/elsewhere"}, "resources": {"cpu": 2}}
    b = planner.build(validate_spec(other), "/q/s", "/q", use_wandb=False)
    assert a.results() == b.results()
    assert planner.runtime_changes(a.runtime(), b) == [
        "dataset.root: started with 'data', now '/elsewhere'",
        "resources.cpu: started with 1.0, now 2.0",
        "wandb: started with {'experiment': 's', 'directory': '/r/s', 'project': "
        "'sparsity-tune', 'entity': None, 'group': 's', 'tags': [], 'mode': 'offline'}, now None",
    ]
    assert planner.runtime_changes(None, b) == []  # a record from before runtime was saved
    lr = {**SPEC, "train": {"epochs": 4, "lr": 0.5}}
    assert planner.build(validate_spec(lr), "/r/s", "/r").results() != a.results()


def test_results_and_runtime_split_every_setting_of_the_plan() -> None:
    """The one rulebook: every plan setting is either a result (must match on resume) or a
    runtime setting (may differ), never both, never neither."""
    p = planner.build(validate_spec(SPEC), "/r/s", "/r")
    results, runtime = planner.flatten(p.results()), planner.flatten(p.runtime())
    base_keys = {k.removeprefix("base.") for k in results if k.startswith("base.")}
    runtime_base = {
        k for k in runtime if k.split(".")[0] in ("dataset", "model", "train", "pruning")
    }
    assert base_keys.isdisjoint(runtime_base)
    assert base_keys | runtime_base == set(p.base.flat()) - {"train.seed"}
    assert set(runtime) - runtime_base == {
        "address", "resources.cpu", "resources.gpu", "search.max_failures",
        "search.checkpoint_every", "search.checkpoint_min_interval_s", "wandb.experiment",
        "wandb.directory", "wandb.project", "wandb.entity", "wandb.group", "wandb.tags",
        "wandb.mode",
    }  # fmt: skip


def test_check_saved_names_the_spec_keys_and_skips_keys_older_plans_lack() -> None:
    a = planner.build(validate_spec(SPEC), "/r/s", "/r")
    saved = a.results()
    older = {k: v for k, v in saved.items() if k != "on_gpu"}  # saved before on_gpu existed
    planner.check_saved(older, a, "here")
    planner.check_saved(None, a, "here")  # a record from before plans were saved
    b = planner.build(validate_spec({**SPEC, "train": {"epochs": 6}}), "/r/s", "/r")
    with pytest.raises(ConfigError) as err:
        planner.check_saved(saved, b, "/r/s/launch.json", "python -m sparsity_tune.launch x")
    msg = str(err.value)
    assert "train.epochs: started with 4, now 6" in msg and "max_epochs: started with 4" in msg
    assert "(/r/s/launch.json)" in msg and "python -m sparsity_tune.launch x" in msg
    assert "search.checkpoint_every" in msg  # what may change instead
    wide = planner.build(
        validate_spec({**SPEC, "search": {**SPEC["search"], "seeds": [0, 1, 2]}}), "/r/s", "/r"
    )
    with pytest.raises(ConfigError, match=r"search\.seeds: started with \[0, 1\], now \[0, 1, 2\]"):
        planner.check_saved(saved, wide, "here")


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, capsys) -> None:
    res = tmp_path / "res"
    assert launch.main([str(spec_file(tmp_path)), "--storage", str(res), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"experiment  s  →  {res / 's'}") and "objectives  val_acc" in out
    assert not res.exists()


def test_resume_runs_the_saved_plan_or_refuses(tmp_path: Path, capsys) -> None:
    exp = tmp_path / "res" / "s"
    exp.mkdir(parents=True)
    argv = [str(spec_file(tmp_path)), "--storage", str(exp.parent)]
    req = resolve.request(launch.parse_args(argv))
    saved = req.plan.results()
    record = state.LaunchRecord(
        spec=req.spec, spec_file="s.yaml", overrides=[], name="s",
        storage=req.storage, plan=saved,
    )  # fmt: skip
    record.save(exp)
    assert state.LaunchRecord.load(exp).plan == saved  # round-trips through launch.json
    assert launch.main([*argv, "--resume", "--dry-run", "--set", "wandb.project=p2"]) == 0
    assert "(project p2, group s)" in capsys.readouterr().out
    # a version that resolves the same spec into another plan (here: another sampler) is refused
    record.plan = {**saved, "search": {**saved["search"], "sampler": "tpe"}}
    record.save(exp)
    assert launch.main([*argv, "--resume", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "search.sampler: started with 'tpe', now 'nsga2'" in err and str(exp / layout.LAUNCH) in err
    )


@pytest.mark.parametrize(
    ("given", "ends"),
    [
        ({"distribution": "int_uniform", "min": 2, "max": 9}, [2, 9]),
        ({"distribution": "uniform", "min": 0.5, "max": 0.9}, [0.5, 0.9]),
        ({"distribution": "log_uniform_values", "min": 0.001, "max": 0.1}, [0.001, 0.1]),
        ({"distribution": "log_uniform", "min": 0, "max": 1}, [1.0, math.e]),
        ({"distribution": "q_uniform", "min": 1, "max": 9, "q": 4}, [0, 8]),
        ({"distribution": "q_log_uniform_values", "min": 3, "max": 10, "q": 2}, [4, 10]),
        ({"distribution": "normal", "mu": 0.3, "sigma": 0.1}, [0.3]),
    ],
)
def test_range_ends_are_what_the_trainer_sees(given: dict, ends: list) -> None:
    assert planner.range_ends(ParameterSpec(**given)) == pytest.approx(ends)


@pytest.mark.parametrize(
    "given",
    [
        {"value": 3},
        {"values": [[64, 32], [128]]},
        {"distribution": "q_uniform", "min": 1, "max": 9, "q": 4},
        {"distribution": "normal", "mu": 0.3, "sigma": 0.1},
        {"min": 1, "max": 4},
    ],
)
def test_a_plan_parameter_saves_as_the_spec_wrote_it(given: dict) -> None:
    """launch.json's saved plans hold the spec's own form (records of older versions match)."""
    spec = ParameterSpec(**given)
    p = planner.Parameter.of(spec)
    assert p.settings() == spec.model_dump(mode="json", exclude_none=True)
    assert list(p.settings()) == list(spec.model_dump(mode="json", exclude_none=True))


def test_max_epochs_takes_the_largest_searched_epochs() -> None:
    grid = {**SPEC, "search": {"parameters": {"train.epochs": {"values": [3, 7, 5]}}}}
    assert planner.build(validate_spec(grid), "/r/s", "/r").max_epochs == 7
    ranged = {
        **SPEC,
        "search": {
            "algorithm": "random",
            "parameters": {"train.epochs": {"distribution": "int_uniform", "min": 3, "max": 6}},
        },
    }
    p = planner.build(validate_spec(ranged), "/r/s", "/r")
    assert (p.max_epochs, p.search.configurations, p.trials) == (6, 1, 1)
