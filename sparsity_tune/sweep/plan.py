"""A sweep plan: the validated spec resolved once into everything the launcher executes.

**Spec** (:mod:`sparsity_tune.sweep.spec`) is what the user wrote; **Plan** is what runs: the
trial config template, the searched parameters and seeds, the search algorithm and scheduler with
every default resolved (Optuna's objectives and sampler, ASHA's metric, mode and ``max_t``, the
number of configurations), resources, retries and checkpoints, the W&B target, where the
experiment lives and how many trials it holds. :func:`build` is the only place a spec becomes a
plan (called by :mod:`sparsity_tune.sweep.resolve`); everything downstream (the launcher, the
tuner, the summary, SLURM) reads the plan, never the spec. ``--dry-run`` prints it
(:meth:`Plan.describe`).

What may change on ``--resume`` is one split of the plan's settings, the one rulebook:
:meth:`Plan.results` decide the trials' results and must equal the saved ones
(:func:`check_saved`, which names every differing key); :meth:`Plan.runtime` (where things run
and are logged, retries, checkpoint cadence, CPU threads) may differ and is logged
(:func:`runtime_changes`). Nothing here imports Ray: a dry run stays fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sparsity_tune import metrics, wandb_setup
from sparsity_tune.keys import NOT_IDENTITY, ConfigError, flatten, identity_keys, set_dotted
from sparsity_tune.metrics import DEFAULT_TOLERANCE
from sparsity_tune.safe_yaml import brief
from sparsity_tune.sweep.spec import ParameterSpec, Spec, pareto_split
from sparsity_tune.trial.config import TrialConfig, trial_config

#: Which way is better, as Ray Tune and Optuna spell it (``metrics.Direction``'s values).
Mode = Literal["max", "min"]


@dataclass(frozen=True)
class SeedsPlan:
    """Adaptive seeds (``search.seeds: {initial, max}``, :mod:`sparsity_tune.sweep.replicate`):
    seeds ``0..initial-1`` for every configuration, more up to ``max`` where a comparison is
    open, judged at ``looks``; ``budget`` in trial-epochs (None: only ``max`` limits);
    ``tolerance``: the accuracy points whose comparisons the seeds are added for."""

    initial: int
    max: int
    looks: tuple[int, ...]
    budget: float | None
    tolerance: float = DEFAULT_TOLERANCE


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
class Parameter:
    """One searched key as the search samples it (W&B-sweep syntax, as the spec gave it): a
    constant ``value``, a list of ``values``, or a ``distribution`` over a range."""

    distribution: str
    value: Any = None
    values: tuple[Any, ...] | None = None
    min: int | float | None = None
    max: int | float | None = None
    q: float | None = None
    mu: float | None = None
    sigma: float | None = None

    @classmethod
    def of(cls, p: ParameterSpec) -> Parameter:
        assert p.distribution is not None  # the spec infers it (ParameterSpec._check)
        return cls(
            distribution=p.distribution,
            value=p.value,
            values=tuple(p.values) if p.values is not None else None,
            min=p.min,
            max=p.max,
            q=p.q,
            mu=p.mu,
            sigma=p.sigma,
        )

    def choices(self) -> list[Any]:
        """The values a grid enumerates: the constant, or the listed values."""
        return [self.value] if self.distribution == "constant" else list(self.values or [])

    def settings(self) -> dict[str, Any]:
        """As the spec writes it (``launch.json``'s plan): the fields that have a value."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if "values" in data:
            data["values"] = list(data["values"])
        return {
            k: data[k]
            for k in ("value", "values", "distribution", "min", "max", "q", "mu", "sigma")
            if k in data
        }

    def describe(self) -> str:
        d = self.distribution
        if d == "constant":
            return f"= {brief(self.value)}"
        if d == "categorical":
            return f"in {brief(list(self.values or ()))}"
        if d == "normal":
            return f"~ normal(mu={self.mu}, sigma={self.sigma})"
        q = f", q={self.q}" if self.q else ""
        return f"~ {d}({_num(self.min)}, {_num(self.max)}{q})"


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Plan:
    """What one sweep runs, every default resolved: built once by :func:`build` from a validated
    spec (the spec is what the user wrote; the plan is what runs), saved in the launch record
    (:meth:`results`, :meth:`runtime`), and read by the launcher, the tuner, the summary and
    SLURM."""

    name: str
    experiment: str  # the experiment directory (or URI): layout.experiment_path(storage, name)
    storage: str
    address: str | None  # a Ray cluster to join; None: Ray on this machine
    base: TrialConfig  # every trial's config before its sampled parameters and seed
    parameters: dict[str, Parameter]  # searched dotted keys, in the spec's order
    seeds: tuple[int, ...]
    max_epochs: int  # the largest train.epochs any trial can have
    search: SearchPlan
    scheduler: SchedulerPlan | None
    cpu: float  # per trial
    gpu: float
    max_failures: int
    checkpoint_every: int
    checkpoint_min_interval_s: float  # a trial's checkpoints at least this far apart
    wandb: WandbTarget | None  # None: no W&B runs (--no-wandb or wandb.mode disabled)

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

    @property
    def on_gpu(self) -> bool:
        """Whether the trials can see a GPU (Ray hides GPUs from trials with ``gpu: 0``)."""
        return self.gpu > 0 and self.base.train.device != "cpu"

    def trial_base(self) -> dict[str, Any]:
        """The config template as the trainable takes it (nested plain data)."""
        return self.base.model_dump(mode="json")

    def results(self) -> dict[str, Any]:
        """What decides the trials' results, as JSON data (``launch.json``'s ``plan``); a resume
        must match it (:func:`check_saved`): the base config's identity settings, the searched
        parameters, seeds, search and scheduler, and whether the trials run on a GPU."""
        flat = self.base.flat()
        data = {
            "base": {k: flat[k] for k in identity_keys(flat)},
            "parameters": {k: p.settings() for k, p in self.parameters.items()},
            "seeds": list(self.seeds),
            "max_epochs": self.max_epochs,
            "search": asdict(self.search),
            "scheduler": asdict(self.scheduler) if self.scheduler else None,
            "on_gpu": self.on_gpu,
        }
        return json.loads(json.dumps(data))

    def runtime(self) -> dict[str, Any]:
        """What may differ on resume because no trial's result depends on it, keyed as the spec
        writes it (``launch.json``'s ``runtime``; a change is logged, :func:`runtime_changes`):
        where Ray runs, a trial's CPU share and GPU fraction, retries (they continue from
        checkpoints and give the same records), checkpoint cadence (checkpoints restore bit for
        bit: it changes only how much a retry trains again), the W&B target, and the base
        config's settings that are no part of a configuration's identity (``NOT_IDENTITY``)."""
        flat = self.base.flat()
        data: dict[str, Any] = {
            "address": self.address,
            "resources": {"cpu": self.cpu, "gpu": self.gpu},
            "search": {
                "max_failures": self.max_failures,
                "checkpoint_every": self.checkpoint_every,
                "checkpoint_min_interval_s": self.checkpoint_min_interval_s,
            },
            "wandb": asdict(self.wandb) if self.wandb else None,
        }
        for k in NOT_IDENTITY:
            set_dotted(data, k, flat[k])
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
                f"open at a tolerance of {a.tolerance:g} point(s) (looks at {', '.join(map(str, a.looks))} "
                f"seeds; {budget})"
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
    base: TrialConfig | None = None,
    address: str | None = None,
    use_wandb: bool = True,
) -> Plan:
    """Resolve a validated spec: the only place a spec becomes a plan. ``base``: the trial
    config the validation already built from ``spec`` (built here when not given)."""
    s = spec.search
    if s.algorithm == "optuna":
        objectives = dict(s.objectives) or {s.metric: s.mode or metrics.direction(s.metric).value}
    else:
        objectives = dict(s.objectives)
    sampler = None
    if s.algorithm == "optuna":
        sampler = s.sampler or ("tpe" if len(objectives) == 1 else "nsga2")
    search = SearchPlan(
        algorithm=s.algorithm,
        sampler=sampler,
        objectives=objectives,
        configurations=configurations(spec),
        tune_samples=s.num_samples * len(s.seeds) if s.algorithm == "optuna" else s.num_samples,
        max_concurrent=s.max_concurrent,
        population=max(2, min(50, s.num_samples // 2 or 2)) if sampler == "nsga2" else None,
        adaptive=seeds_plan(spec),
    )
    top = max_epochs(spec)
    scheduler = None
    if s.scheduler == "pareto_asha":
        accuracy, costs = pareto_split(dict(s.objectives))
        scheduler = ParetoSchedulerPlan(
            metric=accuracy,
            mode="max",
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            max_t=top,
            costs=costs,
        )
    elif s.scheduler == "asha":
        metric = s.metric or next(iter(s.objectives))
        scheduler = SchedulerPlan(
            metric=metric,
            mode=s.mode or s.objectives.get(metric) or metrics.direction(metric).value,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            max_t=top,
        )
    w = spec.wandb
    wandb = None
    if use_wandb and w.mode != "disabled":
        wandb = WandbTarget(
            experiment=spec.name,
            directory=wandb_setup.run_root(experiment),
            project=w.project,
            entity=w.entity,
            group=wandb_setup.group(spec.name, w.group),
            tags=tuple(w.tags),
            mode=w.mode,
        )
    return Plan(
        name=spec.name,
        experiment=experiment,
        storage=storage,
        address=address,
        base=base if base is not None else trial_config(spec.trial_dict()),
        parameters={k: Parameter.of(p) for k, p in s.parameters.items()},
        seeds=tuple(s.seeds),
        max_epochs=top,
        search=search,
        scheduler=scheduler,
        cpu=spec.resources.cpu,
        gpu=spec.resources.gpu,
        max_failures=s.max_failures,
        checkpoint_every=s.checkpoint_every,
        checkpoint_min_interval_s=s.checkpoint_min_interval_s,
        wandb=wandb,
    )


def configurations(spec: Spec) -> int:
    """Distinct configurations the search proposes (before seeds): the grid's size times
    ``num_samples`` for grid, ``num_samples`` otherwise."""
    s = spec.search
    if s.algorithm != "grid":
        return s.num_samples
    return math.prod(len(p.choices()) for p in s.parameters.values()) * s.num_samples


def seeds_plan(spec: Spec) -> SeedsPlan | None:
    """``search.seeds: {initial, max}`` and ``search.budget`` resolved (None for a seed list)."""
    from analysis.stats import look_schedule

    a = spec.search.adaptive
    if a is None:
        return None
    s = spec.search
    return SeedsPlan(a.initial, a.max, look_schedule(a.initial, a.max), s.budget, s.tolerance)


def max_epochs(spec: Spec) -> int:
    """The largest train.epochs any trial can have (ASHA's max_t)."""
    p = spec.search.parameters.get("train.epochs")
    if p is None:
        return spec.train.epochs
    vals = p.choices() if p.is_grid else range_ends(p)
    return int(max(vals))


def range_ends(p: ParameterSpec) -> list[Any]:
    """The values at the ends of a parameter's range, as the trainer will see them (what the
    validation probes, and the largest ``train.epochs``); the mean of a normal."""
    d, lo, hi = p.distribution, p.min, p.max
    if d == "int_uniform":
        return [int(lo), int(hi)]
    if d == "log_uniform":
        return [math.exp(lo), math.exp(hi)]
    if d in ("q_uniform", "q_log_uniform_values"):
        q = p.q or 1.0
        return [round(lo / q) * q, round(hi / q) * q]
    if d == "normal":
        return [p.mu]
    return [lo, hi]


def saved_trials(results: dict[str, Any]) -> int | None:
    """:attr:`Plan.trials` of a saved plan (:meth:`Plan.results`, e.g. ``launch.json``'s
    ``plan``); None when it is not one."""
    try:
        return int(results["search"]["configurations"]) * len(results["seeds"])
    except (KeyError, TypeError, ValueError):
        return None


#: :meth:`Plan.results` keys that plans saved by older versions lack (not compared then).
NEWER_RESULT_KEYS = ("on_gpu", "search.adaptive")
#: Keys that plans saved by older versions lack where their section is there, with the value
#: those versions used: compared as that value (a resume of such an experiment at another one
#: is refused, as any change that alters results).
OLDER_DEFAULTS: dict[str, Any] = {"search.adaptive.tolerance": DEFAULT_TOLERANCE}


def check_saved(saved: dict[str, Any] | None, plan: Plan, where: str, hint: str = "") -> None:
    """Refuse (ConfigError naming every differing key, as the spec writes it) a resume whose
    :meth:`Plan.results` differ from the ``saved`` ones (``where``: the record they come from;
    ``hint``: the command that continues the experiment as it was started). A record from
    before plans were saved (None) passes."""
    if saved is None:
        return
    was, now = flatten(saved), flatten(plan.results())
    for k, v in OLDER_DEFAULTS.items():
        section = k.rpartition(".")[0] + "."
        if k not in was and any(w.startswith(section) for w in was):
            was[k] = v
    changed = sorted(
        k
        for k in was.keys() | now.keys()
        if was.get(k) != now.get(k) and (k in was or k not in NEWER_RESULT_KEYS)
    )
    if not changed:
        return
    shown = "\n  ".join(
        f"{_spec_key(k)}: started with {was.get(k)!r}, now {now.get(k)!r}" for k in changed[:20]
    )
    more = f"\n  ... and {len(changed) - 20} more" if len(changed) > 20 else ""
    cont = f" Continue it with:\n  {hint}\n" if hint else "\n"
    raise ConfigError(
        f"--resume: {len(changed)} setting(s) of the plan differ from how {plan.name!r} was "
        f"started ({where}) and can change results:\n  {shown}{more}\nA resumed experiment "
        f"runs as it was started.{cont}(what may change on resume: "
        f"{', '.join(sorted({_runtime_key(k) for k in flatten(plan.runtime())}))}), or start a new experiment with another "
        f"--name."
    )


def runtime_changes(saved: dict[str, Any] | None, plan: Plan) -> list[str]:
    """One line per :meth:`Plan.runtime` key that differs from the ``saved`` one; a section
    switched on or off (W&B) is one line. None: a record from before runtime settings were
    saved, nothing to compare."""
    if saved is None:
        return []
    now = plan.runtime()
    a, b = flatten(saved), flatten(now)
    lines: dict[str, str] = {}
    for k in sorted(a.keys() | b.keys()):
        if a.get(k) == b.get(k):
            continue
        top = k.split(".")[0]
        if saved.get(top) is None or now.get(top) is None:  # a whole section on or off
            k, was, new = top, saved.get(top), now.get(top)
        else:
            was, new = a.get(k), b.get(k)
        lines.setdefault(k, f"{k}: started with {was!r}, now {new!r}")
    return list(lines.values())


def _runtime_key(key: str) -> str:
    return "wandb.*" if key.startswith("wandb.") else key


def _spec_key(key: str) -> str:
    """A :meth:`Plan.results` key as the spec writes it where there is one."""
    if key.startswith("base."):
        return key.removeprefix("base.")
    if key.startswith(("parameters.", "seeds")):
        return f"search.{key}"
    if key in ("search.adaptive.tolerance", "search.adaptive.budget"):
        return key.replace(".adaptive", "")  # written beside search.seeds, not inside it
    if key.startswith("search.adaptive."):
        return f"search.seeds.{key.removeprefix('search.adaptive.')}"
    return key
