"""A W&B sweep file (``method``, ``metric``, ``parameters``, ``early_terminate``, ``run_cap``)
mapped onto our spec layout, so the same :class:`~sparsity_tune.sweep.spec.Spec` validates it.

The mapping is plain data to plain data (:func:`from_wandb_sweep`); docs/search.md has the table.
"""

from __future__ import annotations

from typing import Any

from sparsity_tune.keys import ConfigError, set_dotted
from sparsity_tune.safe_yaml import brief
from sparsity_tune.trial.config import SECTIONS


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
    """Map a W&B sweep config onto our spec layout (docs/search.md has the table).

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
