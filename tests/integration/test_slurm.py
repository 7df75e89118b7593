"""`python -m sparsity_tune.slurm` against a real single-node SLURM (tests/slurm_cluster.sh).

The session fixture starts munged, slurmctld and slurmd on this machine (root and the Debian
packages slurmctld slurmd slurm-client munge needed; the tests skip with the reason otherwise) and
stops them afterwards if it was the one that started them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "slurm_cluster.sh"
SMOKE = REPO / "search_spaces" / "smoke.yaml"
REQUEUE_SPEC = REPO / "tests" / "data" / "slurm_requeue.yaml"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER), cmd], capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the local SLURM needs root to start munged, slurmctld and slurmd")
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"missing {', '.join(missing)}: install slurmctld slurmd slurm-client munge "
            "(bash scripts/setup_system.sh)"
        )
    was_up = _cluster("status").returncode == 0
    started = _cluster("start")
    if started.returncode != 0:
        pytest.fail(f"tests/slurm_cluster.sh could not start SLURM:\n{started.stderr}")
    yield
    if not was_up:
        _cluster("stop")


TWO_NODES_CONF = "/tmp/st-slurm2/slurm.conf"


@pytest.fixture(scope="session")
def slurm_two_nodes(slurm_cluster) -> Iterator[dict[str, str]]:
    """A second SLURM whose two nodes are two slurmd on this host; yields its environment."""
    env = {**os.environ, "SLURM_CONF": TWO_NODES_CONF}
    was_up = (
        subprocess.run(["sinfo", "-h"], env=env, capture_output=True, check=False).returncode == 0
    )
    started = _cluster("two-nodes")
    if started.returncode != 0:
        pytest.fail(f"tests/slurm_cluster.sh two-nodes failed:\n{started.stderr}")
    yield env
    if not was_up:
        _cluster("stop-two-nodes")


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparsity_tune.slurm", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
        env=env,
    )


def submit(*argv: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Submit; return (job id, the CLI's output)."""
    out = cli("submit", *argv, env=env)
    assert out.returncode == 0, out.stderr
    m = re.search(r"submitted job (\d+)", out.stdout)
    assert m, out.stdout
    return m.group(1), out.stdout


def job(job_id: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """`scontrol show job` as a dict (SLURM keeps finished jobs for MinJobAge seconds)."""
    text = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=False, env=env
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


def wait_for(pred, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_state(
    job_id: str, states: set[str], timeout: float, env: dict[str, str] | None = None
) -> dict[str, str]:
    return wait_for(
        lambda: (j := job(job_id, env)).get("JobState") in states and j,
        timeout,
        f"job {job_id} to reach {states} (now {job(job_id, env).get('JobState')})",
    )


def node_idle() -> bool:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return out.stdout.split() == ["idle"]


def log_of(storage: Path, name: str, job_id: str) -> str:
    path = storage / "slurm" / f"st-{name}-{job_id}.out"
    return path.read_text() if path.exists() else ""


def trial_dirs(exp: Path) -> list[Path]:
    return sorted(p.parent for p in exp.glob("*/config.json"))


@pytest.fixture
def cleanup_jobs() -> Iterator[list[str]]:
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)


def ray_processes(job_id: str) -> list[str]:
    """Command lines of live processes that belong to this job's Ray cluster."""
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if re.search(rf"ray-st-{job_id}\b", line)]


@pytest.mark.timeout(400)
def test_two_smoke_sweeps_run_side_by_side(slurm_cluster, tmp_path, cleanup_jobs):
    """Two jobs on one node at once: each gets its own ports, temp dir and token, both finish."""
    storage = tmp_path / "results"
    ids = []
    for name in ("smoke_a", "smoke_b"):
        jid, out = submit(
            str(SMOKE), "--storage", str(storage), "--name", name, "--cpus-per-node", "1"
        )
        assert f"experiment  {storage / name}" in out
        cleanup_jobs.append(jid)
        ids.append(jid)
    done = [wait_state(jid, {"COMPLETED", "FAILED", "CANCELLED"}, 300) for jid in ids]

    heads = []
    for jid, name, info in zip(ids, ("smoke_a", "smoke_b"), done, strict=True):
        log = log_of(storage, name, jid)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-3000:]
        assert "Ray cluster up: 1/1 nodes" in log
        heads.append(re.search(r"Ray head on \S+ \((\S+)\)", log).group(1))
        trials = trial_dirs(storage / name)
        assert len(trials) == 4  # 2 sparsities x 2 seeds
        assert all((t / "summary.json").exists() for t in trials)
        assert not Path(f"/tmp/ray-st-{jid}").exists()
        assert not (storage / "slurm" / f".job-{jid}").exists()  # the token went with the job
        assert ray_processes(jid) == []
    assert heads[0] != heads[1]
    # Submitting the same experiment again is refused unless the user asks to resume it.
    again = cli("submit", str(SMOKE), "--storage", str(storage), "--name", "smoke_a")
    assert again.returncode == 2
    assert "already holds experiment 'smoke_a'; add --resume" in again.stderr
    # They really overlapped in time (both held one of the node's two CPUs).
    assert done[1]["StartTime"] < done[0]["EndTime"]


@pytest.mark.timeout(400)
def test_signalled_job_requeues_and_resumes(slurm_cluster, tmp_path, cleanup_jobs):
    storage = tmp_path / "results"
    exp = storage / "slurm_requeue"
    jid, _ = submit(str(REQUEUE_SPEC), "--storage", str(storage))
    cleanup_jobs.append(jid)
    # Two 2-epoch trials and two 20-epoch ones; signal once a quick one has finished.
    first = wait_for(lambda: sorted(exp.glob("*/summary.json")), 240, "a first finished trial")
    before = {p.parent.name: p.stat().st_mtime_ns for p in first}
    subprocess.run(["scancel", "--signal=USR1", "--batch", jid], check=True)

    requeued = wait_state(jid, {"PENDING", "COMPLETED", "FAILED"}, 120)
    assert requeued["JobState"] == "PENDING", log_of(storage, "slurm_requeue", jid)[-3000:]
    assert requeued["Restarts"] == "1"
    # SLURM holds a requeued job ~2 minutes before it may start again; let it go sooner, once
    # the node has finished cleaning up the first run (slurmd refuses a relaunch in the same
    # second as the kill: "Job credential revoked").
    wait_for(lambda: node_idle(), 60, "the node to finish the first run")
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], check=True)
    info = wait_state(jid, {"COMPLETED", "FAILED", "CANCELLED"}, 300)

    log = log_of(storage, "slurm_requeue", jid)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-3000:]
    assert "USR1: the job ends soon" in log
    assert "run 2 on" in log and "resuming the experiment" in log
    trials = trial_dirs(exp)
    assert len(trials) == 4
    for t in trials:
        assert (t / "summary.json").exists()
        records = (t / "records.jsonl").read_text().splitlines()
        epochs = [int(re.search(r'"epoch": (\d+)', r).group(1)) for r in records]
        assert epochs == list(range(1, len(epochs) + 1)), t  # no epoch trained twice
    # Trials finished before the signal were not trained again.
    for name, mtime in before.items():
        assert (exp / name / "summary.json").stat().st_mtime_ns == mtime


@pytest.mark.timeout(200)
def test_status_and_cancel_stop_the_ray_cluster(slurm_cluster, tmp_path, cleanup_jobs):
    storage = tmp_path / "results"
    jid, _ = submit(str(SMOKE), "--storage", str(storage))
    cleanup_jobs.append(jid)
    wait_for(lambda: "Ray cluster up" in log_of(storage, "smoke", jid), 120, "the Ray cluster")
    assert ray_processes(jid)
    st = cli("status", jid)
    assert st.returncode == 0 and re.search(rf"\b{jid}\b.*RUNNING", st.stdout), st.stdout

    out = cli("cancel", jid)
    assert out.returncode == 0, out.stderr
    wait_state(jid, {"CANCELLED"}, 60)
    wait_for(lambda: not ray_processes(jid), 60, "the job's Ray processes to exit")
    wait_for(lambda: not Path(f"/tmp/ray-st-{jid}").exists(), 30, "the Ray temp dir to go")
    assert not (storage / "slurm" / f".job-{jid}").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partition", "nosuch"], "no partition named 'nosuch' on this cluster; pick one of: "),
        (["--nodes", "9"], "has only 1 node(s)"),
        (["--cpus-per-node", "4096"], "cannot give 1 node(s) with 4096 CPUs"),
    ],
)
def test_impossible_request_is_refused_not_queued(slurm_cluster, tmp_path, argv, message):
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    out = cli("submit", str(SMOKE), "--storage", str(tmp_path), *argv)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    after = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    assert after == queued
    assert list((tmp_path / "slurm").glob("*.sbatch")) == []


@pytest.mark.timeout(300)
def test_two_node_job_spreads_trials_over_both_ray_nodes(slurm_two_nodes, tmp_path):
    """Head on n1, a worker started by srun on n2; both are slurmd on this host, so worker nodes
    let Ray pick their ports (site worker_ports: random) instead of reusing the head's block."""
    env = slurm_two_nodes
    site = tmp_path / "site.yaml"
    site.write_text("worker_ports: random\n")
    storage = tmp_path / "results"
    jid, _ = submit(
        str(SMOKE),
        "--storage",
        str(storage),
        "--site",
        str(site),
        "--nodes",
        "2",
        "--cpus-per-node",
        "1",
        env=env,
    )
    try:
        info = wait_state(jid, {"COMPLETED", "FAILED", "CANCELLED"}, 240, env)
    finally:
        subprocess.run(["scancel", jid], env=env, check=False)
    log = log_of(storage, "smoke", jid)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-3000:]
    assert info["NodeList"] == "n[1-2]"
    assert "Ray cluster up: 2/2 nodes" in log
    trials = trial_dirs(storage / "smoke")
    assert len(trials) == 4 and all((t / "summary.json").exists() for t in trials)
    nodes = {json.loads((t / "config.json").read_text())["node"]["node_id"] for t in trials}
    assert len(nodes) == 2, nodes  # trials ran on both Ray nodes
    assert not Path(f"/tmp/ray-st-{jid}").exists()
    assert ray_processes(jid) == []
