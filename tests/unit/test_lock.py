"""One launcher per experiment: a race has one winner, a live holder is named, a dead one is not."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsity_tune.sweep import lock as locking


def _race(exp: str, barrier, results) -> None:
    lk = locking.ExperimentLock(Path(exp))
    barrier.wait()
    try:
        lk.acquire()
        results.put(("won", os.getpid()))
        time.sleep(1.0)  # hold it while the others try
        lk.release()
    except locking.LockHeld as err:
        results.put(("lost", str(err)))


def test_launchers_at_the_same_moment_exactly_one_wins(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = [results.get(timeout=5) for _ in range(n)]
    won = [pid for kind, pid in outcomes if kind == "won"]
    assert len(won) == 1
    for kind, msg in outcomes:
        if kind == "lost":
            assert f"PID {won[0]}" in msg and "in use by another launcher" in msg
    assert not (tmp_path / locking.LOCK_NAME).exists()  # released
    assert [p.name for p in tmp_path.iterdir()] == []  # no unique files left behind


def plant(tmp_path: Path, **fields) -> Path:
    holder = locking.Holder.me().__dict__ | fields
    path = tmp_path / locking.LOCK_NAME
    path.write_text(json.dumps(holder))
    return path


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant(tmp_path, pid=dead.pid)
    lk = locking.ExperimentLock(tmp_path)
    lk.acquire()
    ((holder, reason),) = lk.broken
    assert holder.pid == dead.pid and f"PID {dead.pid} is gone" in reason
    lk.release()


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    plant(tmp_path, pid=os.getpid(), start_time="1")  # this PID, but started at another time
    lk = locking.ExperimentLock(tmp_path)
    lk.acquire()
    assert "now another process" in lk.broken[0][1]
    lk.release()


def test_a_live_holder_is_named(tmp_path: Path) -> None:
    plant(tmp_path, pid=os.getppid(), start_time=locking.process_start_time(os.getppid()))
    with pytest.raises(locking.LockHeld, match=rf"host \S+, PID {os.getppid()}"):
        locking.ExperimentLock(tmp_path).acquire()
    assert (tmp_path / locking.LOCK_NAME).exists()


def test_another_hosts_lock_holds_until_its_heartbeat_stops(tmp_path: Path) -> None:
    path = plant(tmp_path, host="elsewhere", boot_id="other", pid=1)
    with pytest.raises(locking.LockHeld, match="host elsewhere"):
        locking.ExperimentLock(tmp_path).acquire()
    old = time.time() - locking.LEASE_S - 5
    os.utime(path, (old, old))
    lk = locking.ExperimentLock(tmp_path)
    lk.acquire()
    assert "no heartbeat" in lk.broken[0][1]
    lk.release()


def test_a_requeued_slurm_jobs_previous_run_is_dead(tmp_path: Path, monkeypatch) -> None:
    plant(
        tmp_path,
        host="node1",
        boot_id="other",
        pid=1,
        slurm_job_id="42",
        slurm_restart_count=0,
    )
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lk = locking.ExperimentLock(tmp_path)
    lk.acquire()
    assert "previous run" in lk.broken[0][1]
    lk.release()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    lk = locking.ExperimentLock(tmp_path)
    lk.acquire()
    plant(tmp_path, token="someone-else")
    lk.release()
    assert (tmp_path / locking.LOCK_NAME).exists()
