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
accepted too and mapped onto the same :class:`Spec` by
:func:`sparsity_tune.sweep.wandb_sweep.from_wandb_sweep`.

pydantic validates the shapes here; :mod:`sparsity_tune.sweep.validate` adds the checks that need
the base config (parameter paths exist, every value and range end is a valid trial config,
objectives are metric names, every configuration fits a machine like this one) and reads files
(:func:`~sparsity_tune.sweep.validate.load_spec`). Problems raise
:class:`~sparsity_tune.keys.ConfigError` naming the key.

Files are read by :mod:`sparsity_tune.safe_yaml` (UTF-8, no duplicate keys, no alias
bombs). An empty file is refused: a spec must say at least its ``name`` or one section, so that a
truncated or mistyped file never runs 30 epochs of defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_serializer,
    model_validator,
)

from sparsity_tune import metrics, safe_yaml
from sparsity_tune.keys import NAME_RE, NAME_RULE, ConfigError
from sparsity_tune.metrics import DEFAULT_TOLERANCE
from sparsity_tune.safe_yaml import brief
from sparsity_tune.trial.config import MAX_EPOCHS, SECTIONS, Seed, Strict, TrialSections
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
    tolerance: float = Field(
        DEFAULT_TOLERANCE,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="accuracy points a pruned model may lose against dense (and two methods "
        "may differ by) and still be called within tolerance: the line adaptive seeds are "
        "added for and the report's default (python -m analysis --tolerance overrides it)",
    )
    scheduler: Literal["fifo", "asha", "pareto_asha"] = "fifo"
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
    """What the user wrote: a search space, the trial's sections (:class:`TrialSections`, the
    base config every trial starts from) plus the sweep's own, with nothing derived. What runs
    is the :class:`~sparsity_tune.sweep.plan.Plan` resolved from it once."""

    name: Name
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)


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


def pareto_split(objectives: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """pareto_asha: (the accuracy it compares, the cost objectives): the one objective that is
    not a cost fixed from the start, and the costs (checked by validate.check_search)."""
    costs = tuple(k for k in objectives if k in metrics.FIXED_COSTS)
    acc = [k for k in objectives if k not in metrics.FIXED_COSTS]
    return (acc[0] if acc else ""), costs
