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
stopped, and a restored trial that reaches a rung again gets the saved answer. The file is
found through the trials' storage, which Ray points at the experiment directory it restores
from, so a moved (or copied) experiment reads and extends its own log, not the one at the path
pickled when the sweep started.

A stopped configuration's seeds that have not started never do: before Ray starts pending
trials (:meth:`ParetoASHA.choose_trial_to_run`, called first in every step of its loop) and at
the moment of the stop, each pending trial of a stopped configuration is stopped through
``stop_trial`` (Ray's own route for a pending trial, as its HyperBand scheduler uses it), with
its ``config.json`` and ``stopped.txt`` written so the analysis counts it as stopped early after
0 epochs. A seed already running when its configuration stops stops at its next result (epoch 1
is always reported to Tune under this scheduler, see :class:`ReportEpochs`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.tune.experiment import Trial
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


@dataclass(frozen=True)
class ReportEpochs:
    """Epochs a trial always reports to Tune, resolved per trial (the trainable calls it with its
    own config, so trials of one sweep with different IMP rounds or round lengths each report
    their own round ends): epoch 1 (a seed already running when its configuration is stopped
    stops there) and every rung, moved by the trial's :func:`phase_clock` (IMP: to its rounds'
    ends), where the scheduler decides.

    >>> ReportEpochs((2, 6))(trial_config({"pruning": {"method": "gradual", "end_epoch": 3}}))
    (1, 2, 6)
    """

    milestones: tuple[int, ...]

    def __call__(self, cfg: TrialConfig) -> tuple[int, ...]:
        clock = phase_clock(cfg)
        return tuple(sorted({1, *(clock.rung_epoch(m) for m in self.milestones)}))


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
        self._trials: dict[str, tuple[str, int, TrialConfig]] = {}
        self._log: tuple[Any, str] | None = None  # (filesystem, path) from the trials' storage
        self._unchecked = False  # trials added since pending ones were last checked

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # read back from the file (found anew through the trials' storage), never pickled
        state["_rungs"], state["_trials"], state["_log"] = None, {}, None
        return state

    # -- the decision log
    def _bind(self, trial: Any) -> None:
        """Locate the log through ``trial``'s storage, the experiment directory Ray runs (or
        restored) it in; before any trial, or for a trial without storage, ``experiment``."""
        storage = getattr(trial, "storage", None)
        if self._log is None and storage is not None:
            self._log = (storage.storage_filesystem, f"{storage.experiment_fs_path}/{DECISIONS}")

    def _where(self) -> tuple[Any, str]:
        return self._log or (None, f"{self.experiment.rstrip('/')}/{DECISIONS}")

    def rungs(self) -> ParetoRungs:
        """The rule's state: read back from the decision log the first time it is needed."""
        if self._rungs is None:
            fs, path = self._where()
            self._rungs = ParetoRungs.from_log(
                read_log(path, fs), self.milestones, self.level, self.noise_floor
            )
        return self._rungs

    def _append(self, entries: list[dict]) -> None:
        fs, path = self._where()
        append_log(path, entries, fs)

    # -- Ray Tune
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def _trial(self, trial: Any) -> tuple[str, int, TrialConfig]:
        """The trial's configuration id, seed and config (costs are computed at its rungs)."""
        if trial.trial_id not in self._trials:
            seed = self.seed_of(trial.config, self.seeds)
            cfg = trial_config(self.base, {**self.params_of(trial.config), "train.seed": seed})
            self._trials[trial.trial_id] = (config_id(cfg), seed, cfg)
        return self._trials[trial.trial_id]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._bind(trial)  # restored trials are added before any result: the log is found first
        self._unchecked = True

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        self._stop_pending(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        epoch, acc = result.get(M.epoch), result.get(self.accuracy)
        if epoch is None or acc is None:
            return TrialScheduler.CONTINUE
        self._bind(trial)
        cid, seed, cfg = self._trial(trial)
        clock = phase_clock(cfg)
        rungs = self.rungs()
        before, n_stopped = len(rungs.log), len(rungs.stopped)
        action = STOP
        if cid not in rungs.stopped:
            costs = target_costs(cfg, self.costs)
            if clock.settled(int(epoch)):
                costs = record_costs(result, self.costs, costs)
            action = rungs.on_epoch(cid, seed, int(epoch), costs, float(acc), clock)
        if len(rungs.log) > before:
            self._append(rungs.log[before:])
        if len(rungs.stopped) > n_stopped:  # a configuration stopped now: its pending seeds too
            self._unchecked = True
            self._stop_pending(tune_controller)
        return TrialScheduler.STOP if action == STOP else TrialScheduler.CONTINUE

    def _stop_pending(self, tune_controller: Any) -> None:
        """Stop the pending trials of stopped configurations before Ray starts them, writing
        the files that make each one a trial stopped early after 0 epochs."""
        if not self._unchecked or tune_controller is None:
            return
        self._unchecked = False
        stopped = self.rungs().stopped
        if not stopped:
            return
        for trial in tune_controller.get_trials():
            if trial.status != Trial.PENDING:
                continue
            self._bind(trial)
            cid, seed, cfg = self._trial(trial)
            if cid in stopped:
                params = self.params_of(trial.config)
                _stopped_before_start(trial, self.experiment, params, seed, cfg, stopped[cid])
                tune_controller.stop_trial(trial)

    def debug_string(self) -> str:
        n = len(self.rungs().stopped) if self._rungs is not None else 0
        return f"Using ParetoASHA: {n} configuration(s) stopped, rungs {self.milestones}."


def _stopped_before_start(
    trial: Any, experiment: str, params: dict, seed: int, cfg: TrialConfig, by: dict
) -> None:
    """``config.json`` (unless the trial ran before: a restored trial keeps its own) and
    ``stopped.txt`` in ``trial``'s directory, on its storage."""
    if trial.storage.trial_dir_name is None:
        trial.init_local_path()  # what Ray does before starting a trial: names its directory
    fs, d = _resolve(trial.path, trial.storage.storage_filesystem)
    config = {
        "trial_id": trial.trial_id,
        "experiment": Path(experiment.rstrip("/")).name,
        "seed": seed,
        "config_id": config_id(cfg),
        "params": params,
        "config": cfg.model_dump(mode="json"),
    }
    note = (
        f"stopped before its first epoch by pareto_asha: configuration {config_id(cfg)} was "
        f"stopped at epoch {by.get('epoch')} (seed {by.get('seed')}, by {by.get('by')})\n"
    )
    files = {layout.STOPPED: note}
    if fs is None:
        os.makedirs(d, exist_ok=True)
        if not os.path.exists(f"{d}/{layout.CONFIG}"):
            files[layout.CONFIG] = json.dumps(config, indent=1, sort_keys=True)
        for name, text in files.items():
            layout.write_text(Path(d) / name, text)
        return
    fs.create_dir(d, recursive=True)
    if fs.get_file_info(f"{d}/{layout.CONFIG}").type == pyarrow.fs.FileType.NotFound:
        files[layout.CONFIG] = json.dumps(config, indent=1, sort_keys=True)
    for name, text in files.items():
        with fs.open_output_stream(f"{d}/{name}") as f:
            f.write(text.encode())


def _resolve(path: str, fs: Any = None) -> tuple[Any, str]:
    """(None, a local path) or (a remote filesystem, its path): from a URI, or as given."""
    if fs is None:
        return _remote(path) if "://" in path else (None, path)
    return (None, path) if isinstance(fs, pyarrow.fs.LocalFileSystem) else (fs, path)


def read_log(path: str, fs: Any = None) -> list[dict]:
    """The saved decisions (none when the file does not exist yet). A torn last line (the
    launcher killed mid-write) is dropped: its decision was never returned to Ray. ``path``: a
    local path or a URI, or a path on ``fs`` (a pyarrow filesystem)."""
    fs, p = _resolve(path, fs)
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


def append_log(path: str, entries: list[dict], fs: Any = None) -> None:
    """Append decisions, flushed to disk before Ray acts on them (a whole rewrite on a remote
    filesystem, which has no append). ``path`` and ``fs`` as for :func:`read_log`."""
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    fs, p = _resolve(path, fs)
    if fs is None:
        os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
        with open(p, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        return
    old = "".join(json.dumps(e, sort_keys=True) + "\n" for e in read_log(p, fs))
    with fs.open_output_stream(p) as f:
        f.write((old + lines).encode())


def _remote(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)
