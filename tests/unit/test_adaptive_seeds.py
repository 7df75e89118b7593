"""``search.seeds: {initial, max}`` and ``search.budget``: validated in the spec (errors name the
key, the value and what is allowed; exit 2), resolved once into the plan, printed by --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparsity_tune.sweep import launch
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep.validate import validate_spec
from sparsity_tune.trial.config import ConfigError

SPEC = {
    "name": "a",
    "train": {"epochs": 4},
    "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 2},
    "search": {
        "parameters": {"pruning.final_sparsity": {"values": [0.0, 0.5, 0.9]}},
        "seeds": {"initial": 3, "max": 12},
        "budget": 300.0,
    },
    "wandb": {"mode": "disabled"},
}


def _spec(**search) -> dict:
    return {**SPEC, "search": {**SPEC["search"], **search}}


def test_adaptive_seeds_resolve_into_the_plan() -> None:
    spec = validate_spec(SPEC, sweep=False)
    assert spec.search.seeds == [0, 1, 2] and spec.search.adaptive.max == 12
    p = planner.build(spec, "/r/a", "/r")
    assert p.seeds == (0, 1, 2) and p.trials == 9
    assert p.search.adaptive == planner.SeedsPlan(3, 12, (3, 6, 12), 300.0)
    assert p.results()["search"]["adaptive"] == {
        "initial": 3,
        "max": 12,
        "looks": [3, 6, 12],
        "budget": 300.0,
        "tolerance": 1.0,
    }
    text = p.describe()
    assert "trials      9 = 3 configuration(s) x 3 seed(s) [0, 1, 2]" in text
    assert (
        "seeds       adaptive: 3 first, up to 12 where a comparison is open at a tolerance "
        "of 1 point(s) (looks at 3, 6, 12 seeds; budget 300 trial-epochs)"
    ) in text


def test_the_tolerance_is_the_specs_and_reaches_the_plan() -> None:
    p = planner.build(validate_spec(_spec(tolerance=2.5), sweep=False), "/r/a", "/r")
    assert p.search.adaptive.tolerance == 2.5
    assert "open at a tolerance of 2.5 point(s)" in p.describe()


def test_a_seed_list_keeps_its_plan() -> None:
    spec = validate_spec(_spec(seeds=[0, 1], budget=None), sweep=False)
    p = planner.build(spec, "/r/a", "/r")
    assert spec.search.adaptive is None and p.search.adaptive is None and p.seeds == (0, 1)
    assert "adaptive" not in p.describe()


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"seeds": {"initial": 3, "max": 2}}, "search.seeds: max=2 is below initial=3"),
        ({"seeds": {"initial": 3}}, "search.seeds.max: Field required"),
        ({"seeds": {"initial": 1, "max": 4}}, "search.seeds.initial: Input should be greater"),
        ({"seeds": {"initial": 3, "max": 9, "step": 1}}, "search.seeds.step: Extra inputs"),
        ({"seeds": [0, 1], "budget": 5.0}, "search.budget=5 applies to adaptive seeds only"),
        ({"budget": -1.0}, "budget"),
        ({"tolerance": -1.0}, "search.tolerance=-1.0: allowed: greater than or equal to 0"),
        ({"tolerance": float("nan")}, "search.tolerance=nan: allowed: a finite number"),
        ({"tolerance": "1pt"}, "search.tolerance='1pt': allowed: a number"),
        ({"tolerance": 101}, "search.tolerance=101: allowed: less than or equal to 100"),
        ({"algorithm": "random"}, "needs algorithm grid (got 'random')"),
        ({"scheduler": "asha", "metric": "val_acc"}, "needs scheduler fifo (got 'asha')"),
        ({"num_samples": 2}, "needs a grid of listed values"),
        (
            {"parameters": {"train.lr": {"distribution": "uniform", "min": 0.01, "max": 0.1}}},
            "got num_samples 1 and \\['uniform'\\]",
        ),
    ],
)
def test_bad_adaptive_seeds_name_the_key(search: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_spec(_spec(**search), "a.yaml", sweep=False)


def test_bad_adaptive_seeds_exit_2_and_dry_run_prints_them(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_spec(seeds={"initial": 5, "max": 4})))
    assert launch.main([str(bad), "--storage", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "max=4 is below initial=5" in capsys.readouterr().err
    good = tmp_path / "a.yaml"
    good.write_text(yaml.safe_dump(SPEC))
    assert launch.main([str(good), "--storage", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "seeds       adaptive: 3 first, up to 12" in capsys.readouterr().out


def test_an_adaptive_plan_runs_through_the_seed_allocator() -> None:
    """Ray gets no param_space of its own, the allocator as searcher, samples until FINISHED."""
    from sparsity_tune.sweep import search
    from sparsity_tune.sweep.replicate import SeedAllocator

    p = planner.build(validate_spec(SPEC, sweep=False), "/r/a", "/r")
    assert search.param_space(p) == {}
    alg = search.search_alg(p)
    assert isinstance(alg, SeedAllocator) and alg.costs == [4.0, 4.0, 4.0]
    assert alg.configs == [{"pruning.final_sparsity": v} for v in (0.0, 0.5, 0.9)]
    assert search.tune_config(p).num_samples == -1


def test_the_saved_spec_reads_back_as_written() -> None:
    """launch.json keeps the spec as data; --resume validates it again into the same plan."""
    from sparsity_tune.sweep.state import spec_data

    spec = validate_spec(SPEC, sweep=False)
    data = spec_data(spec)
    assert data["search"]["seeds"] == {"initial": 3, "max": 12} and data["search"]["budget"] == 300
    again = planner.build(validate_spec(data, sweep=False), "/r/a", "/r")
    assert again.results() == planner.build(spec, "/r/a", "/r").results()
    plain = spec_data(validate_spec(_spec(seeds=[0, 1], budget=None), sweep=False))
    assert plain["search"]["seeds"] == [0, 1]


def test_a_plan_saved_before_the_tolerance_resumes_at_the_default_only() -> None:
    """launch.json of an adaptive sweep started by a version without search.tolerance (its
    seeds chased 1 point): --resume continues it at 1, and refuses another tolerance."""
    p = planner.build(validate_spec(SPEC, sweep=False), "/r/a", "/r")
    saved = p.results()
    del saved["search"]["adaptive"]["tolerance"]
    planner.check_saved(saved, p, "here")
    wide = planner.build(validate_spec(_spec(tolerance=2.0), sweep=False), "/r/a", "/r")
    with pytest.raises(ConfigError, match=r"search\.tolerance: started with 1\.0, now 2\.0"):
        planner.check_saved(saved, wide, "here")
    fixed = planner.build(validate_spec(_spec(seeds=[0, 1], budget=None), sweep=False), "/r", "/r")
    planner.check_saved(fixed.results(), fixed, "here")  # no adaptive section: nothing added
