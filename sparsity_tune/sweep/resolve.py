"""The command line plus a spec file (or an experiment's ``launch.json``) → exactly one Plan.

The spec is read and validated once (:mod:`sparsity_tune.sweep.validate`), and the plan is built
once from it (:func:`sparsity_tune.sweep.plan.build`, reusing the base config the validation
built); the :class:`Request` carries that plan, and nothing downstream reads the spec again.
``--resume`` compares the plan with the saved one by the plan's own split
(:func:`check_resume`): its results must match, its runtime settings may differ and are logged.
No file is written here, and nothing imports Ray.
"""

from __future__ import annotations

import argparse
import copy
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsity_tune import layout, machine
from sparsity_tune.keys import ConfigError, check_name, parse_overrides, set_dotted
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep import state, validate
from sparsity_tune.sweep.plan import Plan
from sparsity_tune.sweep.state import LaunchRecord
from sparsity_tune.trial.config import TrialConfig


@dataclass
class Request:
    """What this command line asks for: the one :class:`Plan` it runs, and where that came from
    (the validated spec as plain data, its file, the ``--set`` values). Nothing written yet."""

    plan: Plan
    spec: dict[
        str, Any
    ]  # the validated spec as plain data (state.spec_data): launch.json, spec.yaml
    spec_file: str
    overrides: list[str]
    use_wandb: bool = True  # not --no-wandb (the plan has no W&B target also when disabled)
    from_experiment_dir: bool = False  # `launch EXPERIMENT_DIR --resume`

    @property
    def exp(self) -> str:
        return self.plan.experiment

    @property
    def storage(self) -> str:
        return self.plan.storage

    @property
    def local(self) -> bool:
        return self.plan.local


def request(args: argparse.Namespace) -> Request:
    """Validate the launch command line into its plan (no file is written); ConfigError
    otherwise."""
    use_wandb = not args.no_wandb
    given = Path(args.spec).expanduser()
    if given.is_dir():
        if not args.resume:
            raise ConfigError(
                f"{args.spec} is a directory; to continue the experiment in it: "
                f"python -m sparsity_tune.launch {shlex.quote(args.spec)} --resume"
            )
        return from_experiment(
            given.resolve(), args.overrides, name=args.name, address=args.address,
            use_wandb=use_wandb,
        )  # fmt: skip
    req = from_file(
        args.spec, args.overrides, name=args.name, storage=args.storage, address=args.address,
        use_wandb=use_wandb,
    )  # fmt: skip
    if args.address is None:
        check_local_resources(req.plan)
    return req


def from_file(
    spec_file: str,
    overrides: list[str],
    *,
    name: str | None = None,
    storage: str = "results",
    address: str | None = None,
    use_wandb: bool = True,
) -> Request:
    """The plan of a spec file with ``--set`` values (``KEY=VALUE`` strings) and ``--name``."""
    values = parse_overrides(overrides)
    if name:
        values["name"] = check_name(name, "--name")
    spec, base = validate.load(spec_file, values)
    check_name(spec.name)
    root = Path(spec.dataset.root)
    if not root.is_absolute():  # trials run in their own working directory
        dataset = {"root": str(root.resolve())}
        spec = spec.model_copy(update={"dataset": spec.dataset.model_copy(update=dataset)})
        base = base.model_copy(update={"dataset": base.dataset.model_copy(update=dataset)})
    where = storage if "://" in storage else str(Path(storage).resolve())
    plan = planner.build(
        spec, layout.experiment_path(storage, spec.name), where, base=base, address=address,
        use_wandb=use_wandb,
    )  # fmt: skip
    given = str(Path(spec_file).expanduser().resolve())
    return Request(plan, state.spec_data(spec), given, list(overrides), use_wandb)


def from_experiment(
    exp: Path,
    overrides: list[str],
    *,
    name: str | None = None,
    address: str | None = None,
    use_wandb: bool = True,
) -> Request:
    """The plan of an experiment's saved spec (``launch.json``) with ``--set`` values."""
    record = LaunchRecord.load(exp)
    if record is None:
        raise ConfigError(
            f"{exp}: no {layout.LAUNCH} (not an experiment directory, or one made by an older "
            f"version): resume it with its spec file, --name and --storage instead"
        )
    if name and name != exp.name:
        raise ConfigError(f"--name {name!r} differs from the experiment's {exp.name!r}")
    data = copy.deepcopy(record.spec)
    for key, value in parse_overrides(overrides).items():
        set_dotted(data, key, value)
    spec, base = validate.check(data, f"{exp}/{layout.LAUNCH}")
    plan = planner.build(
        spec, str(exp), str(exp.parent), base=base, address=address, use_wandb=use_wandb
    )
    return Request(plan, state.spec_data(spec), record.spec_file, list(overrides), use_wandb, True)


def one_trial(spec_file: str, overrides: dict[str, Any]) -> tuple[str, TrialConfig]:
    """The experiment name and base trial config of a spec file, for the one-trial CLI (the
    checks that only concern Ray are skipped)."""
    spec, base = validate.load(spec_file, overrides, sweep=False)
    return spec.name, base


def check_local_resources(plan: Plan) -> None:
    """A sweep on this machine whose trials ask for more CPUs or GPUs than it has would wait
    forever in Ray's queue: refuse it before anything is written."""
    cpus = machine.cpu_allowance()
    if plan.cpu > cpus:
        raise ConfigError(
            f"resources.cpu={plan.cpu:g}: each trial asks for more CPUs than this machine gives "
            f"this process ({cpus}); allowed: up to {cpus} (fractions pack several trials), or "
            f"run on a cluster with --address"
        )
    if plan.gpu > 0:
        import torch

        gpus = torch.cuda.device_count()
        if plan.gpu > gpus:
            raise ConfigError(
                f"resources.gpu={plan.gpu:g}: this machine has {gpus} CUDA GPU(s); allowed: "
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


def check_resume(record: LaunchRecord, req: Request) -> list[str]:
    """Whether ``req`` may resume the experiment of ``record``: its plan's results must equal
    the saved ones (ConfigError naming every differing key); returns one line per runtime
    setting that differs (the caller logs them). A record from before plans were saved has its
    plan resolved from its spec first (the one case that validates a second spec)."""
    where = f"{req.exp}/{layout.LAUNCH}"
    saved = record.plan
    if saved is None:
        spec, base = validate.check(copy.deepcopy(record.spec), where)
        saved = planner.build(spec, req.exp, req.storage, base=base).results()
    hint = resume_command(req.exp, req.plan.address, req.use_wandb)
    planner.check_saved(saved, req.plan, where, hint)
    return planner.runtime_changes(record.runtime, req.plan)


def dry_run_plan(req: Request, args: argparse.Namespace) -> tuple[Plan, list[str]]:
    """The plan this command would run and, with ``--resume``, the runtime settings that differ
    from the saved ones (:func:`check_resume`; nothing is locked or written)."""
    record = LaunchRecord.load(Path(req.exp)) if args.resume and req.local else None
    return req.plan, check_resume(record, req) if record is not None else []
