"""Plan → Ray Tune translation: domains, seeds as a column, and the seed-averaging repeater."""

from __future__ import annotations

import math
import random

import pytest
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Float, Integer
from ray.tune.search.variant_generator import generate_variants

from sparsity_tune.sweep import plan, search
from sparsity_tune.sweep.spec import ParameterSpec
from sparsity_tune.sweep.validate import validate_spec

BASE = {
    "name": "t",
    "train": {"epochs": 4},
    "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 3},
}


def plan_of(data: dict) -> plan.Plan:
    """The plan a launcher would run for a spec (W&B off: nothing here logs)."""
    return plan.build(validate_spec(data), "/nowhere/x", "/nowhere", use_wandb=False)


def param(**given) -> plan.Parameter:
    """A searched key as the plan holds it, from spec syntax."""
    return plan.Parameter.of(ParameterSpec(**given))


def test_int_uniform_includes_max_like_wandb() -> None:
    d = search.domain(param(distribution="int_uniform", min=2, max=4), grid=False)
    assert isinstance(d, Integer)
    random.seed(0)
    seen = {d.sample() for _ in range(300)}
    assert seen == {2, 3, 4}


def test_log_uniform_uses_exponents_log_uniform_values_uses_values() -> None:
    a = search.domain(param(distribution="log_uniform", min=-3, max=0), grid=False)
    b = search.domain(param(distribution="log_uniform_values", min=0.001, max=1), grid=False)
    assert isinstance(a, Float) and isinstance(b, Float)
    assert (a.lower, a.upper) == pytest.approx((math.exp(-3), 1.0))
    assert (b.lower, b.upper) == (0.001, 1)


def test_values_are_a_grid_for_grid_and_a_choice_otherwise() -> None:
    p = param(values=[1, 2])
    assert search.domain(p, grid=True) == {"grid_search": [1, 2]}
    assert isinstance(search.domain(p, grid=False), Categorical)
    assert search.domain(param(value=7), grid=False) == 7


def test_random_search_keeps_a_sample_fixed_across_its_seeds() -> None:
    p = plan_of(
        {
            **BASE,
            "search": {
                "algorithm": "random",
                "parameters": {
                    "train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}
                },
                "num_samples": 3,
                "seeds": [0, 1, 2],
            },
        }
    )
    space = search.param_space(p)
    assert space["train.seed"] == tune.grid_search([0, 1, 2])
    alg = search.search_alg(p)
    assert alg._constant_grid_search  # the generator Ray uses for this sweep keeps samples fixed
    lrs: dict[float, list[int]] = {}
    for _ in range(p.search.tune_samples):  # what BasicVariantGenerator does per sample
        for _, c in generate_variants(space, constant_grid_search=alg._constant_grid_search):
            lrs.setdefault(c["train.lr"], []).append(c["train.seed"])
    assert len(lrs) == 3 and all(sorted(s) == [0, 1, 2] for s in lrs.values())


def test_grid_space_has_every_point_once_per_seed() -> None:
    p = plan_of(
        {**BASE, "search": {"parameters": {"model.width": {"values": [8, 16]}}, "seeds": [3, 4]}}
    )
    variants = [v for _, v in generate_variants(search.param_space(p))]
    assert sorted((v["model.width"], v["train.seed"]) for v in variants) == [
        (8, 3),
        (8, 4),
        (16, 3),
        (16, 4),
    ]


def test_trial_seed_maps_the_repeat_index_to_the_seed_list() -> None:
    assert search.trial_seed({"__trial_index__": 1}, [7, 9]) == 9
    assert search.trial_seed({"train.seed": 5}, [7, 9]) == 5
    assert search.trial_params({"a.b": 1, "train.seed": 2, "__trial_index__": 0}) == {"a.b": 1}


class Recorder(Searcher):
    """A minimal real Searcher: proposes numbered configs, records what it is told."""

    def __init__(self, metric, mode):
        super().__init__(metric=metric, mode=mode)
        self.n = 0
        self.told: dict[str, dict] = {}

    def suggest(self, trial_id):
        self.n += 1
        return {"x": self.n}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told[trial_id] = result


def test_seed_repeater_averages_each_objective_over_the_seeds() -> None:
    inner = Recorder(metric=["val_acc", "nonzero_params"], mode=["max", "min"])
    rep = search.SeedRepeater(inner, repeat=2)
    configs = {tid: rep.suggest(tid) for tid in ("a", "b", "c", "d")}
    assert [c["x"] for c in configs.values()] == [1, 1, 2, 2]
    assert [c["__trial_index__"] for c in configs.values()] == [0, 1, 0, 1]
    rep.on_trial_complete("a", {"val_acc": 0.5, "nonzero_params": 100})
    assert inner.told == {}  # waits for every seed of the configuration
    rep.on_trial_complete("b", {"val_acc": 0.7, "nonzero_params": 300})
    assert inner.told == {
        "a": {"val_acc": pytest.approx(0.6), "nonzero_params": pytest.approx(200)}
    }
    rep.on_trial_complete("c", None)  # a failed seed is left out of the mean
    rep.on_trial_complete("d", {"val_acc": 0.9, "nonzero_params": 50})
    assert inner.told["c"] == {"val_acc": pytest.approx(0.9), "nonzero_params": pytest.approx(50)}


def test_asha_runs_on_epochs_up_to_the_largest_searched_epoch_count() -> None:
    p = plan_of(
        {
            **BASE,
            "search": {
                "scheduler": "asha",
                "metric": "val_acc",
                "parameters": {"train.epochs": {"values": [4, 12]}},
                "grace_period": 2,
            },
        }
    )
    sched = search.scheduler(p)
    assert sched._time_attr == "epoch" and sched._metric == "val_acc" and sched._mode == "max"
    assert p.max_epochs == p.scheduler.max_t == 12 and sched._max_t == 12


@pytest.mark.parametrize(
    ("epochs", "grace", "rf"), [(6, 1, 2.0), (20, 1, 3.0), (40, 2, 3.0), (9, 3, 1.5)]
)
def test_asha_rungs_are_always_reported_as_ray_lays_them_out(
    epochs: int, grace: int, rf: float
) -> None:
    p = plan_of(
        {
            "name": "x",
            "train": {"epochs": epochs},
            "search": {
                "scheduler": "asha",
                "metric": "val_acc",
                "mode": "max",
                "grace_period": grace,
                "reduction_factor": rf,
            },
        }
    )
    bracket = search.scheduler(p)._brackets[0]
    milestones = {math.ceil(m) for m, _ in bracket._rungs}  # Ray's own rungs
    assert set(search.report_epochs(p)) == milestones
    assert search.report_epochs(plan_of({"name": "x"})) == ()  # FIFO: by time only


PICKLE_CASES = {
    "grid": {"algorithm": "grid", "parameters": {"model.width": {"values": [8, 16]}}},
    "random": {
        "algorithm": "random",
        "parameters": {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}},
        "num_samples": 2,
    },
    "optuna-tpe-1": {
        "algorithm": "optuna",
        "objectives": {"val_acc": "max"},
        "parameters": {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}},
        "num_samples": 4,
    },
    "optuna-nsga2-2": {
        "algorithm": "optuna",
        "objectives": {"val_acc": "max", "nonzero_params": "min"},
        "parameters": {"pruning.final_sparsity": {"distribution": "uniform", "min": 0, "max": 0.9}},
        "num_samples": 4,
        "max_concurrent": 2,
    },
    "optuna-tpe-2": {
        "algorithm": "optuna",
        "sampler": "tpe",
        "objectives": {"val_acc": "max", "nonzero_params": "min"},
        "parameters": {"pruning.final_sparsity": {"distribution": "uniform", "min": 0, "max": 0.9}},
        "num_samples": 4,
    },
}


@pytest.mark.parametrize("case", sorted(PICKLE_CASES))
def test_the_search_algorithm_survives_rays_pickle_round_trips(case: str, tmp_path) -> None:
    """What Ray does with it: cloudpickle inside the TuneConfig (tuner.pkl), then, once the
    searcher has seen the space and suggested, ``save``/``restore`` at every checkpoint."""
    import ray.cloudpickle as cloudpickle
    from ray.tune.search import ConcurrencyLimiter

    p = plan_of({**BASE, "search": {**PICKLE_CASES[case], "seeds": [0, 1]}})
    alg = search.search_alg(p)
    config = search.tune_config(p)
    copy = cloudpickle.loads(cloudpickle.dumps(config))
    assert type(copy.search_alg) is type(alg)
    if p.search.algorithm != "optuna":
        return
    alg.set_search_properties(None, None, search.param_space(p))
    suggested = [alg.suggest(f"t{i}") for i in range(2)]
    params = [search.trial_params(c) for c in suggested]
    assert params[0] == params[1] and set(params[0]) == set(p.parameters)  # one config, 2 seeds
    alg.save(str(tmp_path / "searcher.pkl"))
    fresh = search.search_alg(p)
    fresh.set_search_properties(None, None, search.param_space(p))
    fresh.restore(str(tmp_path / "searcher.pkl"))
    inner = fresh.searcher if isinstance(fresh, ConcurrencyLimiter) else fresh
    sampler = inner.searcher._ot_study.sampler
    assert type(sampler).__module__ == "sparsity_tune.sweep.samplers"
    assert search.trial_params(fresh.suggest("t2")).keys() == p.parameters.keys()  # still works
