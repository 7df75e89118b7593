"""A sweep plan: the validated spec resolved once into everything the launcher executes.

The spec says what a user wants; the plan is what will run: the trial config template, the
searched parameters and seeds, the search algorithm and scheduler with every default resolved
(Optuna's sampler, ASHA's metric, mode and ``max_t``), resources, retries and checkpoints, W&B
settings, where the experiment lives and how many trials it holds. ``--dry-run`` prints it
(:meth:`Plan.describe`); :mod:`sparsity_tune.sweep.search` turns it into Ray Tune objects and
:mod:`sparsity_tune.sweep.launch` runs it, so no part of the launcher goes back to the spec.

``--resume`` builds the plan from the experiment's launch record (:func:`from_record`); the keys
that may differ on resume (:data:`sparsity_tune.sweep.state.ALLOWED_ON_RESUME`) are applied to
the record before that. The record also keeps what decided the trials' results
(:meth:`Plan.settings`), and a resume whose plan differs there (another version that resolves a
default differently) is refused (:func:`check_saved`): a resumed sweep runs the saved plan.
Nothing here imports Ray: a dry run stays fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sparsity_tune import wandb_setup
from sparsity_tune.sweep.spec import ParameterSpec, Spec
from sparsity_tune.sweep.validate import validate_spec
from sparsity_tune.trial.config import ConfigError, TrialConfig, flatten, identity_keys

#: Which way is better, as Ray Tune and Optuna spell it (``metrics.Direction``'s values).
Mode = Literal["max", "min"]


@dataclass(frozen=True)
class SeedsPlan:
    """Adaptive seeds (``search.seeds: {initial, max}``, :mod:`sparsity_tune.sweep.replicate`):
    seeds ``0..initial-1`` for every configuration, more up to ``max`` where a comparison is
    open, judged at ``looks``; ``budget`` in trial-epochs (None: only ``max`` limits)."""

    initial: int
    max: int
    looks: tuple[int, ...]
    budget: float | None


@dataclass(frozen=True)
class SearchPlan:
    """How configurations are proposed."""

    algorithm: Literal["grid", "random", "optuna"]
    #: Optuna's sampler, resolved: tpe for one objective, nsga2 for several (None: not optuna)
    sampler: Literal["tpe", "nsga2"] | None
    #: what Optuna optimises (the seed mean of each), and the summary's Pareto set
    objectives: dict[str, Mode]
    #: distinct configurations the search proposes (before seeds)
    configurations: int
    #: Ray Tune's ``num_samples``: per pass over the grid for grid/random, every trial for optuna
    tune_samples: int
    max_concurrent: int | None
    #: NSGA-II's population (None for other samplers)
    population: int | None = None
    #: adaptive seeds (None: every configuration runs every seed of ``Plan.seeds``)
    adaptive: SeedsPlan | None = None


@dataclass(frozen=True)
class SchedulerPlan:
    """ASHA's settings (a FIFO sweep has none)."""

    metric: str
    mode: Mode
    grace_period: int
    reduction_factor: float
    max_t: int  # the largest train.epochs any trial can have


@dataclass(frozen=True)
class WandbTarget:
    """Where and how the runs of one experiment are written."""

    experiment: str
    directory: str  # wandb writes <directory>/wandb/<run dirs>
    project: str
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    mode: str = "offline"


@dataclass(frozen=True)
class ParetoSchedulerPlan(SchedulerPlan):
    """pareto_asha's settings: ``metric`` is the accuracy compared, ``costs`` the objectives
    fixed by the schedule's target (:mod:`sparsity_tune.sweep.pareto_stop`)."""

    kind: str = "pareto_asha"
    costs: tuple[str, ...] = ()


@dataclass(frozen=True)
class WandbPlan:
    """Where the trial runs are written."""

    project: str
    entity: str | None
    group: str
    tags: tuple[str, ...]
    mode: Literal["offline", "online"]
    directory: str  # W&B's dir=: runs land in <directory>/wandb


@dataclass(frozen=True)
class Plan:
    """Everything one sweep runs; built by :func:`build` (or :func:`from_record` on resume)."""

    name: str
    experiment: str  # the experiment directory (or URI): layout.experiment_path(storage, name)
    storage: str
    address: str | None  # a Ray cluster to join; None: Ray on this machine
    base: TrialConfig  # every trial's config before its sampled parameters and seed
    parameters: dict[str, ParameterSpec]  # searched dotted keys, in the spec's order
    seeds: tuple[int, ...]
    max_epochs: int  # the largest train.epochs any trial can have
    search: SearchPlan
    scheduler: SchedulerPlan | None
    cpu: float  # per trial
    gpu: float
    max_failures: int
    checkpoint_every: int
    checkpoint_min_interval_s: float  # a trial's checkpoints at least this far apart
    wandb: WandbPlan | None  # None: no W&B runs (--no-wandb or wandb.mode disabled)

    @property
    def trials(self) -> int:
        return self.search.configurations * len(self.seeds)

    @property
    def local(self) -> bool:
        return "://" not in self.experiment

    @property
    def varied(self) -> list[str]:
        """The searched keys that take more than one value (the columns worth showing)."""
        return [k for k, p in self.parameters.items() if p.distribution != "constant"]

    def trial_base(self) -> dict[str, Any]:
        """The config template as the trainable takes it (nested plain data)."""
        return self.base.model_dump(mode="json")

    def settings(self) -> dict[str, Any]:
        """What decides the trials' results, as JSON data (``launch.json``'s ``plan``): the
        base config's identity settings, the searched parameters, seeds, search and scheduler.
        Not where things run or are logged, nor retries and checkpoint cadence, which may change
        on resume."""
        flat = self.base.flat()
        data = {
            "base": {k: flat[k] for k in identity_keys(flat)},
            "parameters": {
                k: p.model_dump(mode="json", exclude_none=True) for k, p in self.parameters.items()
            },
            "seeds": list(self.seeds),
            "max_epochs": self.max_epochs,
            "search": asdict(self.search),
            "scheduler": asdict(self.scheduler) if self.scheduler else None,
        }
        return json.loads(json.dumps(data))

    def describe(self) -> str:
        """The ``--dry-run`` text (also printed when a sweep starts)."""
        s = self.search
        lines = [
            f"experiment  {self.name}  →  {self.experiment}",
            f"algorithm   {s.algorithm}" + (f" ({s.sampler})" if s.sampler else ""),
            f"trials      {self.trials} = {s.configurations} configuration(s)"
            f" x {len(self.seeds)} seed(s) {list(self.seeds)}",
        ]
        if (a := s.adaptive) is not None:
            budget = f"budget {a.budget:g} trial-epochs" if a.budget else "no budget but max"
            lines.append(
                f"seeds       adaptive: {a.initial} first, up to {a.max} where a comparison is "
                f"open (looks at {', '.join(map(str, a.looks))} seeds; {budget})"
            )
        if self.parameters:
            lines.append("parameters")
            width = max(len(k) for k in self.parameters)
            for k, p in self.parameters.items():
                lines.append(f"  {k:<{width}}  {p.describe()}")
        else:
            lines.append("parameters  (none: the base config, once per seed)")
        if s.objectives:
            lines.append("objectives  " + ", ".join(f"{k} ({v})" for k, v in s.objectives.items()))
        sch = self.scheduler
        lines.append(
            "scheduler   "
            + (
                f"pareto_asha on {sch.metric} at each configuration's own "
                f"{', '.join(sch.costs)}, grace {sch.grace_period} epoch(s), "
                f"reduction {sch.reduction_factor:g}, max_t {sch.max_t}"
                if isinstance(sch, ParetoSchedulerPlan)
                else f"asha on {sch.metric} ({sch.mode}), grace {sch.grace_period} epoch(s), "
                f"reduction {sch.reduction_factor:g}, max_t {sch.max_t}"
                if sch
                else "fifo"
            )
        )
        cap = f", at most {s.max_concurrent} at once" if s.max_concurrent else ""
        lines.append(f"resources   {self.cpu:g} CPU, {self.gpu:g} GPU per trial{cap}")
        b = self.base
        arch = b.model.preset or f"depth {b.model.depth} width {b.model.width}"
        lines.append(
            f"base        {b.model.arch} {arch} on {b.dataset.name}, {b.train.epochs} epochs, "
            f"pruning {b.pruning.method}"
        )
        lines.append(
            f"failures    retried up to {self.max_failures}x from the last checkpoint "
            f"(every {self.checkpoint_every} epoch(s), at least "
            f"{self.checkpoint_min_interval_s:g} s apart)"
        )
        lines.append(f"cluster     {self.address or 'local (this machine)'}")
        w = self.wandb
        lines.append(
            f"wandb       {w.mode} → {w.directory}/{wandb_setup.SUBDIR} (project {w.project}, "
            f"group {w.group})"
            if w
            else "wandb       off"
        )
        return "\n".join(lines)


def build(
    spec: Spec,
    experiment: str,
    storage: str,
    *,
    address: str | None = None,
    use_wandb: bool = True,
) -> Plan:
    """Resolve a validated spec (the only place the launcher reads one)."""
    s = spec.search
    objectives = dict(s.optuna_objectives() if s.algorithm == "optuna" else s.objectives)
    sampler = None
    if s.algorithm == "optuna":
        sampler = s.sampler or ("tpe" if len(objectives) == 1 else "nsga2")
    search = SearchPlan(
        algorithm=s.algorithm,
        sampler=sampler,
        objectives=objectives,
        configurations=s.configs_to_sample(),
        tune_samples=s.num_samples * len(s.seeds) if s.algorithm == "optuna" else s.num_samples,
        max_concurrent=s.max_concurrent,
        population=max(2, min(50, s.num_samples // 2 or 2)) if sampler == "nsga2" else None,
        adaptive=seeds_plan(spec),
    )
    scheduler = None
    if s.scheduler == "pareto_asha":
        scheduler = ParetoSchedulerPlan(
            metric=s.pareto_split()[0],
            mode="max",
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            max_t=max_epochs(spec),
            costs=s.pareto_split()[1],
        )
    elif (sm := s.scheduler_metric()) is not None:
        scheduler = SchedulerPlan(
            metric=sm[0],
            mode=sm[1],
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            max_t=max_epochs(spec),
        )
    w = spec.wandb
    wandb = None
    if use_wandb and w.mode != "disabled":
        wandb = WandbPlan(
            project=w.project,
            entity=w.entity,
            group=wandb_setup.group(spec.name, w.group),
            tags=tuple(w.tags),
            mode=w.mode,
            directory=wandb_setup.run_root(experiment),
        )
    return Plan(
        name=spec.name,
        experiment=experiment,
        storage=storage,
        address=address,
        base=spec.base(),
        parameters=dict(s.parameters),
        seeds=tuple(s.seeds),
        max_epochs=max_epochs(spec),
        search=search,
        scheduler=scheduler,
        cpu=spec.resources.cpu,
        gpu=spec.resources.gpu,
        max_failures=s.max_failures,
        checkpoint_every=s.checkpoint_every,
        checkpoint_min_interval_s=s.checkpoint_min_interval_s,
        wandb=wandb,
    )


def from_record(
    spec_data: dict[str, Any],
    where: str,
    experiment: str,
    storage: str,
    *,
    address: str | None = None,
    use_wandb: bool = True,
) -> Plan:
    """The plan of a saved launch record's spec (``launch.json``), validated again by today's
    rules; ConfigError (naming ``where``) when it no longer validates."""
    spec = validate_spec(spec_data, where)
    return build(spec, experiment, storage, address=address, use_wandb=use_wandb)


def check_saved(saved: dict[str, Any] | None, plan: Plan, where: str) -> None:
    """Refuse to resume with a plan whose :meth:`Plan.settings` differ from the ``saved`` ones
    (ConfigError naming the dotted keys); a record from before plans were saved (None) passes."""
    if saved is None:
        return
    was, now = flatten(saved), flatten(plan.settings())
    changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
    if changed:
        shown = "\n  ".join(f"{k}: {was.get(k)!r} then, {now.get(k)!r} now" for k in changed[:20])
        raise ConfigError(
            f"{where}: this version resolves the experiment's spec into another plan than the one "
            f"it started with:\n  {shown}\nA resumed experiment runs as it was started: resume "
            f"it with the version that started it, or start a new experiment with another --name."
        )


def seeds_plan(spec: Spec) -> SeedsPlan | None:
    """``search.seeds: {initial, max}`` and ``search.budget`` resolved (None for a seed list)."""
    from analysis.stats import look_schedule

    a = spec.search.adaptive
    if a is None:
        return None
    return SeedsPlan(a.initial, a.max, look_schedule(a.initial, a.max), spec.search.budget)


def max_epochs(spec: Spec) -> int:
    """The largest train.epochs any trial can have (ASHA's max_t)."""
    p = spec.search.parameters.get("train.epochs")
    if p is None:
        return spec.train.epochs
    vals = p.choices() if p.is_grid else p.bounds()
    return int(max(vals))
