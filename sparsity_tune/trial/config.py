"""Typed, validated configuration of one trial: dataset, model, train, pruning.

Parsed once, at the edge, into pydantic models (pydantic does the heavy lifting: types, ranges,
unknown keys). Nothing deeper re-validates or reads raw dicts. Grouping by concern follows
OpenLTH's hparams; :func:`config_hash` is the run's stable identity.

Errors are turned into one line per problem that names the dotted key, the bad value and what is
allowed (:class:`ConfigError`), so CLIs can print them and exit with status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES

Preset = Literal["lenet300_100", "lenet5", "conv2", "conv4", "conv6", "mnist1d_cnn"]
DATASETS = ("mnist1d", "mnist", "fashion_mnist", "cifar10")
IMAGE_DATASETS = ("mnist", "fashion_mnist", "cifar10")
IMAGE_PRESETS = ("lenet5", "conv2", "conv4", "conv6")


def check_preset(preset: str, dataset_name: str) -> None:
    """Raise ``ValueError`` with a full message when ``preset`` does not fit the dataset."""
    if preset in IMAGE_PRESETS and dataset_name not in IMAGE_DATASETS:
        raise ValueError(
            f"model.preset={preset!r} needs image data ({', '.join(IMAGE_DATASETS)}); "
            f"dataset.name={dataset_name!r} gives 1-D signals: use preset mnist1d_cnn or arch cnn"
        )
    if preset == "mnist1d_cnn" and dataset_name != "mnist1d":
        raise ValueError(
            f"model.preset='mnist1d_cnn' needs 1-D signals of length 40 (dataset.name='mnist1d'); "
            f"dataset.name={dataset_name!r} gives images: use preset lenet5, conv2/conv4/conv6 "
            f"or arch cnn"
        )


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says what and how."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(_Strict):
    name: Literal["mnist1d", "mnist", "fashion_mnist", "cifar10"] = "mnist1d"
    root: str = Field("data", description="where torchvision datasets live (or are downloaded)")
    download: bool = Field(False, description="let torchvision download missing files")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="validation carved from train")
    split_seed: int = Field(0, description="seed of the train/val split (fixed across trials)")
    train_limit: int | None = Field(None, gt=0, description="use only this many train samples")
    test_limit: int | None = Field(None, gt=0, description="use only this many test samples")


class ModelConfig(_Strict):
    arch: Literal["mlp", "cnn"] = "mlp"
    preset: Preset | None = Field(None, description="a named architecture; overrides depth/width")
    depth: int = Field(2, ge=1, le=64, description="hidden layers (mlp) or conv layers (cnn)")
    width: int = Field(100, ge=1, le=65536, description="units (mlp) or channels (cnn)")
    hidden: list[int] | None = Field(None, description="explicit hidden sizes (mlp only)")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.hidden is not None:
            if self.arch != "mlp":
                raise ValueError("model.hidden applies to arch 'mlp' only; use depth/width for cnn")
            if not self.hidden or any(h < 1 for h in self.hidden):
                raise ValueError(
                    f"model.hidden must be a non-empty list of sizes >= 1, got {self.hidden}"
                )
        return self


class TrainConfig(_Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-2, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine", "step"] = "cosine"
    lr_step_epochs: int = Field(10, ge=1, description="step schedule: decay every N epochs")
    lr_gamma: float = Field(0.1, gt=0, le=1, description="step schedule: decay factor")
    seed: int = 0
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:N")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: CPU allowance")

    @model_validator(mode="after")
    def _device(self) -> TrainConfig:
        d = self.device
        if not (d in ("auto", "cpu", "cuda", "mps") or (d.startswith("cuda:") and d[5:].isdigit())):
            raise ValueError(f"train.device={d!r} is not allowed; use auto, cpu, cuda or cuda:N")
        return self


class PruningConfig(_Strict):
    """How and when weights are removed. Targets are fractions of all prunable weights.

    ``method``, ``score`` and ``granularity`` name registered strategies
    (:mod:`sparsity_tune.trial.registry`); each checks the keys it reads (``Schedule.check``,
    ``Score.check``, ``Granularity.check``, called from :class:`TrialConfig`) and ignores the
    others, so one base config can be swept over methods.
    """

    method: str = Field("none", description="when: " + ", ".join(SCHEDULES))
    scope: Literal["global", "layerwise"] = "global"
    score: str = Field("magnitude", description="what goes first: " + ", ".join(SCORES))
    granularity: str = Field("unstructured", description="what: " + ", ".join(GRANULARITIES))
    final_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    start_epoch: int = Field(
        0, ge=0, description="one_shot: prune before this epoch; gradual: start"
    )
    end_epoch: int | None = Field(None, ge=0, description="gradual: final sparsity reached here")
    frequency: int = Field(1, ge=1, description="gradual: prune every N epochs (or steps)")
    frequency_unit: Literal["epoch", "step"] = "epoch"
    schedule: Literal["cubic", "linear", "exponential"] = "cubic"
    rate: float = Field(
        0.2, gt=0.0, lt=1.0, description="imp: fraction of remaining pruned per round"
    )
    rounds: int = Field(3, ge=1, description="imp: pruning rounds; the last mask is then trained")
    epochs_per_round: int | None = Field(None, ge=1, description="imp: default epochs/(rounds+1)")
    rewind: Literal["init", "none", "reinit"] | int = Field(
        "init", description="imp: init, reinit (fresh random weights, same mask), none or epoch K"
    )
    prune_output: bool = Field(False, description="also prune the output layer")
    n: int = Field(2, ge=1, description="nm: weights kept in every group of m")
    m: int = Field(4, ge=2, description="nm: group size")

    @field_validator("method", "score", "granularity")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        names = {"method": SCHEDULES, "score": SCORES, "granularity": GRANULARITIES}
        allowed = names[info.field_name]
        if value not in allowed:
            raise ValueError(f"{value!r} is not allowed; use one of " + ", ".join(allowed))
        return value

    @field_validator("rewind", mode="before")
    @classmethod
    def _rewind(cls, value: Any) -> Any:
        if value in ("init", "none", "reinit"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(
            f"{value!r} is not allowed; use init (back to the initial weights), reinit (fresh "
            f"random weights, same mask), none (keep the trained weights) or an epoch K >= 0"
        )


class TrialConfig(_Strict):
    """Everything one training run needs; the trainer takes exactly this."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)

    @model_validator(mode="after")
    def _cross(self) -> TrialConfig:
        p = self.pruning
        schedule = SCHEDULES[p.method]
        problems = []  # every strategy's complaint at once, the combination first
        for check in (
            lambda: GRANULARITIES[p.granularity].check(self, schedule),
            lambda: schedule.check(self),
            lambda: SCORES[p.score].check(self),
        ):
            try:
                check()
            except ValueError as err:
                problems.append(str(err))
        if problems:
            raise ValueError("\n".join(problems))
        if self.model.preset is not None:
            check_preset(self.model.preset, self.dataset.name)
        return self

    @property
    def imp_epochs_per_round(self) -> int:
        p = self.pruning
        return p.epochs_per_round or max(1, self.train.epochs // (p.rounds + 1))

    def flat(self) -> dict[str, Any]:
        """The config as flat dotted keys (W&B config, analysis columns)."""
        return flatten(self.model_dump(mode="json"))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating the levels on the way."""
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key}: '{p}' is a value, not a section")
        d = nxt
    d[parts[-1]] = value


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` of every CLI, read by :func:`parse_overrides`."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "model.hidden=[64,32]"]`` → dotted dict, values parsed as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.lr=0.01")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: dotted key, the value given, and what is allowed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-after"))
        key = f"{prefix}{loc}".strip(".")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling; see README 'Config keys')")
        elif e["type"] == "literal_error":
            lines.append(f"{key}={e.get('input')!r} is not allowed; {msg.lower()}")
        elif "input" in e and e["type"] not in ("value_error", "assertion_error"):
            lines.append(f"{key}={e['input']!r}: {msg}")
        else:
            lines.append(f"{key}: {msg}" if key else msg)
    return "\n".join(lines)


def trial_config(
    data: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> TrialConfig:
    """Validate a nested dict (plus dotted overrides) into a :class:`TrialConfig`."""
    nested = json.loads(json.dumps(data or {}))
    for key, value in (overrides or {}).items():
        set_dotted(nested, key, value)
    try:
        return TrialConfig.model_validate(nested)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def config_hash(cfg: TrialConfig, length: int = 10) -> str:
    """Stable identity of a configuration (OpenLTH-style): same settings, same hash."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
