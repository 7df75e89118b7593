"""Static PNG figures: draws :class:`analysis.charts.Chart` descriptions with matplotlib (Agg)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from analysis.charts import Chart

#: plotly marker names (charts.Series.marker) to matplotlib's
_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle-up": "^"}


def draw(chart: Chart):
    """A matplotlib Figure for ``chart`` (one subplot per panel, at most 3 per row)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(chart.panels)
    cols = min(chart.cols or 3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows + 0.6), squeeze=False)
    for ax, panel in zip(axes.flat, chart.panels, strict=False):
        for s in panel.series:
            style = {
                "color": s.color,
                "alpha": s.alpha,
                "label": s.name if s.legend else None,
                "linestyle": "--" if s.dash else "-",
                "linewidth": s.width,
                "marker": _MARKERS.get(s.marker, "o") if "markers" in s.mode else None,
                "markersize": 4,
            }
            if s.mode == "markers":
                style["linestyle"] = "none"
            if s.step:
                style["drawstyle"] = "steps-post"
            if s.yerr is not None and np.isfinite(s.yerr).any():
                yerr = np.nan_to_num(s.yerr, nan=0.0)
                ax.errorbar(s.x, s.y, yerr=yerr, capsize=2, elinewidth=0.8, **style)
            else:
                ax.plot(s.x, s.y, **style)
            if s.end_label and len(s.x):
                ax.annotate(
                    s.end_label,
                    (s.x[-1], s.y[-1]),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize=7,
                    color=s.color,
                    va="center",
                )
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.xlog:
            ax.set_xscale("log")
        if panel.xticks:
            ax.set_xticks(panel.xticks, [f"{v:g}" for v in panel.xticks])
            ax.minorticks_off()
        if panel.xreverse:
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
        if any(s.legend for s in panel.series):
            ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    width = 60 * cols
    note = "\n".join(textwrap.wrap(chart.note, width)) if chart.note else ""
    fig.suptitle(chart.title + (f"\n{note}" if note else ""), fontsize=10)
    fig.tight_layout()
    if chart.colorbar:
        _colorbar(fig, chart.colorbar)
    return fig


def _colorbar(fig, label: str) -> None:
    """The sparsity colour bar, in a strip cleared on the right: viridis at sparsity², the scale
    of :func:`analysis.charts.sparsity_color`."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import PowerNorm

    right = 1 - 0.9 / fig.get_figwidth()  # about 0.9 inch for the bar and its labels
    fig.subplots_adjust(right=right - 0.02)
    top, bottom = fig.subplotpars.top, fig.subplotpars.bottom
    cax = fig.add_axes((right, bottom, 0.012, top - bottom))
    sm = ScalarMappable(norm=PowerNorm(2.0, vmin=0.0, vmax=1.0), cmap=colormaps["viridis"])
    bar = fig.colorbar(sm, cax=cax)
    bar.set_label(label)
    bar.set_ticks([0, 0.5, 0.75, 0.9, 1.0])


def save_png(chart: Chart, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{chart.key}.png"
    fig = draw(chart)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_pngs(charts: list[Chart], out_dir: Path, jobs: int | None = None) -> list[Path]:
    """Save many charts; matplotlib draws in one process per CPU (drawing is CPU-bound)."""
    from analysis.parallel import process_pool
    from sparsity_tune.machine import cpu_allowance

    pool = process_pool(min(len(charts), jobs or cpu_allowance())) if len(charts) >= 4 else None
    if pool is None:
        return [save_png(c, out_dir) for c in charts]
    with pool:
        return list(pool.map(save_png, charts, [out_dir] * len(charts)))
