"""One self-contained interactive ``report.html``: plotly figures with plotly.js inlined (works
offline), one section per research question: its answer in one sentence, a compact table of the
comparisons behind it, its figures, and the details (statements of numbers, long tables) folded
away in ``<details>``.

Names and values in the report come from trial files anyone with write access to the storage
could have made, so every text is escaped with :func:`esc` (``html.escape`` plus newlines as
``&#10;``: a name with a newline never becomes a line of its own) and table cells and headers too;
plotly escapes ``<`` in its figure JSON. The file is written atomically (:mod:`analysis.safe_io`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.charts import Chart, sparsity_colorscale
from analysis.pareto import REFERENCE_TEXT
from analysis.questions import Analysis
from analysis.sections.section import Section
from sparsity_tune import stack
from sparsity_tune.metrics import REGISTRY

_DASH = {True: "dash", False: "solid"}


def esc(text: object) -> str:
    """HTML-escape ``text`` (quotes too) and encode line breaks as character references."""
    return (
        html.escape(str(text), quote=True)
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\x0b", "&#11;")
        .replace("\x0c", "&#12;")
        .replace("\x85", "&#133;")
        .replace("\u2028", "&#8232;")
        .replace("\u2029", "&#8233;")
    )


def figure(chart: Chart):
    """A plotly Figure for ``chart`` (one subplot per panel, at most 3 per row)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(chart.panels)
    cols = min(chart.cols or 3, n)
    rows = int(np.ceil(n / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p.title for p in chart.panels])
    for i, panel in enumerate(chart.panels):
        r, c = i // cols + 1, i % cols + 1
        for s in panel.series:
            err = None
            if s.yerr is not None and np.isfinite(s.yerr).any():
                err = {"type": "data", "array": _clean(s.yerr), "visible": True, "thickness": 1}
            fig.add_trace(
                go.Scatter(
                    x=_clean(s.x),
                    y=_clean(s.y),
                    name=s.name,
                    mode=s.mode,
                    opacity=s.alpha,
                    error_y=err,
                    text=s.text,
                    showlegend=s.legend,
                    line={
                        "color": s.color,
                        "dash": _DASH[s.dash],
                        "width": s.width,
                        "shape": "hv" if s.step else "linear",
                    },
                    marker={"color": s.color, "size": 6, "symbol": s.marker},
                    connectgaps=False,
                ),
                row=r,
                col=c,
            )
            if s.end_label and len(s.x):
                fig.add_trace(
                    go.Scatter(
                        x=_clean(s.x[-1:]),
                        y=_clean(s.y[-1:]),
                        mode="text",
                        text=[s.end_label],
                        textposition="middle right",
                        textfont={"size": 10, "color": s.color},
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=r,
                    col=c,
                )
        fig.update_xaxes(
            title_text=panel.xlabel,
            type="log" if panel.xlog else "linear",
            autorange="reversed" if panel.xreverse else True,
            tickvals=panel.xticks,
            ticktext=[f"{v:g}" for v in panel.xticks] if panel.xticks else None,
            row=r,
            col=c,
        )
        fig.update_yaxes(title_text=panel.ylabel, row=r, col=c)
    if chart.colorbar:
        fig.add_trace(_colorbar_trace(chart.colorbar), row=1, col=1)
    fig.update_layout(
        height=360 * rows + 60,
        margin={"t": 60, "b": 40},
        template="plotly_white",
        legend={"font": {"size": 10}},
    )
    return fig


def _colorbar_trace(label: str):
    """An invisible marker trace whose only job is the sparsity colour bar (plotly draws one per
    trace with ``showscale``): the same scale as :func:`analysis.charts.sparsity_color`."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "color": [0.0],
            "cmin": 0.0,
            "cmax": 1.0,
            "colorscale": [[v, c] for v, c in sparsity_colorscale()],
            "showscale": True,
            "colorbar": {"title": {"text": label}, "thickness": 12},
        },
    )


def _clean(a: np.ndarray) -> list:
    """Plain lists with None for NaN (plotly draws gaps; JSON has no NaN)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1.5em;color:#222}
h1,h2,h3,p,ul{max-width:1150px} h1{font-size:1.6em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
p.note{color:#666;font-size:.9em} table{border-collapse:collapse;font-size:.8em;margin:0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right} th{background:#f4f4f4}
.missing{color:#a33}
.tbl{overflow:auto;max-height:75vh;max-width:100%;margin:.5em 0;border:1px solid #ddd}
.tbl th{position:sticky;top:0;z-index:1}
p.answer{font-size:1.15em;font-weight:600;margin:.6em 0 .8em}
h3{font-size:.95em;font-weight:600;color:#444;margin:.8em 0 .2em} .tbl td:first-child{text-align:left}
details{margin:1em 0;max-width:1150px} details>summary{cursor:pointer;color:#555;font-weight:600}
details[open]>summary{margin-bottom:.5em}
"""


def _cell(v: object) -> object:
    """Numbers and missing values stay for pandas to format; anything else is escaped text."""
    if v is None or v is pd.NA or isinstance(v, (int, float, np.number)):
        return v
    return esc(v)


#: Units of whole quantities: a seed mean of them prints as a whole number, its spread beside it.
WHOLE_UNITS = ("count", "bytes", "FLOPs")


def _whole(v: object, spread: object) -> str:
    """``848 ± 12`` (seed mean, seed std), ``848`` when the seeds agree, ``""`` when missing."""
    if not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
        return ""
    text = f"{round(float(v)):,}"
    if isinstance(spread, (int, float, np.number)) and np.isfinite(spread) and spread >= 0.5:
        text += f" ± {round(float(spread)):,}"
    return text


def _whole_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Columns of counted quantities (nonzero parameters, bytes, FLOPs: the metric registry's
    unit) as whole numbers, each with its ``<name>_std`` column folded in beside it."""
    df = df.copy()
    for col in list(df.columns):
        metric = REGISTRY.get(col)
        if metric is None or metric.unit not in WHOLE_UNITS:
            continue
        if not pd.api.types.is_numeric_dtype(df[col]):
            continue
        std = df.pop(f"{col}_std") if f"{col}_std" in df.columns else None
        spreads = std.tolist() if std is not None else [None] * len(df)
        cells = [_whole(v, s) for v, s in zip(df[col].tolist(), spreads, strict=True)]
        df[col] = cells
        if any("±" in c for c in cells):
            df = df.rename(columns={col: f"{col} (mean ± seed std)"})
    return df


def _verdicts_first(df: pd.DataFrame) -> pd.DataFrame:
    """The answer before the numbers behind it: a ``verdict`` column moves to just after the
    leading label columns, so it is seen without scrolling a wide table sideways."""
    verdicts = [c for c in df.columns if "verdict" in str(c)]
    if not verdicts:
        return df
    rest = [c for c in df.columns if c not in verdicts]
    lead = 0
    while lead < len(rest) and not pd.api.types.is_numeric_dtype(df[rest[lead]]):
        lead += 1
    return df[[*rest[:lead], *verdicts, *rest[lead:]]]


#: Rows of a section's compact table shown above the fold (all of them are in the CSV files).
COMPACT_ROWS = 20


def _table_html(
    caption: str, df: pd.DataFrame, max_rows: int = 50, verdicts_first: bool = True
) -> str:
    shown = _whole_counts(df.head(max_rows))
    more = (
        f" (first {max_rows} of {len(df)} rows; full table in the CSV files)"
        if len(df) > max_rows
        else ""
    )
    if verdicts_first:  # a compact table keeps its order: the difference, then its verdict
        shown = _verdicts_first(shown)
    # headers may break after "_" (diff_ci95_lo): a wide table then fits more often
    shown = shown.rename(columns=lambda c: esc(c).replace("_", "_<wbr>"))
    for col in shown.columns:  # cells from trial files: escape here, to_html(escape=False) below
        if not pd.api.types.is_numeric_dtype(shown[col]):  # object, str (pandas 3), category
            shown[col] = shown[col].map(_cell)
    body = shown.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0, escape=False
    )
    return f"<h3>{esc(caption)}{esc(more)}</h3>\n<div class='tbl'>{body}</div>"


def _sources(a: Analysis) -> str:
    """Which experiments the report covers (escaped HTML)."""
    sources = a.experiment.sources
    if not sources:
        return f"Source: {esc(str(a.experiment.root))}"
    per = a.trials["experiment"].value_counts()
    items = [f"{esc(n)} ({int(per.get(n, 0))} trials, {esc(str(p))})" for n, p in sources.items()]
    return f"{len(items)} experiments analysed together: " + "; ".join(items)


def _stack(a: Analysis) -> str:
    """The package versions behind the figures (escaped HTML): what "repeat exactly" needs."""
    stacks = a.experiment.stacks
    if not stacks:
        return "Package versions: not recorded (no launch.json from this version of sparsity-tune)."
    lines = {stack.describe(v) for v in stacks.values()}
    if len(lines) == 1:
        return f"Package versions: {esc(lines.pop())}."
    each = "; ".join(f"{esc(n)}: {esc(stack.describe(v))}" for n, v in stacks.items())
    return f"Package versions differ between the experiments: {each}."


def _figure_html(chart: Chart) -> str:
    note = f"<p class='note'>{esc(chart.note)}</p>" if chart.note else ""
    fig = figure(chart)
    fig.update_layout(title_text=chart.title)
    return note + fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"fig-{chart.key}",
        config={"responsive": True},
    )


def _section_html(s: Section) -> str:
    """A section: its one-sentence answer, the compact table, the figures, then the details (the
    statements of numbers and the long tables) folded in a ``<details>`` element."""
    parts = [f"<section id='sec-{s.key}'><h2>{esc(s.title)}</h2>"]
    if s.lead:
        missing = " missing" if s.lead.startswith("Not available") else ""
        parts.append(f"<p class='answer{missing}'>{esc(s.lead)}</p>")
    if s.summary is not None:
        caption, df = s.summary
        parts.append(_table_html(caption, df, COMPACT_ROWS, verdicts_first=False))
    parts.extend(_figure_html(chart) for chart in s.charts)
    said = s.details
    if said or s.tables:
        what = [f"{len(said)} statement{'s' * (len(said) != 1)}"] if said else []
        what += [f"{len(s.tables)} table{'s' * (len(s.tables) != 1)}"] if s.tables else []
        parts.append(f"<details><summary>Details: {' and '.join(what)}</summary>")
        for sentence in said:
            cls = " class='missing'" if sentence.startswith("Not available") else ""
            parts.append(f"<p{cls}>{esc(sentence)}</p>")
        parts.extend(_table_html(caption, df) for caption, df in s.tables)
        parts.append("</details>")
    parts.append("</section>")
    return "\n".join(parts)


def render(a: Analysis, files: dict[str, str] | None = None) -> str:
    """The report as one HTML string."""
    from plotly.offline import get_plotlyjs

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(a.experiment.name)}: sparsity-tune analysis</title>",
        f"<style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>{esc(a.experiment.name)}: sparsity-tune analysis</h1>",
        f"<p class='note'>{_sources(a)}. Accuracy metric <code>{esc(a.y)}</code> (seed mean per "
        f"operating point), tolerance {a.tolerance:g} point(s), every claim read from the "
        f"Welch 95% interval of a difference over seeds. Hypervolume reference point: the "
        f"{REFERENCE_TEXT}.</p>",
        f"<p class='note'>{_stack(a)}</p>",
    ]
    for s in a.sections:
        parts.append(_section_html(s))
    if files:
        items = "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in files.items())
        parts.append(f"<section id='sec-files'><h2>Files</h2><ul>{items}</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(a: Analysis, path: Path, files: dict[str, str] | None = None) -> Path:
    """Render and write ``path`` atomically into its (already checked) directory."""
    from analysis import safe_io

    return safe_io.write_text(path.parent, path.name, render(a, files))
