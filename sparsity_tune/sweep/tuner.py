"""A :class:`~sparsity_tune.sweep.plan.Plan` → Ray Tune's ``Tuner`` (new, or restored for
``--resume``): the trainable with its resources, the live table, the W&B writer, retries.

Ray Tune does the heavy lifting; the search space, searcher and scheduler come from
:mod:`sparsity_tune.sweep.search`, the trial from :mod:`sparsity_tune.sweep.trainable` (both
imported here, never by each other's callers, so neither knows the other's construction).
"""

from __future__ import annotations

from typing import Any

from sparsity_tune.metrics import M
from sparsity_tune.sweep.plan import Plan

#: Columns of the live table (besides the searched parameters and the seed).
LIVE_METRICS = (M.epoch, M.val_acc, M.test_acc, M.sparsity)


def _short(key: str) -> str:
    return key.split(".")[-1]


def reporter(plan: Plan) -> Any:
    from ray.tune import CLIReporter

    keys = plan.varied
    shorts = [_short(k) for k in keys]
    params = {k: (s if shorts.count(s) == 1 else k) for k, s in zip(keys, shorts, strict=True)}
    cols: dict[str, str] = {}
    if plan.search.algorithm == "optuna":  # the seed is in the config only under grid/random
        cols["train.seed"] = "seed"
    else:
        params["train.seed"] = "seed"
    cols.update({m: m for m in LIVE_METRICS})
    for m in plan.search.objectives:
        cols.setdefault(m, m)
    return CLIReporter(
        metric_columns=cols,
        parameter_columns=params,
        max_progress_rows=16,
        max_report_frequency=30,
        print_intermediate_tables=True,
        max_column_length=14,
    )


# ----------------------------------------------------------------------------- Tuner
def wandb_logger(plan: Plan) -> Any:
    """The W&B writer of the plan's target (the plan has one: W&B is on)."""
    from sparsity_tune.sweep.wandb_log import WandbTrialLogger

    assert plan.wandb is not None
    return WandbTrialLogger(plan.wandb)


def build_tuner(plan: Plan, resume: bool, extra: list[Any]) -> Any:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from sparsity_tune.sweep import search
    from sparsity_tune.sweep.trainable import report_interval, train_trial

    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            base=plan.trial_base(),
            experiment=plan.name,
            seeds=list(plan.seeds),
            cpus=plan.cpu,
            checkpoint_every=plan.checkpoint_every,
            checkpoint_min_interval_s=plan.checkpoint_min_interval_s,
            report_interval_s=report_interval("asha" if plan.scheduler else "fifo"),
            report_epochs=search.report_epochs(plan),
        ),
        {"cpu": plan.cpu, "gpu": plan.gpu},
    )
    callbacks: list[Any] = [JsonLoggerCallback(), *extra]
    failure = tune.FailureConfig(max_failures=plan.max_failures)
    if resume:
        tuner = tune.Tuner.restore(
            plan.experiment,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=search.param_space(plan),
        )
        # Ray restores the run config pickled when the experiment started; this launch's
        # callbacks, reporter and retries replace it. Ray has no public setter for it
        # (ray-project/ray#41364), hence the private handle.
        rc = tuner._local_tuner.get_run_config()
        rc.callbacks, rc.progress_reporter, rc.failure_config = callbacks, reporter(plan), failure
        return tuner
    return tune.Tuner(
        trainable,
        param_space=search.param_space(plan),
        tune_config=search.tune_config(plan),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=plan.storage,
            failure_config=failure,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=reporter(plan),
            callbacks=callbacks,
            verbose=1,
        ),
    )
