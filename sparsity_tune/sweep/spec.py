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
names). Problems raise :class:`~sparsity_tune.trial.config.ConfigError` naming the key.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from sparsity_tune import metrics
from sparsity_tune.trial.config import (
    ConfigError,
    DatasetConfig,
    ModelConfig,
    PruningConfig,
    TrainConfig,
    TrialConfig,
    format_validation_error,
    set_dotted,
    trial_config,
)

TRIAL_SECTIONS = ("dataset", "model", "train", "pruning")

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
MAX_GRID_CHECK = 20_000  # grid combinations validated one by one before Ray starts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterSpec(_Strict):
    """One searched key, in W&B-sweep syntax: ``value``, ``values`` or ``distribution``+range."""

    value: Any = None
    values: list[Any] | None = None
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
            return f"= {self.value!r}"
        if d == "categorical":
            return f"in {self.values!r}"
        if d == "normal":
            return f"~ normal(mu={self.mu}, sigma={self.sigma})"
        q = f", q={self.q}" if self.q else ""
        return f"~ {d}({_num(self.min)}, {_num(self.max)}{q})"


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


class SearchConfig(_Strict):
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=dict)
    sampler: Literal["tpe", "nsga2"] | None = Field(
        None, description="optuna sampler; default tpe (one objective) or nsga2 (several)"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    scheduler: Literal["fifo", "asha"] = "fifo"
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    num_samples: int = Field(1, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0)
    checkpoint_every: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"search.seeds={self.seeds} repeats a seed; list each seed once")
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
        return name, self.mode or self.objectives.get(name) or metrics.direction(name)

    def optuna_objectives(self) -> dict[str, str]:
        if self.objectives:
            return dict(self.objectives)
        assert self.metric is not None
        return {self.metric: self.mode or metrics.direction(self.metric)}

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


class ResourcesConfig(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class WandbConfig(_Strict):
    project: str = "sparsity-tune"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    mode: Literal["offline", "online", "disabled"] = "offline"


class Spec(_Strict):
    name: str
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)

    def base(self) -> TrialConfig:
        """The trial config before any search parameter is applied."""
        return trial_config(self.base_dict())

    def base_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).model_dump(mode="json") for k in TRIAL_SECTIONS}

    def resolve(self, params: dict[str, Any], seed: int) -> TrialConfig:
        """The config of one trial: base + sampled dotted params + seed."""
        return trial_config(self.base_dict(), {**params, "train.seed": seed})


# ---------------------------------------------------------------------- reading files


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such spec file (give a path like search_spaces/cnn.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, got {type(data).__name__}"
        )
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
        if isinstance(val, dict) and set(val) == {"parameters"}:
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
            f"{where}: W&B sweep file with unknown top-level key(s) {unknown}; "
            f"allowed: {', '.join(WANDB_SWEEP_KEYS)}"
        )
    method = data["method"]
    if method not in WANDB_METHODS:
        raise ConfigError(
            f"{where}: method={method!r} is not supported; allowed: {', '.join(WANDB_METHODS)}"
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
        if not isinstance(metric, dict) or "name" not in metric:
            raise ConfigError(f"{where}: metric must be {{name: val_acc, goal: maximize}}")
        goal = metric.get("goal", "minimize")
        if goal not in ("maximize", "minimize"):
            raise ConfigError(
                f"{where}: metric.goal={goal!r} is not allowed; use maximize or minimize"
            )
        search["objectives"] = {metric["name"]: "max" if goal == "maximize" else "min"}
    params = _flatten_sweep_parameters(data.get("parameters") or {})
    search_params: dict[str, Any] = {}
    for key, p in params.items():
        if key == "train.seed" and isinstance(p, dict) and "values" in p:
            search["seeds"] = p["values"]
        elif isinstance(p, dict) and set(p) == {"value"} and key.split(".")[0] in TRIAL_SECTIONS:
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
        extra = sorted(set(et) - {"type", "min_iter", "eta", "max_iter", "s", "strict"})
        if extra:
            raise ConfigError(f"{where}: early_terminate.{extra[0]}: unknown key")
        search["scheduler"] = "asha"
        search["grace_period"] = et.get("min_iter", 1)
        if "eta" in et:
            search["reduction_factor"] = et["eta"]
    if "run_cap" in data:  # W&B counts runs; we count configurations, each run once per seed
        cap, n_seeds = data["run_cap"], len(search.get("seeds") or [0])
        search["num_samples"] = -(-cap // n_seeds) if isinstance(cap, int) and cap > 0 else cap
    spec["search"] = search
    return spec


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read (our format or a W&B sweep file), apply ``--set`` overrides, validate fully.

    Raises ConfigError naming each bad key; nothing about Ray is touched here.
    """
    data = read_yaml(path)
    if is_wandb_sweep(data):
        data = from_wandb_sweep(data, str(path))
    data.setdefault("name", Path(path).stem)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate_spec(data, str(path))


def validate_spec(data: dict[str, Any], where: str = "spec") -> Spec:
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{where}:\n" + format_validation_error(err)) from None
    try:
        spec.base()  # cross-section checks of the trial config (end_epoch vs epochs, presets...)
        check_search(spec)
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
        where = f"search.parameters.{key}"
        if key == "train.seed":
            problems.append(f"{where}: seeds are set by search.seeds (e.g. seeds: [0, 1, 2])")
            continue
        if key not in base_flat:
            head = key.split(".")[0]
            if head in sections:
                keys = sorted(k.split(".", 1)[1] for k in base_flat if k.startswith(head + "."))
                problems.append(
                    f"{where}: no such key in the trial config; keys of {head!r}: {', '.join(keys)}"
                )
            else:
                problems.append(
                    f"{where}: no such key; parameters are dotted keys of the base config "
                    f"starting with one of {', '.join(TRIAL_SECTIONS)} (e.g. model.width)"
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
                    f"got {bad[0]!r}; search a scalar key instead (e.g. model.width, model.depth)"
                )
        probe = p.choices() if p.is_grid else p.bounds()
        for v in probe:
            err = _field_error(key, v)
            if err:
                problems.append(f"{where}: value {v!r} is not allowed: {err}")
                break

    for name in s.objectives:
        if not metrics.is_metric(name):
            problems.append(
                f"search.objectives.{name}: not a metric name; use a record key "
                f"({', '.join(metrics.RECORD_KEYS[1:8])}, ...) or a summary key "
                f"({', '.join(metrics.SUMMARY_KEYS[:5])}, ...)"
            )
    if s.metric is not None and not metrics.is_metric(s.metric):
        problems.append(
            f"search.metric={s.metric!r}: not a metric name; see metrics.RECORD_KEYS/SUMMARY_KEYS"
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
                    f"search.metric={m!r}: asha compares trials epoch by epoch, so its metric "
                    f"must be a per-epoch record key (val_acc, val_loss, test_acc, ...)"
                )
    if s.mode is not None and s.metric is None:
        problems.append("search.mode: set search.metric too (mode is the metric's direction)")
    if s.algorithm == "grid" and not problems:
        problems += _check_grid(spec)
    if problems:
        raise ConfigError("\n".join(problems))


_SECTION_MODELS = {
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "pruning": PruningConfig,
}


def _field_error(key: str, value: Any) -> str | None:
    """Check one value against its field's type and range alone (pydantic TypeAdapter).

    Cross-key rules (end_epoch vs epochs, ...) depend on the other sampled values, so they are
    checked per grid point (grid) or when the trial starts (random/optuna).
    """
    section, _, field = key.partition(".")
    info = _SECTION_MODELS[section].model_fields[field]
    adapter = TypeAdapter(Annotated[info.annotation, info])
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        return "; ".join(e["msg"] for e in err.errors())
    return None


def _check_grid(spec: Spec) -> list[str]:
    """Every grid point must be a valid trial config (catches cross-key clashes early)."""
    params = spec.search.parameters
    if not params:
        return []
    keys = list(params)
    combos = itertools.product(*(params[k].choices() for k in keys))
    base = spec.base_dict()
    for combo in itertools.islice(combos, MAX_GRID_CHECK):
        point = dict(zip(keys, combo, strict=True))
        try:
            trial_config(base, point)
        except ConfigError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
            return [f"search.parameters: grid point {shown} is not a valid trial config: {err}"]
    return []
