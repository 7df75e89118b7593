"""A spec file read and validated once: :func:`load_spec` and :func:`validate_spec`.

pydantic validates the shapes (:class:`~sparsity_tune.sweep.spec.Spec`); :func:`check_search`
adds the checks that need the base config (parameter paths exist, every value and range end is a
valid trial config, objectives are metric names, every configuration the search can reach fits
a machine like this one, a ``cuda`` device has a GPU in ``resources``). Problems raise
:class:`~sparsity_tune.keys.ConfigError` naming the key.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from sparsity_tune import metrics
from sparsity_tune.keys import (
    NAME_RE,
    NAME_RULE,
    ConfigError,
    cap_lines,
    error_key,
    format_validation_error,
    set_by,
    set_dotted,
    show_key,
)
from sparsity_tune.safe_yaml import brief
from sparsity_tune.sweep.plan import range_ends
from sparsity_tune.sweep.spec import (
    FLOAT_DISTRIBUTIONS,
    SearchConfig,
    Spec,
    pareto_split,
    read_yaml,
)
from sparsity_tune.sweep.wandb_sweep import from_wandb_sweep, is_wandb_sweep
from sparsity_tune.trial import budget
from sparsity_tune.trial.config import (
    SECTIONS,
    TrialConfig,
    field_of,
    trial_config,
)

MAX_GRID_CHECK = 20_000  # grid combinations validated one by one before Ray starts
MAX_MEMORY_CHECK = 1_000  # combinations of memory-relevant values estimated before Ray starts


class Checked(NamedTuple):
    """A validated spec and the base trial config its validation built (the plan reuses it)."""

    spec: Spec
    base: TrialConfig


def load(path: str | Path, overrides: dict[str, Any] | None = None, sweep: bool = True) -> Checked:
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
    return check(data, str(path), sweep, given=list(overrides or ()))


def check(
    data: dict[str, Any], where: str = "spec", sweep: bool = True, given: list[str] | None = None
) -> Checked:
    """Validate spec data once: its shapes (pydantic), the base trial config's cross-section
    rules (end_epoch vs epochs, presets...), the search (:func:`check_search`) and, for a
    sweep, the resources. ConfigError naming ``where`` and each bad key (``given``: the keys set
    with ``--set``, so a bad one there is blamed on ``--set``, not on the file)."""
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        keys = [(error_key(e), e["type"] == "extra_forbidden") for e in err.errors()]
        if given and all(set_by(k, given, unknown) for k, unknown in keys):
            where = "--set"
        elif given and any(set_by(k, given, unknown) for k, unknown in keys):
            where = f"{where} and --set"
        text = format_validation_error(err, model=Spec, given=given or ())
        raise ConfigError(f"{where}:\n{text}") from None
    try:
        base = trial_config(spec.trial_dict())
        check_search(spec, base)
        if sweep:
            check_resources(spec)
    except ConfigError as err:
        raise ConfigError(f"{where}:\n{err}") from None
    return Checked(spec, base)


def load_spec(
    path: str | Path, overrides: dict[str, Any] | None = None, sweep: bool = True
) -> Spec:
    """:func:`load`'s spec alone."""
    return load(path, overrides, sweep).spec


def validate_spec(data: dict[str, Any], where: str = "spec", sweep: bool = True) -> Spec:
    """:func:`check`'s spec alone."""
    return check(data, where, sweep).spec


# ---------------------------------------------------------------------- search checks


def check_search(spec: Spec, base: TrialConfig) -> None:
    """The checks that need the base config (``base``, built from ``spec``); raise ConfigError
    with one line per problem."""
    s = spec.search
    problems: list[str] = []
    base_flat = base.flat()
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
        probe = p.choices() if p.is_grid else range_ends(p)
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
    if s.scheduler == "pareto_asha":
        problems += _check_pareto(s)
    if s.mode is not None and s.metric is None:
        problems.append("search.mode: set search.metric too (mode is the metric's direction)")
    if s.algorithm == "grid" and not problems:
        problems += _check_grid(spec)
    if not problems:
        problems += _check_memory(spec)
    if problems:
        raise ConfigError(cap_lines(problems))


def _check_pareto(s: SearchConfig) -> list[str]:
    """pareto_asha needs one accuracy (maximised, per epoch) and at least one cost fixed from the
    start; measured costs exist only at a run's end, so they cannot steer a stop."""
    acc, costs = pareto_split(dict(s.objectives))
    others = [k for k in s.objectives if k not in metrics.FIXED_COSTS]
    problems = []
    if not costs or len(others) != 1:
        problems.append(
            f"search.objectives={brief(dict(s.objectives))}: scheduler pareto_asha needs one "
            f"accuracy (e.g. test_acc: max) and costs from {', '.join(metrics.FIXED_COSTS)} "
            "(known from the start), e.g. objectives: {test_acc: max, nonzero_params: min}"
        )
    elif acc not in metrics.RECORD_KEYS or s.objectives[acc] != "max":
        problems.append(
            show_key(f"search.objectives.{acc}")
            + f"={s.objectives[acc]}: pareto_asha compares a per-epoch accuracy, maximised "
            "(val_acc, test_acc, train_acc: max)"
        )
    if s.metric is not None:
        problems.append(
            f"search.metric={brief(s.metric)}: pareto_asha reads search.objectives; drop metric"
        )
    return problems


def _field_error(key: str, value: Any) -> str | None:
    """Check one value against its field's type and range alone (pydantic TypeAdapter).

    Cross-key rules (end_epoch vs epochs, ...) depend on the other sampled values, so they are
    checked per grid point (grid) or when the trial starts (random/optuna).
    """
    model, info = field_of(key)  # also inside a nested section (train.until.patience)
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
        k: (p.choices() if p.is_grid else range_ends(p))
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
