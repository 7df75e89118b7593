"""The helpers a sweep's SLURM job runs on its nodes (sparsity_tune.cluster.node), without SLURM.

The keeper is run for real as a subprocess with a stand-in for ``ray start --block`` that starts a
child of its own, and is signalled the way SLURM does it: SIGTERM to every process at once.
"""

from __future__ import annotations

import http.server
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sparsity_tune.cluster import node

FAKE_RAY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("fake ray start", flush=True)
open(sys.argv[1], "w").write(f"{child.pid}\\n")
time.sleep(600)
"""


def sig_blocked(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(ln for ln in f if ln.startswith("SigBlk")).split()[1], 16)
    return {s for s in range(1, 64) if mask & (1 << (s - 1))}


def alive(pid: int) -> bool:
    return node.process_alive(pid)


def wait_until(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def short_tmp():
    """A short temp root: Ray's socket paths under a keeper's temp dir must fit in 107 bytes
    (pytest's tmp_path is too long for that, which the keeper refuses)."""
    d = Path(tempfile.mkdtemp(prefix="stk", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_keeper(tmp_path: Path, program: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparsity_tune.cluster.node",
            "keep",
            f"--tmp-root={tmp_path}",
            f"--program={program}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SLURM_JOB_ID": "4242"},
    )


def test_keeper_shields_ray_from_sigterm_and_stops_it_on_usr2(short_tmp):
    """SLURM's SIGTERM reaches the keeper, its program and the program's child: only the keeper
    reacts (and tells the batch shell with SIGUSR1). SIGUSR2 ends them all; the keeper exits 0
    and removes its private temp dir."""
    tmp_path = short_tmp
    fake = tmp_path / "fake_ray.py"
    fake.write_text(FAKE_RAY)
    pids_file = tmp_path / "child.pid"
    notified = []
    old = signal.signal(signal.SIGUSR1, lambda *a: notified.append(1))
    keeper = start_keeper(
        tmp_path, f"{sys.executable} {fake} {pids_file}", f"--notify-pid={os.getpid()}", "--"
    )
    try:
        wait_until(pids_file.exists)
        child = int(pids_file.read_text())
        program = next(p for p in node.children_of(keeper.pid) if p != child)
        temp_dirs = list(tmp_path.glob("ray-st-4242-*"))
        assert len(temp_dirs) == 1 and temp_dirs[0].stat().st_mode & 0o777 == 0o700
        for pid in (program, child):
            assert {signal.SIGTERM, signal.SIGUSR2} <= sig_blocked(pid)

        for pid in (keeper.pid, program, child):  # what SLURM does on requeue, preempt, scancel
            os.kill(pid, signal.SIGTERM)
        time.sleep(1.0)
        assert all(alive(p) for p in (keeper.pid, program, child))
        wait_until(lambda: notified, 5)

        for pid in (keeper.pid, program, child):  # srun forwards SIGUSR2 to the whole step
            os.kill(pid, signal.SIGUSR2)
        assert keeper.wait(timeout=30) == 0
        out = keeper.stdout.read()
        assert "SIGTERM reached the Ray steps: Ray keeps running" in out
        assert "error" not in out
        assert not alive(program) and not alive(child)
        assert not temp_dirs[0].exists()
    finally:
        signal.signal(signal.SIGUSR1, old)
        if keeper.poll() is None:
            keeper.kill()


def test_keeper_reports_a_ray_node_that_fails(short_tmp, tmp_path):
    program = f"{sys.executable} -c \"import sys; print('no such port'); sys.exit(3)\""
    keeper = start_keeper(short_tmp, program, "--")
    assert keeper.wait(timeout=30) == 3
    out = keeper.stdout.read()
    assert "error: the Ray node on" in out and "exited with status 3" in out
    assert "no such port" in out
    assert list(short_tmp.glob("ray-st-*")) == []
    long_root = tmp_path / ("x" * 60)
    long_root.mkdir()
    too_long = start_keeper(long_root, program, "--")
    assert too_long.wait(timeout=30) == 1
    assert "set ray_tmp_root in the site config to a short" in too_long.stdout.read()
    missing = start_keeper(Path(f"/tmp/nx{os.getpid()}"), program, "--")
    assert missing.wait(timeout=30) == 1
    out = missing.stdout.read()
    assert "cannot make Ray's temp dir under" in out and "Traceback" not in out


def test_temp_root_falls_back_to_tmp_when_ray_sockets_would_not_fit(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "12345678")
    monkeypatch.setenv("TMPDIR", "/scratch/tmp")
    assert node.temp_root(None) == "/scratch/tmp"
    monkeypatch.setenv("TMPDIR", "/local/scratch/slurm/job12345678/tmp")
    assert node.temp_root(None) == "/tmp"
    monkeypatch.delenv("TMPDIR")
    assert node.temp_root(None) == "/tmp"
    assert node.temp_root("/dev/shm") == "/dev/shm"


def test_wait_nodes_gives_up_at_once_when_a_ray_node_died(capsys):
    gone = subprocess.Popen(["true"])
    gone.wait()
    t0 = time.monotonic()
    assert node.wait_nodes("127.0.0.1:1", 1, 300, keepers=[gone.pid]) == 1
    assert time.monotonic() - t0 < 30
    assert "a Ray node exited before the cluster was up" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fields", "at_start", "action"),
    [
        ({"JobState": "COMPLETING", "Restarts": "1", "Requeue": "1", "Reason": "None"}, 0, "slurm"),
        ({"JobState": "RUNNING", "Restarts": "0", "Requeue": "1", "Reason": "None"}, 0, "self"),
        (
            {"JobState": "COMPLETING", "Restarts": "2", "Requeue": "1", "Reason": "TimeLimit"},
            2,
            "self",
        ),
        (
            {"JobState": "COMPLETING", "Restarts": "0", "Requeue": "1", "Reason": "None"},
            0,
            "cancelled",
        ),
        (
            {"JobState": "RUNNING", "Restarts": "0", "Requeue": "0", "Reason": "None"},
            0,
            "no-requeue",
        ),
        (None, 0, "self"),
    ],
)
def test_requeue_action(fields, at_start, action):
    """Read from `scontrol show job` inside the TERM trap (measured on SLURM 22.05): a requeue
    has already raised the restart count; the time limit says Reason=TimeLimit; scancel neither."""
    assert node.requeue_action(fields, at_start) == action


def test_check_refuses_a_ray_without_token_auth(monkeypatch, capsys):
    import importlib.metadata

    assert node.version_tuple("2.52.0") == (2, 52, 0) and node.version_tuple("3.0.0.dev0") >= (3,)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.51.2")
    assert node.check() == 2
    err = capsys.readouterr().err
    assert "Ray 2.51.2" in err and "has no token authentication" in err and ">=2.52.0" in err
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.52.0")
    assert node.check() == 0
    assert "Ray 2.52.0" in capsys.readouterr().out


def test_not_started_trials_warning_becomes_one_line():
    record = logging.LogRecord(
        "ray.tune.analysis.experiment_analysis",
        logging.WARNING,
        __file__,
        1,
        "Failed to fetch metrics for 3 trial(s):\n"
        + "\n".join(f"- t{i}: FileNotFoundError('Could not fetch metrics')" for i in range(3)),
        (),
        None,
    )
    assert node.NotStartedFilter().filter(record)
    assert record.getMessage() == (
        "3 trial(s) have no results yet (not started before the sweep stopped); they run when "
        "the sweep resumes"
    )
    other = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "Failed to fetch metrics for 1 trial(s):\n- t: ValueError('bad json')",
        (),
        None,
    )
    node.NotStartedFilter().filter(other)
    assert "ValueError" in other.getMessage()  # a real problem stays visible


def serve(status: int) -> tuple[http.server.HTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.mark.parametrize(("answer", "rc"), [(401, 0), (403, 0), (200, 1), (404, 1)])
def test_probe_refuses_a_job_api_that_answers_without_the_token(monkeypatch, capsys, answer, rc):
    """Two node agents (as the GCS lists them): one answers ANSWER to a request without the
    token, the other 401. Checked for real with ray[default] 2.60: no token 401, token 405."""
    monkeypatch.setattr(node, "agent_serves_http", lambda: True)
    server, port = serve(answer)
    good, good_port = serve(401)
    monkeypatch.setattr(
        node,
        "agent_addresses",
        lambda address, wait_s: ([("127.0.0.1", good_port), ("127.0.0.1", port)], 0),
    )
    try:
        assert node.probe_job_api("head:1", wait_s=5) == rc
    finally:
        server.shutdown()
        good.shutdown()
    out = capsys.readouterr().out
    assert ("refusing to run" in out) == (rc == 1)
    assert (f"127.0.0.1:{port} answered HTTP {answer}" in out) == (rc == 1)
