"""``search.scheduler: pareto_asha``: the Ray Tune scheduler that stops what cannot reach the front.

Ray Tune runs the trials and asks a ``TrialScheduler`` after every result whether to go on; this
one answers with the pure rule of :mod:`sparsity_tune.sweep.pareto_rungs` (accuracy compared at
each configuration's own fixed cost, at equal phase of the pruning schedule, seeds pooled). It
never touches the search algorithm, so grid, random and Optuna (through ``SeedRepeater``: a
stopped seed reports its last result) work alike.

Costs are what the schedule's target fixes before training (:func:`target_costs`): the nonzero
parameters of the model pruned once to the final target at initialisation, by the trial's own
trainer (:func:`nonzero_at_target`: structured pruning removes whole units, and compaction counts
their biases and the next layer's inputs as removed too, so the target's fraction of the
prunable weights would say 3337 where the MNIST-1D CNN of width 32 at 0.98 keeps 204), and the
density ``1 - target``. Once the schedule's last pruning event is behind a trial
(:meth:`PhaseClock.settled`), its record's own counted costs are used instead: final then, and
exact where the estimate scored units on the initial weights. Measured costs (latency, bytes) exist only at the end
of a run, so they cannot steer a stop; the spec refuses them for this scheduler.

Every decision is appended to ``pareto_stop.jsonl`` in the experiment directory before Ray sees
it. The scheduler that Ray pickles at the start and restores on ``--resume`` (and every
requeued SLURM launcher) reads that file back on its first result and replays it without
recomputing (:meth:`ParetoRungs.from_log`): a configuration stopped before the interruption stays
stopped, and a restored trial that reaches a rung again gets the saved answer. A stopped
configuration's seeds still pending run until their first result, and are stopped there
(epoch 1 is always reported to Tune under this scheduler, see :func:`report_epochs`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from sparsity_tune import layout, metrics
from sparsity_tune.keys import config_id
from sparsity_tune.metrics import M
from sparsity_tune.sweep.pareto_rungs import STOP, ParetoRungs, PhaseClock, rung_epochs
from sparsity_tune.trial.config import TrialConfig, trial_config
from sparsity_tune.trial.schedule import imp_target

#: The decision log, one JSON object a line, in the experiment directory.
DECISIONS = layout.STOP_DECISIONS


def final_target(cfg: TrialConfig) -> float:
    """The sparsity the schedule ends at (a fraction of the prunable weights)."""
    p = cfg.pruning
    if p.method == "none":
        return 0.0
    if p.method == "imp":
        return imp_target(p.rounds, p.rate)
    return p.final_sparsity


@functools.lru_cache(maxsize=4096)
def _nonzero_at_target(key: str) -> float:
    """Nonzero parameters of the trial's model pruned once to its final target at
    initialisation: its own :class:`~sparsity_tune.trial.trainer.Trainer` (so structured
    pruning is compacted, its units' biases and the next layer's inputs counted as removed) on
    four zero samples of the dataset's shape. Scores come from the initial weights, so where the
    granularity spreads units over layers by score (global scope) the count is an estimate: on
    the MNIST-1D grid of ``benchmarks/mo_grid_record.py`` within 6% of the trained runs', exact
    for unstructured pruning."""
    import torch

    from sparsity_tune.trial.data import SHAPES, DataSplits
    from sparsity_tune.trial.trainer import Trainer

    k = json.loads(key)
    shape = SHAPES[k["dataset"]]
    cfg = trial_config(
        {
            "dataset": {"name": k["dataset"]},
            "model": k["model"],
            "train": {"epochs": 1, "batch_size": 2, "device": "cpu", "threads": 1},
            "pruning": {**k["pruning"], "method": "one_shot", "start_epoch": 0},
        }
    )
    x, y = torch.zeros(4, *shape.input), torch.zeros(4, dtype=torch.long)
    data = DataSplits(x, y, x, y, x, y, shape.classes, tuple(shape.input), k["dataset"])
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):
            return float(Trainer(cfg, data=data).size_metrics()[M.nonzero_params])
    finally:
        torch.set_num_threads(threads)


def nonzero_at_target(cfg: TrialConfig) -> float:
    """:func:`_nonzero_at_target` of ``cfg``, cached by what decides it (model, dataset,
    granularity, scope, score, target), not by training settings or seed."""
    p = cfg.pruning
    pruning = {
        "final_sparsity": final_target(cfg),
        **p.model_dump(
            mode="json", include={"granularity", "scope", "score", "prune_output", "n", "m"}
        ),
    }
    key = {
        "model": cfg.model.model_dump(mode="json"),
        "dataset": cfg.dataset.name,
        "pruning": pruning,
    }
    return _nonzero_at_target(json.dumps(key, sort_keys=True))


def target_costs(cfg: TrialConfig, costs: tuple[str, ...]) -> tuple[float, ...]:
    """Each cost objective (minimised) at the schedule's target: ``nonzero_params`` as
    :func:`nonzero_at_target` counts it; a sparsity (maximised) as the density ``1 - target``."""
    target = final_target(cfg)
    out = []
    for name in costs:
        if name == M.nonzero_params:
            out.append(nonzero_at_target(cfg))
        elif name in metrics.FIXED_COSTS:
            out.append(1.0 - target)
        else:
            raise ValueError(
                f"{name!r} is not fixed before training; allowed: {metrics.FIXED_COSTS}"
            )
    return tuple(out)


def record_costs(
    result: dict[str, Any], costs: tuple[str, ...], fallback: tuple[float, ...]
) -> tuple[float, ...]:
    """The cost objectives as a record counts them (a sparsity as the density ``1 - s``); the
    ``fallback`` (the target's) where the record lacks one."""
    out = []
    for name, target in zip(costs, fallback, strict=True):
        v = result.get(name)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            out.append(target)
        else:
            out.append(float(v) if name == M.nonzero_params else 1.0 - float(v))
    return tuple(out)


def phase_clock(cfg: TrialConfig) -> PhaseClock:
    """The trial's :class:`PhaseClock` from its pruning settings."""
    p = cfg.pruning
    if p.method == "imp":
        return PhaseClock("imp", period=cfg.imp_epochs_per_round)
    if p.method == "one_shot":
        return PhaseClock("one_shot", start=p.start_epoch)
    if p.method == "gradual":
        end = p.end_epoch if p.end_epoch is not None else cfg.train.epochs
        period = p.frequency if p.frequency_unit == "epoch" else 0
        return PhaseClock("gradual", start=p.start_epoch, end=end, period=period)
    return PhaseClock("none")


def report_epochs(grace: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """Epochs a trial always reports to Tune: epoch 1 (a pending seed of a stopped
    configuration stops there) and every rung (IMP's are moved to round ends by the scheduler,
    which also sees every checkpoint's result; rounds end at checkpoints only by chance, so the
    rounds' ends are added by the caller where it knows them)."""
    return tuple(sorted({1, *rung_epochs(grace, reduction_factor, max_t)}))


class ParetoASHA(FIFOScheduler):
    """Ray Tune scheduler: stop a configuration's trials when its optimistic accuracy at its
    own cost is dominated at a rung (see the module docstring)."""

    def __init__(
        self,
        experiment: str,
        base: dict[str, Any],
        seeds: list[int],
        accuracy: str,
        costs: tuple[str, ...],
        grace_period: int,
        reduction_factor: float,
        max_t: int,
        params_of: Callable[[dict[str, Any]], dict[str, Any]],
        seed_of: Callable[[dict[str, Any], list[int]], int],
        level: float = 0.9,
        noise_floor: float = 0.01,
    ) -> None:
        """``params_of``/``seed_of``: a Ray trial config's searched keys and seed (the search
        module's ``trial_params``/``trial_seed``, passed in: that module builds this one)."""
        super().__init__()
        self.params_of, self.seed_of = params_of, seed_of
        self.experiment, self.base, self.seeds = experiment, base, list(seeds)
        self.accuracy, self.costs = accuracy, tuple(costs)
        self.milestones = rung_epochs(grace_period, reduction_factor, max_t)
        self.level, self.noise_floor = level, noise_floor
        self._rungs: ParetoRungs | None = None
        self._trials: dict[str, tuple[str, int, tuple[float, ...], PhaseClock]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rungs"], state["_trials"] = None, {}  # read back from the file, never pickled
        return state

    # -- the decision log
    def _path(self) -> str:
        return f"{self.experiment.rstrip('/')}/{DECISIONS}"

    def rungs(self) -> ParetoRungs:
        """The rule's state: read back from the decision log the first time it is needed."""
        if self._rungs is None:
            self._rungs = ParetoRungs.from_log(
                read_log(self._path()), self.milestones, self.level, self.noise_floor
            )
        return self._rungs

    def _append(self, entries: list[dict]) -> None:
        append_log(self._path(), entries)

    # -- Ray Tune
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def _trial(self, trial: Any) -> tuple[str, int, tuple[float, ...], PhaseClock]:
        if trial.trial_id not in self._trials:
            seed = self.seed_of(trial.config, self.seeds)
            cfg = trial_config(self.base, {**self.params_of(trial.config), "train.seed": seed})
            self._trials[trial.trial_id] = (
                config_id(cfg),
                seed,
                target_costs(cfg, self.costs),
                phase_clock(cfg),
            )
        return self._trials[trial.trial_id]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        epoch, acc = result.get(M.epoch), result.get(self.accuracy)
        if epoch is None or acc is None:
            return TrialScheduler.CONTINUE
        cid, seed, costs, clock = self._trial(trial)
        if clock.settled(int(epoch)):
            costs = record_costs(result, self.costs, costs)
        rungs = self.rungs()
        before = len(rungs.log)
        action = rungs.on_epoch(cid, seed, int(epoch), costs, float(acc), clock)
        if len(rungs.log) > before:
            self._append(rungs.log[before:])
        return TrialScheduler.STOP if action == STOP else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        n = len(self.rungs().stopped) if self._rungs is not None else 0
        return f"Using ParetoASHA: {n} configuration(s) stopped, rungs {self.milestones}."


def read_log(path: str) -> list[dict]:
    """The saved decisions (none when the file does not exist yet). A torn last line (the
    launcher killed mid-write) is dropped: its decision was never returned to Ray."""
    fs, p = _remote(path) if "://" in path else (None, path)
    try:
        if fs is None:
            with open(p, encoding="utf-8") as f:
                text = f.read()
        else:
            with fs.open_input_stream(p) as f:
                text = f.read().decode()
    except (FileNotFoundError, OSError):
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def append_log(path: str, entries: list[dict]) -> None:
    """Append decisions, flushed to disk before Ray acts on them (a whole rewrite on a remote
    filesystem, which has no append)."""
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    if "://" not in path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        return
    fs, p = _remote(path)
    old = "".join(json.dumps(e, sort_keys=True) + "\n" for e in read_log(path))
    with fs.open_output_stream(p) as f:
        f.write((old + lines).encode())


def _remote(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)
