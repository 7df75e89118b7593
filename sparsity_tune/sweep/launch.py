"""Run a sweep: ``python -m sparsity_tune.launch SPEC.yaml [--set K=V] [--dry-run] ...``.

The spec (or a W&B sweep file) is validated before Ray is touched; bad input exits with status 2
and one message. Ray Tune runs the trials (``tune.Tuner``; ``Tuner.restore`` for ``--resume``),
each trial is :func:`sparsity_tune.sweep.trainable.train_trial`, and W&B runs are written by
:class:`sparsity_tune.sweep.wandb_log.WandbTrialLogger`. At the end a summary table is printed with the
command that analyses the experiment directory.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from sparsity_tune import layout
from sparsity_tune.sweep.spec import Spec, load_spec
from sparsity_tune.trial.config import ConfigError, add_set_option, parse_overrides

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: Columns of the live table (besides the searched parameters and the seed).
LIVE_METRICS = ("epoch", "val_acc", "test_acc", "sparsity")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m sparsity_tune.launch",
        description="Run a pruning sweep on Ray Tune (Optuna search, W&B logging).",
    )
    ap.add_argument("spec", help="search-space YAML (ours or a W&B sweep file)")
    add_set_option(ap, "override a spec key, e.g. --set search.num_samples=8 (repeatable)")
    ap.add_argument("--name", help="experiment name (default: the spec's name)")
    ap.add_argument(
        "--storage",
        default="results",
        help="where experiments live: a directory, shared path or URI Ray supports (default results)",
    )
    ap.add_argument("--address", help="join a running Ray cluster: auto or HOST:PORT")
    ap.add_argument(
        "--resume", action="store_true", help="continue an interrupted experiment of this name"
    )
    ap.add_argument("--no-wandb", action="store_true", help="do not write W&B runs")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return ap.parse_args(argv)


def experiment_path(storage: str, name: str) -> str:
    if "://" in storage:
        return storage.rstrip("/") + "/" + name
    return str(Path(storage).expanduser().resolve() / name)


def prepare(args: argparse.Namespace) -> tuple[Spec, str, str]:
    """Validate everything that can be checked without Ray; raise ConfigError otherwise."""
    spec = load_spec(args.spec, parse_overrides(args.overrides))
    if args.name:
        if not NAME_RE.match(args.name):
            raise ConfigError(
                f"--name {args.name!r}: use letters, digits and _.+- (it becomes a directory)"
            )
        spec = spec.model_copy(update={"name": args.name})
    if not NAME_RE.match(spec.name):
        raise ConfigError(f"name={spec.name!r}: use letters, digits and _.+- (a directory name)")
    storage = args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    exp = experiment_path(args.storage, spec.name)
    root = Path(spec.dataset.root)
    if not root.is_absolute():  # trials run in their own working directory
        spec = spec.model_copy(
            update={"dataset": spec.dataset.model_copy(update={"root": str(root.resolve())})}
        )
    return spec, storage, exp


def mark_stopped(grid: Any) -> None:
    """Trials that ended without error or summary in a completed sweep were stopped early by
    the scheduler (ASHA): say so in their directory, so analysis does not take them as running."""
    for result in grid:
        trial_dir = Path(result.path)
        if (
            result.error is None
            and trial_dir.is_dir()
            and not (trial_dir / layout.SUMMARY).exists()
        ):
            epochs = len(layout.read_records(trial_dir))
            (trial_dir / layout.STOPPED).write_text(
                f"stopped early by the scheduler after epoch {epochs}\n"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec, storage, exp = prepare(args)
        if not args.dry_run:
            check_experiment_state(exp, args.resume)
            if not args.no_wandb and spec.wandb.mode == "online":
                check_wandb_login()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from sparsity_tune.sweep.search import describe_plan

    if args.dry_run:
        print(describe_plan(spec, exp, args.address))
        print(f"wandb       {'off' if args.no_wandb else spec.wandb.mode} → {exp}/wandb")
        return 0
    print(describe_plan(spec, exp, args.address), flush=True)
    return run(
        spec,
        storage,
        exp,
        address=args.address,
        resume=args.resume,
        use_wandb=not args.no_wandb and spec.wandb.mode != "disabled",
    )


def check_experiment_state(exp: str, resume: bool) -> None:
    from ray.tune import Tuner

    exists = Tuner.can_restore(exp)
    if resume and not exists:
        raise ConfigError(f"--resume: no experiment to resume at {exp} (run without --resume)")
    if exists and not resume:
        raise ConfigError(
            f"{exp} already holds this experiment; add --resume to continue it, or pick another "
            f"--name (or delete the directory to start over)"
        )


def check_wandb_login() -> None:
    """Online W&B needs a key; say so before Ray starts rather than failing in every trial."""
    import wandb

    try:
        wandb.Api(timeout=10)
    except wandb.errors.UsageError:
        raise ConfigError(
            "wandb.mode=online but no W&B API key is configured: run `wandb login` (or set "
            "WANDB_API_KEY), or use --set wandb.mode=offline and `wandb sync` later, or --no-wandb"
        ) from None


def write_spec(spec: Spec, exp: str) -> None:
    """The resolved spec at the experiment's top (layout.SPEC), for analysis and reruns."""
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_none=False), sort_keys=False)
    if "://" in exp:
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(exp)
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{layout.SPEC}") as f:
            f.write(text.encode())
        return
    Path(exp).mkdir(parents=True, exist_ok=True)
    tmp = Path(exp) / (layout.SPEC + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, Path(exp) / layout.SPEC)


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)  # Ray counts this machine's CPUs/GPUs (cgroup-aware)


def _short(key: str) -> str:
    return key.split(".")[-1]


def reporter(spec: Spec) -> Any:
    from ray.tune import CLIReporter

    keys = [k for k, p in spec.search.parameters.items() if p.distribution != "constant"]
    shorts = [_short(k) for k in keys]
    params = {k: (s if shorts.count(s) == 1 else k) for k, s in zip(keys, shorts, strict=True)}
    cols: dict[str, str] = {}
    if spec.search.algorithm == "optuna":  # the seed is in the config only under grid/random
        cols["train.seed"] = "seed"
    else:
        params["train.seed"] = "seed"
    cols.update({m: m for m in LIVE_METRICS})
    for m in spec.search.objectives:
        cols.setdefault(m, m)
    return CLIReporter(
        metric_columns=cols,
        parameter_columns=params,
        max_progress_rows=16,
        max_report_frequency=30,
        print_intermediate_tables=True,
        max_column_length=14,
    )


def build_tuner(spec: Spec, storage: str, exp: str, resume: bool, use_wandb: bool) -> Any:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from sparsity_tune.sweep import search
    from sparsity_tune.sweep.trainable import train_trial

    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            base=spec.base_dict(),
            experiment=spec.name,
            seeds=list(spec.search.seeds),
            cpus=spec.resources.cpu,
            checkpoint_every=spec.search.checkpoint_every,
        ),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    callbacks: list[Any] = [JsonLoggerCallback()]
    if use_wandb:
        from sparsity_tune.sweep.wandb_log import WandbTrialLogger

        callbacks.append(WandbTrialLogger(spec, Path(exp) if "://" not in exp else Path("wandb")))
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=storage,
        failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        progress_reporter=reporter(spec),
        callbacks=callbacks,
        verbose=1,
    )
    if resume:
        return tune.Tuner.restore(
            exp,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=search.param_space(spec),
        )
    return tune.Tuner(
        trainable,
        param_space=search.param_space(spec),
        tune_config=search.tune_config(spec),
        run_config=run_config,
    )


def run(
    spec: Spec,
    storage: str,
    exp: str,
    *,
    address: str | None = None,
    resume: bool = False,
    use_wandb: bool = True,
) -> int:
    """Run (or resume) the sweep; print the summary. 0 when every trial finished, else 1."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our CLIReporter table
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # only the JSON logger
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not resume:  # a resumed experiment keeps the spec it was started with
        write_spec(spec, exp)
    init_ray(address)
    tuner = build_tuner(spec, storage, exp, resume, use_wandb)
    try:
        grid = tuner.fit()
    finally:
        if use_wandb:
            from sparsity_tune.sweep.wandb_log import WandbTrialLogger

            WandbTrialLogger.close_every_logger()
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    if unfinished == 0:
        mark_stopped(grid)
    from sparsity_tune.sweep.summary import print_summary

    print_summary(spec, exp)
    if unfinished > 0:
        print(
            f"{unfinished} trial(s) did not finish (interrupted?); continue with: "
            f"python -m sparsity_tune.launch SPEC.yaml --name {spec.name} --resume"
        )
    errors = len(grid.errors)
    if errors:
        print(
            f"{errors} trial(s) failed; see error.txt in their directories, "
            f"then rerun with --resume to retry them"
        )
    return 1 if errors or unfinished > 0 else 0


if __name__ == "__main__":
    sys.exit(main())
