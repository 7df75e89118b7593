"""Submit a sweep to SLURM: ``python -m sparsity_tune.slurm submit SPEC.yaml [--nodes N] ...``.

One SLURM job = one Ray cluster = one sweep. The batch script is rendered from
``ray_sweep.sbatch.tmpl`` (package data beside this module): one Ray node per allocated node
(each an ``srun`` step run by :mod:`sparsity_tune.cluster.node`), ports from the job id, a private
temp dir per node and a token per job, then ``python -m sparsity_tune.launch SPEC --address
HEAD:PORT --storage DIR``. SLURM's warning signal or its SIGTERM makes the sweep save its state;
the job requeues and the next run resumes.

A site's defaults (partition, account, modules, environment activation, extra ``#SBATCH`` lines)
live in a YAML file the user keeps (``--site FILE``, ``$SPARSITY_TUNE_SLURM_SITE`` or
``~/.config/sparsity-tune/slurm.yaml``), validated here with pydantic; command-line flags win.
Every value that reaches the script is checked first (no control characters, SLURM's own
formats), since the script is shell: a newline in a partition name would be a shell line.
``sbatch --test-only`` checks a request against the cluster before it is queued, so an impossible
one (no such partition, more nodes than exist) fails at once with exit status 2.

Other subcommands: ``status [JOBID...]`` (:mod:`sparsity_tune.cluster.status`) and
``cancel JOBID...`` (``scancel``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparsity_tune import layout, safe_yaml
from sparsity_tune.keys import ConfigError, add_set_option, control_chars, format_validation_error

TEMPLATE = Path(__file__).resolve().parent / "ray_sweep.sbatch.tmpl"  # package data
SITE_ENV = "SPARSITY_TUNE_SLURM_SITE"
SITE_DOC = "slurm/README.md ('What to change for a site')"
PORT_SPAN = 200  # ports per job: the template's PORT_SPAN
_FIELD = re.compile(r"\{\{([a-z_]+)\}\}")
# Full-match patterns (re.fullmatch: `$` would also accept a trailing newline).
_SLURM_NAMES = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")  # partition, account, qos
_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}")  # minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_MEM = re.compile(r"\d+[KMGTkmgt]?")
_MODULE = re.compile(r"[A-Za-z0-9_.+/@:-]+")
# Paths that go into #SBATCH lines, which sbatch does not unquote: keep them plain.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./~+@%:=,-]+")
_UNSET_VAR = re.compile(r"\$(\{)?([A-Za-z_][A-Za-z0-9_]*)")


def plain_text(what: str, value: str) -> str:
    """VALUE if it holds no control characters; else a ConfigError naming them."""
    bad = control_chars(value)
    if bad:
        raise ConfigError(
            f"{what} {value!r}: holds control characters ({', '.join(bad)}); it goes into the "
            "batch script, use plain text on one line"
        )
    return value


def _check(pattern: re.Pattern[str], value: str, allowed: str) -> str:
    if control_chars(value):
        raise ValueError(f"holds control characters; use {allowed}")
    if not pattern.fullmatch(value):
        raise ValueError(f"use {allowed}")
    return value


ALLOWED = {
    "name": "letters, digits and _.+- (it becomes a directory and the job name)",
    "slurm_name": "letters, digits and _.- (several: comma-separated, e.g. gpu,gpu-long)",
    "time": "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00)",
    "mem": "a number with an optional unit K, M, G or T (e.g. 64G)",
    "module": "a module name such as python/3.11 (letters, digits and _.+/@:-)",
}


class SiteConfig(BaseModel):
    """A site's defaults; every field is optional. See slurm/site.example.yaml."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = Field(None, description="default --time, e.g. 04:00:00 or 1-00:00:00")
    cpus_per_node: int | None = Field(None, ge=1, description="default: whole nodes (--exclusive)")
    gpus_per_node: int = Field(0, ge=0)
    gpu_request: Literal["gpus-per-node", "gres"] = Field(
        "gpus-per-node", description="how to ask for GPUs: --gpus-per-node=G or --gres=gpu:G"
    )
    mem: str | None = Field(None, description="--mem per node, e.g. 64G (default: site default)")
    modules: list[str] = Field(default_factory=list, description="`module load` these, in order")
    setup: list[str] = Field(
        default_factory=list, description="shell lines run before Ray starts (e.g. activate a venv)"
    )
    sbatch: list[str] = Field(
        default_factory=list, description="extra sbatch options, e.g. --constraint=a100"
    )
    python: str | None = Field(None, description="interpreter on the nodes (default: this one)")
    storage: str | None = Field(None, description="shared results directory (default ./results)")
    log_dir: str | None = Field(None, description="job logs (default STORAGE/slurm)")
    signal_seconds: int = Field(
        300, ge=10, le=65535, description="USR1 this long before the time limit"
    )
    port_base: int = Field(20000, ge=1024, le=65000)
    port_slots: int = Field(60, ge=1)
    worker_ports: Literal["block", "random"] = Field(
        "block",
        description="worker nodes use the job's port block, or ports Ray picks (several Ray "
        "nodes on one host)",
    )
    ray_tmp_root: str | None = Field(
        None,
        description="node-local root of Ray's per-node temp dir (default: $TMPDIR if short, "
        "else /tmp)",
    )
    ray_start_timeout: int = Field(300, ge=10, description="seconds to wait for all Ray nodes")
    template: str | None = Field(None, description="your own copy of ray_sweep.sbatch.tmpl")

    @field_validator("partition", "account", "qos")
    @classmethod
    def _slurm_name(cls, v: str | None) -> str | None:
        return None if v is None else _check(_SLURM_NAMES, v, ALLOWED["slurm_name"])

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        return None if v is None else _check(_TIME, v, ALLOWED["time"])

    @field_validator("mem")
    @classmethod
    def _mem(cls, v: str | None) -> str | None:
        return None if v is None else _check(_MEM, v, ALLOWED["mem"])

    @field_validator("modules")
    @classmethod
    def _modules(cls, v: list[str]) -> list[str]:
        for m in v:
            _check(_MODULE, m, ALLOWED["module"])
        return v

    @field_validator("setup")
    @classmethod
    def _setup(cls, v: list[str]) -> list[str]:
        for line in v:
            if control_chars(line):
                raise ValueError(
                    f"{line!r} holds control characters ({', '.join(control_chars(line))}); "
                    "write one shell line per entry"
                )
        return v

    @field_validator("sbatch")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for opt in v:
            if control_chars(opt):
                raise ValueError(f"{opt!r} holds control characters; one option per entry")
            if not opt.startswith("-"):
                raise ValueError(f"{opt!r} is not an sbatch option; write e.g. --constraint=a100")
        return v

    @field_validator("python", "storage", "log_dir", "template")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        if v is not None and control_chars(v):
            raise ValueError(f"{v!r} holds control characters; write a plain path")
        return v

    @field_validator("ray_tmp_root")
    @classmethod
    def _short_tmp(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if control_chars(v) or not _PLAIN_PATH.fullmatch(v):
            raise ValueError(f"{v!r}: write a plain absolute path, e.g. /tmp")
        if len(v) > 18:
            raise ValueError(
                f"{v!r} is {len(v)} characters; Ray's unix sockets under it must fit in 107 "
                "bytes, so keep it to 18 (e.g. /tmp)"
            )
        return v

    @model_validator(mode="after")
    def _ports_fit(self) -> SiteConfig:
        top = self.port_base + self.port_slots * PORT_SPAN - 1
        if top > 65535:
            raise ValueError(
                f"port_base {self.port_base} + port_slots {self.port_slots} x {PORT_SPAN} ports "
                f"reaches port {top}, past 65535; lower port_slots to at most "
                f"{(65536 - self.port_base) // PORT_SPAN}"
            )
        return self


class JobRequest(BaseModel):
    """A resolved submission: everything the template needs."""

    spec: Path
    name: str
    nodes: int = Field(1, ge=1)
    cpus_per_node: int | None = Field(None, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    storage: str
    log_dir: Path
    workdir: Path
    launch_args: list[str] = Field(default_factory=list)
    resume_command: str = ""


def default_site_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sparsity-tune" / "slurm.yaml"


def format_site_error(err: ValidationError) -> str:
    """One line per problem: the key, the value given and what is allowed; unknown keys point to
    the site keys' documentation (not the spec keys of the main README)."""
    lines = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            known = ", ".join(SiteConfig.model_fields)
            lines.append(f"{key}: unknown site key (see {SITE_DOC}); the keys are: {known}")
        elif e["type"] == "literal_error":
            lines.append(f"{key}={e.get('input')!r} is not allowed; {msg.lower()}")
        elif key and "input" in e and not isinstance(e["input"], dict):
            lines.append(f"{key}={e['input']!r}: {msg}")
        else:
            lines.append(f"{key}: {msg}" if key else msg)
    return "\n".join(lines)


def load_site(path: str | Path | None = None) -> SiteConfig:
    """The site config from PATH, else $SPARSITY_TUNE_SLURM_SITE, else the user file (optional)."""
    explicit = path or os.environ.get(SITE_ENV)
    p = Path(explicit).expanduser() if explicit else default_site_path()
    if not p.is_file():
        if explicit:
            raise ConfigError(f"site config {p}: no such file (copy slurm/site.example.yaml)")
        return SiteConfig()
    try:
        data = safe_yaml.read_file(p)
    except (safe_yaml.YamlInputError, OSError) as err:
        raise ConfigError(f"site config {p}: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"site config {p}: the top level must be a mapping of settings")
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"site config {p}:\n" + format_site_error(err)) from None


def _plain_path(what: str, path: str) -> str:
    plain_text(what, path)
    if not _PLAIN_PATH.fullmatch(path):
        raise ConfigError(
            f"{what} {path!r}: use a path without spaces or shell characters "
            "(it goes into #SBATCH lines, which sbatch does not unquote)"
        )
    return path


def expand_path(what: str, path: str) -> Path:
    """``~`` and ``$VARS`` expanded; a variable that is not set is an error that names it."""
    plain_text(what, path)
    expanded = os.path.expandvars(path)
    unset = _UNSET_VAR.search(expanded)
    if unset:
        var = unset.group(2)
        raise ConfigError(
            f"{what} {path!r}: ${var} is not set in this environment; set it (export {var}=...) "
            "or write the path out"
        )
    return Path(expanded).expanduser().resolve()


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


def render(req: JobRequest, site: SiteConfig) -> str:
    """The batch script for REQ: the template with every double-brace field filled."""
    q = shlex.quote
    res = []
    if req.cpus_per_node:
        res.append(f"#SBATCH --cpus-per-task={req.cpus_per_node}")
    else:
        res.append("#SBATCH --exclusive")
    if req.gpus_per_node:
        if site.gpu_request == "gres":
            res.append(f"#SBATCH --gres=gpu:{req.gpus_per_node}")
        else:
            res.append(f"#SBATCH --gpus-per-node={req.gpus_per_node}")
    if site.mem:
        res.append(f"#SBATCH --mem={site.mem}")
    lines = []
    for opt, value in (
        ("partition", req.partition),
        ("account", req.account),
        ("qos", site.qos),
        ("time", req.time),
    ):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines += [f"#SBATCH {opt}" for opt in site.sbatch]
    setup = [f"module load {q(m)}" for m in site.modules] + list(site.setup)
    python = plain_text("site config python", site.python or sys.executable)
    fields = {
        "job_name": f"st-{req.name}",
        "nodes": str(req.nodes),
        "resource_lines": "\n".join(res),
        "site_lines": "\n".join(lines),
        "setup_lines": "\n".join(setup) if setup else ":  # (none)",
        "log_dir": str(req.log_dir),
        "log_dir_q": q(str(req.log_dir)),
        "workdir": str(req.workdir),
        "signal_seconds": str(site.signal_seconds),
        "python": q(python),
        "spec": q(str(req.spec)),
        "storage": q(req.storage),
        "experiment_dir": q(layout.experiment_path(req.storage, req.name)),
        "launch_args": " ".join(q(a) for a in req.launch_args),
        "resume_command": q(req.resume_command),
        "ray_tmp_root": q(site.ray_tmp_root or ""),
        "port_base": str(site.port_base),
        "port_slots": str(site.port_slots),
        "ray_start_timeout": str(site.ray_start_timeout),
        "worker_ports": site.worker_ports,
    }
    path = expand_path("site config template", site.template) if site.template else TEMPLATE
    if not path.is_file():
        raise ConfigError(f"template {path}: no such file (set template: in the site config)")
    text = path.read_text()
    missing = sorted({m for m in _FIELD.findall(text) if m not in fields})
    if missing:
        raise ConfigError(f"template {path}: unknown fields {missing}; known: {sorted(fields)}")
    return _FIELD.sub(lambda m: fields[m.group(1)], text)


def write_private(path: Path, text: str) -> None:
    """Write TEXT to a new file only the user can read (site setup lines may hold secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


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
