"""A search-space file: the trial's base config plus the sweep's sections, validated once.

Layout of a spec YAML::

    name: cnn                 # experiment name (default: the file's stem)
    dataset: {...}            # trainer keys (see config.TrialConfig)
    model: {...}
    train: {...}
    pruning: {...}
    search: {...}             # sweep: parameters, algorithm, seeds, scheduler (see SearchConfig)
    resources: {cpu: 1, gpu: 0}
    wandb: {project: ..., mode: offline}

pydantic validates it; :class:`~sparsity_tune.config.ConfigError` carries the messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparsity_tune.config import (
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchConfig(_Strict):
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0])
    scheduler: Literal["fifo", "asha"] = "fifo"
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    grace_period: int = Field(1, ge=1)
    num_samples: int = Field(1, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0)
    checkpoint_every: int = Field(1, ge=1)


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
        return trial_config({k: getattr(self, k).model_dump() for k in TRIAL_SECTIONS})


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


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read, apply ``--set`` overrides, validate. Raises ConfigError naming each bad key."""
    data = read_yaml(path)
    data.setdefault("name", Path(path).stem)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}:\n" + format_validation_error(err)) from None
    spec.base()  # cross-section checks of the trial config (end_epoch vs epochs, presets, ...)
    return spec
