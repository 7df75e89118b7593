"""Figures described once as plain data (charts -> panels -> series), drawn by two renderers.

:mod:`analysis.plots` draws a :class:`Chart` with matplotlib (PNG) and :mod:`analysis.report`
with plotly (interactive HTML), so the static and interactive figures cannot drift apart. The
builders here only select and shape DataFrame columns; they cap the points and lines they emit so
a 100,000-trial sweep still gives readable, small figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.measured import DENSE
from analysis.points import DENSE_VARIANT, P
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES

MAX_POINTS = 2000  # per series; fronts are always kept whole
MAX_GROUP_POINTS, BINS = 200, 25  # lines with more configurations are drawn binned
MAX_LINES = 60  # learning curves drawn per panel
GREY = "#9a9a9a"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Series:
    x: np.ndarray
    y: np.ndarray
    name: str
    mode: str = "markers"  # "markers" | "lines" | "lines+markers"
    color: str | None = None
    alpha: float = 1.0
    yerr: np.ndarray | None = None  # symmetric half-widths (NaN: no bar)
    dash: bool = False
    step: bool = False  # draw lines as a staircase (fronts)
    text: list[str] | None = None  # hover text (plotly only)
    legend: bool = True
    marker: str = "circle"  # "circle" | "square" | "diamond" | "triangle-up" (plotly names)
    width: float = 1.5
    end_label: str | None = None  # text written at the line's last point (labels dense curves)


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xlog: bool = False
    xreverse: bool = False  # x grows to the left (remaining weights, as Frankle & Carbin draw it)
    xticks: list[float] | None = None  # tick positions (labelled with their values)


@dataclass
class Chart:
    key: str  # file stem of the PNG and id of the HTML figure
    title: str
    panels: list[Panel]
    note: str = ""  # how to read the colours, shown under the title
    cols: int | None = None  # panels per row (default: up to 3)
    colorbar: str | None = None  # label of a sparsity colour bar (the scale of sparsity_color)


def _palette(n: int) -> list[str]:
    """``n`` distinct colours: PALETTE, or matplotlib's tab20 when more are needed."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab20"]
    return [to_hex(cmap(i % 20)) for i in range(n)]


def sparsity_color(s: float) -> str:
    """viridis at sparsity², so the sparsities that matter (0.8-0.99) get most of the scale:
    dark = dense, yellow = sparsest (matplotlib colormap, no pyplot needed)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["viridis"](float(np.clip(s, 0.0, 1.0)) ** 2))


def sparsity_colorscale(steps: int = 21) -> list[tuple[float, str]]:
    """(sparsity, colour) stops of :func:`sparsity_color` from 0 to 1: the colour bar's scale."""
    return [(float(v), sparsity_color(v)) for v in np.linspace(0.0, 1.0, steps)]


def _cap(df: pd.DataFrame, n: int = MAX_POINTS) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n, random_state=0).sort_index()


def _err(df: pd.DataFrame, m: str) -> np.ndarray | None:
    """Error bars: one standard deviation over seeds. (The t-based 95% intervals are in the CSVs;
    with 2 seeds they are 12.7 std wide, which hides every difference in a figure.)"""
    sd = f"{m}_std"
    if sd not in df or df[sd].isna().all():
        return None
    return df[sd].to_numpy(float)


def _ci(df: pd.DataFrame, m: str) -> np.ndarray | None:
    """Error bars: the half-width of the t-based 95% interval over seeds."""
    hi = f"{m}_ci95_hi"
    if hi not in df or df[hi].isna().all():
        return None
    return (df[hi] - df[m]).to_numpy(float)


def _log(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    return bool(len(v) and v.max() / v.min() > 20)


#: Markers of the first registered granularities (the palette's fourth colour is the front's).
_GRANULARITY_MARKERS = ("circle", "diamond", "triangle-up")
#: Colour and marker of the dense points and of each pruning granularity in the fronts, in the
#: registry's order (:data:`sparsity_tune.trial.registry.GRANULARITIES`), so a granularity added
#: there is drawn without an edit here; further groups get the rest of the palette.
GROUP_STYLE = {
    DENSE: ("#000000", "square"),
    **{
        g: (PALETTE[i], marker)
        for i, (g, marker) in enumerate(zip(GRANULARITIES, _GRANULARITY_MARKERS, strict=False))
    },
}


def _group_styles(groups: list[str]) -> dict[str, tuple[str, str]]:
    rest = [g for g in groups if g not in GROUP_STYLE]
    extra = dict(zip(rest, _palette(len(rest) + 4)[4:], strict=True))
    return {g: GROUP_STYLE.get(g, (extra.get(g, GREY), "circle")) for g in groups}


def front_chart(
    configs: pd.DataFrame,
    front: pd.DataFrame,
    x: str,
    y: str,
    group: str | None = None,
    draw_front: bool = True,
    note: str = "",
) -> Chart:
    """All configurations faded, the front bold and joined as a staircase; bars = ±1 seed std.

    ``group``: a column of ``configs`` (the pruning granularity) that colours and marks the
    points, dominated ones faded; ``draw_front=False`` plots the points without a front (an
    axis whose differences are within the seed noise)."""
    if group is not None:
        return _grouped_front_chart(configs, front, x, y, group, draw_front, note)
    dominated = _cap(configs.drop(index=front.index, errors="ignore"))
    panel = Panel(f"{y} vs {x}", x, y, xlog=_log(configs[x]))
    panel.series.append(
        Series(
            dominated[x].to_numpy(float),
            dominated[y].to_numpy(float),
            "dominated",
            color=GREY,
            alpha=0.35,
            yerr=_err(dominated, y),
            text=dominated["label"].tolist(),
        )
    )
    panel.series.append(
        Series(
            front[x].to_numpy(float),
            front[y].to_numpy(float),
            "Pareto front",
            mode="lines+markers",
            color=PALETTE[3],
            yerr=_err(front, y),
            step=True,
            text=front["label"].tolist(),
        )
    )
    return Chart(
        f"front_{x}",
        f"Pareto front: {y} vs {x} (seed means)",
        [panel],
        "grey: dominated configurations; red: non-dominated; bars: ±1 std over seeds",
    )


def _grouped_front_chart(
    configs: pd.DataFrame,
    front: pd.DataFrame,
    x: str,
    y: str,
    group: str,
    draw_front: bool,
    note: str,
) -> Chart:
    panel = Panel(f"{y} vs {x}", x, y, xlog=_log(configs[x]))
    on = configs.index.isin(front.index) if draw_front else np.zeros(len(configs), dtype=bool)
    kind = configs[group].astype(str)
    names = sorted(kind.unique(), key=lambda g: (g != "dense", g))
    styles = _group_styles(names)
    for g in names:  # the points off the front (all of them when no front is drawn)
        part = _cap(configs[(kind == g).to_numpy() & ~on])
        if part.empty:
            continue
        color, marker = styles[g]
        panel.series.append(
            Series(
                part[x].to_numpy(float),
                part[y].to_numpy(float),
                g,
                color=color,
                alpha=0.35 if draw_front else 0.8,
                yerr=_err(part, y),
                text=part["label"].tolist(),
                marker=marker,
            )
        )
    if draw_front and len(front):
        f = configs.loc[on].sort_values([x, y], kind="stable")
        panel.series.append(
            Series(
                f[x].to_numpy(float),
                f[y].to_numpy(float),
                "Pareto front",
                mode="lines",
                color=PALETTE[3],
                step=True,
                legend=True,
            )
        )
        for g in names:
            pts = f[f[group].astype(str) == g]
            if pts.empty:
                continue
            color, marker = styles[g]
            panel.series.append(
                Series(
                    pts[x].to_numpy(float),
                    pts[y].to_numpy(float),
                    f"{g} (front)",
                    color=color,
                    yerr=_err(pts, y),
                    text=pts["label"].tolist(),
                    marker=marker,
                    legend=g not in set(kind[~on]),
                )
            )
        text = "colour and marker: pruning granularity; faded: dominated; red staircase: front"
        title = f"Pareto front: {y} vs {x} (seed means)"
    else:
        text = "colour and marker: pruning granularity; no front drawn"
        title = f"{y} vs {x} (seed means): no front"
    text += "; bars: ±1 std over seeds" + (f"; {note}" if note else "")
    return Chart(f"front_{x}", title, [panel], text)


def by_group_chart(
    configs: pd.DataFrame,
    key: str,
    title: str,
    x: str,
    ys: list[str],
    facet: str | None,
    group: str = "size",
    note: str = "",
    hlines: dict[str, pd.DataFrame] | None = None,
    titles: dict[str, str] | None = None,
    errors: str = "std",
) -> Chart:
    """One panel per (facet value, y); one line per ``group`` value, sorted by x.

    ``titles``: panel titles per y (default: the column name). ``errors``: bars of ±1 std over
    seeds (``std``) or the 95% interval (``ci95``: ``y_ci95_lo``/``_hi`` columns, drawn
    symmetric about the mean as the t interval is). A group with more than ``MAX_GROUP_POINTS``
    configurations (a random search) is drawn as ``BINS`` quantile bins of x: mean of y, bars =
    std across the bin's configurations.
    """
    panels, binned = [], False
    facets = sorted(configs[facet].unique()) if facet else [None]
    groups = sorted(configs[group].astype(str).unique())
    colors = dict(zip(groups, _palette(len(groups)), strict=True))
    for f in facets:
        sub = configs if f is None else configs[configs[facet] == f]
        for y in ys:
            name = (titles or {}).get(y, y)
            p = Panel(f"{name}" + (f" · {f}" if f is not None else ""), x, y, xlog=_log(sub[x]))
            for g, gdf in sub.groupby(sub[group].astype(str), sort=True):
                gdf = gdf.sort_values(x)
                if len(gdf) > MAX_GROUP_POINTS:
                    xs, ys_, err = _binned(gdf, x, y)
                    text = None
                    binned = True
                else:
                    xs, ys_ = gdf[x].to_numpy(float), gdf[y].to_numpy(float)
                    err = _ci(gdf, y) if errors == "ci95" else _err(gdf, y)
                    text = gdf["label"].tolist()
                p.series.append(
                    Series(
                        xs,
                        ys_,
                        str(g),
                        mode="lines+markers",
                        color=colors[g],
                        yerr=err,
                        text=text,
                        legend=f == facets[0] and y == ys[0],
                    )
                )
            lines = (hlines or {}).get(y)
            if lines is not None:
                lines = lines if f is None else lines[lines["facet"] == f]
                lines = lines.groupby("group", as_index=False)["value"].mean()
                lo, hi = float(sub[x].min()), float(sub[x].max())
                for g, v in zip(lines["group"].astype(str), lines["value"], strict=True):
                    p.series.append(
                        Series(
                            np.array([lo, hi]),
                            np.array([v, v]),
                            f"{g} tolerance",
                            mode="lines",
                            color=colors.get(g, GREY),
                            dash=True,
                            legend=False,
                            width=1.0,
                        )
                    )
            panels.append(p)
    if binned:
        note += (
            f"; groups of more than {MAX_GROUP_POINTS} configurations are drawn as {BINS} "
            "quantile bins of x (mean, bars: std across configurations)"
        )
    return Chart(key, title, panels, note, cols=len(ys) if len(ys) > 1 else None)


def _binned(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bins = pd.qcut(df[x].rank(method="first"), BINS, labels=False)
    g = df.groupby(bins)
    return g[x].mean().to_numpy(float), g[y].mean().to_numpy(float), g[y].std().to_numpy(float)


def _pick_configs(configs: pd.DataFrame, n: int = MAX_LINES) -> pd.DataFrame:
    """At most ``n`` configurations spread evenly over sparsity (dense ones first)."""
    c = configs.sort_values(M.sparsity, kind="stable")
    if len(c) <= n:
        return c
    idx = np.unique(np.linspace(0, len(c) - 1, n).round().astype(int))
    return c.iloc[idx]


def curves_chart(
    hist: pd.DataFrame,
    configs: pd.DataFrame,
    key: str,
    title: str,
    ys: list[str],
    dashed: dict[str, str] | None = None,
) -> Chart:
    """Per-epoch seed-mean curves, one panel per (architecture, y), one line per configuration
    coloured by its final sparsity (the colour bar); dense curves black, each labelled at its end
    with its model size (one dense curve per size)."""
    panels, shown = [], 0
    archs = sorted(configs["arch"].unique())
    for arch in archs:
        chosen = _pick_configs(configs[configs["arch"] == arch]).set_index("config_id")
        shown += len(chosen)
        h = hist[hist["config_id"].isin(chosen.index)]
        for y in ys:
            p = Panel(y + (f" · {arch}" if len(archs) > 1 else ""), M.epoch, y)
            for cid, cdf in h.groupby("config_id", sort=False):
                row = chosen.loc[cid]
                sp = float(row[M.sparsity])
                dense = sp <= DENSE_EPS
                ep = cdf[M.epoch].to_numpy(float)
                for part, seg_sp in _segments(cdf, row):
                    p.series.append(
                        Series(
                            part[M.epoch].to_numpy(float),
                            part[y].to_numpy(float),
                            f"dense · {row['size']}"
                            if dense
                            else f"{row['label']} (sparsity {seg_sp:.2f})",
                            mode="lines",
                            color="#000000" if dense else sparsity_color(seg_sp),
                            width=2.5 if dense else 1.2,
                            text=[row["label"]] * len(part),
                            legend=False,
                            end_label=f"dense {row['size']}" if dense else None,
                        )
                    )
                if dashed and y in dashed and dashed[y] in cdf:
                    p.series.append(
                        Series(
                            ep,
                            cdf[dashed[y]].to_numpy(float),
                            f"{dashed[y]} · {row['label']}",
                            mode="lines",
                            dash=True,
                            color=sparsity_color(sp),
                            alpha=0.6,
                            legend=False,
                            width=1.0,
                        )
                    )
            panels.append(p)
    note = (
        "colour: final sparsity (IMP: each round's sparsity; colour bar); black: dense, "
        "labelled with its model size"
    )
    if shown < len(configs):
        note += f"; {shown} of {len(configs)} configurations shown, spread over sparsity"
    return Chart(
        key, title, panels, note, cols=len(ys) if len(ys) > 1 else None, colorbar=M.sparsity
    )


def _segments(cdf: pd.DataFrame, row: pd.Series) -> list[tuple[pd.DataFrame, float]]:
    """A curve in one piece coloured by its final sparsity, or, for a schedule that rewinds
    (IMP: :attr:`~sparsity_tune.trial.schedule.Schedule.rewinds`), one piece per round coloured
    by that round's sparsity (each round trains a different mask)."""
    schedule = SCHEDULES.get(str(row.get("pruning.method")))
    if schedule is None or not schedule.rewinds or M.target_sparsity not in cdf:
        return [(cdf, float(row[M.sparsity]))]
    ts = cdf[M.target_sparsity].fillna(-1.0)
    rid = ts.ne(ts.shift()).cumsum()
    return [(g, float(g[M.sparsity].iloc[-1])) for _, g in cdf.groupby(rid, sort=True)]


MAX_IMP_PANELS = 12  # (architecture, size) panels of the IMP rounds figure


def log_ticks(values: np.ndarray, min_ratio: float = 1.2) -> list[float]:
    """Tick positions for a log axis at the given values, readable: each rounded to 3
    significant digits, and one kept of any two closer than ``min_ratio`` (structured and
    unstructured rounds of the same target remain 50% and 50.02% of the weights; both ticks
    would print on top of each other)."""
    kept: list[float] = []
    for v in sorted({float(f"{x:.3g}") for x in values if x > 0}, reverse=True):
        if not kept or kept[-1] / v >= min_ratio:
            kept.append(v)
    return sorted(kept)


def imp_rounds_chart(
    points: pd.DataFrame, key: str, title: str, y: str, ylabel: str | None = None
) -> Chart:
    """Frankle & Carbin's figure: ``y`` against the fraction of weights remaining (log scale,
    dense on the left), one panel per (architecture, model size), one line per pruning variant
    through its IMP rounds, each starting at the shared round 0; bars: 95% interval over seeds.
    ``points`` holds the seed-aggregated IMP operating points (``round`` not NaN)."""
    imp = points[points[P.round].notna()]
    variants = sorted(v for v in imp[P.variant].unique() if v != DENSE_VARIANT)
    colors = dict(zip(variants, _palette(len(variants)), strict=True))
    panels = []
    groups = list(imp.groupby(["arch", "size"], sort=True))
    for (arch, size), g in groups[:MAX_IMP_PANELS]:
        p = Panel(f"{arch} · {size}", "% of weights remaining", ylabel or y, xlog=True)
        p.xreverse = True
        ticks = log_ticks(100 * g[P.remaining].dropna().to_numpy(float))
        p.xticks = ticks if len(ticks) <= 8 else None
        for v in variants:
            line = g[g[P.variant] == v]
            if line.empty:
                continue
            dense = g[
                (g[P.variant] == DENSE_VARIANT) & g[P.baseline_key].isin(line[P.baseline_key])
            ]
            line = pd.concat([dense, line]).sort_values(P.remaining, ascending=False)
            p.series.append(
                Series(
                    100 * line[P.remaining].to_numpy(float),
                    line[y].to_numpy(float),
                    str(v),
                    mode="lines+markers",
                    color=colors[v],
                    yerr=_ci(line, y),
                    text=line["label"].tolist(),
                    legend=not panels,
                )
            )
        panels.append(p)
    note = "one line per pruning variant through its IMP rounds (round 0: the dense network); "
    note += "bars: 95% interval over seeds"
    if len(groups) > MAX_IMP_PANELS:
        note += f"; first {MAX_IMP_PANELS} of {len(groups)} architecture × size panels"
    return Chart(key, title, panels, note)


def arch_compare_chart(
    configs: pd.DataFrame, fronts: dict[str, pd.DataFrame], x: str, y: str
) -> Chart:
    p = Panel(f"{y} vs {x}", x, y, xlog=_log(configs[x]))
    for i, (arch, adf) in enumerate(configs.groupby("arch", sort=True)):
        c = PALETTE[i % len(PALETTE)]
        adf = _cap(adf)
        p.series.append(
            Series(
                adf[x].to_numpy(float),
                adf[y].to_numpy(float),
                f"{arch}",
                color=c,
                alpha=0.4,
                yerr=_err(adf, y),
                text=adf["label"].tolist(),
            )
        )
        f = fronts[arch]
        p.series.append(
            Series(
                f[x].to_numpy(float),
                f[y].to_numpy(float),
                f"{arch} front",
                mode="lines+markers",
                color=c,
                step=True,
                text=f["label"].tolist(),
            )
        )
    return Chart(
        "arch_compare",
        f"MLP vs CNN: {y} vs {x}",
        [p],
        "faded: all configurations (bars: ±1 std over seeds); lines: each architecture's own Pareto "
        "front",
    )


def pairs_chart(pairs: pd.DataFrame, y: str) -> Chart:
    """Small-dense (squares) joined to the large-sparse model it is matched with (circles)."""
    p = Panel(f"{y} at matched nonzero parameters", M.nonzero_params, y, xlog=True)
    xs, ys = [], []
    for _, r in pairs.iterrows():
        xs += [r["dense_nonzero_params"], r["sparse_nonzero_params"], np.nan]
        ys += [r[f"dense_{y}"], r[f"sparse_{y}"], np.nan]
    p.series.append(
        Series(
            np.array(xs, float),
            np.array(ys, float),
            "pair",
            mode="lines",
            color=GREY,
            legend=False,
            width=1.0,
        )
    )
    p.series.append(
        Series(
            pairs["dense_nonzero_params"].to_numpy(float),
            pairs[f"dense_{y}"].to_numpy(float),
            "small dense",
            color=PALETTE[0],
            marker="square",
            text=pairs["dense_label"].tolist(),
        )
    )
    p.series.append(
        Series(
            pairs["sparse_nonzero_params"].to_numpy(float),
            pairs[f"sparse_{y}"].to_numpy(float),
            "large sparse",
            color=PALETTE[1],
            text=pairs["sparse_label"].tolist(),
        )
    )
    return Chart(
        "large_sparse_vs_small_dense",
        "Large-sparse vs small-dense at matched nonzero parameters",
        [p],
        "grey lines join each small dense model to its matched sparse one",
    )
