"""``--wandb``: the analysis as one W&B run (job_type "analysis") beside the sweep's trial runs.

Project, entity, group and mode come from the experiment's spec.yaml ``wandb`` section, like the
sweep's own runs (group defaults to the experiment name; mode defaults to offline, and "disabled"
becomes offline because --wandb asked for a run). Offline runs are written under the output
directory; ``wandb sync`` uploads them later.

Logged: the tables (configurations, each front, hypervolumes; trials when at most
``MAX_TABLE_ROWS``), every PNG as an image, each front as a native W&B scatter, report.html as
HTML, and hypervolumes in the run summary. When the run is online and ``wandb_workspaces`` is
installed (``pip install wandb[workspaces]``), a W&B Report with these panels is saved too, through
W&B's report API; that path needs a W&B account and is not exercised by the tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.questions import Analysis

MAX_TABLE_ROWS = 50_000


def wandb_target(a: Analysis) -> dict[str, Any]:
    """wandb.init arguments from spec.yaml's wandb section (raw mapping, no validation needed)."""
    w = a.experiment.spec.get("wandb") or {}
    mode = w.get("mode") or "offline"
    return {
        "project": w.get("project") or "sparsity-tune",
        "entity": w.get("entity"),
        "group": w.get("group") or a.experiment.name,
        "mode": "offline" if mode == "disabled" else mode,
        "tags": list(w.get("tags") or []) or None,
    }


def _table(df: pd.DataFrame):
    import wandb

    df = df.head(MAX_TABLE_ROWS).copy()
    for c in df.columns:  # W&B tables want one type per column
        if df[c].dtype == object:
            df[c] = df[c].astype("string").fillna("")
    return wandb.Table(dataframe=df)


def log_analysis(a: Analysis, written: dict[str, Path], out_dir: Path | None = None) -> Any:
    """Log to a new W&B run and finish it; returns the finished run."""
    import wandb

    target = wandb_target(a)
    os.environ.setdefault("WANDB_SILENT", "true")
    out_dir = out_dir or next(iter(written.values())).parent
    run = wandb.init(
        **target,
        job_type="analysis",
        name=f"{a.experiment.name}-analysis",
        dir=str(out_dir),
        config={
            "y": a.y,
            "x": list(a.fronts),
            "tolerance_pts": a.tolerance,
            "experiment": a.experiment.name,
            "n_trials": len(a.trials),
        },
        settings=wandb.Settings(
            console="off", x_disable_stats=True, disable_git=True, disable_code=True, silent=True
        ),
    )
    data: dict[str, Any] = {"configs": _table(a.configs)}
    if len(a.trials) <= MAX_TABLE_ROWS:
        data["trials"] = _table(a.trials)
    for x, f in a.fronts.items():
        if f.table.empty:
            continue
        t = _table(f.table)
        data[f"pareto/{x}"] = t
        data[f"pareto_plot/{x}"] = wandb.plot.scatter(
            t, x, a.y, title=f"Pareto front: {a.y} vs {x}"
        )
        run.summary[f"hypervolume/{x}"] = f.hypervolume
        run.summary[f"hv_normalized/{x}"] = f.hv_normalized
    from analysis.outputs import hypervolume_table

    data["hypervolume"] = _table(hypervolume_table(a))
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
        blocks.extend(wr.P(sentence) for sentence in s.sentences)
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
