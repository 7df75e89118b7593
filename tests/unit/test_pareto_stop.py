"""search.scheduler pareto_asha: spec rules, target costs, phase clocks, and the saved decisions
that make --resume, retries and requeues repeat the same stops (sparsity_tune.sweep.pareto_stop)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow.fs
import pytest
from ray.tune.schedulers import TrialScheduler

from analysis.load import load_trial
from analysis.stopping import budget
from sparsity_tune import layout
from sparsity_tune.keys import ConfigError, config_id
from sparsity_tune.sweep import pareto_stop, plan, search
from sparsity_tune.sweep.pareto_rungs import PhaseClock
from sparsity_tune.sweep.pareto_stop import ParetoASHA, append_log, read_log, target_costs
from sparsity_tune.sweep.validate import validate_spec
from sparsity_tune.trial.config import trial_config

BASE = {
    "name": "t",
    "model": {"arch": "mlp", "depth": 2, "width": 32},
    "train": {"epochs": 10},
    "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 4},
}
TRIAL = {k: v for k, v in BASE.items() if k != "name"}
SEARCH = {
    "parameters": {"pruning.final_sparsity": {"values": [0.5, 0.9]}},
    "seeds": [0, 1],
    "objectives": {"test_acc": "max", "nonzero_params": "min"},
    "scheduler": "pareto_asha",
    "grace_period": 2,
}


def plan_of(search_over: dict, tmp: str = "/nowhere/x") -> plan.Plan:
    spec = validate_spec({**BASE, "search": {**SEARCH, **search_over}})
    return plan.build(spec, tmp, str(Path(tmp).parent), use_wandb=False)


# ------------------------------------------------------------------ spec and plan
def test_plan_and_ray_scheduler() -> None:
    p = plan_of({})
    sch = p.scheduler
    assert isinstance(sch, plan.ParetoSchedulerPlan)
    assert (sch.metric, sch.costs, sch.grace_period, sch.max_t) == (
        "test_acc",
        ("nonzero_params",),
        2,
        10,
    )
    assert p.results()["scheduler"]["kind"] == "pareto_asha"
    assert "pareto_asha on test_acc at each configuration's own nonzero_params" in p.describe()
    ray_sch = search.scheduler(p)
    assert isinstance(ray_sch, ParetoASHA) and ray_sch.milestones == (2, 6)
    assert search.report_epochs(p)(trial_config(TRIAL)) == (1, 2, 6)


def test_asha_plans_are_unchanged() -> None:
    spec = validate_spec(
        {**BASE, "search": {"objectives": {"test_acc": "max"}, "scheduler": "asha"}}
    )
    s = plan.build(spec, "/nowhere/x", "/nowhere", use_wandb=False).results()["scheduler"]
    assert set(s) == {"metric", "mode", "grace_period", "reduction_factor", "max_t"}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"objectives": {"test_acc": "max"}}, "needs one accuracy"),
        ({"objectives": {"test_acc": "max", "infer_ms_b256": "min"}}, "needs one accuracy"),
        (
            {"objectives": {"test_acc": "max", "val_acc": "max", "nonzero_params": "min"}},
            "needs one accuracy",
        ),
        ({"objectives": {"test_loss": "min", "nonzero_params": "min"}}, "test_loss=min"),
        ({"objectives": {"best_val_acc": "max", "nonzero_params": "min"}}, "per-epoch accuracy"),
        ({"metric": "test_acc"}, "drop metric"),
    ],
)
def test_bad_objectives_name_the_key(over: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_spec({**BASE, "search": {**SEARCH, **over}})


# ------------------------------------------------------------------ costs and phases
def test_target_costs_from_the_schedule() -> None:
    # MLP 40 -> 32 -> 32 -> 10: 1312 + 1056 + 330 = 2698 parameters, prunable (hidden weights)
    # 1280 + 1024 = 2304; at 0.9: 2698 - round(2073.6) = 624
    cfg = trial_config(TRIAL, {"pruning.final_sparsity": 0.9})
    assert target_costs(cfg, ("nonzero_params", "sparsity")) == (624.0, pytest.approx(0.1))
    imp = trial_config(
        TRIAL,
        {"pruning.method": "imp", "pruning.rate": 0.5, "pruning.rounds": 2, "train.epochs": 9},
    )
    assert target_costs(imp, ("nonzero_params",)) == (2698.0 - 1728,)  # 0.75 * 2304
    # structured: whole units go, with their biases and the next layer's inputs (compaction);
    # the trained runs of benchmarks/mo_grid_record.py keep 334 (seeds 0 and 1)
    structured = trial_config(
        TRIAL, {"pruning.final_sparsity": 0.9, "pruning.granularity": "structured"}
    )
    assert target_costs(structured, ("nonzero_params",)) == (332.0,)
    dense = trial_config(TRIAL, {"pruning.method": "none"})
    assert target_costs(dense, ("nonzero_params",)) == (2698.0,)
    with pytest.raises(ValueError, match="'infer_ms_b256' is not fixed"):
        target_costs(cfg, ("infer_ms_b256",))


def test_phase_clocks_of_the_schedules() -> None:
    assert pareto_stop.phase_clock(trial_config(TRIAL)) == PhaseClock("gradual", 0, 4, 1)
    imp = trial_config(
        TRIAL,
        {
            "pruning.method": "imp",
            "pruning.rounds": 3,
            "pruning.epochs_per_round": 2,
            "train.epochs": 8,
        },
    )
    assert pareto_stop.phase_clock(imp) == PhaseClock("imp", period=2)
    one = trial_config(TRIAL, {"pruning.method": "one_shot", "pruning.start_epoch": 3})
    assert pareto_stop.phase_clock(one) == PhaseClock("one_shot", start=3)
    assert pareto_stop.phase_clock(trial_config(TRIAL, {"pruning.method": "none"})).kind == "none"


# ------------------------------------------------------------------ decisions saved and resumed
def trial(tid: str, sparsity: float, seed: int) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=tid, config={"pruning.final_sparsity": sparsity, "train.seed": seed}
    )


TRIALS = {"a0": (0.5, 0), "a1": (0.5, 1), "b0": (0.9, 0), "b1": (0.9, 1)}
# b (0.9: fewer nonzero params) is far ahead of a at epoch 2: a stops; b goes on
EVENTS = [
    ("a0", 1, 0.30),
    ("b0", 1, 0.40),
    ("a0", 2, 0.50),
    ("b0", 2, 0.90),
    ("a1", 1, 0.3),
    ("b1", 2, 0.91),
    ("a1", 2, 0.52),
    ("b0", 3, 0.9),
    ("b0", 6, 0.93),
]


def scheduler(tmp_path: Path) -> ParetoASHA:
    return search.scheduler(plan_of({}, str(tmp_path / "exp")))


def feed(sch: ParetoASHA, events: list) -> list[str]:
    out = []
    for tid, epoch, acc in events:
        t = trial(tid, *TRIALS[tid])
        out.append(sch.on_trial_result(None, t, {"epoch": epoch, "test_acc": acc}))
    return out


def test_a_sweep_stops_the_dominated_configuration(tmp_path: Path) -> None:
    sch = scheduler(tmp_path)
    got = feed(sch, EVENTS)
    C, S = TrialScheduler.CONTINUE, TrialScheduler.STOP
    # a0 at epoch 2: first at its rung -> continue; b0: cheaper and better; then a1 at
    # epoch 2: a's pooled bound 0.51 + t * sd / sqrt 2 is beaten by b's 0.905 -> stop
    assert got == [C, C, C, C, C, C, S, C, C]
    saved = read_log(str(tmp_path / "exp" / pareto_stop.DECISIONS))
    assert [(e["seed"], e["epoch"], e["action"]) for e in saved] == [
        ("0", 2, "continue"),
        ("0", 2, "continue"),
        ("1", 2, "continue"),
        ("1", 2, "stop"),
        ("0", 6, "continue"),
    ]
    a_id = config_id(trial_config(TRIAL, {"pruning.final_sparsity": 0.5}))
    assert saved[3]["config"] == a_id and set(sch.rungs().stopped) == {a_id}


@pytest.mark.parametrize("cut", range(len(EVENTS) + 1))
def test_resume_repeats_the_same_decisions(tmp_path: Path, cut: int) -> None:
    whole = feed(scheduler(tmp_path / "whole"), EVENTS)
    first = scheduler(tmp_path / "cut")
    pickled = pickle.dumps(first)  # what Ray saves in tuner.pkl when the sweep starts
    got = feed(first, EVENTS[:cut])
    resumed = pickle.loads(pickled)  # --resume / a requeued launcher: a fresh process
    # trials restored from a checkpoint report their last epochs again, then go on
    redo = [e for e in EVENTS[:cut] if e[1] >= 2][-2:]
    assert feed(resumed, redo) == [got[EVENTS.index(e)] for e in redo]
    got += feed(resumed, EVENTS[cut:])
    assert got == whole
    log = tmp_path / "cut" / "exp" / pareto_stop.DECISIONS
    assert read_log(str(log)) == read_log(str(tmp_path / "whole" / "exp" / pareto_stop.DECISIONS))


def test_a_stop_saved_before_an_interruption_is_never_revived(tmp_path: Path) -> None:
    sch = scheduler(tmp_path)
    feed(sch, EVENTS[:7])
    again = pickle.loads(pickle.dumps(sch))
    # a's seeds come back (retry, requeue) with excellent results: still stopped
    assert feed(again, [("a0", 3, 0.99), ("a1", 2, 0.99)]) == [TrialScheduler.STOP] * 2


def test_log_file_round_trip_and_torn_line(tmp_path: Path) -> None:
    path = str(tmp_path / "d" / "log.jsonl")
    assert read_log(path) == []
    append_log(path, [{"a": 1}])
    append_log(path, [{"b": [2, 3]}, {"c": None}])
    assert read_log(path) == [{"a": 1}, {"b": [2, 3]}, {"c": None}]
    with open(path, "a") as f:
        f.write('{"d": ')  # the launcher killed mid-write
    assert read_log(path) == [{"a": 1}, {"b": [2, 3]}, {"c": None}]
    assert json.loads(Path(path).read_text().splitlines()[0]) == {"a": 1}


@pytest.mark.parametrize("algorithm", ["random", "optuna"])
def test_every_search_algorithm_gets_the_scheduler(tmp_path: Path, algorithm: str) -> None:
    over = {"algorithm": algorithm, "num_samples": 2}
    if algorithm == "random":
        over["parameters"] = {"pruning.final_sparsity": {"min": 0.3, "max": 0.95}}
    else:
        over["parameters"] = {
            "pruning.final_sparsity": {"distribution": "uniform", "min": 0.3, "max": 0.95}
        }
    p = plan_of(over, str(tmp_path / "exp"))
    sch = search.scheduler(p)
    assert isinstance(sch, ParetoASHA)
    # optuna: the seed comes from Ray's repeat index, the params from the suggestion
    config = (
        {"pruning.final_sparsity": 0.9, "__trial_index__": 1}
        if algorithm == "optuna"
        else {"pruning.final_sparsity": 0.9, "train.seed": 1}
    )
    t = SimpleNamespace(trial_id="x", config=config)
    assert sch.on_trial_result(None, t, {"epoch": 2, "test_acc": 0.5}) == TrialScheduler.CONTINUE
    (entry,) = read_log(str(tmp_path / "exp" / pareto_stop.DECISIONS))
    assert entry["seed"] == "1" and entry["costs"] == [624.0]
    assert entry["config"] == config_id(trial_config(TRIAL, {"pruning.final_sparsity": 0.9}))


def test_settled_trials_are_judged_at_their_recorded_costs(tmp_path: Path) -> None:
    # the schedule ends at epoch 4: the rung at 6 reads the record's nonzero_params (structured
    # pruning and compaction leave fewer than the target's fraction); the rung at 2 the target's
    sch = scheduler(tmp_path)
    t = trial("b0", 0.9, 0)
    sch.on_trial_result(None, t, {"epoch": 2, "test_acc": 0.5, "nonzero_params": 2000})
    sch.on_trial_result(None, t, {"epoch": 6, "test_acc": 0.6, "nonzero_params": 300})
    sch.on_trial_result(None, trial("a0", 0.5, 0), {"epoch": 6, "test_acc": 0.6})  # no record
    saved = read_log(str(tmp_path / "exp" / pareto_stop.DECISIONS))
    assert [e["costs"] for e in saved] == [[624.0], [300.0], [1546.0]]
    assert pareto_stop.record_costs({"sparsity": 0.95}, ("sparsity",), (0.1,)) == (
        pytest.approx(0.05),
    )
    assert pareto_stop.record_costs({}, ("nonzero_params", "sparsity"), (7.0, 0.5)) == (7.0, 0.5)


# ------------------------------------------------------------------ per-trial report epochs
def test_report_epochs_follow_each_trials_own_schedule() -> None:
    # one sweep, rungs (2, 6): gradual trials report there; IMP trials of different round
    # lengths each report their own round ends (the base config's rounds say nothing of theirs)
    reports = search.report_epochs(plan_of({}))
    imp = {"pruning.method": "imp", "train.epochs": 12}
    four = trial_config(TRIAL, {**imp, "pruning.rounds": 2, "pruning.epochs_per_round": 4})
    three = trial_config(TRIAL, {**imp, "pruning.rounds": 3, "pruning.epochs_per_round": 3})
    assert reports(trial_config(TRIAL)) == (1, 2, 6)
    assert reports(four) == (1, 4, 8)
    assert reports(three) == (1, 3, 6)
    assert pickle.loads(pickle.dumps(reports))(four) == (1, 4, 8)  # tune.with_parameters


# ------------------------------------------------------------------ pending seeds never start
class Controller:
    """The part of Ray's TuneController a scheduler may call (get_trials, stop_trial)."""

    def __init__(self, trials: list[SimpleNamespace]) -> None:
        self.trials, self.stopped = trials, []

    def get_trials(self) -> list[SimpleNamespace]:
        return self.trials

    def stop_trial(self, t: SimpleNamespace) -> None:
        self.stopped.append(t.trial_id)
        t.status = "TERMINATED"


def ray_trial(exp: Path, tid: str, status: str) -> SimpleNamespace:
    t = trial(tid, *TRIALS[tid])
    storage = SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(),
        experiment_fs_path=str(exp),
        trial_dir_name=None,
    )

    def init_local_path() -> None:
        storage.trial_dir_name = f"trial_{tid}"

    t.status, t.storage, t.init_local_path = status, storage, init_local_path
    t.path = str(exp / f"trial_{tid}")
    return t


def test_pending_seeds_of_a_stopped_configuration_never_start(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    sch = scheduler(tmp_path)
    a0, b0 = ray_trial(exp, "a0", "RUNNING"), ray_trial(exp, "b0", "RUNNING")
    a1, b1 = ray_trial(exp, "a1", "PENDING"), ray_trial(exp, "b1", "PENDING")
    ctl = Controller([a0, b0, a1, b1])
    for t in ctl.trials:
        sch.on_trial_add(ctl, t)
    r = sch.on_trial_result(ctl, b0, {"epoch": 2, "test_acc": 0.90})
    assert r == TrialScheduler.CONTINUE and ctl.stopped == []
    # a, costlier, at 0.30 + 1.28 * 0.01 < 0.90 with one seed: stopped, and its pending seed now
    assert sch.on_trial_result(ctl, a0, {"epoch": 2, "test_acc": 0.30}) == TrialScheduler.STOP
    assert ctl.stopped == ["a1"] and b1.status == "PENDING"
    d = exp / "trial_a1"
    assert layout.trial_status(d) == "stopped"
    assert "configuration" in (d / "stopped.txt").read_text()
    row, records = load_trial(d, exp)  # the analysis counts it: stopped after 0 epochs
    a_id = config_id(trial_config(TRIAL, {"pruning.final_sparsity": 0.5}))
    assert (row["status"], row["epochs_done"], row["seed"], row["config_id"]) == (
        "stopped",
        0,
        1,
        a_id,
    )
    assert records == [] and row["train.epochs"] == 10
    b = budget(pd.DataFrame([row, {**row, "epochs_done": 2, "seed": 0}]))
    assert (b.trained, b.planned, b.stopped) == (2, 20, 2)
    # a seed of a added later (a retry, a searcher's late trial) is stopped before Ray starts it
    a1_again = ray_trial(exp, "a1", "PENDING")
    a1_again.trial_id, a1_again.path = "a1b", str(exp / "trial_a1b")
    ctl.trials.append(a1_again)
    sch.on_trial_add(ctl, a1_again)
    assert sch.choose_trial_to_run(ctl) is b1  # FIFO among the others
    assert ctl.stopped == ["a1", "a1b"]
    assert layout.trial_status(exp / "trial_a1b") == "stopped"


def test_a_restored_trial_keeps_its_own_config_when_stopped_pending(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    sch = scheduler(tmp_path)
    a0, a1, b0 = (ray_trial(exp, t, "RUNNING") for t in ("a0", "a1", "b0"))
    (exp / "trial_a1").mkdir(parents=True)
    (exp / "trial_a1" / "config.json").write_text('{"trial_id": "a1", "mine": 1}')
    a1.status = "PENDING"  # ran before an interruption: Ray restores it as pending
    ctl = Controller([a0, a1, b0])
    sch.on_trial_result(ctl, b0, {"epoch": 2, "test_acc": 0.90})
    sch.on_trial_result(ctl, a0, {"epoch": 2, "test_acc": 0.30})
    assert ctl.stopped == ["a1"]
    assert json.loads((exp / "trial_a1" / "config.json").read_text())["mine"] == 1
    assert (exp / "trial_a1" / "stopped.txt").exists()


# ------------------------------------------------------------------ a moved experiment
def test_a_moved_experiment_reads_and_extends_its_own_log(tmp_path: Path) -> None:
    whole = feed(scheduler(tmp_path / "whole"), EVENTS)
    first = scheduler(tmp_path / "old")
    pickled = pickle.dumps(first)  # tuner.pkl: the path of the experiment where it started
    got = feed(first, EVENTS[:7])  # a stopped at its second seed
    shutil.move(tmp_path / "old", tmp_path / "new")
    resumed = pickle.loads(pickled)
    # Ray restores the trials with storage at the directory it was given, and adds them
    new = tmp_path / "new" / "exp"
    trials = {tid: ray_trial(new, tid, "PENDING") for tid in TRIALS}
    for t in trials.values():
        resumed.on_trial_add(None, t)
    for tid, epoch, acc in EVENTS[7:]:
        got.append(resumed.on_trial_result(None, trials[tid], {"epoch": epoch, "test_acc": acc}))
    # a comes back (a retry) with an excellent result: still stopped, as saved before the move
    again = resumed.on_trial_result(None, trials["a0"], {"epoch": 6, "test_acc": 0.99})
    assert got == whole and again == TrialScheduler.STOP
    assert not (tmp_path / "old").exists()
    assert read_log(str(new / pareto_stop.DECISIONS)) == read_log(
        str(tmp_path / "whole" / "exp" / pareto_stop.DECISIONS)
    )
