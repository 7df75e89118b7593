"""End-of-sweep summary, computed by the analysis's own functions so the terminal and the report
cannot disagree.

Trial rows come from :func:`analysis.load.load_experiment` (the same files, the same status rule
:func:`sparsity_tune.layout.status_rule`, the same ``config_id``), configurations from
:func:`analysis.tables.aggregate_seeds` (the one seed aggregation) and the Pareto set from
:func:`analysis.pareto.non_dominated` (the one Pareto routine). The layer rule
(``tests/unit/test_layers.py``) lets the sweep layer use ``analysis``, never the other way round;
the launcher imports this module only when a sweep ends, so pandas and scipy never slow a launch
or a ``--dry-run``. One addition of its own: a trial that failed before it wrote ``config.json``
(Ray's ``error.txt`` only) is counted as failed here, where the user needs to see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import (
    AnalysisError,
    add_config_ids,
    aggregate_seeds,
    load_experiment,
    non_dominated,
)
from sparsity_tune import layout, metrics
from sparsity_tune.metrics import M
from sparsity_tune.sweep.plan import Plan

#: Seed means shown per configuration (besides the objectives).
SHOWN = (M.test_acc, M.best_val_acc, M.sparsity, M.nonzero_params, M.total_time_s)
STATUS_WORDS = (
    (layout.FINISHED, "finished"),
    (layout.STOPPED_EARLY, "stopped early"),
    (layout.FAILED, "failed"),
    (layout.DAMAGED, "damaged (unreadable files)"),
    (layout.RUNNING, "unfinished (running or interrupted)"),
)


@dataclass
class Summary:
    trials: pd.DataFrame  # one row per trial (analysis.load's columns)
    configs: pd.DataFrame = field(default_factory=pd.DataFrame)  # finished, best first
    front: pd.DataFrame = field(default_factory=pd.DataFrame)  # non-dominated configs

    @property
    def counts(self) -> dict[str, int]:
        """Trials per status (:data:`sparsity_tune.layout.TrialStatus`)."""
        if self.trials.empty:
            return {}
        return {str(k): int(v) for k, v in self.trials["status"].value_counts().items()}


def trials_frame(exp: str | Path) -> pd.DataFrame:
    """One row per trial of a local experiment directory: the analysis's trial table, plus the
    trials that failed before they started."""
    try:
        trials = load_experiment(exp, progress=False).trials
    except AnalysisError:
        trials = pd.DataFrame(columns=["trial_id", "seed", "status", "epochs_done"])
    seen = set(trials["trial_dir"]) if "trial_dir" in trials else set()
    early = [
        {
            "trial_id": d.name.removeprefix("trial_"),
            "seed": (_ray_params(d)).get("train.seed"),
            "status": layout.FAILED,
            "epochs_done": 0,
            "trial_dir": d.name,
        }
        for d in sorted(p.parent for p in Path(exp).glob(f"*/{layout.ERROR}"))
        if d.name not in seen
    ]
    if early:
        trials = pd.concat([trials, pd.DataFrame(early)], ignore_index=True)
    return trials


def _ray_params(trial_dir: Path) -> dict[str, Any]:
    try:
        params = layout.read_json(trial_dir / "params.json")
    except (OSError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


def summarise(trials: pd.DataFrame, objectives: dict[str, str]) -> Summary:
    """Seed-aggregated configurations (best first on the first objective, else test accuracy)
    and, for several objectives, the non-dominated ones among them."""
    if trials.empty or not (trials["status"] == layout.FINISHED).any():
        return Summary(trials)
    configs = aggregate_seeds(add_config_ids(trials))
    sort = next(iter(objectives), M.test_acc)
    if sort in configs:
        ascending = (objectives.get(sort) or metrics.direction(sort).value) == "min"
        configs = configs.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    front = pd.DataFrame()
    cols = [c for c in objectives if c in configs]
    if len(objectives) > 1 and len(cols) == len(objectives):
        keep = non_dominated(configs[cols].to_numpy(float), [objectives[c] for c in cols])
        front = configs[keep]
    return Summary(trials, configs.reset_index(drop=True), front.reset_index(drop=True))


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _table(configs: pd.DataFrame, params: list[str], sort: str) -> pd.DataFrame:
    """What the terminal shows of each configuration: the searched keys, seeds, seed means."""
    cols = [c for c in params if c in configs]
    cols += ["n_seeds"]
    for m in dict.fromkeys([sort, *SHOWN]):
        if m in configs:
            cols.append(m)
            if m == sort and (configs["n_seeds"] > 1).any():
                cols.append(f"{m}_std")
    return configs[cols]


def print_summary(plan: Plan) -> Summary:
    """The end-of-sweep report: counts, one row per configuration, the Pareto set, next step."""
    exp = plan.experiment
    if not plan.local:
        print(f"results in {exp}; analyse with: python -m analysis {exp}")
        return Summary(pd.DataFrame())
    objectives = dict(plan.search.objectives)
    s = summarise(trials_frame(exp), objectives)
    if s.trials.empty:
        print(f"no trial finished yet in {exp}")
        return s
    counts = s.counts
    print(
        f"\n{len(s.trials)} trial(s): "
        + ", ".join(
            f"{counts.get(status, 0)} {word}"
            for status, word in STATUS_WORDS
            if status not in (layout.RUNNING, layout.DAMAGED) or counts.get(status, 0)
        )
    )
    sort = next(iter(objectives), M.test_acc)
    fmt: dict[str, Any] = {"float_format": _num, "index": False}
    with pd.option_context("display.max_rows", 500, "display.width", 200):
        if not s.configs.empty:
            print(f"\nfinished configurations, best {sort} first (mean over seeds):")
            print(_table(s.configs, plan.varied, sort).to_string(**fmt))
        failed = s.trials[s.trials["status"] == layout.FAILED]
        if not failed.empty:
            print("\nfailed trials: " + ", ".join(failed["trial_id"].astype(str)))
        if not s.front.empty:
            print("\nPareto-optimal configurations (mean over seeds):")
            print(_table(s.front, plan.varied, sort).to_string(**fmt))
    if plan.search.adaptive is not None:
        from sparsity_tune.sweep.replicate import describe_spending

        print("\n" + "\n".join(describe_spending(exp, plan.search.adaptive)))
    print(f"\nper-trial files: {exp}/trial_*/ (config.json, records.jsonl, summary.json)")
    print(f"next: python -m analysis {exp}")
    return s
