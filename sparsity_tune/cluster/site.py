"""A site's SLURM defaults (partition, account, modules, environment activation, extra
``#SBATCH`` lines): a YAML file the user keeps (``--site FILE``, ``$SPARSITY_TUNE_SLURM_SITE`` or
``~/.config/sparsity-tune/slurm.yaml``), validated with pydantic (:class:`SiteConfig`). Every
value that reaches the batch script is checked here first (no control characters, SLURM's own
formats), since the script is shell: a newline in a partition name would be a shell line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparsity_tune import safe_yaml
from sparsity_tune.keys import ConfigError, control_chars

SITE_ENV = "SPARSITY_TUNE_SLURM_SITE"
SITE_DOC = "slurm/README.md ('What to change for a site')"
PORT_SPAN = 200  # ports per job: the template's PORT_SPAN
# Full-match patterns (re.fullmatch: `$` would also accept a trailing newline).
_SLURM_NAMES = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")  # partition, account, qos
_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}")  # minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_MEM = re.compile(r"\d+[KMGTkmgt]?")
_MODULE = re.compile(r"[A-Za-z0-9_.+/@:-]+")
# Paths that go into #SBATCH lines, which sbatch does not unquote: keep them plain.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./~+@%:=,-]+")


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


def default_site_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sparsity-tune" / "slurm.yaml"


def format_site_error(err: ValidationError) -> str:
    """One line per problem: the key, the value given and what is allowed; unknown keys point to
    the site keys' documentation (not the spec keys of docs/config.md)."""
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
