"""`python -m sparsity_tune.slurm` against a real single-node SLURM (tests/slurm_cluster.sh).

The session fixture starts munged, slurmctld and slurmd on this machine (root and the Debian
packages slurmctld slurmd slurm-client munge needed; the tests skip with the reason otherwise) and
stops them afterwards if it was the one that started them. The cluster keeps no accounting
database but a job-completion log (``JobCompType=jobcomp/filetxt``), so ``status`` reads finished
jobs with ``sacct --completion``; KillWait is SLURM's default, 30 s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from sparsity_tune import layout

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "slurm_cluster.sh"
SMOKE = REPO / "search_spaces" / "smoke.yaml"
REQUEUE_SPEC = REPO / "tests" / "data" / "slurm_requeue.yaml"
#: What a clean job's log must not hold (Ray marks its error lines " E " after the time).
ERROR_LINE = re.compile(r"error|traceback|exception|killed|cancelled|failed to", re.I)
RAY_ERROR = re.compile(r"\d E \d")
#: Record keys that are measurements (time, memory): they differ between two runs of a trial.
MEASURED = {"epoch_time_s", "eval_time_s", "train_time_s", "peak_mem_bytes", "samples_per_s"}

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER), cmd], capture_output=True, text=True, timeout=180, check=False
    )


TWO_NODES_CONF = "/tmp/st-slurm2/slurm.conf"


class TwoNodes:
    """A second SLURM whose two nodes are two slurmd on this host (``slurm_cluster.sh two-nodes``).
    It starts in a thread of its own with the first: the ~10 s its nodes take to register (and
    the seconds ``sinfo`` takes to find it down) pass while the tests before the two-node one run.
    Idle, it takes no CPU and none of the first's jobs."""

    def __init__(self) -> None:
        self.was_up = False
        self.started: subprocess.CompletedProcess[str] | None = None
        self.thread = threading.Thread(target=self._start, daemon=True)
        self.thread.start()

    def _start(self) -> None:
        env = {**os.environ, "SLURM_CONF": TWO_NODES_CONF}
        sinfo = subprocess.run(["sinfo", "-h"], env=env, capture_output=True, check=False)
        self.was_up = sinfo.returncode == 0
        self.started = _cluster("two-nodes")

    def ready(self) -> dict[str, str]:
        """Wait until both nodes are idle; return the environment that talks to this SLURM."""
        self.thread.join(240)
        if self.started is None or self.started.returncode != 0:
            err = self.started.stderr if self.started else "still starting after 240 s"
            pytest.fail(f"tests/slurm_cluster.sh two-nodes failed:\n{err}")
        return {**os.environ, "SLURM_CONF": TWO_NODES_CONF}

    def stop(self) -> None:
        self.thread.join(240)
        if not self.was_up:
            _cluster("stop-two-nodes")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[TwoNodes]:
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
    # the job cards `submit` leaves for `status` go here, not into the user's home
    old_state = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    two_nodes = TwoNodes()
    yield two_nodes
    two_nodes.stop()
    if old_state is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = old_state
    if not was_up:
        _cluster("stop")


@pytest.fixture(scope="session")
def slurm_two_nodes(slurm_cluster: TwoNodes) -> dict[str, str]:
    """The second SLURM (two nodes), once it is up; its environment."""
    return slurm_cluster.ready()


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


def wait_for(pred, timeout: float, what: str, interval: float = 0.5):
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


def release(job_id: str) -> None:
    """SLURM holds a requeued job ~2 minutes before it may start again; let it go sooner, once
    the node has finished the last run (slurmd refuses a relaunch in the same second as the
    kill: "Job credential revoked")."""
    wait_for(node_idle, 90, "the node to finish the last run")
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)


def log_of(storage: Path, name: str, job_id: str) -> str:
    path = storage / "slurm" / f"st-{name}-{job_id}.out"
    return path.read_text() if path.exists() else ""


def trial_dirs(exp: Path) -> list[Path]:
    return sorted(p.parent for p in exp.glob(f"*/{layout.CONFIG}"))


def status_of(job_id: str, env: dict[str, str] | None = None) -> str:
    out = cli("status", job_id, env=env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return out.stdout


@pytest.fixture
def cleanup_jobs() -> Iterator[list[str]]:
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)


def ray_processes(job_id: str) -> list[str]:
    """Command lines of live processes that belong to this job's Ray cluster."""
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if re.search(rf"ray-st-{job_id}-", line)]


def no_job_leftovers(storage: Path, job_id: str) -> list[str]:
    """What a finished job may not leave: Ray processes, temp dirs, the token."""
    left = ray_processes(job_id)
    left += [str(p) for p in Path("/tmp").glob(f"ray-st-{job_id}-*")]
    left += [str(p) for p in (storage / "slurm").glob(f".job-{job_id}-*")]
    return left


def error_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if ERROR_LINE.search(ln) or RAY_ERROR.search(ln)]


@pytest.mark.timeout(400)
def test_two_smoke_sweeps_run_side_by_side_with_clean_logs(slurm_cluster, tmp_path, cleanup_jobs):
    """Two jobs on one node at once: each gets its own ports, temp dir and token, both finish;
    their logs hold no error line and `status` reads them back from the job-completion log."""
    storage = tmp_path / "results"
    ids = []
    for name in ("smoke_a", "smoke_b"):
        jid, out = submit(
            str(SMOKE), "--storage", str(storage), "--name", name, "--cpus-per-node", "1"
        )
        assert f"experiment  {storage / name}" in out
        script = Path(re.search(r"script\s+(\S+)", out).group(1))
        assert script.stat().st_mode & 0o777 == 0o600  # site setup lines may hold secrets
        cleanup_jobs.append(jid)
        ids.append(jid)
    done = [wait_state(jid, {"COMPLETED", "FAILED", "CANCELLED"}, 300) for jid in ids]

    heads = []
    for jid, name, info in zip(ids, ("smoke_a", "smoke_b"), done, strict=True):
        log = log_of(storage, name, jid)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-3000:]
        assert f"sparsity-tune from {REPO / 'sparsity_tune'}, Ray " in log  # this checkout runs
        assert "Ray cluster up: 1/1 nodes" in log
        assert error_lines(log) == [], log[-3000:]  # no srun Killed, no CANCELLED step, no Ray E
        heads.append(re.search(r"Ray head on \S+ \((\S+)\)", log).group(1))
        trials = trial_dirs(storage / name)
        assert len(trials) == 4  # 2 sparsities x 2 seeds
        assert all((t / "summary.json").exists() for t in trials)
        wait_for(lambda j=jid: not no_job_leftovers(storage, j), 30, "the job's leftovers to go")
        st = status_of(jid)
        assert st.splitlines()[0] == f"job {jid} (st-{name}): COMPLETED, exit code 0:0", st
        assert f"experiment  {storage / name}: 4 of 4 trials finished" in st
        assert f"log         {storage / 'slurm' / f'st-{name}-{jid}.out'}" in st
        assert "from        sacct --completion" in st
    assert heads[0] != heads[1]
    # Submitting the same experiment again is refused unless the user asks to resume it.
    again = cli("submit", str(SMOKE), "--storage", str(storage), "--name", "smoke_a")
    assert again.returncode == 2
    assert "already holds experiment 'smoke_a'; add --resume" in again.stderr
    # They really overlapped in time (both held one of the node's two CPUs).
    assert done[1]["StartTime"] < done[0]["EndTime"]


LONG_EPOCHS = max(
    yaml.safe_load(REQUEUE_SPEC.read_text())["search"]["parameters"]["train.epochs"]["values"]
)


def long_ones(exp: Path) -> list[Path]:
    """The trials of tests/data/slurm_requeue.yaml that train the most epochs."""
    return [
        t
        for t in trial_dirs(exp)
        if json.loads((t / layout.CONFIG).read_text())["params"]["train.epochs"] == LONG_EPOCHS
    ]


def trial_config_of(trial: Path) -> dict:
    return json.loads((trial / layout.CONFIG).read_text())["config"]


def reference_records(config: dict) -> list[dict]:
    """The trial of this config trained without interruption (training is deterministic)."""
    from sparsity_tune.trial.config import trial_config
    from sparsity_tune.trial.data import load_dataset
    from sparsity_tune.trial.device import resolve_device
    from sparsity_tune.trial.trainer import Trainer

    cfg = trial_config(config)
    trainer = Trainer(cfg, cpus=1, data=load_dataset(cfg.dataset, resolve_device("cpu")))
    trainer.run()
    return trainer.records


@pytest.fixture
def references() -> Iterator[ProcessPoolExecutor]:
    """Two processes that train the uninterrupted references (one torch thread each), so the
    test need not train them one after the other once the job has ended (~25 s on 2 CPUs)."""
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)  # idle workers exit on their own


def wandb_steps(exp: Path) -> dict[str, list[int]]:
    """run id → the history steps of all its offline fragments, in order, read by W&B's own
    reader (``wandb leet inspect``); a fragment cut short by a killed W&B service counts too."""
    runs: dict[str, list[int]] = {}
    frags = sorted((exp / "wandb").glob("offline-run-*"))

    def inspect(frag: Path) -> str:
        return subprocess.run(
            ["wandb", "leet", "inspect", "--json", str(frag)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout

    with ThreadPoolExecutor(4) as pool:  # one reader process (~1 s, mostly start-up) per fragment
        outs = list(pool.map(inspect, frags))
    for frag, out in zip(frags, outs, strict=True):
        steps = []
        for line in out.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "history":
                steps.append(rec["history"]["item"]["_step"])
        logs = list(frag.glob("run-*.wandb"))
        rid = logs[0].stem.removeprefix("run-") if logs else f"(no log) {frag.name}"
        runs.setdefault(rid, []).extend(steps)
    return runs


@pytest.mark.timeout(600)
def test_requeue_by_user_signal_then_by_sigterm_resumes_exactly(
    slurm_cluster, tmp_path, cleanup_jobs, references
):
    """One sweep, three runs: the user signal (USR1, as before the time limit) ends run 1 once a
    quick trial has finished; `scontrol requeue` (SIGTERM to every process of the job, as
    preemption and the time limit without a warning do) ends run 2 while the long trials are
    mid-run; run 3 finishes. Every check is collected, so one report says which hold."""
    storage = tmp_path / "results"
    exp = storage / "slurm_requeue"
    jid, _ = submit(str(REQUEUE_SPEC), "--storage", str(storage))
    cleanup_jobs.append(jid)
    problems: list[str] = []
    launcher_problems: list[str] = []  # status files and W&B: the launcher's (resume branch)

    def check(ok: bool, what: str, launcher: bool = False) -> None:
        if not ok:
            (launcher_problems if launcher else problems).append(what)

    def records_of(t: Path) -> int:
        return len(layout.read_records(t))

    # run 1: USR1 once a quick (2-epoch) trial has finished
    first = wait_for(lambda: sorted(exp.glob("*/summary.json")), 240, "a first finished trial")
    before = {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in first}
    subprocess.run(["scancel", "--signal=USR1", "--batch", jid], check=True)
    pending = wait_state(jid, {"PENDING", "COMPLETED", "FAILED"}, 120)
    log = log_of(storage, "slurm_requeue", jid)
    assert pending["JobState"] == "PENDING" and pending["Restarts"] == "1", log[-3000:]
    assert "USR1: the job ends soon" in log and "requeueing: the next run resumes" in log
    st = status_of(jid)
    check(
        st.splitlines()[0].startswith(f"job {jid} (st-slurm_requeue): PENDING")
        and "requeued 1 time(s)" in st.splitlines()[0],
        f"status of the requeued job: {st}",
    )

    # run 2: SIGTERM (scontrol requeue) while a long trial trains
    release(jid)
    wait_for(lambda: "run 2 on" in log_of(storage, "slurm_requeue", jid), 120, "run 2")
    wait_for(lambda: len(long_ones(exp)) == 2, 120, "both long trials to exist")
    long_trials = long_ones(exp)
    at_start = {t: records_of(t) for t in long_trials}
    wait_for(
        lambda: any(records_of(t) >= at_start[t] + 5 for t in long_trials),
        180,
        "a long trial to train 5 more epochs in run 2",
    )
    check(
        all(not (t / layout.SUMMARY).exists() for t in long_trials),
        "a long trial finished before the SIGTERM: make them longer",
    )
    subprocess.run(["scontrol", "requeue", jid], check=True)
    wait_state(jid, {"PENDING"}, 120)
    log = log_of(storage, "slurm_requeue", jid)
    assert "TERM: SLURM ends this run" in log, log[-3000:]
    assert "SLURM requeues this job; the next run resumes" in log, log[-3000:]

    # run 3: to the end. Both signals have landed, so nothing below depends on speed: the
    # references of the trials that exist train meanwhile (the others once the job has ended).
    reference: dict[str, Future] = {}

    def reference_of(config: dict) -> Future:
        key = json.dumps(config, sort_keys=True)
        if key not in reference:
            reference[key] = references.submit(reference_records, config)
        return reference[key]

    for t in sorted(trial_dirs(exp), key=lambda t: -len(layout.read_records(t))):
        reference_of(trial_config_of(t))  # the long ones first: they take longest
    release(jid)
    info = wait_state(jid, {"COMPLETED", "FAILED", "CANCELLED"}, 300)
    log = log_of(storage, "slurm_requeue", jid)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-3000:]
    assert info["Restarts"] == "2" and "run 3 on" in log
    saves = re.findall(r"sweep exited with status \d+, (\d+) ms after (USR1|TERM)", log)
    check([s[1] for s in saves] == ["USR1", "TERM"], f"saves logged: {saves}")
    check(all(int(ms) < 25_000 for ms, _ in saves), f"saved within KillWait (30 s): {saves}")

    trials = trial_dirs(exp)
    assert len(trials) == 4
    for t in trials:
        got = layout.read_records(t)
        ref = reference_of(trial_config_of(t)).result(timeout=300)
        check([r["epoch"] for r in got] == [r["epoch"] for r in ref], f"{t.name}: epochs")
        diffs = [
            (r["epoch"], k)
            for r, want in zip(got, ref, strict=False)
            for k in want
            if k not in MEASURED and r.get(k) != want[k]
        ]
        check(not diffs, f"{t.name}: records differ from an uninterrupted run at {diffs[:5]}")
        check((t / layout.SUMMARY).exists(), f"{t.name}: no summary.json")
        for false_status in (layout.STOPPED, layout.ERROR):
            check(
                not (t / false_status).exists(),
                f"{t.name}: {false_status} in a FIFO sweep",
                launcher=True,
            )
    for name, (mtime, text) in before.items():  # finished before the first signal: untouched
        summary = exp / name / layout.SUMMARY
        check(summary.stat().st_mtime_ns == mtime and summary.read_text() == text, f"{name} redone")

    runs = wandb_steps(exp)
    check(len(runs) == 4, f"W&B runs: {sorted(runs)}", launcher=True)
    epochs = sorted(len(layout.read_records(t)) for t in trials)
    for run_id, steps in runs.items():
        check(
            steps == list(range(1, len(steps) + 1)) and len(steps) in epochs,
            f"W&B run {run_id}: steps {_ranges(steps)} (want 1..N once each)",
            launcher=True,
        )
    st = status_of(jid)
    check(
        st.splitlines()[0]
        == f"job {jid} (st-slurm_requeue): COMPLETED, exit code 0:0, requeued 2 time(s)"
        and f"{exp}: 4 of 4 trials finished" in st,
        f"status after the end: {st}",
    )
    check(not no_job_leftovers(storage, jid), f"leftovers: {no_job_leftovers(storage, jid)}")
    assert not problems and not launcher_problems, "\n".join(problems + launcher_problems)


def _ranges(steps: list[int]) -> str:
    """[1, 2, 3, 7, 8] → '1-3,7-8' (a short picture of lost or repeated steps)."""
    out, start = [], None
    for i, s in enumerate(steps):
        if start is None:
            start = s
        if i + 1 == len(steps) or steps[i + 1] != s + 1:
            out.append(f"{start}-{s}" if s != start else str(s))
            start = None
    return ",".join(out)


@pytest.mark.timeout(300)
def test_status_of_running_pending_and_cancelled_jobs(slurm_cluster, tmp_path, cleanup_jobs):
    """Cancel saves the sweep and stops Ray; status follows jobs from the queue to sacct."""
    storage = tmp_path / "results"
    exp = storage / "slurm_requeue"
    # whole node (--exclusive); wide layers keep it busy (~1 s an epoch) until it is cancelled
    jid, _ = submit(str(REQUEUE_SPEC), "--storage", str(storage), "--set", "model.width=2048")
    cleanup_jobs.append(jid)
    wait_for(lambda: trial_dirs(exp), 120, "the sweep's first trial")
    assert ray_processes(jid)
    st = status_of(jid)
    assert st.splitlines()[0] == f"job {jid} (st-slurm_requeue): RUNNING", st
    assert "from        squeue" in st and f"experiment  {exp}: " in st

    waiting, _ = submit(str(SMOKE), "--storage", str(storage), "--name", "waiting")
    cleanup_jobs.append(waiting)
    st = status_of(waiting)
    assert st.splitlines()[0].startswith(f"job {waiting} (st-waiting): PENDING ("), st
    assert "experiment  " in st and "not created yet" in st
    assert cli("cancel", waiting).returncode == 0
    wait_for(lambda: "CANCELLED" in status_of(waiting).splitlines()[0], 30, "a cancelled status")

    out = cli("cancel", jid)
    assert out.returncode == 0, out.stderr
    assert "each sweep saves its state first" in out.stdout
    wait_state(jid, {"CANCELLED"}, 60)
    wait_for(lambda: not no_job_leftovers(storage, jid), 60, "the job's Ray processes to exit")
    log = log_of(storage, "slurm_requeue", jid)
    assert "TERM: SLURM ends this run" in log
    assert re.search(r"sweep exited with status \d+, \d+ ms after TERM", log), log[-2000:]
    assert "cancelled; the sweep's state is saved: continue it with: " in log, log[-2000:]
    assert log.splitlines()[-1].endswith(f"--storage {storage} --set model.width=2048 --resume")
    st = wait_for(
        lambda: (s := status_of(jid)).startswith(f"job {jid} (st-slurm_requeue): CANCELLED") and s,
        30,
        "status CANCELLED",
    )
    assert "from        sacct --completion" in st


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partition", "nosuch"], "no partition named 'nosuch' on this cluster; pick one of: "),
        (["--nodes", "9"], "has only 1 node(s)"),
        (["--cpus-per-node", "4096"], "cannot give 1 node(s) with 4096 CPUs"),
    ],
)
def test_impossible_request_is_refused_not_queued(slurm_cluster, tmp_path, argv, message):
    def queued() -> set[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
        return set(out.stdout.split())

    before = queued()
    out = cli("submit", str(SMOKE), "--storage", str(tmp_path), *argv)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert queued() <= before  # nothing new in the queue (an earlier test's job may leave it)
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
    assert error_lines(log) == [], log[-3000:]
    trials = trial_dirs(storage / "smoke")
    assert len(trials) == 4 and all((t / "summary.json").exists() for t in trials)
    nodes = {json.loads((t / "config.json").read_text())["node"]["node_id"] for t in trials}
    assert len(nodes) == 2, nodes  # trials ran on both Ray nodes
    wait_for(lambda: not no_job_leftovers(storage, jid), 30, "the job's leftovers to go")
