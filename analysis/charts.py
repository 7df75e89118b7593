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

from analysis.tables import DENSE_EPS

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
    marker: str = "circle"  # "circle" | "square"
    width: float = 1.5


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xlog: bool = False


@dataclass
class Chart:
    key: str  # file stem of the PNG and id of the HTML figure
    title: str
    panels: list[Panel]
    note: str = ""  # how to read the colours, shown under the title
    cols: int | None = None  # panels per row (default: up to 3)


def _palette(n: int) -> list[str]:
    """``n`` distinct colours: PALETTE, or matplotlib's tab20 when more are needed."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab20"]
    return [to_hex(cmap(i % 20)) for i in range(n)]


def sparsity_color(s: float) -> str:
    """viridis: dark = dense, yellow = sparsest (matplotlib colormap, no pyplot needed)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["viridis"](float(np.clip(s, 0.0, 1.0)) ** 2))


def _cap(df: pd.DataFrame, n: int = MAX_POINTS) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n, random_state=0).sort_index()


def _err(df: pd.DataFrame, m: str) -> np.ndarray | None:
    """Error bars: one standard deviation over seeds. (The t-based 95% intervals are in the CSVs;
    with 2 seeds they are 12.7 std wide, which hides every difference in a figure.)"""
    sd = f"{m}_std"
    if sd not in df or df[sd].isna().all():
        return None
    return df[sd].to_numpy(float)


def _log(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    return bool(len(v) and v.max() / v.min() > 20)


def front_chart(configs: pd.DataFrame, front: pd.DataFrame, x: str, y: str) -> Chart:
    """All configurations faded, the front bold and joined as a staircase; bars = seed 95% CI."""
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
) -> Chart:
    """One panel per (facet value, y); one line per ``group`` value, sorted by x.

    A group with more than ``MAX_GROUP_POINTS`` configurations (a random search) is drawn as
    ``BINS`` quantile bins of x: mean of y, bars = std across the bin's configurations.
    """
    panels, binned = [], False
    facets = sorted(configs[facet].unique()) if facet else [None]
    groups = sorted(configs[group].astype(str).unique())
    colors = dict(zip(groups, _palette(len(groups)), strict=True))
    for f in facets:
        sub = configs if f is None else configs[configs[facet] == f]
        for y in ys:
            p = Panel(f"{y}" + (f" · {f}" if f is not None else ""), x, y, xlog=_log(sub[x]))
            for g, gdf in sub.groupby(sub[group].astype(str), sort=True):
                gdf = gdf.sort_values(x)
                if len(gdf) > MAX_GROUP_POINTS:
                    xs, ys_, err = _binned(gdf, x, y)
                    text = None
                    binned = True
                else:
                    xs, ys_, err = gdf[x].to_numpy(float), gdf[y].to_numpy(float), _err(gdf, y)
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
    c = configs.sort_values("sparsity", kind="stable")
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
    coloured by final sparsity (dense in black)."""
    panels, shown = [], 0
    archs = sorted(configs["arch"].unique())
    for arch in archs:
        chosen = _pick_configs(configs[configs["arch"] == arch]).set_index("config_id")
        shown += len(chosen)
        h = hist[hist["config_id"].isin(chosen.index)]
        for y in ys:
            p = Panel(y + (f" · {arch}" if len(archs) > 1 else ""), "epoch", y)
            for cid, cdf in h.groupby("config_id", sort=False):
                row = chosen.loc[cid]
                sp = float(row["sparsity"])
                dense = sp <= DENSE_EPS
                ep = cdf["epoch"].to_numpy(float)
                p.series.append(
                    Series(
                        ep,
                        cdf[y].to_numpy(float),
                        f"{row['label']} (sparsity {sp:.2f})",
                        mode="lines",
                        color="#000000" if dense else sparsity_color(sp),
                        width=2.5 if dense else 1.2,
                        text=[row["label"]] * len(cdf),
                        legend=False,
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
    note = "colour: final sparsity (viridis: dark = dense, yellow = sparsest; black = dense)"
    if shown < len(configs):
        note += f"; {shown} of {len(configs)} configurations shown, spread over sparsity"
    return Chart(key, title, panels, note, cols=len(ys) if len(ys) > 1 else None)


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
        "faded: all configurations; lines: each architecture's own Pareto front",
    )


def pairs_chart(pairs: pd.DataFrame, y: str) -> Chart:
    """Small-dense (squares) joined to the large-sparse model it is matched with (circles)."""
    p = Panel(f"{y} at matched nonzero parameters", "nonzero_params", y, xlog=True)
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
