"""Typed, validated configuration of one trial: dataset, model, train, pruning.

Parsed once, at the edge, into pydantic models (pydantic does the heavy lifting: types, ranges,
unknown keys). Nothing deeper re-validates or reads raw dicts. Grouping by concern follows
OpenLTH's hparams: :class:`TrialSections` is the one place that says which sections a trial has
(:data:`SECTIONS`; a sweep's spec extends it). :func:`config_id` is a configuration's identity
(OpenLTH's hash of the settings): every setting but the seed and :data:`NOT_IDENTITY`.

Errors are turned into one line per problem that names the dotted key, the bad value and what is
allowed (:class:`ConfigError`), so CLIs can print them and exit with status 2.

Every section is *strict* (:class:`Strict`): integers are integers (``width: true`` or ``2.0`` is
refused, not read as 1 or 2), floats are finite (``lr: .inf``/``.nan`` refused), strings are
strings, and every number has a range. Values reach here from YAML read by
:mod:`sparsity_tune.safe_yaml`, which already refused duplicate keys and alias bombs.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.fields import FieldInfo

from sparsity_tune import safe_yaml
from sparsity_tune.keys import (
    MAX_COUNT,
    ConfigError,
    control_chars,
    flatten,
    format_validation_error,
    set_dotted,
)
from sparsity_tune.metrics import M
from sparsity_tune.trial.controls import check_control
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES, piece_keys

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


class Strict(BaseModel):
    """Base of every config section: unknown keys, bools-as-ints, ``2.0``-as-int, strings-as-
    numbers and non-finite floats are all refused (pydantic strict mode, ``allow_inf_nan=False``).
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


#: Seeds: numpy's legacy seeding (``np.random.seed``, what most third-party code calls) takes
#: 0..2**32-1; ``torch.manual_seed`` takes up to 2**64-1. The trainer seeds a second torch
#: generator with ``seed + 1_000_003``, so the numpy range is the one that fits everything.
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def _plain_text(value: str) -> str:
    """No control characters (newlines, NUL, escapes): the value ends up in paths and logs."""
    if control_chars(value):
        raise ValueError(
            f"{safe_yaml.brief(value)} holds a control character (newline, tab, NUL...); "
            "allowed: printable text"
        )
    return value


PlainText = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_plain_text)]


class DatasetConfig(Strict):
    name: Literal["mnist1d", "mnist", "fashion_mnist", "cifar10"] = "mnist1d"
    root: PlainText = Field("data", description="where torchvision datasets live (downloaded)")
    download: bool = Field(False, description="let torchvision download missing files")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="validation carved from train")
    split_seed: Seed = Field(0, description="seed of the train/val split (fixed across trials)")
    train_limit: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="use only this many train samples"
    )
    test_limit: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="use only this many test samples"
    )


class ModelConfig(Strict):
    arch: Literal["mlp", "cnn"] = "mlp"
    preset: Preset | None = Field(None, description="a named architecture; overrides depth/width")
    depth: int = Field(2, ge=1, le=64, description="hidden layers (mlp) or conv layers (cnn)")
    width: int = Field(100, ge=1, le=MAX_COUNT, description="units (mlp) or channels (cnn)")
    hidden: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] | None = Field(
        None, max_length=64, description="explicit hidden sizes (mlp only)"
    )

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.hidden is not None:
            if self.arch != "mlp":
                raise ValueError("model.hidden applies to arch 'mlp' only; use depth/width for cnn")
            if not self.hidden:
                raise ValueError("model.hidden must be a non-empty list of sizes >= 1, got []")
        return self


MAX_EPOCHS = 100_000
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda|cuda:[0-9]{1,3}")


#: Metrics a plateau rule may watch: computed every epoch from data the run may learn from (the
#: test split never decides anything, or its figures would be tuned on).
MONITORED = (M.val_loss, M.val_acc, M.train_loss, M.train_acc)


class UntilConfig(Strict):
    """``train.until``: train each segment (the run; an IMP round) until ``metric`` has not
    improved by more than ``min_delta`` for ``patience`` epochs (:mod:`sparsity_tune.trial.plateau`
    holds the rule). The cap is the segment's planned epochs, which the config already names:
    ``train.epochs`` for a run, ``pruning.epochs_per_round`` for an IMP round. A second number
    for the same cap would need a rule for which wins, and budgets, memory and time estimates,
    ASHA's ``max_t`` and the LR schedule already read ``train.epochs``."""

    metric: Literal["val_loss", "val_acc", "train_loss", "train_acc"] = Field(
        "val_loss", description="what must stop improving; its direction is the registry's"
    )
    patience: int = Field(
        3, ge=1, le=MAX_EPOCHS, description="epochs without an improvement that end a segment"
    )
    min_delta: float = Field(
        0.0, ge=0.0, le=1e6, description="the smallest change that counts as an improvement"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_second_cap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_epochs" in data:
            raise ValueError(
                f"max_epochs={safe_yaml.brief(data['max_epochs'])}: the cap is "
                "train.epochs (the run's epochs; IMP: pruning.epochs_per_round for each round); "
                "set that instead"
            )
        return data


class TrainConfig(Strict):
    epochs: int = Field(
        30, ge=1, le=MAX_EPOCHS, description="epochs to train; with train.until, the cap"
    )
    batch_size: int = Field(128, ge=1, le=MAX_COUNT)
    eval_batch_size: int = Field(1024, ge=1, le=MAX_COUNT)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-2, gt=0, le=10, description="finite; above 10 every model here diverges")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    lr_schedule: Literal["constant", "cosine", "step"] = "cosine"
    lr_step_epochs: int = Field(
        10, ge=1, le=MAX_EPOCHS, description="step schedule: decay every N epochs"
    )
    lr_gamma: float = Field(0.1, gt=0, le=1, description="step schedule: decay factor")
    seed: Seed = 0
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:N")
    threads: int | None = Field(
        None, ge=1, le=1024, description="torch CPU threads; default: CPU allowance"
    )
    until: UntilConfig | None = Field(
        None, description="plateau stop of each segment; none: train exactly train.epochs"
    )

    @model_serializer(mode="wrap")
    def _without_unset_until(self, handler: Any) -> dict[str, Any]:
        """No ``until`` key when there is no rule: every config written before it existed keeps
        its dump, so its :func:`config_id`, its saved plan and its W&B config stay the same."""
        out = handler(self)
        if self.until is None and isinstance(out, dict):
            out.pop("until", None)
        return out

    @model_validator(mode="after")
    def _device(self) -> TrainConfig:
        if not DEVICE_RE.fullmatch(self.device):
            raise ValueError(
                f"train.device={safe_yaml.brief(self.device)} is not allowed; "
                "use auto, cpu, mps, cuda or cuda:N"
            )
        return self


#: ``pruning.rewind`` values read elsewhere: fresh random weights with the same mask (the random
#: re-initialisation control of Frankle & Carbin), and no rewind (the trained weights go on).
REWIND_FRESH: Final = "reinit"
REWIND_NONE: Final = "none"


class _PruningKeys(Strict):
    """How and when weights are removed. Targets are fractions of all prunable weights.

    ``method``, ``score`` and ``granularity`` name registered strategies
    (:mod:`sparsity_tune.trial.registry`); each checks the keys it reads (``Schedule.check``,
    ``Score.check``, ``Granularity.check``, called from :class:`TrialConfig`) and ignores the
    others, so one base config can be swept over methods. A strategy may also declare its keys
    in its own module (``config_keys``); :data:`PruningConfig` adds them after these.
    """

    method: str = Field("none", description="when: " + ", ".join(SCHEDULES))
    scope: Literal["global", "layerwise"] = "global"
    score: str = Field("magnitude", description="what goes first: " + ", ".join(SCORES))
    granularity: str = Field("unstructured", description="what: " + ", ".join(GRANULARITIES))
    final_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    start_epoch: int = Field(
        0, ge=0, le=MAX_EPOCHS, description="one_shot: prune before this epoch; gradual: start"
    )
    end_epoch: int | None = Field(
        None, ge=0, le=MAX_EPOCHS, description="gradual: final sparsity reached here"
    )
    frequency: int = Field(
        1, ge=1, le=MAX_COUNT, description="gradual: prune every N epochs (or steps)"
    )
    frequency_unit: Literal["epoch", "step"] = "epoch"
    schedule: Literal["cubic", "linear", "exponential"] = "cubic"
    rate: float = Field(
        0.2, gt=0.0, lt=1.0, description="imp: fraction of remaining pruned per round"
    )
    rounds: int = Field(
        3, ge=1, le=1000, description="imp: pruning rounds; the last mask is then trained"
    )
    epochs_per_round: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="imp: default epochs/(rounds+1)"
    )
    rewind: Literal["init", "none", "reinit"] | int = Field(
        "init", description="imp: init, reinit (fresh random weights, same mask), none or epoch K"
    )
    prune_output: bool = Field(False, description="also prune the output layer")
    n: int = Field(2, ge=1, le=1024, description="nm: weights kept in every group of m")
    m: int = Field(4, ge=2, le=1024, description="nm: group size")
    control: Literal["none", "shuffle_layer", "reinit", "invert"] = Field(
        "none",
        description="sanity check of the mask (Frankle et al. 2021): shuffle each layer's mask, "
        "fresh random weights, or keep the lowest-scored weights",
    )
    distribution: Literal["scope", "erk"] = Field(
        "scope", description="per-layer densities: as pruning.scope says, or Erdos-Renyi-Kernel"
    )

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
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCHS:
            return value
        raise ValueError(
            f"{value!r} is not allowed; use init (back to the initial weights), reinit (fresh "
            f"random weights, same mask), none (keep the trained weights) or an epoch K >= 0"
        )


#: The ``pruning`` section: the keys above, then those the registered strategies declare in
#: their own modules (:func:`~sparsity_tune.trial.registry.piece_keys`): the data needs of
#: ``snip``/``grasp`` and ``synflow``'s passes (:mod:`~sparsity_tune.trial.saliency`), then
#: ``set``/``rigl``'s ``update_every``, ``end_step``, ``drop_fraction`` (:mod:`~sparsity_tune.trial.dst`).
PruningConfig = create_model(
    "PruningConfig",
    __base__=_PruningKeys,
    __module__=__name__,
    __doc__=_PruningKeys.__doc__,
    **piece_keys(),
)


class TrialSections(Strict):
    """The sections of a trial's settings, declared once: :class:`TrialConfig` adds the rules
    that join them, a sweep's spec adds its own sections beside them."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)

    def trial_dict(self) -> dict[str, Any]:
        """The trial sections as nested plain data (what :func:`trial_config` takes)."""
        return self.model_dump(mode="json", include=set(SECTIONS))


#: The sections of a trial config, in order (``dataset``, ``model``, ``train``, ``pruning``).
SECTIONS: tuple[str, ...] = tuple(TrialSections.model_fields)


def section_model(section: str) -> type[Strict]:
    """The pydantic model of one section (``"train"`` -> :class:`TrainConfig`)."""
    return TrialSections.model_fields[section].annotation  # type: ignore[return-value]


def field_of(key: str) -> tuple[type[Strict], FieldInfo]:
    """The model and field of a dotted key of a trial config, also inside a nested section
    (``"train.until.patience"`` -> (:class:`UntilConfig`, its ``patience`` field)); KeyError
    when there is no such key."""
    section, *parents, name = key.split(".")
    model = section_model(section)
    for parent in parents:
        ann = model.model_fields[parent].annotation
        nested = [a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, Strict)]
        if not nested:
            raise KeyError(key)
        model = nested[0]
    return model, model.model_fields[name]


class TrialConfig(TrialSections):
    """Everything one training run needs; the trainer takes exactly this."""

    @model_validator(mode="after")
    def _cross(self) -> TrialConfig:
        p = self.pruning
        schedule = SCHEDULES[p.method]
        problems = []  # every strategy's complaint at once, the combination first
        for check in (
            lambda: GRANULARITIES[p.granularity].check(self, schedule),
            lambda: schedule.check(self),
            lambda: SCORES[p.score].check(self),
            lambda: check_control(self, schedule, GRANULARITIES[p.granularity]),
            lambda: self._check_iterations(),
        ):
            try:
                check()
            except ValueError as err:
                problems.append(str(err))
        if problems:
            raise ValueError("\n".join(problems))
        if self.model.preset is not None:
            check_preset(self.model.preset, self.dataset.name)
        until = self.train.until
        if until is not None and until.metric.startswith("val_") and self.dataset.val_fraction == 0:
            raise ValueError(
                f"train.until.metric={until.metric!r} needs a validation split, but "
                "dataset.val_fraction=0; set dataset.val_fraction > 0 or watch train_loss"
            )
        if until is not None:  # the rule needs patience + 1 epochs of a segment to fire
            imp = schedule.rewinds
            seg = self.imp_epochs_per_round if imp else self.train.epochs
            if until.patience >= seg:
                where = "pruning.epochs_per_round (an IMP round)" if imp else "train.epochs"
                raise ValueError(
                    f"train.until.patience={until.patience} can never end a segment of {seg} "
                    f"epochs ({where}); allowed: patience < {seg}, or more epochs"
                )
        return self

    def _check_iterations(self) -> None:
        """A score that iterates over targets (SynFlow) needs a granularity a target moves."""
        p = self.pruning
        passes = SCORES[p.score].iterations(p)
        if passes > 1 and GRANULARITIES[p.granularity].fixed_sparsity:
            raise ValueError(
                f"pruning.score={p.score!r} with pruning.synflow_iterations={passes} does not "
                f"combine with pruning.granularity={p.granularity!r}: its pattern fixes the "
                "sparsity, so there are no targets to iterate over; allowed: synflow_iterations 1"
            )

    @property
    def imp_epochs_per_round(self) -> int:
        p = self.pruning
        return p.epochs_per_round or max(1, self.train.epochs // (p.rounds + 1))

    def flat(self) -> dict[str, Any]:
        """The config as flat dotted keys (W&B config, analysis columns)."""
        return flatten(self.model_dump(mode="json"))


def _plain(value: Any) -> Any:
    """numpy scalars (a sampler's output) as Python numbers, so strict types accept them."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def trial_config(
    data: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> TrialConfig:
    """Validate a nested dict (plus dotted overrides) into a :class:`TrialConfig`."""
    try:
        nested = json.loads(json.dumps(data or {}))
    except (TypeError, ValueError) as err:  # a date, a set, a recursive structure...
        raise ConfigError(f"config: only plain values are allowed ({err})") from None
    for key, value in (overrides or {}).items():
        set_dotted(nested, key, _plain(value))
    try:
        return TrialConfig.model_validate(nested)
    except ValidationError as err:
        raise ConfigError(
            format_validation_error(err, model=TrialConfig, given=list(overrides or ()))
        ) from None
