"""What --resume trusts and allows: the launch record, the differences, Ray's pickles, torn state."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sparsity_tune import layout
from sparsity_tune.keys import ConfigError
from sparsity_tune.sweep import launch, resolve, state, watchdog
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep.validate import validate_spec

SAVED = {
    "name": "x",
    "train": {"epochs": 12, "device": "auto"},
    "pruning": {"end_epoch": 8},
    "search": {"max_failures": 2, "max_concurrent": 2, "parameters": {}},
    "resources": {"cpu": 1.0, "gpu": 0.0},
    "dataset": {"root": "/data/a"},
    "wandb": {"project": "p", "mode": "offline"},
}


def given(**dotted) -> dict:
    data = json.loads(json.dumps(SAVED))
    for k, v in dotted.items():
        sec, key = k.split("__")
        data[sec][key] = v
    return data


def plan_of(data: dict) -> planner.Plan:
    return planner.build(validate_spec(data), "/r/x", "/r")


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({"train__epochs": 20}, False),  # the hybrid trials
        ({"pruning__end_epoch": 9}, False),
        ({"search__max_concurrent": 4}, False),  # Ray restores its searcher with the old value
        ({"resources__cpu": 2.0}, True),  # threads: not a setting (as in the analysis)
        ({"resources__gpu": 1.0}, False),  # device auto: the trials would move to the GPU
        ({"search__max_failures": 5}, True),
        ({"search__checkpoint_every": 5}, True),  # checkpoints restore bit for bit
        ({"search__checkpoint_min_interval_s": 0.0}, True),  # how often, not what, is saved
        ({"dataset__root": "/data/b"}, True),
        ({"wandb__mode": "online"}, True),
        ({"wandb__project": "q"}, True),
    ],
)
def test_only_keys_that_cannot_change_results_may_differ(change: dict, allowed: bool) -> None:
    """One rulebook: the plan's results must match, its runtime settings may differ."""
    saved, now = plan_of(SAVED), plan_of(given(**change))
    key = next(iter(change)).replace("__", ".")
    if allowed:
        planner.check_saved(saved.results(), now, "here")
        (line,) = planner.runtime_changes(saved.runtime(), now)
        assert line.startswith(f"{key}: started with ")
    else:
        with pytest.raises(ConfigError, match="can change results"):
            planner.check_saved(saved.results(), now, "here")


def test_no_difference_for_the_same_spec() -> None:
    saved, now = plan_of(SAVED), plan_of(given())
    planner.check_saved(saved.results(), now, "here")
    assert planner.runtime_changes(saved.runtime(), now) == []


def test_resume_accepts_and_logs_a_runtime_change_and_refuses_a_result_change(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Through the launcher (Ray stubbed out): --resume with another checkpoint cadence runs
    and says so; with another train.epochs it exits 2 naming the key, and writes nothing."""
    runs = []
    monkeypatch.setattr(launch, "run", lambda plan, **kw: runs.append(plan) or 0)
    monkeypatch.setattr(launch, "_can_restore", lambda exp: False)
    argv = [str(spec_file(tmp_path)), "--storage", str(tmp_path / "res"), "--no-wandb"]
    assert launch.main(argv) == 0  # starts: writes launch.json with the plan
    exp = tmp_path / "res" / "s"
    record = state.LaunchRecord.load(exp)
    assert record.plan == runs[0].results() and record.runtime == runs[0].runtime()
    capsys.readouterr()
    assert launch.main([*argv, "--resume", "--set", "search.checkpoint_every=5"]) == 0
    out = capsys.readouterr().out
    assert "note: search.checkpoint_every: started with 1, now 5 (allowed on resume" in out
    assert runs[-1].checkpoint_every == 5 and runs[-1].results() == record.plan
    before = sorted(p.name for p in exp.iterdir())
    assert launch.main([*argv, "--resume", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs: started with 2, now 3" in err and "can change results" in err
    assert len(runs) == 2 and sorted(p.name for p in exp.iterdir()) == before
    assert state.LaunchRecord.load(exp) == record  # the record is written once


def test_only_a_private_experiment_is_trusted(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    state.make_experiment_dir(exp, group_readable=False)
    assert (exp.stat().st_mode & 0o777) == 0o700
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"a": 1}))
    (exp / "trial_1").mkdir()
    state.check_trusted(exp)  # ours, nobody else can write

    os.chmod(exp / "tuner.pkl", 0o666)
    with pytest.raises(
        ConfigError, match=r"tuner\.pkl: Ray's state file is writable by its group and others"
    ):
        state.check_trusted(exp)
    os.chmod(exp / "tuner.pkl", 0o600)

    os.chmod(exp, 0o770)
    with pytest.raises(ConfigError, match="writable by its group"):
        state.check_trusted(exp)
    os.chmod(exp, 0o700)

    (exp / "trial_1" / "error.pkl").write_bytes(b"x")
    os.chown(exp / "trial_1" / "error.pkl", 4242, 4242)  # planted by someone else (we are root)
    with pytest.raises(ConfigError, match="belongs to uid 4242"):
        state.check_trusted(exp)
    (exp / "trial_1" / "error.pkl").unlink()

    (exp / "experiment_state-1.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="is a symbolic link"):
        state.check_trusted(exp)


def test_group_readable_experiment_dirs(tmp_path: Path) -> None:
    state.make_experiment_dir(tmp_path / "g", group_readable=True)
    assert ((tmp_path / "g").stat().st_mode & 0o777) == 0o750


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sparsity_tune_should_not_exist",))


def test_torn_state_files_are_found_without_running_them(tmp_path: Path) -> None:
    good = pickle.dumps({"trials": list(range(100))})
    planted = pickle.dumps(Boom())
    (tmp_path / "tuner.pkl").write_bytes(good)
    (tmp_path / "searcher-state-1.pkl").write_bytes(planted)
    (tmp_path / "experiment_state-1.json").write_text(json.dumps({"trial_data": [1, 2]}))
    assert all(state.is_intact(p) for p in state.ray_state_files(tmp_path))
    assert not Path("/tmp/sparsity_tune_should_not_exist").exists()  # parsed, not executed
    (tmp_path / "tuner.pkl").write_bytes(good[: len(good) // 2])
    (tmp_path / "experiment_state-1.json").write_text('{"trial_data": [1,')
    assert not state.is_intact(tmp_path / "tuner.pkl")
    assert not state.is_intact(tmp_path / "experiment_state-1.json")


def test_a_torn_state_file_is_put_back_from_the_backup(tmp_path: Path) -> None:
    staging, exp = tmp_path / "staging", tmp_path / "exp"
    staging.mkdir()
    exp.mkdir()
    (staging / "experiment_state-1.json").write_text('{"v": 1}')
    (staging / "searcher-state-1.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    assert state.backup_ray_state(staging, exp)
    (exp / "experiment_state-1.json").write_text('{"v": 2')  # cut off by a full disk
    (exp / "basic-variant-state-9.json").write_bytes(b"\x80\x04")  # torn, and never backed up
    fixed = state.repair_ray_state(exp)
    assert "experiment_state-1.json (from backup)" in fixed
    assert "searcher-state-1.pkl (missing: from backup)" in fixed
    assert "basic-variant-state-9.json (torn, no backup: removed)" in fixed
    assert json.loads((exp / "experiment_state-1.json").read_text()) == {"v": 1}
    assert state.repair_ray_state(exp) == []
    (staging / "tuner.pkl").write_bytes(b"\x80\x04\x95")  # a snapshot being written: not taken
    assert not state.backup_ray_state(staging, exp)


# ----------------------------------------------------------------------------- the command
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "train": {"epochs": 2}}))
    return p


def test_resume_of_nothing_is_refused_and_leaves_no_directory(tmp_path: Path, capsys) -> None:
    rc = launch.main([str(spec_file(tmp_path)), "--storage", str(tmp_path / "res"), "--resume"])
    assert rc == 2
    assert "no experiment to resume" in capsys.readouterr().err
    assert not (tmp_path / "res" / "s").exists()


def test_a_changed_spec_is_refused_naming_the_keys(tmp_path: Path, capsys) -> None:
    exp = tmp_path / "res" / "s"
    exp.mkdir(parents=True)
    spec = resolve.request(
        launch.parse_args([str(spec_file(tmp_path)), "--storage", str(exp.parent)])
    )
    state.LaunchRecord(
        spec=spec.spec, spec_file="s.yaml", overrides=[], name="s", storage="r"
    ).save(exp)
    argv = [str(spec_file(tmp_path)), "--storage", str(exp.parent), "--resume"]
    rc = launch.main([*argv, "--set", "train.epochs=3", "--set", "train.lr=0.5"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "train.epochs: started with 2, now 3" in err and "train.lr: started with" in err
    assert f"python -m sparsity_tune.launch {exp} --resume" in err
    assert sorted(p.name for p in exp.iterdir()) == [layout.LAUNCH]  # nothing written
    # a directory is not a spec: say how to resume it
    assert launch.main([str(exp)]) == 2
    assert f"python -m sparsity_tune.launch {exp} --resume" in capsys.readouterr().err


def test_the_watchdog_ends_what_a_killed_launcher_started(tmp_path: Path) -> None:
    """A stand-in launcher starts the watchdog and a marked child, then is SIGKILLed."""
    code = (
        "import os, subprocess, sys, time\n"
        "from sparsity_tune.sweep import watchdog\n"
        "keeper = watchdog.start('tok123')\n"
        "child = subprocess.Popen(['sleep', '300'], env={**os.environ, watchdog.ENV: 'tok123'})\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        # Popen returns once the child has exec'd, but the kernel sets up the new environment
        # after that, so /proc/PID/environ can be empty for a moment (a flake under xdist in CI).
        t0 = time.monotonic()
        while watchdog.marked_pids("tok123") != [child] and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert watchdog.marked_pids("tok123") == [child]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        while watchdog.marked_pids("tok123") and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert watchdog.marked_pids("tok123") == []
    finally:
        for pid in watchdog.marked_pids("tok123"):
            os.kill(pid, signal.SIGKILL)


def test_ray_state_forgets_checkpoints_that_no_longer_exist(tmp_path) -> None:
    """A backup of Ray's state taken before Ray deleted old checkpoints names one that is gone;
    Ray would fail that trial on restore. The reference is dropped, the others kept."""
    import json

    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint, CheckpointConfig
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    from sparsity_tune.sweep import state

    def entry(ckpt_dir) -> list[str]:
        meta = _TrainingRunMetadata()
        meta.checkpoint_manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))
        ckpt = Checkpoint.from_directory(str(ckpt_dir))
        meta.checkpoint_manager.register_checkpoint(_TrainingResult(checkpoint=ckpt, metrics={}))
        return ["{}", meta.get_json_state()]

    kept = tmp_path / "trial_a" / "checkpoint_000004"
    kept.mkdir(parents=True)
    gone = tmp_path / "trial_b" / "checkpoint_000002"
    path = tmp_path / "experiment_state-2026-01-01_00-00-00.json"
    path.write_text(json.dumps({"runner_data": {}, "trial_data": [entry(kept), entry(gone)]}))

    assert state.forget_missing_checkpoints(tmp_path) == ["trial_b/checkpoint_000002"]
    data = json.loads(path.read_text())
    latest = [
        _TrainingRunMetadata.from_json_state(m).checkpoint_manager.latest_checkpoint_result
        for _, m in data["trial_data"]
    ]
    assert latest[0].checkpoint.path == str(kept) and latest[1] is None
    assert state.forget_missing_checkpoints(tmp_path) == []  # nothing more to drop


def test_a_launch_that_crashed_before_any_trial_is_started_again_by_a_plain_rerun(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Issue 19: a crash in ``tune.Tuner(...)`` left launch.json and spec.yaml, and the rerun was
    refused (exit 2) with advice to ``--resume`` an experiment in which nothing ever ran."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "crashy",
                "train": {"epochs": 2},
                "pruning": {"method": "none"},
                "search": {"parameters": {"model.width": {"values": [8]}}},
                "resources": {"cpu": 1},
            }
        )
    )
    argv = [str(spec), "--storage", str(tmp_path / "res"), "--no-wandb"]

    def crash(*_: object, **__: object) -> int:
        raise RuntimeError("cannot pickle '_thread.lock' object")

    monkeypatch.setattr(launch, "run", crash)
    with pytest.raises(RuntimeError):
        launch.main(argv)
    exp = tmp_path / "res" / "crashy"
    assert (exp / layout.LAUNCH).exists()  # what the crash left

    ran: list[bool] = []
    monkeypatch.setattr(launch, "run", lambda plan, resume, **_: ran.append(resume) or 0)
    assert launch.main(argv) == 0
    assert ran == [False]  # started afresh, not "resumed"
    assert "never ran a trial; starting it afresh" in capsys.readouterr().out

    (exp / layout.ALLOCATION_LOG).write_text("{}\n")  # a decision logged: refused
    assert launch.main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    (exp / layout.ALLOCATION_LOG).unlink()
    (exp / "trial_0001").mkdir()  # once a trial exists, a plain rerun is refused as before
    assert launch.main(argv) == 2
    assert "--resume" in capsys.readouterr().err


def test_the_launch_record_keeps_the_package_versions(tmp_path: Path, monkeypatch) -> None:
    from sparsity_tune import stack

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "v", "train": {"epochs": 1}, "resources": {"cpu": 1}}))
    monkeypatch.setattr(launch, "run", lambda *a, **k: 0)
    assert launch.main([str(spec), "--storage", str(tmp_path), "--no-wandb"]) == 0
    saved = json.loads((tmp_path / "v" / layout.LAUNCH).read_text())["versions"]
    assert saved == stack.versions() and set(stack.PACKAGES) <= set(saved)
    assert stack.differences(saved, {**saved, "optuna": "9.0"}) == [
        f"optuna {saved['optuna']} -> 9.0"
    ]
