"""A sweep :class:`~sparsity_tune.sweep.plan.Plan` → Ray Tune's param_space, searcher and scheduler.

Ray Tune does the heavy lifting: ``tune.grid_search``/``choice``/``uniform``/... sample the space,
``OptunaSearch`` (TPE, or NSGA-II / multi-objective TPE for several objectives) proposes configs,
``ConcurrencyLimiter`` caps trials in flight, ``ASHAScheduler`` stops weak trials early.

Seeds: every sampled configuration runs once per seed, as separate trials whose ``train.seed`` is a
config column.

* grid/random: ``train.seed`` is one more ``tune.grid_search`` axis, and
  ``BasicVariantGenerator(constant_grid_search=True)`` samples the random axes once per sample
  and keeps them fixed across the grid, so the seeds of one sample share its configuration.
* optuna: a searcher must see each configuration once, so :class:`SeedRepeater` (Ray's
  ``Repeater``) asks Optuna for one configuration and hands it out ``len(seeds)`` times with
  ``__trial_index__`` = 0..n-1; the trainable maps that index to ``seeds[i]``. Optuna is told the
  mean over the seeds of each objective, so it optimises what the seed aggregate says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher
from ray.tune.search.repeater import TRIAL_INDEX

from sparsity_tune.keys import SEED_KEY
from sparsity_tune.metrics import M
from sparsity_tune.sweep.plan import Parameter, ParetoSchedulerPlan, Plan

if TYPE_CHECKING:
    from sparsity_tune.trial.config import TrialConfig


def domain(p: Parameter, grid: bool) -> Any:
    """One W&B-sweep parameter as a Ray Tune search-space entry."""
    d = p.distribution
    if d == "constant":
        return p.value
    if d == "categorical":
        return tune.grid_search(list(p.values or [])) if grid else tune.choice(list(p.values or []))
    lo, hi = p.min, p.max
    if d == "uniform":
        return tune.uniform(lo, hi)
    if d == "log_uniform_values":
        return tune.loguniform(lo, hi)
    if d == "log_uniform":  # W&B: min/max are natural-log exponents
        return tune.loguniform(math.exp(lo), math.exp(hi))
    if d == "int_uniform":  # W&B includes max; Ray's randint excludes its upper bound
        return tune.randint(int(lo), int(hi) + 1)
    if d == "q_uniform":
        return tune.quniform(lo, hi, p.q or 1.0)
    if d == "q_log_uniform_values":
        return tune.qloguniform(lo, hi, p.q or 1.0)
    if d == "normal":
        return tune.randn(p.mu, p.sigma)
    raise AssertionError(f"unhandled distribution {d}")


def param_space(plan: Plan) -> dict[str, Any]:
    """Flat dotted keys → Ray domains; seeds as a grid axis except under optuna. Adaptive seeds:
    empty (:class:`~sparsity_tune.sweep.replicate.SeedAllocator` hands out every config)."""
    if plan.search.adaptive is not None:
        return {}
    algorithm = plan.search.algorithm
    space = {k: domain(p, grid=algorithm == "grid") for k, p in plan.parameters.items()}
    if algorithm != "optuna":
        space[SEED_KEY] = tune.grid_search(list(plan.seeds))
    return space


def trial_seed(config: dict[str, Any], seeds: list[int]) -> int:
    if SEED_KEY in config:
        return int(config[SEED_KEY])
    return int(seeds[int(config.get(TRIAL_INDEX, 0))])


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The searched keys of a trial's Ray config (no seed, no Ray bookkeeping)."""
    return {k: v for k, v in config.items() if k != SEED_KEY and not k.startswith("__")}


class SeedRepeater(Repeater):
    """Ray's Repeater, extended to several objectives: each one is averaged over the seeds.

    A seed whose trial failed or stopped without a value counts as NaN (ignored by the mean).
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs: Any) -> None:
        if trial_id not in self._trial_id_to_group:
            return  # not one of ours (e.g. suggested before a restore that lost it)
        metric = self.searcher.metric
        if not isinstance(metric, list):
            super().on_trial_complete(trial_id, result, **kwargs)
            return
        group = self._trial_id_to_group[trial_id]
        values = tuple(
            float(result[m]) if result and result.get(m) is not None else np.nan for m in metric
        )
        group.report(trial_id, values)
        if group.finished_reporting():
            with np.errstate(all="ignore"):
                arr = np.array(group.scores(), dtype=float)
                mean = np.nanmean(arr, axis=0) if not np.isnan(arr).all() else arr[0]
            self.searcher.on_trial_complete(
                group.primary_trial_id,
                result=dict(zip(metric, mean.tolist(), strict=True)),
                **kwargs,
            )


def optuna_searcher(plan: Plan) -> Searcher:
    """TPE for one objective; NSGA-II (default) or multi-objective TPE for several.

    The samplers are Optuna's, made picklable (:mod:`sparsity_tune.sweep.samplers`): Ray pickles
    the searcher with the tuner and at every searcher checkpoint."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from sparsity_tune.sweep.samplers import NSGAIISampler, TPESampler

    s = plan.search
    names, modes = list(s.objectives), list(s.objectives.values())
    seed = plan.seeds[0]
    if s.sampler == "nsga2":
        sampler: optuna.samplers.BaseSampler = NSGAIISampler(
            seed=seed, population_size=s.population
        )
    else:
        sampler = TPESampler(seed=seed, multivariate=True)
    metric: str | list[str] = names[0] if len(names) == 1 else names
    mode: str | list[str] = modes[0] if len(modes) == 1 else modes
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(metric=metric, mode=mode, sampler=sampler)


def search_alg(plan: Plan) -> Searcher | BasicVariantGenerator:
    s = plan.search
    if s.adaptive is not None:
        from sparsity_tune.sweep.replicate import SeedAllocator

        alloc: Searcher = SeedAllocator.from_plan(plan)
        if s.max_concurrent:
            alloc = ConcurrencyLimiter(alloc, max_concurrent=s.max_concurrent)
        return alloc
    if s.algorithm == "optuna":
        alg: Searcher = SeedRepeater(optuna_searcher(plan), repeat=len(plan.seeds), set_index=True)
        if s.max_concurrent:
            alg = ConcurrencyLimiter(alg, max_concurrent=s.max_concurrent)
        return alg
    return BasicVariantGenerator(constant_grid_search=True, max_concurrent=s.max_concurrent or 0)


def scheduler(plan: Plan) -> TrialScheduler:
    sch = plan.scheduler
    if sch is None:
        return FIFOScheduler()
    if isinstance(sch, ParetoSchedulerPlan):
        from sparsity_tune.sweep.pareto_stop import ParetoASHA

        return ParetoASHA(
            experiment=plan.experiment,
            base=plan.trial_base(),
            seeds=list(plan.seeds),
            accuracy=sch.metric,
            costs=sch.costs,
            grace_period=sch.grace_period,
            reduction_factor=sch.reduction_factor,
            max_t=sch.max_t,
            params_of=trial_params,
            seed_of=trial_seed,
        )
    return ASHAScheduler(
        time_attr=M.epoch,
        metric=sch.metric,
        mode=sch.mode,
        max_t=sch.max_t,
        grace_period=sch.grace_period,
        reduction_factor=sch.reduction_factor,
    )


def report_epochs(plan: Plan) -> tuple[int, ...] | Callable[[TrialConfig], tuple[int, ...]]:
    """Epochs whose result a trial always sends Tune: ASHA's rungs (``grace_period x
    reduction_factor**k`` up to ``max_t``, as Ray's ``_Bracket`` lays them out), so that it
    decides there however short the epochs; none for FIFO (results are sent by time then);
    for pareto_asha, a function of the trial's own config (:class:`~sparsity_tune.sweep.
    pareto_stop.ReportEpochs`: its rungs move with its own pruning schedule)."""
    sch = plan.scheduler
    if sch is None:
        return ()
    if isinstance(sch, ParetoSchedulerPlan):
        from sparsity_tune.sweep import pareto_stop
        from sparsity_tune.sweep.pareto_rungs import rung_epochs

        return pareto_stop.ReportEpochs(
            rung_epochs(sch.grace_period, sch.reduction_factor, sch.max_t)
        )
    rungs = int(math.log(sch.max_t / sch.grace_period) / math.log(sch.reduction_factor) + 1)
    return tuple(
        sorted({math.ceil(sch.grace_period * sch.reduction_factor**k) for k in range(rungs)})
    )


def tune_config(plan: Plan) -> tune.TuneConfig:
    return tune.TuneConfig(
        search_alg=search_alg(plan),
        scheduler=scheduler(plan),
        # adaptive seeds: until the searcher says FINISHED
        num_samples=-1 if plan.search.adaptive else plan.search.tune_samples,
        reuse_actors=True,  # one worker process runs trial after trial: no torch re-import
        trial_dirname_creator=trial_dirname,
        trial_name_creator=trial_dirname,  # the live table's first column
    )


def trial_dirname(trial: Any) -> str:
    """Short, stable trial directory names (Ray's default embeds every parameter value)."""
    return f"trial_{trial.trial_id}"
