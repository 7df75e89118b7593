"""A search-space file: the trial's base config plus the sweep's sections, validated once.

Layout of a spec YAML::

    name: cnn                 # experiment name (default: the file's stem)
    dataset: {...}            # trainer keys (see config.TrialConfig)
    model: {...}
    train: {...}
    pruning: {...}
    search:                   # sweep (see SearchConfig)
      algorithm: optuna       # grid | random | optuna
      parameters:             # dotted keys of the base config, W&B-sweep syntax
        pruning.final_sparsity: {values: [0.5, 0.8, 0.9]}
        train.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}
      objectives: {test_acc: max, sparse_bytes: min}
      seeds: [0, 1, 2]
    resources: {cpu: 1, gpu: 0}
    wandb: {project: ..., mode: offline}

A W&B sweep file (``method``, ``metric``, ``parameters``, ``early_terminate``, ``run_cap``) is
accepted too and mapped onto the same :class:`Spec` by :func:`from_wandb_sweep`.

pydantic validates the shapes; :func:`check_search` adds the checks that need the base config
(parameter paths exist, every value and range end is a valid trial config, objectives are metric
names, every configuration the search can reach fits a machine like this one, a ``cuda`` device
has a GPU in ``resources``). Problems raise :class:`~sparsity_tune.trial.config.ConfigError`
naming the key.

Files are read by :mod:`sparsity_tune.trial.safe_yaml` (UTF-8, no duplicate keys, no alias
bombs). An empty file is refused: a spec must say at least its ``name`` or one section, so that a
truncated or mistyped file never runs 30 epochs of defaults.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from sparsity_tune import metrics
from sparsity_tune.trial import budget, safe_yaml
from sparsity_tune.trial.config import (
    MAX_EPOCHS,
    NAME_RE,
    NAME_RULE,
    SECTIONS,
    ConfigError,
    Seed,
    Strict,
    TrialConfig,
    TrialSections,
    cap_lines,
    format_validation_error,
    section_model,
    set_dotted,
    show_key,
    trial_config,
)
from sparsity_tune.trial.safe_yaml import brief
from sparsity_tune.wandb_setup import DEFAULT_PROJECT

#: W&B sweep distributions we map onto Ray Tune sampling functions (see search.py).
Distribution = Literal[
    "constant",
    "categorical",
    "uniform",
    "log_uniform_values",
    "log_uniform",
    "int_uniform",
    "q_uniform",
    "q_log_uniform_values",
    "normal",
]
RANGE_DISTRIBUTIONS = (
    "uniform",
    "log_uniform_values",
    "log_uniform",
    "int_uniform",
    "q_uniform",
    "q_log_uniform_values",
)
#: Distributions whose samples are floats (Ray's quniform too: it casts to float).
FLOAT_DISTRIBUTIONS = (
    "uniform",
    "log_uniform_values",
    "log_uniform",
    "q_uniform",
    "q_log_uniform_values",
    "normal",
)
MAX_GRID_CHECK = 20_000  # grid combinations validated one by one before Ray starts
MAX_MEMORY_CHECK = 1_000  # combinations of memory-relevant values estimated before Ray starts

TAG_RE = re.compile(r"[A-Za-z0-9_.:+/ -]{1,64}")


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{brief(value)} is not allowed; use {NAME_RULE}")
    return value


def _tag(value: str) -> str:
    if not TAG_RE.fullmatch(value):
        raise ValueError(f"{brief(value)} is not allowed; use 1-64 letters, digits, spaces, _.:+/-")
    return value


Name = Annotated[str, AfterValidator(_name)]


class ParameterSpec(Strict):
    """One searched key, in W&B-sweep syntax: ``value``, ``values`` or ``distribution``+range."""

    value: Any = None
    values: list[Any] | None = Field(None, max_length=10_000)
    distribution: Distribution | None = None
    min: int | float | None = None
    max: int | float | None = None
    q: float | None = Field(None, gt=0)
    mu: float | None = None
    sigma: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        given = self.model_fields_set
        if self.distribution is None:  # infer it the way W&B does
            if "value" in given:
                self.distribution = "constant"
            elif "values" in given:
                self.distribution = "categorical"
            elif "min" in given and "max" in given:
                ints = isinstance(self.min, int) and isinstance(self.max, int)
                self.distribution = "int_uniform" if ints else "uniform"
            else:
                raise ValueError(
                    "give one of value: X, values: [...], or distribution with min/max "
                    "(e.g. {distribution: uniform, min: 0.5, max: 0.9})"
                )
        d = self.distribution
        if d == "constant" and "value" not in given:
            raise ValueError("distribution constant needs value: X")
        if d == "categorical":
            if not self.values:
                raise ValueError("values must be a non-empty list, e.g. values: [0.5, 0.8, 0.9]")
            if "value" in given:
                raise ValueError("give either value or values, not both")
        if d in RANGE_DISTRIBUTIONS:
            if self.min is None or self.max is None:
                raise ValueError(f"distribution {d} needs min and max")
            if self.min > self.max:
                raise ValueError(f"min={self.min} is above max={self.max}; swap them")
            if d in ("log_uniform_values", "q_log_uniform_values") and self.min <= 0:
                raise ValueError(f"distribution {d} needs min > 0, got min={self.min}")
            if d == "int_uniform" and not (
                float(self.min).is_integer() and float(self.max).is_integer()
            ):
                raise ValueError(f"int_uniform needs integer min/max, got {self.min}..{self.max}")
            if "values" in given or "value" in given:
                raise ValueError(f"distribution {d} takes min/max, not value(s)")
        if d == "normal" and (self.mu is None or self.sigma is None):
            raise ValueError("distribution normal needs mu and sigma")
        return self

    @property
    def is_grid(self) -> bool:
        """Only fixed lists can be enumerated by a grid."""
        return self.distribution in ("constant", "categorical")

    def choices(self) -> list[Any]:
        return [self.value] if self.distribution == "constant" else list(self.values or [])

    def bounds(self) -> list[Any]:
        """Values at the ends of a range, as the trainer will see them (for validation)."""
        d, lo, hi = self.distribution, self.min, self.max
        if d == "int_uniform":
            return [int(lo), int(hi)]
        if d == "log_uniform":
            return [math.exp(lo), math.exp(hi)]
        if d in ("q_uniform", "q_log_uniform_values"):
            q = self.q or 1.0
            return [round(lo / q) * q, round(hi / q) * q]
        if d == "normal":
            return [self.mu]
        return [lo, hi]

    def describe(self) -> str:
        d = self.distribution
        if d == "constant":
            return f"= {brief(self.value)}"
        if d == "categorical":
            return f"in {brief(self.values)}"
        if d == "normal":
            return f"~ normal(mu={self.mu}, sigma={self.sigma})"
        q = f", q={self.q}" if self.q else ""
        return f"~ {d}({_num(self.min)}, {_num(self.max)}{q})"


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


class AdaptiveSeeds(Strict):
    """``search.seeds: {initial: k, max: n}``: every configuration starts with seeds ``0..k-1``;
    after each wave of results the sweep adds seeds ``k, k+1, ...`` (up to ``n`` per
    configuration) where a comparison the report makes is still open
    (:mod:`analysis.allocation`), judged at the looks of :func:`analysis.stats.look_schedule`."""

    initial: int = Field(ge=2, le=1000, description="seeds every configuration gets first")
    max: int = Field(ge=2, le=1000, description="most seeds a configuration may get")

    @model_validator(mode="after")
    def _check(self) -> AdaptiveSeeds:
        if self.max < self.initial:
            raise ValueError(
                f"search.seeds: max={self.max} is below initial={self.initial}; max is the most "
                "seeds a configuration may get (e.g. {initial: 3, max: 12})"
            )
        return self


class SearchConfig(Strict):
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=dict)
    sampler: Literal["tpe", "nsga2"] | None = Field(
        None, description="optuna sampler; default tpe (one objective) or nsga2 (several)"
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=1000)
    budget: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="adaptive seeds only: trial-epochs the sweep may spend in all (each trial "
        "counts its train.epochs); default: no limit but seeds.max",
    )
    scheduler: Literal["fifo", "asha"] = "fifo"
    metric: str | None = Field(None, max_length=200)
    mode: Literal["max", "min"] | None = None
    grace_period: int = Field(1, ge=1, le=MAX_EPOCHS)
    reduction_factor: float = Field(3.0, gt=1, le=1000)
    num_samples: int = Field(1, ge=1, le=1_000_000)
    max_concurrent: int | None = Field(None, ge=1, le=100_000)
    max_failures: int = Field(2, ge=0, le=1000)
    checkpoint_every: int = Field(1, ge=1, le=MAX_EPOCHS)
    checkpoint_min_interval_s: float = Field(
        5.0,
        ge=0,
        le=86_400,
        description="wall seconds a trial trains between two checkpoints at least (the last "
        "epoch always checkpoints); 0: every checkpoint_every epochs",
    )

    _adaptive: AdaptiveSeeds | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _adaptive_seeds(cls, data: Any, handler: Any) -> SearchConfig:
        """``seeds: {initial, max}`` → the list of the initial seeds, the rest kept aside
        (:attr:`adaptive`): everything that reads ``seeds`` sees the seeds that run first."""
        adaptive = None
        if isinstance(data, dict) and isinstance(data.get("seeds"), dict):
            try:
                adaptive = AdaptiveSeeds.model_validate(data["seeds"])
            except ValidationError as err:
                shown = "; ".join(
                    f"search.seeds.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                    if e["loc"]
                    else str(e["msg"]).removeprefix("Value error, ")
                    for e in err.errors()
                )
                raise ValueError(
                    f"{shown} (adaptive seeds are written {{initial: 3, max: 12}}: integers, "
                    "2 <= initial <= max <= 1000)"
                ) from None
            data = {**data, "seeds": list(range(adaptive.initial))}
        out = handler(data)
        out._adaptive = adaptive
        if adaptive is None and out.budget is not None:
            raise ValueError(
                f"search.budget={out.budget:g} applies to adaptive seeds only; write "
                "search.seeds as {initial: 3, max: 12} or drop search.budget"
            )
        if adaptive is not None and out.algorithm != "grid":
            raise ValueError(
                f"search.seeds={{initial, max}} needs algorithm grid (got {out.algorithm!r}): "
                "the comparisons seeds are added for must be known from the start"
            )
        if adaptive is not None and (
            out.num_samples != 1
            or any(
                p.distribution not in ("constant", "categorical") for p in out.parameters.values()
            )
        ):
            raise ValueError(
                "search.seeds={initial, max} needs a grid of listed values (parameters given as "
                f"values or value, num_samples 1; got num_samples {out.num_samples} and "
                f"{sorted({p.distribution for p in out.parameters.values()})})"
            )
        if adaptive is not None and out.scheduler != "fifo":
            raise ValueError(
                f"search.seeds={{initial, max}} needs scheduler fifo (got {out.scheduler!r}): "
                "a trial stopped early has no final value to judge"
            )
        return out

    @model_serializer(mode="wrap")
    def _dump_adaptive(self, handler: Any) -> Any:
        """Dump ``seeds`` as written (``{initial, max}``), so a saved spec reads back the same."""
        data = handler(self)
        if self._adaptive is not None and isinstance(data, dict):
            data["seeds"] = self._adaptive.model_dump()
        return data

    @property
    def adaptive(self) -> AdaptiveSeeds | None:
        """``seeds: {initial, max}`` as written, or None for a list of seeds."""
        return self._adaptive

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"search.seeds={brief(self.seeds)} repeats a seed; list each seed once"
            )
        if self.sampler is not None and self.algorithm != "optuna":
            raise ValueError(
                f"search.sampler={self.sampler!r} applies to algorithm optuna only "
                f"(algorithm is {self.algorithm!r})"
            )
        return self

    # ------------------------------------------------------------------ derived settings
    def scheduler_metric(self) -> tuple[str, str] | None:
        """(metric, mode) that ASHA compares epoch by epoch, or None for fifo."""
        if self.scheduler != "asha":
            return None
        name = self.metric or next(iter(self.objectives))
        return name, self.mode or self.objectives.get(name) or metrics.direction(name).value

    def optuna_objectives(self) -> dict[str, str]:
        if self.objectives:
            return dict(self.objectives)
        assert self.metric is not None
        return {self.metric: self.mode or metrics.direction(self.metric).value}

    def configs_to_sample(self) -> int:
        """Distinct configurations (before seeds)."""
        if self.algorithm == "grid":
            n = 1
            for p in self.parameters.values():
                n *= len(p.choices())
            return n * self.num_samples
        return self.num_samples

    def trial_count(self) -> int:
        return self.configs_to_sample() * len(self.seeds)


class ResourcesConfig(Strict):
    cpu: float = Field(1.0, gt=0, le=4096)
    gpu: float = Field(0.0, ge=0, le=64)


class WandbConfig(Strict):
    project: Name = DEFAULT_PROJECT
    entity: Name | None = None
    group: Name | None = None
    tags: list[Annotated[str, AfterValidator(_tag)]] = Field(default_factory=list, max_length=64)
    mode: Literal["offline", "online", "disabled"] = "offline"


class Spec(TrialSections):
    """A search space: the trial's sections (:class:`TrialSections`, the base config every trial
    starts from) plus the sweep's own."""

    name: Name
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)

    def base(self) -> TrialConfig:
        """The trial config before any search parameter is applied."""
        return trial_config(self.trial_dict())

    def resolve(self, params: dict[str, Any], seed: int) -> TrialConfig:
        """The config of one trial: base + sampled dotted params + seed."""
        return trial_config(self.trial_dict(), {**params, "train.seed": seed})


# ---------------------------------------------------------------------- reading files


TOP_KEYS = ("name", *SECTIONS, "search", "resources", "wandb")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A spec file as a mapping; refuses missing, empty, non-UTF-8 and unsafe YAML files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such spec file (give a path like search_spaces/cnn.yaml)")
    try:
        data = safe_yaml.read_file(path)
    except safe_yaml.YamlInputError as err:
        raise ConfigError(str(err)) from None
    if data is None or data == {}:
        raise ConfigError(
            f"{path}: the spec is empty; allowed: a mapping with at least a name or one of the "
            f"sections {', '.join(TOP_KEYS[1:])} (an empty file would run every default)"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections ({', '.join(TOP_KEYS)}), "
            f"got {type(data).__name__}"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: top-level key {brief(bad[0])} is not allowed; use {TOP_KEYS}")
    return data


def is_wandb_sweep(data: dict[str, Any]) -> bool:
    """A W&B sweep file has ``method`` at the top and no ``search`` section."""
    return "method" in data and "search" not in data


WANDB_SWEEP_KEYS = (
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "program",
    "command",
    "project",
    "entity",
)
WANDB_METHODS = {"grid": "grid", "random": "random", "bayes": "optuna"}


def _flatten_sweep_parameters(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """W&B nests sections as ``model: {parameters: {width: {...}}}``; we use dotted keys."""
    out: dict[str, Any] = {}
    for key, val in params.items():
        if (
            isinstance(val, dict)
            and set(val) == {"parameters"}
            and isinstance(val["parameters"], dict)
        ):
            out.update(_flatten_sweep_parameters(val["parameters"], f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = val
    return out


def from_wandb_sweep(data: dict[str, Any], where: str = "sweep") -> dict[str, Any]:
    """Map a W&B sweep config onto our spec layout (the README has the table).

    method grid/random/bayes → search.algorithm grid/random/optuna (TPE);
    metric {name, goal} → search.objectives {name: max|min}; parameters → search.parameters, except
    ``value:`` entries, which set the base config, and ``train.seed`` values, which become
    search.seeds; early_terminate {type: hyperband, min_iter, eta} → search.scheduler asha with
    grace_period=min_iter and reduction_factor=eta; run_cap (runs) → num_samples = run_cap / seeds
    (rounded up); name, project, entity
    → name, wandb.project, wandb.entity. ``program``/``command`` are ignored: the trial is always
    the shared trainer.
    """
    unknown = sorted(set(data) - set(WANDB_SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: W&B sweep file with unknown top-level key(s) {brief(unknown)}; "
            f"allowed: {', '.join(WANDB_SWEEP_KEYS)}"
        )
    method = data["method"]
    if not isinstance(method, str) or method not in WANDB_METHODS:
        raise ConfigError(
            f"{where}: method={brief(method)} is not supported; allowed: {', '.join(WANDB_METHODS)}"
        )
    spec: dict[str, Any] = {}
    search: dict[str, Any] = {"algorithm": WANDB_METHODS[method]}
    if "name" in data:
        spec["name"] = data["name"]
    wandb: dict[str, Any] = {k: data[k] for k in ("project", "entity") if k in data}
    if wandb:
        spec["wandb"] = wandb
    metric = data.get("metric")
    if metric is not None:
        if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
            raise ConfigError(f"{where}: metric must be {{name: val_acc, goal: maximize}}")
        goal = metric.get("goal", "minimize")
        if goal not in ("maximize", "minimize"):
            raise ConfigError(
                f"{where}: metric.goal={brief(goal)} is not allowed; use maximize or minimize"
            )
        search["objectives"] = {metric["name"]: "max" if goal == "maximize" else "min"}
    raw_params = data.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise ConfigError(f"{where}: parameters must be a mapping of key: {{values: [...]}}")
    params = _flatten_sweep_parameters(raw_params)
    search_params: dict[str, Any] = {}
    for key, p in params.items():
        if key == "train.seed" and isinstance(p, dict) and "values" in p:
            search["seeds"] = p["values"]
        elif isinstance(p, dict) and set(p) == {"value"} and key.split(".")[0] in SECTIONS:
            set_dotted(spec, key, p["value"])
        else:
            search_params[key] = p
    search["parameters"] = search_params
    et = data.get("early_terminate")
    if et is not None:
        if not isinstance(et, dict) or et.get("type") != "hyperband":
            raise ConfigError(
                f"{where}: early_terminate must be {{type: hyperband, min_iter: N, eta: 3}}"
            )
        extra = sorted(map(str, set(et) - {"type", "min_iter", "eta", "max_iter", "s", "strict"}))
        if extra:
            raise ConfigError(f"{where}: early_terminate.{brief(extra[0])}: unknown key")
        search["scheduler"] = "asha"
        search["grace_period"] = et.get("min_iter", 1)
        if "eta" in et:
            search["reduction_factor"] = et["eta"]
    if "run_cap" in data:  # W&B counts runs; we count configurations, each run once per seed
        cap, n_seeds = data["run_cap"], len(search.get("seeds") or [0])
        search["num_samples"] = -(-cap // n_seeds) if isinstance(cap, int) and cap > 0 else cap
    spec["search"] = search
    return spec


def load_spec(
    path: str | Path, overrides: dict[str, Any] | None = None, sweep: bool = True
) -> Spec:
    """Read (our format or a W&B sweep file), apply ``--set`` overrides, validate fully.

    ``sweep=False`` (the one-trial CLI) skips the checks that only concern Ray (resources).
    Raises ConfigError naming each bad key; nothing about Ray is touched here.
    """
    data = read_yaml(path)
    if is_wandb_sweep(data):
        data = from_wandb_sweep(data, str(path))
    if "name" not in data:
        stem = Path(path).stem
        if not NAME_RE.fullmatch(stem):
            raise ConfigError(
                f"{path}: no name: in the spec and the file name {brief(stem)} is not a valid "
                f"experiment name; add name: NAME ({NAME_RULE})"
            )
        data["name"] = stem
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate_spec(data, str(path), sweep)


def validate_spec(data: dict[str, Any], where: str = "spec", sweep: bool = True) -> Spec:
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{where}:\n" + format_validation_error(err)) from None
    try:
        spec.base()  # cross-section checks of the trial config (end_epoch vs epochs, presets...)
        check_search(spec)
        if sweep:
            check_resources(spec)
    except ConfigError as err:
        raise ConfigError(f"{where}:\n{err}") from None
    return spec


# ---------------------------------------------------------------------- search checks


def check_search(spec: Spec) -> None:
    """The checks that need the base config; raise ConfigError with one line per problem."""
    s = spec.search
    problems: list[str] = []
    base_flat = spec.base().flat()
    sections = {k.split(".")[0] for k in base_flat}

    for key, p in s.parameters.items():
        where = show_key(f"search.parameters.{key}")
        if key == "train.seed":
            problems.append(f"{where}: seeds are set by search.seeds (e.g. seeds: [0, 1, 2])")
            continue
        if key not in base_flat:
            head = key.split(".")[0]
            if head in sections:
                keys = sorted(k.split(".", 1)[1] for k in base_flat if k.startswith(head + "."))
                problems.append(
                    f"{where}: no such key in the trial config; keys of {brief(head)}: {', '.join(keys)}"
                )
            else:
                problems.append(
                    f"{where}: no such key; parameters are dotted keys of the base config "
                    f"starting with one of {', '.join(SECTIONS)} (e.g. model.width)"
                )
            continue
        if s.algorithm == "grid" and not p.is_grid:
            problems.append(
                f"{where}: {p.distribution} cannot be enumerated by algorithm grid; "
                f"give values: [...] or use algorithm random or optuna"
            )
        if s.algorithm == "optuna" and p.distribution == "categorical":
            bad = [v for v in p.choices() if not isinstance(v, (str, int, float, bool, type(None)))]
            if bad:
                problems.append(
                    f"{where}: optuna samples only scalar values (numbers, strings, bools), "
                    f"got {brief(bad[0])}; search a scalar key instead (e.g. model.width)"
                )
        if p.distribution in FLOAT_DISTRIBUTIONS and "whole number" in (
            _field_error(key, 1.5) or ""
        ):
            problems.append(
                f"{where}: distribution {p.distribution} samples fractional numbers and {key} "
                "takes whole numbers; allowed: int_uniform, or values: [...]"
            )
            continue
        probe = p.choices() if p.is_grid else p.bounds()
        for v in probe:
            err = _field_error(key, v)
            if err:
                problems.append(f"{where}: {err}")
                break

    for name in s.objectives:
        if not metrics.is_metric(name):
            problems.append(
                show_key(f"search.objectives.{name}") + ": not a metric name; use a record key "
                f"({', '.join(metrics.RECORD_KEYS[1:8])}, ...) or a summary key "
                f"({', '.join(metrics.SUMMARY_KEYS[:5])}, ...)"
            )
    if s.metric is not None and not metrics.is_metric(s.metric):
        problems.append(
            f"search.metric={brief(s.metric)}: not a metric name; see metrics.RECORD_KEYS/"
            "SUMMARY_KEYS"
        )
    if s.algorithm == "optuna" and not s.objectives and s.metric is None:
        problems.append(
            "search.objectives: algorithm optuna needs at least one objective, "
            "e.g. objectives: {val_acc: max} (several for multi-objective)"
        )
    if s.scheduler == "asha":
        if s.metric is None and len(s.objectives) != 1:
            problems.append(
                "search.metric: scheduler asha stops trials on one metric; "
                + (
                    f"objectives list {len(s.objectives)}, so name one with metric: val_acc"
                    if s.objectives
                    else "set metric: val_acc (and mode: max)"
                )
            )
        else:
            m = s.metric or next(iter(s.objectives))
            if m not in metrics.RECORD_KEYS and not m.startswith(metrics.LAYER_SPARSITY_PREFIX):
                problems.append(
                    f"search.metric={brief(m)}: asha compares trials epoch by epoch, so its metric "
                    f"must be a per-epoch record key (val_acc, val_loss, test_acc, ...)"
                )
    if s.mode is not None and s.metric is None:
        problems.append("search.mode: set search.metric too (mode is the metric's direction)")
    if s.algorithm == "grid" and not problems:
        problems += _check_grid(spec)
    if not problems:
        problems += _check_memory(spec)
    if problems:
        raise ConfigError(cap_lines(problems))


def _field_error(key: str, value: Any) -> str | None:
    """Check one value against its field's type and range alone (pydantic TypeAdapter).

    Cross-key rules (end_epoch vs epochs, ...) depend on the other sampled values, so they are
    checked per grid point (grid) or when the trial starts (random/optuna).
    """
    section, _, field = key.partition(".")
    model = section_model(section)
    info = model.model_fields[field]
    adapter = TypeAdapter(Annotated[info.annotation, info], config=model.model_config)
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        return format_validation_error(err, key).replace("\n", "; ")
    return None


def _check_grid(spec: Spec) -> list[str]:
    """Every grid point must be a valid trial config (catches cross-key clashes early)."""
    params = spec.search.parameters
    if not params:
        return []
    keys = list(params)
    combos = itertools.product(*(params[k].choices() for k in keys))
    base = spec.trial_dict()
    for combo in itertools.islice(combos, MAX_GRID_CHECK):
        point = dict(zip(keys, combo, strict=True))
        try:
            trial_config(base, point)
        except ConfigError as err:
            shown = ", ".join(f"{k}={brief(v)}" for k, v in point.items())
            return [f"search.parameters: grid point {shown} is not a valid trial config: {err}"]
    return []


def _check_memory(spec: Spec) -> list[str]:
    """Every configuration the search can reach must fit a machine like this one.

    Only keys the estimate depends on are combined (model, dataset, batch sizes, optimizer...):
    each searched value for grids and categorical choices, both ends of a range, so the largest
    corner is always among them. Combinations that are invalid for other reasons are skipped
    (other checks, or the trial itself, refuse them). The trial re-checks against the memory
    free on its node when it starts.
    """
    candidates = {
        k: (p.choices() if p.is_grid else p.bounds())
        for k, p in spec.search.parameters.items()
        if budget.affects(k)
    }
    base = spec.trial_dict()
    combos = itertools.product(*candidates.values())
    for combo in itertools.islice(combos, MAX_MEMORY_CHECK):
        point = dict(zip(candidates, combo, strict=True))
        try:
            cfg = trial_config(base, point)
        except ConfigError:
            continue
        try:
            budget.check_could_fit(cfg)
        except ConfigError as err:
            at = ", ".join(f"{k}={brief(v)}" for k, v in point.items())
            return [f"search.parameters: {at}: {err}" if at else str(err)]
    return []


def check_resources(spec: Spec) -> None:
    """A trial told to use CUDA must be given a GPU: Ray hides GPUs from trials with gpu: 0."""
    devices = {spec.train.device}
    p = spec.search.parameters.get("train.device")
    if p is not None and p.is_grid:
        devices |= {v for v in p.choices() if isinstance(v, str)}
    cuda = sorted(d for d in devices if d.startswith("cuda"))
    if cuda and spec.resources.gpu == 0:
        raise ConfigError(
            f"train.device={cuda[0]!r} with resources.gpu=0: Ray gives such a trial no GPU, so it "
            "would see no CUDA device; allowed: resources.gpu > 0 (e.g. 1, or 0.5 to share one) "
            "or train.device: auto"
        )
