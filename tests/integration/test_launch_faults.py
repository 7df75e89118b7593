"""Faults on a real sweep: a killed launcher, two launchers at once, SIGTERM, a full disk, a
corrupt checkpoint, a killed trial worker. After each, the experiment must end exactly like an
uninterrupted run of the same spec, epoch by epoch (training is deterministic): every trial
finished once, records and W&B steps equal the reference, nothing finished trained again.

The launchers under test run as processes of their own (``python -m sparsity_tune.launch``, each
with its own local Ray), so they can be killed; resumes run in this process on the session's Ray.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sweep_helpers import (
    assert_like_uninterrupted,
    launcher,
    listening_addresses,
    lock_holder,
    record_count,
    tiny_spec,
    trial_dirs,
    wait_for,
)

from sparsity_tune import layout
from sparsity_tune.sweep import launch, watchdog

pytestmark = pytest.mark.slow

EPOCHS = 8


def slow_spec(tmp_path: Path, data_root: Path, name: str, epochs: int = EPOCHS, **search) -> Path:
    """4 trials (2 sparsities x 2 seeds) of ~0.15 s epochs: long enough to be cut mid-trial."""
    return tiny_spec(
        tmp_path / f"{name}.yaml",
        data_root,
        name,
        {
            "parameters": {"pruning.final_sparsity": {"values": [0.5, 0.8]}},
            "seeds": [0, 1],
            "max_concurrent": 2,
            # a checkpoint every epoch (~0.15 s): the faults below must find some to fall back on
            "checkpoint_min_interval_s": 0,
            **search,
        },
        dataset={
            "name": "mnist1d",
            "root": str(data_root),
            "train_limit": 3000,
            "test_limit": 300,
        },
        train={"epochs": epochs, "batch_size": 50, "lr": 0.01},
        pruning={"method": "gradual", "final_sparsity": 0.5, "end_epoch": 5},
    )


def finished_files(exp: Path) -> dict[str, tuple[int, str]]:
    """records.jsonl mtime and summary.json text of every finished trial (to prove they stay)."""
    out = {}
    for d in trial_dirs(exp):
        if layout.trial_status(d) == layout.FINISHED:
            out[d.name] = (
                (d / layout.RECORDS).stat().st_mtime_ns,
                (d / layout.SUMMARY).read_text(),
            )
    return out


def assert_untouched(exp: Path, before: dict[str, tuple[int, str]]) -> None:
    for name, (mtime, summary) in before.items():
        d = exp / name
        assert (d / layout.RECORDS).stat().st_mtime_ns == mtime, f"{name} was trained again"
        assert (d / layout.SUMMARY).read_text() == summary, f"{name} was trained again"


def test_two_launchers_then_sigkill_and_a_corrupt_checkpoint(
    ray_session, tmp_path: Path, data_root: Path, capsys
) -> None:
    epochs = 20  # a trial cut early enough that it cannot finish before its worker is gone
    spec = slow_spec(tmp_path, data_root, "k9", epochs=epochs)
    storage = tmp_path / "res"
    exp = storage / "k9"
    args = [str(spec), "--storage", str(storage)]
    # W&B's service of this process is in the launchers' environment (WANDB_SERVICE): they must
    # start their own, or the killed one's runs stay open in ours ("run ID ... is in use")
    import wandb

    wandb.init(project="it", mode="offline", dir=str(tmp_path), reinit="create_new").finish()

    # two launchers at the same moment: exactly one takes the experiment, the other exits 2
    procs = [launcher(args, tmp_path / f"l{i}.log") for i in range(2)]
    loser = wait_for(
        lambda: next((p for p in procs if p.poll() is not None), None), 120, "one launcher to lose"
    )
    (winner,) = [p for p in procs if p is not loser]
    assert loser.returncode == 2
    lost = (tmp_path / f"l{procs.index(loser)}.log").read_text()
    assert f"PID {winner.pid}" in lost and "in use by another launcher" in lost, lost
    try:
        wait_for(lambda: record_count(exp) >= 4, 180, "the first epochs", winner)
        holder = lock_holder(exp)
        assert holder["pid"] == winner.pid

        # a local sweep's Ray listens on the loopback interface only
        pids = watchdog.marked_pids(holder["token"])
        assert len(pids) >= 3  # GCS, raylet, workers (and wandb-core)
        addrs = listening_addresses(pids)
        assert addrs and addrs <= {"127.0.0.1"}, addrs

        # while it runs, neither --resume nor a second start may touch the experiment
        capsys.readouterr()
        assert launch.main([str(exp), "--resume"]) == 2
        assert launch.main(args) == 2
        err = capsys.readouterr().err
        assert err.count(f"PID {winner.pid}") == 2, err

        wait_for(
            lambda: (
                any(layout.trial_status(d) == layout.FINISHED for d in trial_dirs(exp))
                and any(
                    layout.trial_status(d) == layout.RUNNING
                    and 2 <= len(layout.read_records(d, warn=False)) <= 6
                    for d in trial_dirs(exp)
                )
            ),
            180,
            "a trial finished and another early on",
            winner,
        )
        winner.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        winner.wait(30)
        wait_for(lambda: not watchdog.marked_pids(holder["token"]), 30, "the sweep's processes")
        gone_s = time.monotonic() - t0
        sys.__stderr__.write(
            f"\n[measure] all processes of the SIGKILLed launcher gone after {gone_s:.1f} s\n"
        )
        assert gone_s <= 10
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # the newest checkpoint of an unfinished trial is cut in half (a crash mid-copy)
    unfinished = [d for d in trial_dirs(exp) if layout.trial_status(d) != layout.FINISHED]
    assert unfinished
    victim = max(unfinished, key=lambda d: len(list(d.glob("checkpoint_*"))))
    ckpts = sorted(victim.glob("checkpoint_*"))
    if len(ckpts) >= 2:
        newest = ckpts[-1] / "trainer.pt"
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    before = finished_files(exp)
    assert before

    capsys.readouterr()
    rc = launch.main([str(exp), "--resume"])
    out, err = capsys.readouterr()
    assert rc == 0, out[-3000:] + err[-3000:]
    assert "took over the lock of a launcher that is gone" in out and f"PID {winner.pid}" in out
    assert_untouched(exp, before)
    assert_like_uninterrupted(exp, trials=4, epochs=epochs)
    if len(ckpts) >= 2:
        cfg = layout.read_json(victim / layout.CONFIG)
        assert any(ckpts[-1].name in w and "truncated" in w for w in cfg["checkpoint_warnings"])
        assert cfg["restored_from"] == ckpts[-2].name


def test_sigterm_saves_state_and_the_printed_command_resumes(
    ray_session, tmp_path: Path, data_root: Path, capsys
) -> None:
    spec = slow_spec(tmp_path, data_root, "term")
    storage = tmp_path / "res"
    exp = storage / "term"
    log = tmp_path / "term.log"
    proc = launcher([str(spec), "--storage", str(storage)], log)
    try:
        wait_for(
            lambda: (
                any(layout.trial_status(d) == layout.FINISHED for d in trial_dirs(exp))
                and record_count(exp) >= EPOCHS + 3
            ),
            180,
            "a trial finished and others under way",
            proc,
        )
        token = lock_holder(exp)["token"]
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = proc.wait(60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sys.__stderr__.write(f"\n[measure] SIGTERM to exit: {took:.1f} s\n")
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text[-3000:]
    assert took < 25  # within SLURM's default KillWait (30 s)
    assert "Traceback" not in text
    wait_for(lambda: not watchdog.marked_pids(token), 15, "the sweep's processes")
    assert not (exp / ".launch.lock").exists()
    assert not list(exp.glob(f"*/{layout.STOPPED}"))  # interrupted is not "stopped early"
    hint = text.strip().splitlines()[-1].strip()
    assert hint == shlex.join(["python", "-m", "sparsity_tune.launch", str(exp), "--resume"])
    before = finished_files(exp)

    # a resume that would change results is refused, naming the key; nothing is touched
    assert (
        launch.main([str(spec), "--storage", str(storage), "--set", "train.epochs=9", "--resume"])
        == 2
    )
    err = capsys.readouterr().err
    assert "train.epochs: started with 8, now 9" in err and "can change results" in err

    # the printed command, as printed (a key that cannot change results may differ: logged)
    argv = [*shlex.split(hint)[3:], "--set", "search.max_failures=3"]
    rc = launch.main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, out[-3000:] + err[-3000:]
    assert "search.max_failures: started with 2, now 3 (allowed" in out
    assert_untouched(exp, before)
    assert_like_uninterrupted(exp, trials=4, epochs=EPOCHS)


def test_killed_trial_worker_is_retried_from_its_checkpoint(
    ray_session, tmp_path: Path, data_root: Path
) -> None:
    spec = slow_spec(tmp_path, data_root, "worker", max_concurrent=1)
    exp = tmp_path / "res" / "worker"
    killed: list[int] = []

    def kill_one_worker() -> None:  # from outside, as the OOM killer or an admin would
        def running_pid():
            for d in trial_dirs(exp):
                if (
                    len(layout.read_records(d, warn=False)) >= 3
                    and layout.trial_status(d) == layout.RUNNING
                ):
                    return layout.read_json(d / layout.CONFIG)["node"]["pid"]
            return None

        pid = wait_for(running_pid, 120, "a trial at epoch 3")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=kill_one_worker, daemon=True)
    t.start()
    assert launch.main([str(spec), "--storage", str(tmp_path / "res")]) == 0
    t.join(5)
    assert killed
    restored = [d for d in trial_dirs(exp) if layout.read_json(d / layout.CONFIG)["restored_from"]]
    assert len(restored) == 1
    assert_like_uninterrupted(exp, trials=4, epochs=EPOCHS)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 6 MiB tmpfs (needs root): a storage that can fill up."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_storage_stops_with_one_message_and_resumes_after_space_is_freed(
    ray_session, small_fs: Path, tmp_path: Path, data_root: Path, capfd
) -> None:
    spec = slow_spec(tmp_path, data_root, "full")
    storage = small_fs / "res"
    exp = storage / "full"
    filler = small_fs / "filler"

    def fill() -> None:
        wait_for(lambda: record_count(exp) >= 6, 120, "the first epochs")
        with open(filler, "wb") as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()

    t = threading.Thread(target=fill, daemon=True)
    t.start()
    rc = launch.main([str(spec), "--storage", str(storage)])
    t.join(5)
    out, err = capfd.readouterr()
    assert rc == 1, out[-2000:] + err[-2000:]
    both = out + err
    assert "Traceback" not in both, both[both.find("Traceback") - 500 :][:4000]
    (msg,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "the storage is full" in msg and str(exp) in msg and "MiB more are needed" in msg
    for d in trial_dirs(exp):  # what a trial could write says what happened
        if (d / layout.ERROR).exists() and (d / layout.ERROR).read_text():
            assert (d / layout.ERROR).read_text().startswith("storage full: no space left on")
    before = finished_files(exp)

    filler.unlink()
    assert launch.main([str(exp), "--resume"]) == 0
    assert_untouched(exp, before)
    assert_like_uninterrupted(exp, trials=4, epochs=EPOCHS)
