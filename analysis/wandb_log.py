"""``--wandb``: the analysis as one W&B run (job_type "analysis") beside the sweep's trial runs.

Mode, project, entity and group come from the command line only (:class:`WandbTarget`):
offline by default, project ``sparsity-tune``, group the experiment's name. Never from the
experiment directory's spec.yaml: that file may have been written by someone else, and its
``mode: online`` with their entity would upload this user's analysis (error lines included) to
their W&B account. Offline runs are written under the output directory; ``wandb sync`` uploads
them later. Names and settings are the sweep's (:mod:`sparsity_tune.wandb_setup`).

Logged: the tables (configurations, each front, hypervolumes; trials when at most
``MAX_TABLE_ROWS``), every PNG as an image, each front as a native W&B scatter, report.html as
HTML, and hypervolumes in the run summary. When the run is online and ``wandb_workspaces`` is
installed (``pip install wandb[workspaces]``), a W&B Report with these panels is saved too, through
W&B's report API; that path needs a W&B account and is not exercised by the tests.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from analysis import safe_io
from analysis.measured import FLAT, measured_table
from analysis.questions import Analysis
from sparsity_tune import wandb_setup
from sparsity_tune.wandb_setup import DEFAULT_PROJECT

MAX_TABLE_ROWS = 50_000


@dataclass(frozen=True)
class WandbTarget:
    """Where the analysis run goes: set by the user's command-line flags, nothing else."""

    mode: Literal["offline", "online"] = "offline"
    project: str = DEFAULT_PROJECT
    entity: str | None = None
    group: str | None = None  # None: the experiment's (validated) name


def wandb_target(a: Analysis, target: WandbTarget | None = None) -> dict[str, Any]:
    """wandb.init arguments from ``target`` (the CLI flags); spec.yaml is never consulted."""
    t = target or WandbTarget()
    return {
        "project": t.project,
        "entity": t.entity,
        "group": wandb_setup.group(a.experiment.name, t.group),
        "mode": t.mode,
        "tags": None,
    }


def _table(df: pd.DataFrame):
    import wandb

    df = df.head(MAX_TABLE_ROWS).copy()
    for c in df.columns:  # W&B tables want one type per column
        if df[c].dtype == object:
            df[c] = df[c].astype("string").fillna("")
    return wandb.Table(dataframe=df)


def log_analysis(
    a: Analysis,
    written: dict[str, Path],
    out_dir: Path | None = None,
    where: WandbTarget | None = None,
) -> Any:
    """Log to a new W&B run and finish it; returns the finished run.

    W&B writes under ``out_dir/wandb``, which must be a real directory of this user (checked
    like the output directory: a planted link there is refused).
    """
    import wandb

    target = wandb_target(a, where)
    out_dir = out_dir or next(iter(written.values())).parent
    safe_io.output_dir(out_dir / "wandb")
    run = wandb.init(
        **target,
        job_type="analysis",
        name=wandb_setup.analysis_run_name(a.experiment.name),
        dir=str(out_dir),
        config={
            "y": a.y,
            "x": list(a.fronts),
            "tolerance_pts": a.tolerance,
            "experiment": a.experiment.name,
            "n_trials": len(a.trials),
        },
        settings=wandb_setup.wandb_settings(),
    )
    data: dict[str, Any] = {"configs": _table(a.configs)}
    if len(a.trials) <= MAX_TABLE_ROWS:
        data["trials"] = _table(a.trials)
    for x, f in a.fronts.items():
        if f.table.empty:
            continue
        t = _table(f.table)
        data[f"pareto/{x}"] = t
        if x not in a.axes or a.axes[x].state != FLAT:  # no front drawn from noise
            data[f"pareto_plot/{x}"] = wandb.plot.scatter(
                t, x, a.y, title=f"Pareto front: {a.y} vs {x}"
            )
        run.summary[f"hypervolume/{x}"] = f.hypervolume
        run.summary[f"hv_normalized/{x}"] = f.hv_normalized
    for x, ax in a.axes.items():
        run.summary[f"versus_dense/{x}"] = ax.state
    from analysis.outputs import hypervolume_table

    data["hypervolume"] = _table(hypervolume_table(a))
    data["measured"] = _table(measured_table(a.points, a.axes))
    for name, path in written.items():
        if name.endswith(".png"):
            data[f"plots/{Path(name).stem}"] = wandb.Image(str(path))
    if "report.html" in written:
        data["report"] = wandb.Html(written["report.html"].read_text(encoding="utf-8"))
    run.log(data)
    url = run.url if target["mode"] == "online" else None
    run.finish()
    if target["mode"] == "online":
        build_report(a, target, url)
    else:
        print(
            f"W&B: offline analysis run in {out_dir}/wandb (upload: wandb sync {out_dir}/wandb/"
            "offline-run-*)",
            file=sys.stderr,
        )
    return run


def build_report(a: Analysis, target: dict[str, Any], run_url: str | None) -> str | None:
    """A W&B Report of the analysis panels (online only; needs wandb_workspaces). Untested here:
    no W&B account on the CI machines."""
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError:
        print(
            "W&B: no report built (install it with `pip install wandb[workspaces]`); the "
            f"analysis run is at {run_url}",
            file=sys.stderr,
        )
        return None
    blocks: list[Any] = [wr.H1(f"{a.experiment.name}: sparsity-tune analysis")]
    runset = wr.Runset(
        entity=target["entity"],
        project=target["project"],
        name=f"{a.experiment.name} analysis",
        filters=f"Metadata('group') == '{target['group']}'",
    )
    for s in a.sections:
        blocks.append(wr.H2(s.title))
        blocks.extend(wr.P(sentence) for sentence in [s.lead, *s.details] if sentence)
        keys = [f"plots/{c.key}" for c in s.charts]
        if keys:
            blocks.append(wr.PanelGrid(runsets=[runset], panels=[wr.MediaBrowser(media_keys=keys)]))
    report = wr.Report(
        entity=target["entity"],
        project=target["project"],
        title=f"{a.experiment.name}: Pareto analysis",
        description="accuracy vs memory and time; built by python -m analysis",
        blocks=blocks,
    )
    report.save()
    print(f"W&B report: {report.url}", file=sys.stderr)
    return report.url
