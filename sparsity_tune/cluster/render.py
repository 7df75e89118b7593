"""The batch script of one submission: ``ray_sweep.sbatch.tmpl`` (package data beside this
module) with every double-brace field filled from a :class:`JobRequest` and the site config.

One SLURM job = one Ray cluster = one sweep: one Ray node per allocated node (each an ``srun``
step run by :mod:`sparsity_tune.cluster.node`), ports from the job id, a private temp dir per node
and a token per job, then ``python -m sparsity_tune.launch SPEC --address HEAD:PORT --storage
DIR``. Values are quoted for the shell; paths in ``#SBATCH`` lines must be plain.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from sparsity_tune import layout
from sparsity_tune.cluster.site import _PLAIN_PATH, SiteConfig
from sparsity_tune.keys import ConfigError, control_chars

TEMPLATE = Path(__file__).resolve().parent / "ray_sweep.sbatch.tmpl"  # package data
_FIELD = re.compile(r"\{\{([a-z_]+)\}\}")
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
