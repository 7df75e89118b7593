"""Write an :class:`~analysis.questions.Analysis` to disk: CSV tables, PNG plots, report.html.

The output directory is often inside an experiment directory someone else wrote, so every write
goes through :mod:`analysis.safe_io`: the directory (and ``plots/``) must be a real directory the
user owns or one created here, and each file is written to a temporary file and renamed over its
name, so a planted symlink (``report.html -> ~/.bashrc``) is replaced, never followed. PNGs are
drawn into a fresh private temporary directory first, then renamed into ``plots/``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from analysis import safe_io
from analysis.controls import versus_controls
from analysis.equal_budget import arch_at_budget
from analysis.load import ID_COLUMNS
from analysis.measured import measured_table
from analysis.pareto import REFERENCE_TEXT
from analysis.questions import Analysis
from sparsity_tune.metrics import MEASURED

#: What each file holds (also listed at the end of report.html).
FILES = {
    "trials.csv": "one row per trial: ids, status, config (dotted), final record, summary",
    "history.csv": "one row per trial and epoch: the trainer's record keys",
    "configs.csv": "one row per configuration (finished trials, seeds pooled): mean, std, 95% CI",
    "points.csv": "one row per operating point (a configuration, or one IMP round): seed mean, "
    "std, 95% CI, and the difference to its dense baseline with its Welch 95% interval, verdict "
    "and the seeds the observed noise would need; still_improving marks a point still improving "
    "at its end, and every comparison with one is 'not converged' (convergence_note: by how much)",
    "methods.csv": "pruning variants compared at equal sparsity: difference, Welch 95% interval, "
    "verdict (with convergence_note)",
    "controls.csv": "each method against its own controls (pruning.control: shuffle_layer, invert, "
    "reinit) at equal sparsity: method - control, Welch 95% interval, verdict",
    "measured.csv": "one row per cost axis and pruned operating point: ratio dense / pruned with "
    "its Welch 95% and family-wise intervals over seeds (log scale), verdict, granularity, and "
    "whether the axis moves beyond the seed noise",
    "matched.csv": "each dense configuration beside the sparse configuration of a larger model "
    "with about as many nonzero params: sparse - dense, Welch 95% interval, verdict",
    "arch.csv": "the two best architectures at the smallest nonzero-params budget both reach: "
    "a - b, Welch 95% interval, verdict",
    "pareto_<x>.csv": "non-dominated configurations of the accuracy metric vs cost x, with spread "
    "and hypervolume",
    "hypervolume.csv": "one row per cost axis: front size, hypervolume and its reference point",
    "plots/*.png": "static figures (matplotlib)",
    "report.html": "this report (plotly, self-contained)",
}


def trials_table(a: Analysis) -> pd.DataFrame:
    """trials.csv: the loaded trial table with ``config_id`` and ``label`` after the id columns."""
    t = a.trials
    lead = [*ID_COLUMNS, "config_id", "label"]
    return t[lead + [c for c in a.experiment.trials.columns if c not in lead]]


def hypervolume_table(a: Analysis) -> pd.DataFrame:
    rows = [
        {
            "x": f.x,
            "y": f.y,
            "x_direction": f.x_dir,
            "y_direction": f.y_dir,
            "n_configs": f.n_configs,
            "n_front": len(f.table),
            "kind": "measured" if f.x in MEASURED else "counted",
            "versus_dense": a.axes[f.x].state if f.x in a.axes else "",
            "hypervolume": f.hypervolume,
            "hv_normalized": f.hv_normalized,
            "hv_ref_x": f.ref[0],
            "hv_ref_y": f.ref[1],
            "reference": REFERENCE_TEXT,
        }
        for f in a.fronts.values()
    ]
    return pd.DataFrame(rows)


def write_all(a: Analysis, out: Path, png: bool = True, html: bool = True) -> dict[str, Path]:
    """Write every output file into ``out``; returns {name: path}.

    Raises :class:`analysis.safe_io.Refused` when ``out`` or ``out/plots`` is a symlink, not a
    directory, or another user's directory.
    """
    from analysis import plots, report

    out = safe_io.output_dir(Path(out))
    written: dict[str, Path] = {}

    def csv(name: str, df: pd.DataFrame) -> None:
        written[name] = safe_io.write_text(out, name, df.to_csv(index=False))

    csv("trials.csv", trials_table(a))
    csv("history.csv", a.experiment.history)
    csv("configs.csv", a.configs)
    csv("points.csv", a.points)
    csv("methods.csv", a.methods)
    csv("controls.csv", versus_controls(a.methods))
    csv("measured.csv", measured_table(a.points, a.axes))
    csv("matched.csv", a.matched)
    csv("arch.csv", arch_at_budget(a.usable, a.y, a.scale, a.sign, tolerance=a.tolerance))
    for x, f in a.fronts.items():
        csv(f"pareto_{x}.csv", f.table)
    csv("hypervolume.csv", hypervolume_table(a))
    if png:
        charts = [c for s in a.sections for c in s.charts]
        plot_dir = safe_io.output_dir(out / "plots")
        scratch = Path(tempfile.mkdtemp(dir=out, prefix=".plots-"))  # private (0700), ours
        try:
            for chart, path in zip(charts, plots.save_pngs(charts, scratch), strict=True):
                written[f"plots/{chart.key}.png"] = safe_io.move_into(
                    path, plot_dir, f"{chart.key}.png"
                )
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    if html:
        written["report.html"] = report.write_report(a, out / "report.html", FILES)
    return written
