"""``python -m sparsity_tune.slurm status [JOBID...]``: where a sweep's job stands.

For each job: its state, how often it was requeued, elapsed and limit, its log file, and how far
the experiment is (trials finished / planned, read from the trial files). While the job is queued
or running SLURM's controller knows it (``squeue``, ``scontrol``); after it left the queue only
``sacct`` does: from the accounting database (slurmdbd), or from the job-completion log
(``JobCompType=jobcomp/filetxt``, read with ``sacct --completion``). Without either, the final
state is unknown and the status says so; the log and the experiment still tell where it stands.

``submit`` leaves a card per job (``$XDG_STATE_HOME/sparsity-tune/slurm-jobs/CLUSTER-JOBID.json``:
name, experiment, log, script) so that ``status JOBID`` finds the experiment of a job that SLURM
has forgotten. Without arguments: your queued and running sweeps plus those submitted in the
last 7 days.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sparsity_tune import layout

#: States in which a job is still in the queue (squeue shows it).
ACTIVE = {
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "COMPLETING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
RECENT_DAYS = 7
SACCT_FIELDS = "JobID,JobName,State,Elapsed,Start,End,NodeList,ExitCode"


class NoSlurm(Exception):
    """A SLURM command is missing: not on a login node."""


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise NoSlurm(f"{cmd[0]}: not found; run this on a SLURM login node")
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


# ---- the job cards submit leaves ----------------------------------------------------------------


def cards_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sparsity-tune" / "slurm-jobs"


def cluster_name() -> str:
    """This cluster's ClusterName: job ids are only unique within one cluster."""
    try:
        out = _run(["scontrol", "show", "config"]).stdout
    except NoSlurm:
        return "unknown"
    m = re.search(r"^ClusterName\s*=\s*(\S+)", out, flags=re.M)
    return m.group(1) if m else "unknown"


def record_job(job_id: str, card: dict[str, str]) -> None:
    """Keep what status needs to know about a submitted job (private: it names paths)."""
    d = cards_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / f"{cluster_name()}-{job_id}.json"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"job_id": job_id, **card}, f, indent=2)
    os.replace(tmp, path)


def read_card(job_id: str, cluster: str) -> dict[str, str]:
    try:
        return json.loads((cards_dir() / f"{cluster}-{job_id}.json").read_text())
    except (OSError, ValueError):
        return {}


def recent_cards(cluster: str, days: float = RECENT_DAYS) -> list[dict[str, str]]:
    """Cards of this cluster written in the last DAYS, newest first."""
    cutoff = time.time() - days * 86400
    found = []
    for p in cards_dir().glob(f"{cluster}-*.json"):
        try:
            if p.stat().st_mtime >= cutoff:
                found.append((p.stat().st_mtime, json.loads(p.read_text())))
        except (OSError, ValueError):
            continue
    return [card for _, card in sorted(found, key=lambda x: x[0], reverse=True)]


# ---- what SLURM knows -------------------------------------------------------------------------


@dataclass
class JobState:
    job_id: str
    name: str = ""
    state: str = "UNKNOWN"
    reason: str = ""
    restarts: int | None = None
    elapsed: str = ""
    elapsed_total: str = ""
    time_limit: str = ""
    nodes: str = ""
    exit_code: str = ""
    log: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)


def scontrol_fields(job_id: str) -> dict[str, str] | None:
    """``scontrol show job -o`` as a dict; None when the controller no longer knows the job."""
    out = _run(["scontrol", "show", "job", "-o", job_id])
    if out.returncode != 0 or "JobId=" not in out.stdout:
        return None
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def from_queue(job_id: str) -> JobState | None:
    """The job as squeue sees it while it is queued or running (details from scontrol)."""
    q = _run(["squeue", "-h", "-j", job_id, "-o", "%i|%j|%T|%M|%l|%N|%r"])
    rows = [r.split("|") for r in q.stdout.splitlines() if r.startswith(job_id + "|")]
    if q.returncode != 0 or not rows:
        return None
    _, name, state, elapsed, limit, nodes, reason = rows[0]
    job = JobState(job_id, name, state, reason, elapsed=elapsed, time_limit=limit, nodes=nodes)
    job.source = "squeue"
    f = scontrol_fields(job_id) or {}
    job.restarts = int(f.get("Restarts", "0") or 0)
    job.log = f.get("StdOut", "")
    return job


def sacct_rows(job_id: str) -> tuple[list[list[str]], str]:
    """One row per run of the job (a requeue starts a new run) and where they came from: the
    accounting database, else the job-completion log; ([], why) when SLURM keeps neither."""
    cmd = ["sacct", "-n", "-P", "-j", job_id, "-o", SACCT_FIELDS]
    acct = _run([*cmd, "-X", "-D"])
    rows = [r.split("|") for r in acct.stdout.splitlines() if r.strip()]
    if acct.returncode == 0 and rows:
        return rows, "sacct"
    comp = _run([*cmd, "--completion"])
    crow = [r.split("|") for r in comp.stdout.splitlines() if r.strip()]
    if comp.returncode == 0 and crow:
        return crow, "sacct --completion"
    why = (
        f"accounting: {acct.stderr.strip() or 'no record of this job'}; "
        f"job-completion log: {comp.stderr.strip() or 'no record of this job'}"
    )
    return [], why


def _seconds(elapsed: str) -> int:
    """``[D-]HH:MM:SS`` (or MM:SS) → seconds; 0 if unreadable."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", elapsed.strip())
    if not m:
        return 0
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def _hms(seconds: int) -> str:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def from_sacct(job_id: str) -> JobState | None:
    rows, source = sacct_rows(job_id)
    if not rows:
        job = JobState(job_id, source="")
        job.notes.append(f"sacct: {source}")
        return job
    last = rows[-1]
    _, name, state, elapsed, _start, _end, nodes, exit_code = last[:8]
    job = JobState(job_id, name, state.split()[0], elapsed=elapsed, nodes=nodes)
    job.exit_code = exit_code
    job.restarts = len(rows) - 1  # earlier runs end as REQUEUED (accounting) or PENDING (jobcomp)
    job.elapsed_total = _hms(sum(_seconds(r[3]) for r in rows))
    job.source = source
    return job


def job_state(job_id: str) -> JobState:
    """From the queue while the job is in it, else from sacct, else what the controller still
    remembers of a finished job (MinJobAge), else UNKNOWN with the reason."""
    queued = from_queue(job_id)
    if queued is not None:
        return queued
    job = from_sacct(job_id)
    if job is not None and job.source:
        return job
    f = scontrol_fields(job_id)
    if f is not None:  # finished, not in accounting, still in the controller's memory
        remembered = JobState(
            job_id,
            f.get("JobName", ""),
            f.get("JobState", "UNKNOWN"),
            f.get("Reason", ""),
            restarts=int(f.get("Restarts", "0") or 0),
            elapsed=f.get("RunTime", ""),
            time_limit=f.get("TimeLimit", ""),
            nodes=f.get("NodeList", ""),
            exit_code=f.get("ExitCode", ""),
            log=f.get("StdOut", ""),
            source="scontrol (the controller forgets finished jobs after MinJobAge)",
        )
        return remembered
    unknown = JobState(job_id)
    why = "; ".join(job.notes) if job is not None else ""
    unknown.notes.append(
        f"not in the queue, and SLURM keeps no record of it ({why.removeprefix('sacct: ')}): "
        "if it ran here its final state is unknown (a site without slurmdbd can keep one with "
        "JobCompType=jobcomp/filetxt); the log and the experiment tell where it stands"
    )
    return unknown


# ---- the experiment's progress -----------------------------------------------------------------


def planned_trials(exp: Path) -> int | None:
    """Trials the experiment's saved plan holds (configurations x seeds, from ``launch.json``);
    None if it cannot be read or predates saved plans."""
    from sparsity_tune.keys import ConfigError
    from sparsity_tune.sweep.plan import saved_trials
    from sparsity_tune.sweep.state import LaunchRecord

    try:
        record = LaunchRecord.load(exp)
    except ConfigError:
        return None
    return saved_trials(record.plan) if record is not None and record.plan else None


def progress(experiment: str) -> str:
    """``3 of 4 trials finished, 1 unfinished`` (from the trial files of EXPERIMENT)."""
    if "://" in experiment:
        return f"{experiment} (on {experiment.split('://')[0]}://: progress not read here)"
    exp = Path(experiment)
    if not exp.is_dir():
        return f"{experiment}: not created yet (the job has not started the sweep)"
    counts = Counter(layout.trial_status(p.parent) for p in exp.glob(f"*/{layout.CONFIG}"))
    counts["unfinished"] = counts.pop(layout.RUNNING, 0) + counts.pop(layout.NOT_STARTED, 0)
    seen = sum(counts.values())
    planned = planned_trials(exp)
    done = counts["finished"] + counts["stopped"]
    head = f"{done} of {planned if planned is not None else '?'} trials finished"
    parts = []
    if counts["stopped"]:
        parts.append(f"{counts['stopped']} of them stopped early by the scheduler")
    if counts["unfinished"]:
        parts.append(f"{counts['unfinished']} unfinished")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if planned is not None and planned > seen:
        parts.append(f"{planned - seen} not started")
    return f"{experiment}: " + ", ".join([head, *parts])


# ---- printing ----------------------------------------------------------------------------------


def describe(job: JobState, card: dict[str, str]) -> str:
    name = job.name or (f"st-{card['name']}" if card.get("name") else "")
    head = f"job {job.job_id}" + (f" ({name})" if name else "") + f": {job.state}"
    if job.reason and job.reason not in ("None", "(null)") and job.state != "RUNNING":
        head += f" ({job.reason})"
    if job.exit_code and job.state not in ACTIVE:
        head += f", exit code {job.exit_code}"
    if job.restarts:
        head += f", requeued {job.restarts} time(s)"
    lines = [head]
    if job.elapsed:
        elapsed = f"{job.elapsed} this run"
        if job.elapsed_total and job.restarts:
            elapsed += f", {job.elapsed_total} in all"
        if job.time_limit:
            elapsed += f"; time limit {job.time_limit}"
        lines.append(f"  elapsed     {elapsed}")
    if job.nodes and job.nodes != "(null)":
        lines.append(f"  nodes       {job.nodes}")
    log = card.get("log") or job.log
    if log:
        lines.append(f"  log         {log}" + ("" if Path(log).exists() else " (not written yet)"))
    if card.get("experiment"):
        lines.append(f"  experiment  {progress(card['experiment'])}")
    else:
        lines.append("  experiment  unknown (not submitted with sparsity-tune from this account)")
    if job.source:
        lines.append(f"  from        {job.source}")
    lines += [f"  note        {n}" for n in job.notes]
    return "\n".join(lines)


def main(job_ids: list[str]) -> int:
    try:
        for jid in job_ids:
            if not re.fullmatch(r"\d+", jid):
                print(
                    f"error: job id {jid!r}: use the number sbatch printed, e.g. 123456",
                    file=sys.stderr,
                )
                return 2
        cluster = cluster_name()
        if not job_ids:
            mine = _run(["squeue", "--me", "-h", "-o", "%i|%j"]).stdout.splitlines()
            active = [r.split("|")[0] for r in mine if "|st-" in r]
            recent = [c["job_id"] for c in recent_cards(cluster) if c.get("job_id")]
            job_ids = list(dict.fromkeys([*active, *recent]))
            if not job_ids:
                print(f"no sparsity-tune jobs queued, running or submitted in {RECENT_DAYS} days")
                return 0
        blocks = [describe(job_state(jid), read_card(jid, cluster)) for jid in job_ids]
    except NoSlurm as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(blocks))
    return 0
