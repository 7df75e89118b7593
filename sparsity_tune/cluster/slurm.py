"""Submit a sweep to SLURM: ``python -m sparsity_tune.slurm submit SPEC.yaml [--nodes N] ...``.

One SLURM job = one Ray cluster = one sweep: the batch script is rendered by
:mod:`sparsity_tune.cluster.render` from the site's defaults (:mod:`sparsity_tune.cluster.site`);
command-line flags win over them. SLURM's warning signal or its SIGTERM makes the sweep save its
state; the job requeues and the next run resumes. ``sbatch --test-only`` checks a request against
the cluster before it is queued, so an impossible one (no such partition, more nodes than exist)
fails at once with exit status 2.

Other subcommands: ``status [JOBID...]`` (:mod:`sparsity_tune.cluster.status`) and
``cancel JOBID...`` (``scancel``).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from sparsity_tune import layout
from sparsity_tune.cluster.render import (
    JobRequest,
    _plain_path,
    expand_path,
    plain_text,
    render,
    write_private,
)
from sparsity_tune.cluster.site import _SLURM_NAMES, _TIME, ALLOWED, SITE_ENV, SiteConfig, load_site
from sparsity_tune.keys import ConfigError, add_set_option, format_validation_error


def _resolve_storage(what: str, storage: str) -> str:
    return plain_text(what, storage) if "://" in storage else str(expand_path(what, storage))


def _flag(what: str, value: str | None, pattern: re.Pattern[str], allowed: str) -> str | None:
    if value is None:
        return None
    plain_text(what, value)
    if not pattern.fullmatch(value):
        raise ConfigError(f"{what} {value!r}: use {allowed}")
    return value


def build_request(args: argparse.Namespace, site: SiteConfig) -> JobRequest:
    """Merge flags over site defaults and validate everything now, not in the queue."""
    from sparsity_tune.sweep import resolve

    for kv in args.overrides:
        plain_text("--set", kv)
    spec_path = Path(plain_text("spec", args.spec)).expanduser().resolve()
    # the plan the job's launcher will resolve again on the nodes: refused here, not in the queue
    name = resolve.from_file(str(spec_path), args.overrides, name=args.name).plan.name
    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes}: ask for at least 1 node")
    cpus = args.cpus_per_node if args.cpus_per_node is not None else site.cpus_per_node
    if cpus is not None and cpus < 1:
        raise ConfigError(
            f"--cpus-per-node {cpus}: ask for at least 1 CPU per node, or leave the option out "
            "to get whole nodes (--exclusive)"
        )
    gpus = args.gpus_per_node if args.gpus_per_node is not None else site.gpus_per_node
    if gpus < 0:
        raise ConfigError(f"--gpus-per-node {gpus}: use 0 or more")
    storage = _resolve_storage("--storage", args.storage) if args.storage else None
    if storage is None:
        storage = _resolve_storage("site config storage", site.storage or "results")
    if site.log_dir:
        log_dir = expand_path("site config log_dir", site.log_dir)
    elif "://" in storage:
        raise ConfigError(
            f"--storage {storage}: a URI; set log_dir in the site config for job logs"
        )
    else:
        log_dir = Path(storage) / "slurm"
    _plain_path("log directory", str(log_dir))
    workdir = Path.cwd()
    _plain_path("working directory", str(workdir))
    time_limit = _flag("--time", args.time, _TIME, ALLOWED["time"]) or site.time
    partition = _flag("--partition", args.partition, _SLURM_NAMES, ALLOWED["slurm_name"])
    account = _flag("--account", args.account, _SLURM_NAMES, ALLOWED["slurm_name"])
    launch_args = [a for kv in args.overrides for a in ("--set", kv)]
    if args.name:
        launch_args += ["--name", args.name]
    if args.no_wandb:
        launch_args.append("--no-wandb")
    resume = [sys.executable, "-m", "sparsity_tune.slurm", "submit", str(spec_path)]
    resume += ["--storage", storage, *launch_args, "--resume"]
    try:
        return JobRequest(
            spec=spec_path,
            name=name,
            nodes=args.nodes,
            cpus_per_node=cpus,
            gpus_per_node=gpus,
            partition=partition or site.partition,
            account=account or site.account,
            time=time_limit,
            storage=storage,
            log_dir=log_dir,
            workdir=workdir,
            launch_args=launch_args,
            resume_command=shlex.join(resume),
        )
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


# ---- talking to SLURM ---------------------------------------------------------------------------


class SlurmError(Exception):
    """SLURM refused or is unreachable; the message says what to do."""


def run_slurm(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise SlurmError(f"{cmd[0]}: not found; run this on a SLURM login node")
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def _reword(stderr: str, req: JobRequest) -> str:
    """sbatch's error in words that say which request to change."""
    err = stderr.strip()
    low = err.lower()
    if "invalid partition" in low:
        parts = [p.rstrip("*") for p in run_slurm(["sinfo", "-h", "-o", "%P"]).stdout.split()]
        return (
            f"no partition named {req.partition!r} on this cluster; "
            f"pick one of: {', '.join(parts) or '(none)'} (--partition or partition: in the site "
            f"config)"
        )
    if "node count specification invalid" in low or "requested node configuration" in low:
        return (
            f"the cluster cannot give {req.nodes} node(s) with "
            f"{req.cpus_per_node or 'all'} CPUs and {req.gpus_per_node} GPUs each"
            f"{' in partition ' + req.partition if req.partition else ''}; "
            f"ask for fewer (`sinfo -N -l` lists nodes and their sizes)"
        )
    if "generic resource" in low or "gres" in low:
        return (
            f"--gpus-per-node {req.gpus_per_node}: no node here has GPUs SLURM can give "
            "(`sinfo -o '%P %G'` lists each partition's GPUs); pick a GPU partition, or set "
            "gpu_request: gres in the site config if the site wants --gres=gpu:N"
        )
    if "time limit" in low:
        return f"--time {req.time}: over the partition's limit (`sinfo -o '%P %l'` shows them)"
    if "invalid account" in low:
        return f"account {req.account!r} is not yours here (`sacctmgr show assoc user=$USER`)"
    return err or "sbatch failed without a message"


def _partition_nodes(partition: str | None) -> tuple[str, int] | None:
    """(partition, node count) as sinfo sees it; the default partition when none is given."""
    out = run_slurm(["sinfo", "-h", "-o", "%P %D"]).stdout.split("\n")
    total: dict[str, int] = {}
    default = None
    for line in out:
        if not line.strip():
            continue
        part, count = line.split()
        if part.endswith("*"):
            part = part[:-1]
            default = part
        total[part] = total.get(part, 0) + int(count)
    name = partition or default
    if name is None or name not in total:
        return None
    return name, total[name]


def preflight(script: Path, req: JobRequest) -> None:
    """Refuse a request the cluster can never run, instead of leaving it pending forever."""
    found = _partition_nodes(req.partition)
    if req.partition and found is None:
        raise SlurmError(_reword("invalid partition", req))
    if found is not None and req.nodes > found[1]:
        raise SlurmError(
            f"--nodes {req.nodes}: partition {found[0]!r} has only {found[1]} node(s); "
            "ask for fewer"
        )
    test = run_slurm(["sbatch", "--test-only", str(script)])
    if test.returncode != 0:
        raise SlurmError(_reword(test.stderr, req))


def submit(req: JobRequest, site: SiteConfig, resume: bool) -> int:
    from ray.tune import Tuner

    from sparsity_tune.cluster import status

    exp = layout.experiment_path(req.storage, req.name)
    if Tuner.can_restore(exp) and not resume:
        raise ConfigError(
            f"{exp} already holds experiment {req.name!r}; add --resume to continue it, or pick "
            "another --name (or delete the directory to start over)"
        )
    text = render(req, site)
    req.log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    script = req.log_dir / f"st-{req.name}-{stamp}.sbatch"
    n = 1
    while script.exists():
        n += 1
        script = req.log_dir / f"st-{req.name}-{stamp}-{n}.sbatch"
    write_private(script, text)
    try:
        preflight(script, req)
        out = run_slurm(["sbatch", "--parsable", str(script)])
        if out.returncode != 0:
            raise SlurmError(_reword(out.stderr, req))
    except SlurmError:
        script.unlink()  # nothing was queued: leave no script behind
        raise
    job_id = out.stdout.strip().split(";")[0]
    log = req.log_dir / f"st-{req.name}-{job_id}.out"
    status.record_job(
        job_id,
        {
            "name": req.name,
            "experiment": exp,
            "log": str(log),
            "script": str(script),
            "spec": str(req.spec),
            "storage": req.storage,
            "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(f"submitted job {job_id}")
    print(f"  script      {script}")
    print(f"  log         {log}")
    print(f"  experiment  {exp}")
    print(f"  follow      tail -f {log}")
    print(f"  status      python -m sparsity_tune.slurm status {job_id}")
    print(f"  cancel      python -m sparsity_tune.slurm cancel {job_id}")
    print(f"  analyse     python -m analysis {exp}")
    return 0


def cancel(job_ids: list[str]) -> int:
    for jid in job_ids:
        if not re.fullmatch(r"\d+(_\d+)?", jid):
            raise ConfigError(f"job id {jid!r}: use the number sbatch printed, e.g. 123456")
    out = run_slurm(["scancel", *job_ids])
    if out.returncode != 0:
        raise SlurmError(out.stderr.strip() or f"scancel {' '.join(job_ids)} failed")
    print(
        f"cancelled {' '.join(job_ids)}: each sweep saves its state first; continue one with "
        "`python -m sparsity_tune.slurm submit SPEC --resume` (same --name and --storage)"
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m sparsity_tune.slurm",
        description="Run a sweep as a SLURM job with its own Ray cluster (see slurm/README.md).",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit", help="render the batch script and sbatch it")
    s.add_argument("spec", help="search-space YAML, e.g. search_spaces/cnn.yaml")
    s.add_argument("--nodes", type=int, default=1, help="nodes; one Ray node each (default 1)")
    s.add_argument("--gpus-per-node", type=int, help="GPUs per node (default: site, else 0)")
    s.add_argument("--cpus-per-node", type=int, help="CPUs per node (default: site, else whole)")
    s.add_argument("--partition", help="SLURM partition (default: site, else SLURM's default)")
    s.add_argument("--time", help="time limit, e.g. 04:00:00 (default: site, else partition's)")
    s.add_argument("--account", help="account to charge (default: site)")
    s.add_argument("--storage", help="shared results directory (default: site, else ./results)")
    s.add_argument("--site", help=f"site config YAML (default: ${SITE_ENV} or ~/.config/...)")
    s.add_argument("--name", help="experiment name (default: the spec's name)")
    add_set_option(s, "override a spec key, passed on to launch (repeatable)")
    s.add_argument("--no-wandb", action="store_true", help="do not write W&B runs")
    s.add_argument("--resume", action="store_true", help="continue an existing experiment")
    s.add_argument("--dry-run", action="store_true", help="print the batch script; submit nothing")
    st = sub.add_parser(
        "status",
        help="state, restarts, elapsed time, log and trials done of these jobs (default: yours)",
    )
    st.add_argument("job_ids", nargs="*")
    c = sub.add_parser("cancel", help="scancel these jobs (each sweep saves its state first)")
    c.add_argument("job_ids", nargs="+")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.cmd == "status":
            from sparsity_tune.cluster import status

            return status.main(args.job_ids)
        if args.cmd == "cancel":
            return cancel(args.job_ids)
        site = load_site(args.site)
        req = build_request(args, site)
        if args.dry_run:
            print(render(req, site), end="")
            return 0
        return submit(req, site, args.resume)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SlurmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
