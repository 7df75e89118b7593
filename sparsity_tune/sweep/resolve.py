"""The command line (plus a spec file, or an experiment's ``launch.json``) → what a launch runs."""

from __future__ import annotations

import argparse
import copy
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsity_tune import layout
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep import state
from sparsity_tune.sweep.plan import Plan
from sparsity_tune.sweep.spec import Spec
from sparsity_tune.sweep.state import LaunchRecord
from sparsity_tune.sweep.validate import load_spec, validate_spec
from sparsity_tune.trial.config import ConfigError, check_name, parse_overrides, set_dotted


@dataclass
class Request:
    """What this command line asks for, validated (nothing written yet)."""

    spec: Spec
    storage: str
    exp: str
    spec_file: str
    overrides: list[str]
    from_experiment_dir: bool = False  # `launch EXPERIMENT_DIR --resume`

    @property
    def local(self) -> bool:
        return "://" not in self.exp


def _absolute_root(spec: Spec) -> Spec:
    root = Path(spec.dataset.root)
    if root.is_absolute():  # trials run in their own working directory
        return spec
    return spec.model_copy(
        update={"dataset": spec.dataset.model_copy(update={"root": str(root.resolve())})}
    )


def request(args: argparse.Namespace) -> Request:
    """Validate the command line (no file is written); raise ConfigError otherwise."""
    overrides = parse_overrides(args.overrides)
    given = Path(args.spec).expanduser()
    if given.is_dir():
        if not args.resume:
            raise ConfigError(
                f"{args.spec} is a directory; to continue the experiment in it: "
                f"python -m sparsity_tune.launch {shlex.quote(args.spec)} --resume"
            )
        exp = given.resolve()
        record = LaunchRecord.load(exp)
        if record is None:
            raise ConfigError(
                f"{exp}: no {layout.LAUNCH} (not an experiment directory, or one made by an older "
                f"version): resume it with its spec file, --name and --storage instead"
            )
        if args.name and args.name != exp.name:
            raise ConfigError(f"--name {args.name!r} differs from the experiment's {exp.name!r}")
        data = dict(record.spec)
        for key, value in overrides.items():
            set_dotted(data, key, value)
        spec = validate_spec(data, f"{exp}/{layout.LAUNCH}")
        return Request(
            spec, str(exp.parent), str(exp), record.spec_file, list(args.overrides), True
        )
    spec = load_spec(args.spec, overrides)
    if args.name:
        spec = spec.model_copy(update={"name": check_name(args.name, "--name")})
    check_name(spec.name)
    if args.address is None:
        check_local_resources(spec)
    storage = args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    exp = layout.experiment_path(args.storage, spec.name)
    return Request(_absolute_root(spec), storage, exp, str(given.resolve()), list(args.overrides))


def check_local_resources(spec: Spec) -> None:
    """A sweep on this machine whose trials ask for more CPUs or GPUs than it has would wait
    forever in Ray's queue: refuse it before anything is written."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    want = spec.resources
    if want.cpu > (cpus or 1):
        raise ConfigError(
            f"resources.cpu={want.cpu:g}: each trial asks for more CPUs than this machine gives "
            f"this process ({cpus}); allowed: up to {cpus} (fractions pack several trials), or "
            f"run on a cluster with --address"
        )
    if want.gpu > 0:
        import torch

        gpus = torch.cuda.device_count()
        if want.gpu > gpus:
            raise ConfigError(
                f"resources.gpu={want.gpu:g}: this machine has {gpus} CUDA GPU(s); allowed: "
                f"up to {gpus} (0 to train on the CPU), or run on a cluster with --address"
            )


def resume_command(exp: str, address: str | None, use_wandb: bool) -> str:
    """The exact command that continues this experiment (runnable from any directory)."""
    cmd = ["python", "-m", "sparsity_tune.launch", exp, "--resume"]
    if address:
        cmd += ["--address", address]
    if not use_wandb:
        cmd.append("--no-wandb")
    return shlex.join(cmd)


def resumed_spec(
    record: LaunchRecord, req: Request, address: str | None, use_wandb: bool
) -> tuple[dict[str, Any], list[state.Difference]]:
    """The saved spec of ``record`` with this command's allowed differences applied (what a
    resume runs), and those differences; ConfigError naming every key that would change
    results."""
    diffs = state.resume_differences(record.spec, state.spec_data(req.spec))
    refused = [d for d in diffs if d.allowed_because is None]
    if refused:
        allowed = ", ".join(state.ALLOWED_ON_RESUME)
        raise ConfigError(
            f"--resume: {len(refused)} key(s) differ from how {req.spec.name!r} was started "
            f"and can change results:\n  "
            + "\n  ".join(str(d) for d in refused)
            + f"\nA resumed experiment runs as it was started. Continue it with:\n  "
            f"{resume_command(req.exp, address, use_wandb)}\n"
            f"(keys that may change on resume: {allowed}, resources.cpu, and resources.gpu "
            f"while the trials stay on the same kind of device), or start a new experiment "
            f"with another --name."
        )
    data = copy.deepcopy(record.spec)
    for d in diffs:
        set_dotted(data, d.key, d.given)
    return data, diffs


def resumed_plan(
    record: LaunchRecord, req: Request, address: str | None, use_wandb: bool
) -> tuple[Plan, list[state.Difference]]:
    """The plan a ``--resume`` runs: the record's spec with this command's allowed differences
    (:func:`resumed_spec`), refused where it no longer resolves into the saved plan."""
    data, diffs = resumed_spec(record, req, address, use_wandb)
    where = f"{req.exp}/{layout.LAUNCH}"
    plan = planner.from_record(
        data, where, req.exp, req.storage, address=address, use_wandb=use_wandb
    )
    planner.check_saved(record.plan, plan, where)
    return plan, diffs


def dry_run_plan(req: Request, args: argparse.Namespace) -> Plan:
    """The plan this command would run: with ``--resume``, the saved one (nothing is locked or
    written)."""
    use_wandb = not args.no_wandb
    record = LaunchRecord.load(Path(req.exp)) if args.resume and req.local else None
    if record is None:
        return planner.build(
            req.spec, req.exp, req.storage, address=args.address, use_wandb=use_wandb
        )
    return resumed_plan(record, req, args.address, use_wandb)[0]
