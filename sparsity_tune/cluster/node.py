"""What runs inside a sweep's SLURM job: ``python -m sparsity_tune.cluster.node COMMAND``.

The batch script (``ray_sweep.sbatch.tmpl``) calls these commands, so that the parts that decide
when Ray stops and whether the job requeues are Python with tests rather than shell:

``check``            refuse a Ray without token authentication; say which code the job runs
``keep``             one Ray node (``ray start --block``) that outlives SLURM's SIGTERM (below)
``wait-nodes``       wait until every node has joined the Ray cluster
``probe-job-api``    refuse to run if a node agent's job-submission API answers without the token
``has-experiment``   exit 0 when the experiment directory holds a sweep to resume
``launch``           the sweep (``sparsity_tune.launch``), deaf to SLURM's SIGTERM (below)
``requeue-action``   after a signal: does SLURM requeue this run, must the script, or neither?

Why SIGTERM is blocked. When SLURM ends a run (``scontrol requeue``, preemption, the time limit,
``scancel``) it sends SIGCONT and SIGTERM to *every* process of the job at the same moment: the
batch shell, the launcher, each ``srun`` step and every process under it, i.e. every raylet, GCS
and Ray worker; SIGKILL follows KillWait seconds later. Ray's processes shut down on SIGTERM, so
left alone the cluster would vanish while the sweep is still saving. So each node's Ray processes
run with SIGTERM (and SIGUSR2, the batch script's "stop now") blocked — a blocked signal stays
blocked through fork and exec — and so does the launcher. The batch shell alone reacts: it asks
the launcher to save (SIGUSR1, which it handles like Ctrl-C), waits for it to exit, then sends
SIGUSR2 to the ``srun`` of each node, whose keeper ends its Ray processes and exits 0 (no
``task 0: Killed``, no CANCELLED step). Ray cannot stop "gracefully" after that (its processes
shut down only on SIGTERM), so the keeper ends them with SIGKILL; by then the sweep has exited
and nothing of it lives in Ray. Programs written in Go unblock SIGTERM whatever their parent
did: the W&B service (``wandb-core``) under the launcher still dies on SLURM's SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

#: Ray reads RAY_AUTH_MODE=token from 2.52.0 on; older versions ignore it and leave the cluster
#: open to anyone who can reach its ports.
MIN_RAY = (2, 52, 0)
#: Ray puts unix sockets at TEMP/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store: up to
#: 64 characters after the temp dir, and a socket path holds at most 107.
RAY_SOCKET_SUFFIX = 64
SOCKET_PATH_MAX = 107
#: What the keeper blocks in its Ray processes (see the module docstring).
SHIELDED = {signal.SIGTERM, signal.SIGUSR2}
STOP_SIGNAL = signal.SIGUSR2
#: Ports only a full dashboard agent (``ray[default]``) listens on.
AGENT_ONLY_OPTIONS = ("--dashboard-agent-grpc-port=", "--metrics-export-port=")


def log(msg: str) -> None:
    """A line in the job log, stamped like the batch script's own lines."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    job = os.environ.get("SLURM_JOB_ID", "?")
    print(f"[{stamp} sparsity-tune/slurm job {job}] {msg}", flush=True)


# ---- check -----------------------------------------------------------------------------------


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.60.0"`` → (2, 60, 0); ``"3.0.0.dev0"`` → (3, 0, 0); missing parts count as 0."""
    parts = [int(m) for m in re.findall(r"\d+", version.split("+")[0])[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def check() -> int:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    import sparsity_tune

    try:
        ray_version = dist_version("ray")
    except PackageNotFoundError:
        print(f"error: Ray is not installed for {sys.executable}", file=sys.stderr)
        return 2
    if version_tuple(ray_version) < MIN_RAY:
        need = ".".join(map(str, MIN_RAY))
        print(
            f"error: Ray {ray_version} ({sys.executable}) has no token authentication: it ignores "
            f"RAY_AUTH_MODE=token and would leave this job's Ray cluster open to anyone who can "
            f"reach its ports. Install Ray >= {need}: pip install -U 'ray[tune]>={need}'",
            file=sys.stderr,
        )
        return 2
    code = Path(sparsity_tune.__file__).resolve().parent
    log(f"sparsity-tune from {code}, Ray {ray_version}, Python {sys.version.split()[0]}")
    return 0


# ---- keep: one Ray node ------------------------------------------------------------------------


def temp_root(root: str | None) -> str:
    """Where the node's Ray temp dir goes: ROOT if given, else $TMPDIR when Ray's socket paths
    fit under it, else /tmp."""
    if root:
        return root
    tmpdir = os.environ.get("TMPDIR", "")
    longest = len(tmpdir) + len(f"/ray-st-{os.environ.get('SLURM_JOB_ID', '0')}-12345678")
    if tmpdir and longest + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return tmpdir
    return "/tmp"


def make_temp_dir(root: str) -> str:
    """A fresh, private (0700) temp dir: its name is not predictable, so nobody can plant it."""
    prefix = f"ray-st-{os.environ.get('SLURM_JOB_ID', '0')}-"
    longest = len(os.path.join(root, prefix)) + 8  # mkdtemp adds 8 random characters
    if longest + RAY_SOCKET_SUFFIX > SOCKET_PATH_MAX:
        raise SystemExit(
            f"error: Ray's temp dir under {root} would be too long: Ray's socket paths under it "
            f"would pass {SOCKET_PATH_MAX} bytes; set ray_tmp_root in the site config to a short "
            "node-local directory (e.g. /tmp)"
        )
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=root)
    except OSError as err:
        raise SystemExit(
            f"error: cannot make Ray's temp dir under {root} on {os.uname().nodename}: "
            f"{err.strerror}; set ray_tmp_root in the site config to a writable node-local "
            "directory (e.g. /tmp)"
        ) from None


def children_of(pid: int) -> list[int]:
    """Every live descendant of PID (from /proc), children before grandchildren."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces: split after it
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        found = kids.get(todo.pop(0), [])
        out += found
        todo += found
    return out


def _become_subreaper() -> None:
    """Orphans of our Ray processes re-parent to us (not to init), so the stop finds them all."""
    import ctypes

    pr_set_child_subreaper = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def end_tree(first: int, deadline_s: float = 10.0) -> None:
    """SIGKILL FIRST (``ray start``, so it does not report its children's deaths as errors), then
    every other descendant of this process, and reap them all."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for pid in children_of(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return  # nothing left
        time.sleep(0.05)


def ray_client_installed() -> bool:
    """``ray[client]``: then the head serves Ray Client on a port (10001 unless told otherwise)."""
    from ray._private.utils import get_ray_client_dependency_error

    return get_ray_client_dependency_error() is None


RAY_START = (sys.executable, "-m", "ray.scripts.scripts", "start", "--block")


def keep(
    ray_args: Sequence[str],
    tmp_root: str | None,
    notify_pid: int | None,
    client_port: int | None = None,
    program: Sequence[str] = RAY_START,
) -> int:
    """Run ``ray start --block RAY_ARGS`` with SIGTERM and SIGUSR2 blocked in it and every Ray
    process it starts; end them all on SIGUSR2 and exit 0. NOTIFY_PID (the batch shell, on the
    head node) gets SIGUSR1 when SIGTERM reaches this step alone: a preemption with GraceTime
    signals the job's steps first, and the batch script should start saving then. CLIENT_PORT
    (head only) puts Ray Client in the job's port block when ``ray[client]`` is installed
    (without it there is no Ray Client server, and Ray refuses the option)."""
    _become_subreaper()
    if client_port and ray_client_installed():
        ray_args = [*ray_args, f"--ray-client-server-port={client_port}"]
    if not agent_serves_http():
        # A minimal agent (no ray[default]) serves neither port; given fixed ones, the raylet,
        # GCS and workers try them in vain and each logs "Failed to establish connection to the
        # metrics exporter agent". Left out, Ray knows there is no agent to export to.
        ray_args = [a for a in ray_args if not a.startswith(AGENT_ONLY_OPTIONS)]
    tmp = make_temp_dir(temp_root(tmp_root))
    out_path = os.path.join(tmp, "ray_start.out")
    stop = {"requested": False}
    termed_at: list[float] = []

    def on_stop(signum: int, frame: object) -> None:
        stop["requested"] = True

    def on_term(signum: int, frame: object) -> None:
        if not termed_at:
            termed_at.append(time.monotonic())
            if notify_pid:
                log("SIGTERM reached the Ray steps: Ray keeps running until the sweep has saved")

    signal.signal(STOP_SIGNAL, on_stop)
    signal.signal(signal.SIGTERM, on_term)
    cmd = [*program, *ray_args, f"--temp-dir={tmp}"]
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    # A local launcher (or a test session) pins Ray to one machine with this variable; inherited
    # through sbatch's --export=ALL it would make `ray start` refuse a multi-node cluster.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    pid = os.posix_spawnp(
        cmd[0],
        cmd,
        env,
        setsigmask=SHIELDED,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, out_fd, 2),
            (os.POSIX_SPAWN_CLOSE, out_fd),
        ],
    )
    os.close(out_fd)
    status = None
    notified = False
    while not stop["requested"]:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        # Tell the batch shell a second later: when SLURM signalled the whole job it has its own
        # SIGTERM by then (and names it in the log); when only the steps were signalled (a
        # GraceTime preemption), this is how it learns that the job ends.
        if notify_pid and termed_at and not notified and time.monotonic() - termed_at[0] > 1:
            notified = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(notify_pid, signal.SIGUSR1)
        time.sleep(0.2)
    end_tree(pid)
    code = 0
    if status is not None:  # ray start ended by itself: a real failure, show why
        code = status if status > 0 else 128 - status
        log(f"error: the Ray node on {os.uname().nodename} exited with status {status}:")
        with contextlib.suppress(OSError), open(out_path, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-40:]))
    shutil.rmtree(tmp, ignore_errors=True)
    return code


# ---- wait-nodes, probe-job-api, has-experiment -------------------------------------------------


def process_alive(pid: int) -> bool:
    """PID exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_nodes(address: str, want: int, timeout: float, keepers: Sequence[int] = ()) -> int:
    """Wait until WANT nodes are alive in the Ray cluster; give up at once when one of the
    KEEPERS (the ``srun`` of each node) has exited: its Ray node failed to start."""
    import ray

    deadline = time.monotonic() + timeout
    alive = 0
    while time.monotonic() < deadline:
        dead = [pid for pid in keepers if not process_alive(pid)]
        if dead:
            log("error: a Ray node exited before the cluster was up (its output is above)")
            return 1
        try:
            if not ray.is_initialized():
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            alive = sum(1 for n in ray.nodes() if n["Alive"])
            if alive >= want:
                log(f"Ray cluster up: {alive}/{want} nodes, {ray.cluster_resources()}")
                return 0
        except Exception as err:  # the GCS may not be listening yet
            print(f"waiting for Ray ({type(err).__name__})", flush=True)
        time.sleep(2)
    log(f"error: only {alive} of {want} Ray nodes joined within {timeout:.0f}s")
    return 1


def job_api_answer(host: str, port: int, timeout: float = 5.0) -> int | None:
    """HTTP status of an unauthenticated request to a node agent's job API; None if nothing
    listens there."""
    url = f"http://{host}:{port}/api/job_agent/jobs/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def agent_serves_http() -> bool:
    """With ``ray[default]`` (aiohttp & co. installed) each node's dashboard agent runs an HTTP
    server that includes the job-submission API, even with the dashboard off."""
    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError:
        return False
    return True


def probe_one(host: str, port: int, wait_s: float) -> str | None:
    """None if the agent's job API on HOST:PORT refuses a request without the token (or nothing
    listens there); else why it is open."""
    deadline = time.monotonic() + wait_s
    answer = job_api_answer(host, port)
    while answer is None and time.monotonic() < deadline:  # the agent starts after the raylet
        time.sleep(1)
        answer = job_api_answer(host, port)
    if answer is None or answer in (401, 403):
        return None
    return f"{host}:{port} answered HTTP {answer}"


def agent_addresses(address: str, wait_s: float) -> tuple[list[tuple[str, int]], int]:
    """(host, HTTP port) of every live node's dashboard agent, as the agents publish them in the
    GCS, and how many nodes had published none within WAIT_S seconds."""
    import json

    import ray
    from ray._private.ray_constants import KV_NAMESPACE_DASHBOARD
    from ray.dashboard.consts import DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX
    from ray.experimental.internal_kv import _internal_kv_get

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    deadline = time.monotonic() + wait_s
    while True:
        found, missing = [], 0
        for n in ray.nodes():
            if not n["Alive"]:
                continue
            key = f"{DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX}{n['NodeID']}"
            raw = _internal_kv_get(key, namespace=KV_NAMESPACE_DASHBOARD)
            if raw is None:
                missing += 1
                continue
            host, http_port, _grpc_port = json.loads(raw)
            if int(http_port) > 0:  # -1: this agent serves no HTTP
                found.append((host, int(http_port)))
        if not missing or time.monotonic() > deadline:
            return found, missing
        time.sleep(1)


def probe_job_api(address: str, wait_s: float = 60.0) -> int:
    """Refuse to run when a node agent's job-submission API accepts requests without the job's
    token. Every node is checked, at the address its agent publishes."""
    if not agent_serves_http():
        log("job-submission API: absent (Ray without the dashboard extras serves no HTTP)")
        return 0
    agents, missing = agent_addresses(address, wait_s)
    open_ = [why for host, port in agents if (why := probe_one(host, port, wait_s))]
    if open_:
        log(
            f"error: the Ray agents' job-submission API answered a request without the token "
            f"({'; '.join(open_)}): anyone who reaches those ports could run code in this job. "
            "Check that RAY_AUTH_MODE=token reaches every Ray process (a site setup line may "
            "unset it); refusing to run"
        )
        return 1
    note = f"; {missing} node(s) published no agent address in {wait_s:.0f}s" if missing else ""
    log(
        f"job-submission API of {len(agents)} node agent(s): refuses requests without the "
        f"job's token{note}"
    )
    return 0


def has_experiment(path: str) -> int:
    from ray.tune import Tuner

    return 0 if Tuner.can_restore(path) else 1


# ---- launch ------------------------------------------------------------------------------------


class NotStartedFilter(logging.Filter):
    """Ray Tune warns once per trial without results when a sweep stops ("Failed to fetch metrics
    for N trial(s): ... FileNotFoundError"): those trials had not started yet, which is expected
    after an interruption. Say that in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith("Failed to fetch metrics for"):
            return True
        items = [line for line in msg.splitlines()[1:] if line.startswith("- ")]
        if items and all("FileNotFoundError" in line for line in items):
            record.msg = (
                f"{len(items)} trial(s) have no results yet (not started before the sweep "
                "stopped); they run when the sweep resumes"
            )
            record.args = ()
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def launch(argv: Sequence[str]) -> int:
    """``sparsity_tune.launch ARGV`` with SIGTERM blocked: under SLURM the batch shell decides
    when the sweep saves (SIGUSR1) and the launcher must not react to SLURM's SIGTERM as well."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(NotStartedFilter())
    from sparsity_tune.sweep import launch as launch_mod

    return launch_mod.main(list(argv))


# ---- requeue-action ----------------------------------------------------------------------------


def job_fields(job_id: str) -> dict[str, str] | None:
    """``scontrol show job -o JOBID`` as a dict, or None when SLURM does not know the job."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 or "JobId=" not in out.stdout:
        return None
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def requeue_action(fields: dict[str, str] | None, restarts_at_start: int) -> str:
    """What ends this run after the sweep saved on a signal:

    ``slurm``: SLURM is requeueing the job itself (``scontrol requeue``, preemption in REQUEUE
    mode: the restart count went up); ``self``: the script must requeue it (the user signal
    before the time limit, the time limit itself, a GraceTime preemption notice, a preemption
    that cancels); ``cancelled``: someone ran ``scancel``; ``no-requeue``: the job was submitted
    without ``--requeue`` or the cluster forbids it (``JobRequeue=0``).
    """
    if fields is None:
        return "self"
    if int(fields.get("Restarts", "0") or 0) > restarts_at_start:
        return "slurm"
    if fields.get("Requeue") == "0":
        return "no-requeue"
    state, reason = fields.get("JobState", ""), fields.get("Reason", "")
    if (
        state in ("RUNNING", "SUSPENDED")
        or reason in ("TimeLimit", "Preempted")
        or state
        in (
            "TIMEOUT",
            "PREEMPTED",
        )
    ):
        return "self"
    return "cancelled"


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m sparsity_tune.cluster.node",
        description="Helpers the SLURM batch script of a sweep runs on its nodes.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="refuse a Ray without token auth; print which code runs")
    k = sub.add_parser("keep", help="run one Ray node that outlives SLURM's SIGTERM")
    k.add_argument("--tmp-root", help="node-local root of the Ray temp dir (default: $TMPDIR)")
    k.add_argument("--notify-pid", type=int, help="SIGUSR1 this PID when SIGTERM arrives")
    k.add_argument("--client-port", type=int, help="Ray Client's port (head, ray[client] only)")
    k.add_argument(
        "--program",
        help="run this (a shell-quoted command) instead of `ray start --block` (for tests)",
    )
    k.add_argument("ray_args", nargs=argparse.REMAINDER, help="-- then ray start's arguments")
    w = sub.add_parser("wait-nodes", help="wait until N Ray nodes have joined")
    w.add_argument("address")
    w.add_argument("nodes", type=int)
    w.add_argument("timeout", type=float)
    w.add_argument("--keepers", type=int, nargs="*", default=[], help="PIDs of the Ray steps")
    p = sub.add_parser("probe-job-api", help="refuse an agent job API that needs no token")
    p.add_argument("address", help="the Ray cluster: HEAD_IP:PORT")
    h = sub.add_parser("has-experiment", help="exit 0 when PATH holds a sweep to resume")
    h.add_argument("path")
    la = sub.add_parser("launch", help="sparsity_tune.launch, deaf to SIGTERM")
    la.add_argument("launch_args", nargs=argparse.REMAINDER)
    r = sub.add_parser("requeue-action", help="after a signal: slurm|self|cancelled|no-requeue")
    r.add_argument("restarts_at_start", type=int)
    return ap.parse_args(argv)


def _after_dashdash(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cmd == "check":
        return check()
    if args.cmd == "keep":
        program = shlex.split(args.program) if args.program else RAY_START
        return keep(
            _after_dashdash(args.ray_args),
            args.tmp_root,
            args.notify_pid,
            args.client_port,
            program,
        )
    if args.cmd == "wait-nodes":
        return wait_nodes(args.address, args.nodes, args.timeout, args.keepers)
    if args.cmd == "probe-job-api":
        return probe_job_api(args.address)
    if args.cmd == "has-experiment":
        return has_experiment(args.path)
    if args.cmd == "launch":
        return launch(_after_dashdash(args.launch_args))
    if args.cmd == "requeue-action":
        print(requeue_action(job_fields(os.environ["SLURM_JOB_ID"]), args.restarts_at_start))
        return 0
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
