"""Adaptive seeds as a Ray Tune ``Searcher``: Ray runs the trials, this decides which come next.

``search.seeds: {initial, max}`` (:class:`~sparsity_tune.sweep.plan.SeedsPlan`): the searcher
hands out every grid configuration with seeds ``0..initial-1``; when that wave's results are all
back it reads them from the experiment directory (the analysis's own loader and comparisons,
:func:`analysis.allocation.report_comparisons`), asks :func:`analysis.allocation.plan_wave`
where seeds would resolve the most open comparisons per trial-epoch within the budget, and
hands those out; it returns ``FINISHED`` when a wave plans nothing (everything resolved, out of
reach, or over budget). Waves are barriers, so each decision depends on a complete set of
results, which CPU trials reproduce exactly from their seeds.

Every wave is appended to ``allocation.jsonl`` in the experiment before its first trial is
handed out. Ray checkpoints the searcher (:meth:`save`/:meth:`restore`, Ray's documented
``Searcher`` API) and ``Tuner.restore`` (``--resume``, a SLURM requeue) brings it back; a wave
logged after the last checkpoint is taken from the log instead of being decided again, so a
resumed sweep adds the same seeds in the same order. Plain data only: the searcher pickles
(``pickle``/``ray.cloudpickle``), as ``Tuner`` needs.
"""

from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from sparsity_tune import layout
from sparsity_tune.keys import SEED_KEY
from sparsity_tune.sweep.plan import Plan, SeedsPlan
from sparsity_tune.trial.config import TrialConfig, trial_config

#: Trial states that will not change (a failed trial Ray retries is told to us again on its end).
ENDED = (layout.FINISHED, layout.FAILED, layout.STOPPED_EARLY)
#: The experiment's allocation log: one JSON line per wave.
LOG = layout.ALLOCATION_LOG
#: What was spent where, written when the searcher finishes (one row per configuration).
SPENT = "allocation.csv"


def grid_configs(plan: Plan) -> list[dict[str, Any]]:
    """Every configuration of a grid plan (categorical and constant parameters), in the spec's
    order of keys and values: the searched keys only, no seed."""
    keys = list(plan.parameters)
    axes = [plan.parameters[k].choices() for k in keys]
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*axes)]


def trial_epochs(cfg: TrialConfig) -> int:
    """A trial's cost in the budget's unit: the epochs it is configured to train (IMP: epochs
    per round times rounds + 1), known before it runs, so decisions do not depend on timing."""
    if cfg.pruning.method == "imp":
        return cfg.imp_epochs_per_round * (cfg.pruning.rounds + 1)
    return cfg.train.epochs


class SeedAllocator(Searcher):
    """Grid configurations x initial seeds, then waves of replicas (see the module docstring)."""

    def __init__(
        self,
        configs: list[dict[str, Any]],
        costs: list[float],
        seeds: SeedsPlan,
        experiment: str,
    ) -> None:
        super().__init__()
        self.configs, self.costs, self.seeds = configs, costs, seeds
        self.experiment = experiment
        # config-major within a seed: every configuration's first seed before any second one
        self.queue: list[tuple[int, int]] = [
            (i, s) for s in range(seeds.initial) for i in range(len(configs))
        ]
        self.issued: dict[str, tuple[int, int]] = {}
        self.done: set[str] = set()
        self.spent = float(seeds.initial * sum(costs))
        self.waves = 0
        self.decisions: list[dict[str, Any]] = []
        self.finished = False

    @classmethod
    def from_plan(cls, plan: Plan) -> SeedAllocator:
        assert plan.search.adaptive is not None, "not an adaptive-seeds plan"
        configs = grid_configs(plan)
        base = plan.base.model_dump(mode="json")
        costs = [float(trial_epochs(trial_config(base, c))) for c in configs]
        return cls(configs, costs, plan.search.adaptive, plan.experiment)

    # ------------------------------------------------------------------ Ray's Searcher API
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        return True  # the configurations are ours; Ray's metric and mode are not used

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.queue and not self.finished and self.done >= set(self.issued):
            self._next_wave()
        if self.queue:
            i, seed = self.queue.pop(0)
            self.issued[trial_id] = (i, seed)
            return {**self.configs[i], SEED_KEY: seed}
        return Searcher.FINISHED if self.finished else None

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self.issued:
            self.done.add(trial_id)

    def get_state(self) -> dict[str, Any]:
        keys = ("queue", "issued", "done", "spent", "waves", "decisions", "finished")
        return {k: getattr(self, k) for k in keys}

    def set_state(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._replay()

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    # ------------------------------------------------------------------ waves
    @property
    def log_path(self) -> Path:
        return Path(self.experiment) / LOG

    def counts(self) -> dict[int, int]:
        """Seeds handed out or queued per configuration."""
        n = dict.fromkeys(range(len(self.configs)), 0)
        for i, _ in [*self.issued.values(), *self.queue]:
            n[i] += 1
        return n

    def _next_wave(self) -> None:
        """Decide the next wave from the results on disk, log it, queue its trials."""
        from analysis.allocation import plan_wave, report_comparisons
        from analysis.convergence import open_flags
        from analysis.load import load_experiment
        from analysis.questions import analyse

        a = analyse(load_experiment(self.experiment, progress=False, jobs=1), xs=())
        ids = a.trials.set_index("trial_id")["config_id"].astype(str)
        index = {ids[t]: i for t, (i, _) in self.issued.items() if t in ids.index}
        cs, values = report_comparisons(
            a.samples, a.usable, a.y, a.scale, a.sign, self.seeds.tolerance
        )
        cs = [c for c in cs if all(g in index for g in c.configs)]
        n = self.counts()
        launched = {g: n[i] for g, i in index.items()}
        costs = {g: self.costs[i] for g, i in index.items()}
        budget = (self.seeds.budget or float("inf")) - self.spent
        wave = plan_wave(cs, values, costs, self.seeds.looks, budget, launched)
        trials = [
            (index[d.config], s) for d in wave.decisions for s in range(d.first_seed, d.seeds)
        ]
        self.waves += 1
        entry = {
            "wave": self.waves,
            "spent_before": self.spent,
            "decisions": [{**r, "config_index": index[r["config"]]} for r in wave.as_records()],
            "trials": trials,
            "states": wave.table["state"].value_counts().to_dict(),
            # points still improving at their end: their comparisons read "not converged" and
            # are not in the allocator's list (seeds do not finish a network's training)
            "still_improving": int(open_flags(a.usable).sum()),
        }
        self.spent += wave.spent
        self.decisions.extend(entry["decisions"])
        self.queue.extend(trials)
        self.finished = not trials
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry, default=float) + "\n")
        if self.finished:
            self._write_spent()

    def _replay(self) -> None:
        """After a restore: waves the log holds beyond the restored state are taken from it
        (their trials not yet handed out are queued again); trials whose directories say they
        ended count as done (Ray may not tell a restored searcher about them)."""
        for t, _ in list(self.issued.items()):
            d = Path(self.experiment) / f"trial_{t}"
            if d.exists() and layout.trial_status(d) in ENDED:
                self.done.add(t)
        if not self.log_path.exists():
            return
        handed = set(self.issued.values())
        for line in self.log_path.read_text().splitlines():
            entry = json.loads(line)
            if entry["wave"] <= self.waves:
                continue
            trials = [tuple(x) for x in entry["trials"]]
            self.waves = entry["wave"]
            self.spent = entry["spent_before"] + sum(d["cost"] for d in entry["decisions"])
            self.decisions.extend(entry["decisions"])
            self.queue = [t for t in trials if t not in handed]
            self.finished = not trials

    def _write_spent(self) -> None:
        from analysis.allocation import Decision, spent_where

        initial = {str(i): self.seeds.initial * c for i, c in enumerate(self.costs)}
        ds = [
            Decision(
                str(d["config_index"]),
                d["first_seed"],
                d["seeds"],
                d["cost"],
                d["comparison"],
                d["p_resolve"],
                d["score"],
            )
            for d in self.decisions
        ]
        table = spent_where(ds, initial)
        table.insert(0, "params", [json.dumps(self.configs[int(i)]) for i in table.index])
        table.to_csv(Path(self.experiment) / SPENT)


def describe_spending(experiment: str, seeds: SeedsPlan) -> list[str]:
    """The end-of-sweep summary's lines on adaptive seeds: what was spent, where and why it
    stopped (from ``allocation.jsonl`` and ``allocation.csv``)."""
    log, spent = Path(experiment) / LOG, Path(experiment) / SPENT
    if not log.exists():
        return ["adaptive seeds: no wave decided yet (the initial seeds are still running)"]
    waves = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    last = waves[-1]
    total = last["spent_before"] + sum(d["cost"] for d in last["decisions"])
    budget = f" of a budget of {seeds.budget:g}" if seeds.budget else ""
    added = sum(len(w["trials"]) for w in waves)
    states = ", ".join(f"{n} {s}" for s, n in sorted(last["states"].items()))
    lines = [
        f"adaptive seeds: {total:g} trial-epochs spent{budget}; {added} seed(s) added in "
        f"{sum(1 for w in waves if w['trials'])} wave(s) beyond {seeds.initial} per configuration"
        + (f"; at the end: {states}" if last["trials"] == [] else "; still running"),
    ]
    if last.get("still_improving"):
        lines.append(
            f"  {last['still_improving']} operating point(s) were still improving at their end: "
            "their comparisons read 'not converged' and got no seeds (more seeds do not finish "
            "training); train.until ends each run on its plateau"
        )
    if spent.exists():
        import pandas as pd

        t = pd.read_csv(spent, index_col="config")
        t = t[t["added_seeds"] > 0]
        for _, r in t.iterrows():
            lines.append(
                f"  {r['params']}: +{int(r['added_seeds'])} seed(s), {r['added']:g} trial-epochs,"
                f" for {r['for']}"
            )
    lines.append(f"  every decision: {log}")
    return lines
