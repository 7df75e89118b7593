"""Research question 4, accuracy / time / memory trade-offs: the Pareto front per cost axis
(:func:`analysis.pareto.front_table`), and the measured costs of the pruned models against
dense by granularity (measured.csv's verdicts, from :mod:`analysis.measured`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis import charts, stopping
from analysis import wording as w
from analysis.measured import (
    BY_RULE,
    CHEAPER,
    COST_TOLERANCE,
    DEARER,
    FLAT,
    GRANULARITY,
    IN_RUN_EPOCHS,
    MOVES,
    PAIRED_ROUNDS,
    SAME,
    SEED_MEANS,
    UNJUDGED,
    Axis,
    compacted_speedup,
    granularity,
    is_measured,
)
from analysis.pareto import REFERENCE_TEXT, versus_best
from analysis.points import P
from analysis.sections.section import Section, compact, lines, no_data
from analysis.stats import BETTER, WITHIN
from sparsity_tune.metrics import M

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    y = a.y
    s = Section("tradeoffs", "4. Accuracy / time / memory trade-offs (Pareto fronts)")
    if a.points.empty:
        return no_data(s, "no finished trial yet")
    counted = [x for x in a.fronts if not is_measured(x)]
    measured = [x for x in a.fronts if is_measured(x)]
    s.sentences.append(
        "Fronts of the seed means of the operating points (IMP rounds included); hypervolume "
        f"reference point: the {REFERENCE_TEXT}; normalised hypervolume divides by the box "
        "from the best observed values to it. Counted costs (from the masks and shapes: the "
        f"same masks give the same figure): {', '.join(counted) or 'none'}; measured costs "
        "(wall time, memory and bytes of the model as trained or shipped, on the machine that "
        f"ran the trial, read against the seed noise): {', '.join(measured) or 'none'}. A "
        f"measured axis on which no pruned point differs from its dense baseline beyond the "
        f"seed noise is called '{FLAT}' and gets no front. Against dense, {RATIO_TEXT}."
    )
    for x, f in a.fronts.items():
        kind = "measured" if is_measured(x) else "counted"
        if f.n_configs == 0:
            s.sentences.append(
                f"{x} ({kind}): not available (no operating point has both {x} and {y})."
            )
            continue
        cand = a.usable[a.usable[x].notna() & a.usable[y].notna()]
        cand = cand.assign(granularity=granularity(cand))
        ax = a.axes.get(x)
        if ax is not None and ax.state == FLAT:
            s.sentences.append(_flat_sentence(x, kind, ax))
            s.charts.append(
                charts.front_chart(
                    cand, f.table, x, y, "granularity", draw_front=False, note=f"{x}: {FLAT}"
                )
            )
            continue
        best = cand.loc[cand[y].idxmax() if f.y_dir == "max" else cand[y].idxmin()]
        text = (
            f"{x} ({kind}): {len(f.table)} of {f.n_configs} points are on the front; hypervolume "
            f"{w.fmt(f.hypervolume)} (normalised {w.fmt(f.hv_normalized)}) against the reference "
            f"point ({x}={w.fmt(f.ref[0])}, {y}={w.fmt(f.ref[1])}). The most accurate "
            f"({best['label']}, {y} {w.fmt(best[y])}) costs {w.fmt(best[x])}; "
            + _cheapest(a, cand, best, x)
        )
        if kind == "measured" and ax is not None:
            text += " " + _by_granularity(a, x, ax)
        stopped = stopping.stopped_points(a.trials, x, y)
        if len(stopped):
            text += " " + stopping.front_sentence(stopped, f.table, x, y, f.x_dir, f.y_dir)
        s.sentences.append(text)
        s.charts.append(charts.front_chart(cand, f.table, x, y, "granularity"))
        stopping.mark_on_chart(s.charts[-1], stopped, x, y)
    s.sentences.extend(_granularity_sentences(a))
    s.answer = _answer(a)
    largest = _largest_models(a)
    if len(largest):
        s.summary = (
            f"The largest model of each architecture: pruned - dense in points of {y} with its "
            "verdict, and each measured cost against dense as the ratio dense / pruned (how it "
            "is read: the first statement under Details)",
            largest,
        )
    costs = [
        c
        for c in (M.epoch_time_s, M.train_time_s, M.peak_mem_bytes, M.sparse_bytes)
        if c in a.usable and a.usable[c].notna().any()
    ]
    if costs:
        s.charts.append(
            charts.by_group_chart(
                lines(a.usable),
                "cost_vs_sparsity",
                "Time per epoch and memory vs sparsity",
                M.sparsity,
                costs,
                "arch",
                group="line",
                note="last epoch of the point (peak_mem_bytes: max over its epochs), seed mean; "
                "one line per model size",
            )
        )
    wide = _ratio_table(a)
    if len(wide):
        ys = [c for c in wide.columns if c.startswith("ratio: ")]
        s.charts.append(
            charts.by_group_chart(
                wide.assign(line=wide["granularity"] + " · " + wide["size"].astype(str)),
                "measured_vs_sparsity",
                "Measured costs of the pruned models against dense, by granularity",
                M.sparsity,
                ys,
                "arch",
                group="line",
                note="ratio dense / pruned of the seed geometric means (above 1: cheaper; "
                "intervals in measured.csv); one line per granularity and model size",
            )
        )
        s.tables.append(
            (
                "Measured costs against the dense baseline: ratio dense / pruned (above 1: "
                f"cheaper) and its verdict; difference of {y} in points (all in measured.csv)",
                wide,
            )
        )
    return s


#: Measured axes spelled out per granularity in section 4, and how each is said.
SENTENCE_AXES = (M.infer_ms_b256, M.infer_ms_b1, M.train_time_s, M.deploy_bytes)
_WORDS = {  # (cheaper, dearer, neither)
    M.infer_ms_b256: ("faster at batch 256", "slower at batch 256", "at batch 256"),
    M.infer_ms_b1: ("faster at batch 1", "slower at batch 1", "at batch 1"),
    M.train_time_s: ("faster training epochs", "slower training epochs", "training epochs"),
    M.epoch_time_s: ("faster epochs", "slower epochs", "whole epochs"),
    M.peak_mem_bytes: ("less training memory", "more training memory", "training memory"),
    M.deploy_bytes: ("smaller deployed", "larger deployed", "deployed bytes"),
}
RATIO_TEXT = (
    "measured costs as the ratio dense / pruned of the seed geometric means, with the Welch 95% "
    "interval over seeds of the log values; where the runs kept their interleaved rounds, "
    "the random-effects combination of the seeds' paired rounds and its 95% interval, the gain "
    "called only when every seed's own rounds show it (Benjamini-Hochberg over the points)"
)


def _ratio_phrase(ax: Axis, x: str, point_id: str) -> str | None:
    """How point ``point_id`` compares with dense on ``x``, in words, or None (not compared)."""
    if point_id not in ax.table.index:
        return None
    r = ax.table.loc[point_id]
    good, bad, plain = _WORDS.get(x, (f"less {x}", f"more {x}", x))
    lo, hi = r["ratio_ci95_lo"], r["ratio_ci95_hi"]
    every = ""
    if r.get("test") in (PAIRED_ROUNDS, IN_RUN_EPOCHS) and r["verdict"] in (CHEAPER, DEARER):
        every = f"in every seed, BH-adjusted p {r['p_adjusted']:.2g}, "
    if r["verdict"] == CHEAPER:
        return f"{w.times(r['ratio'])} {good} ({every}95% CI [{w.times(lo)}, {w.times(hi)}])"
    if r["verdict"] == DEARER:
        ci = f"95% CI [{w.times(1 / hi)}, {w.times(1 / lo)}]"
        return f"{w.times(1 / r['ratio'])} {bad} ({every}{ci})"
    if r.get("test") == BY_RULE:
        return f"{w.times(r['ratio'])} {plain} ({BY_RULE})"
    if r["verdict"] == SAME:
        band = f"within {COST_TOLERANCE:.0%} of dense by two one-sided tests at 5%"
        return (
            f"{w.times(r['ratio'])} {plain} ({SAME}: {band}, 95% CI [{w.times(lo)}, {w.times(hi)}])"
        )
    if ax.state == FLAT:
        return f"{w.times(r['ratio'])} {plain} ({FLAT})"
    if np.isfinite(lo):
        return f"{w.times(r['ratio'])} {plain} (within seed noise)"
    return f"{w.times(r['ratio'])} {plain} (no interval: one seed)"


def _compacted_phrase(c: pd.Series) -> str:
    """A compacted point's in-run training-step ratio (train_time_speedup), read at 95%."""
    lo, hi, r = c["ratio_ci95_lo"], c["ratio_ci95_hi"], c["ratio"]
    ci = f"measured in the run, 95% CI [{w.times(lo)}, {w.times(hi)}]"
    if c.get("test") == PAIRED_ROUNDS:
        ci = f"in every seed's interleaved steps, {ci}"
    if c.get("verdict", CHEAPER if lo > 1 else None) == CHEAPER:
        return f"training steps {w.times(r)} faster once compacted ({ci})"
    if c.get("verdict", DEARER if hi < 1 else None) == DEARER:
        return f"training steps {w.times(1 / r)} slower once compacted ({ci})"
    word = "within seed noise" if np.isfinite(lo) else "no interval: one seed"
    return f"training steps {w.times(r)} once compacted ({word}, {ci})"


def _flat_sentence(x: str, kind: str, ax: Axis) -> str:
    r = ax.table["ratio"]
    tests = set(ax.table["test"]) if "test" in ax.table else set()
    how = f"Bonferroni-adjusted {w.WELCH} of the log values"
    if PAIRED_ROUNDS in tests:
        how = "every seed's paired interleaved rounds, Benjamini-Hochberg over the points" + (
            f"; runs without rounds: {how}" if SEED_MEANS in tests else ""
        )
    return (
        f"{x} ({kind}): {FLAT}: no pruned point's ratio to its dense baseline is resolved "
        f"({ax.k} points, {how}; ratios dense / pruned {w.times(r.min())} to "
        f"{w.times(r.max())}), so no front is drawn from it (the figure shows the points, by "
        "granularity)."
    )


def _granularity_counts(a: Analysis, ax: Axis) -> pd.DataFrame:
    """Per granularity: points compared with dense on the axis, how many are cheaper and dearer
    (measured.csv's verdicts), and the range of the ratio dense / pruned."""
    info = a.usable.set_index(P.point_id)
    t = ax.table.join(info[[c for c in (M.sparsity, GRANULARITY) if c in info]], how="left")
    t = t.assign(granularity=granularity(t))
    rows = [
        {
            "granularity": g,
            "n": len(gt),
            "cheaper": int((gt["verdict"] == CHEAPER).sum()),
            "dearer": int((gt["verdict"] == DEARER).sum()),
            "lo": gt["ratio"].min(),
            "hi": gt["ratio"].max(),
        }
        for g, gt in t.groupby("granularity", sort=True)
    ]
    return pd.DataFrame(rows, columns=["granularity", "n", "cheaper", "dearer", "lo", "hi"])


def _by_granularity(a: Analysis, x: str, ax: Axis) -> str:
    """Per granularity: how many points are cheaper than dense on ``x``, and the ratio range."""
    if ax.state == UNJUDGED:
        return (
            "Not judged against the seed noise: no pruned point has a dense baseline with an "
            "interval (a dense run with at least 2 seeds, and at least 2 seeds of its own)."
        )
    parts = [
        f"{r.granularity} cheaper at {r.cheaper} and dearer at {r.dearer} of {r.n} points "
        f"({w.times(r.lo)} to {w.times(r.hi)})"
        for r in _granularity_counts(a, ax).itertuples()
    ]
    return (
        "Against dense (ratio dense / pruned; the axis moves beyond the seed noise at the 5% "
        "level): " + "; ".join(parts) + "."
    )


def _answer(a: Analysis) -> str:
    """Per granularity, how often the pruned models are resolved cheaper than dense on the first
    measured sentence axis that moves (measured.csv's verdicts), in one sentence; where no
    measured axis moves, the first front."""
    moving = [x for x in SENTENCE_AXES if x in a.axes and a.axes[x].state == MOVES]
    if moving:
        x = moving[0]
        good = _WORDS.get(x, (f"cheaper on {x}",))[0]
        parts = []
        for r in _granularity_counts(a, a.axes[x]).itertuples():
            dearer = f", {_WORDS.get(x, ('', 'dearer'))[1]} at {r.dearer}" if r.dearer else ""
            parts.append(
                f"{r.granularity} at {r.cheaper} of {r.n} points{dearer} "
                f"({w.times(r.lo)} to {w.times(r.hi)})"
            )
        return (
            f"Measured against dense ({x}, ratio dense / pruned), the pruned models are {good} "
            "beyond the seed noise for " + "; ".join(parts) + "."
        )
    for x, f in a.fronts.items():
        if f.n_configs:
            return (
                f"{len(f.table)} of {f.n_configs} operating points are on the {a.y} / {x} front "
                f"(hypervolume {w.fmt(f.hypervolume)}, normalised {w.fmt(f.hv_normalized)}); "
                "no measured cost moves beyond the seed noise against dense."
            )
    return ""


def _ratio_points(a: Analysis) -> tuple[list[str], pd.DataFrame]:
    """The measured sentence axes that compared some point, and the pruned usable points they
    compared, with their granularity."""
    axes = [x for x in SENTENCE_AXES if x in a.axes and len(a.axes[x].table)]
    if not axes:
        return [], pd.DataFrame()
    ids = set().union(*(a.axes[x].table.index for x in axes))
    pts = a.usable[a.usable[P.point_id].isin(ids)]
    return axes, pts.assign(granularity=granularity(pts))


def _ratio_table(a: Analysis) -> pd.DataFrame:
    """One row per compared pruned point: its settings, ratio and verdict on each sentence axis,
    and its accuracy difference to dense (the section's table and figure)."""
    axes, pts = _ratio_points(a)
    if not axes:
        return pd.DataFrame()
    cols = ["arch", "size", "granularity", P.variant, P.round, M.sparsity, "n_seeds", "diff_pts"]
    cols += ["diff_ci95_lo", "diff_ci95_hi", "label"]
    out = pts[[c for c in cols if c in pts]].set_index(pts[P.point_id])
    for x in axes:
        t = a.axes[x].table
        out[f"ratio: {x}"] = t["ratio"].reindex(out.index)
        out[f"verdict: {x}"] = t["verdict"].reindex(out.index)
        if "test" in t:  # runs recorded before the rounds were kept say so here
            out[f"test: {x}"] = t["test"].reindex(out.index)
    return out.sort_values(["arch", "size", "granularity", M.sparsity]).reset_index(drop=True)


def _size_order(g: pd.DataFrame) -> list[str]:
    """The model sizes of ``g``, smallest first (by total_params; by name where it is unknown)."""
    sizes = g["size"].astype(str)
    tp = pd.to_numeric(g[M.total_params], errors="coerce") if M.total_params in g else sizes * 0
    most = tp.groupby(sizes.to_numpy()).max()
    return sorted(most.index, key=lambda v: (np.nan_to_num(most[v], nan=-1.0), v))


def _largest_models(a: Analysis) -> pd.DataFrame:
    """Research question 4 by granularity, one row per pruned point of each architecture's
    largest model: the accuracy difference to dense with its interval and verdict (points.csv),
    then each measured axis in words (measured.csv) and the in-run step speed-up of compacted
    models. The section's compact table: what used to be a sentence of 14 numbers."""
    axes, pts = _ratio_points(a)
    if not axes:
        return pd.DataFrame()
    steps = compacted_speedup(a.samples)
    many = pts.groupby("granularity")[P.variant].nunique()
    out = []
    for arch, g in pts.groupby("arch", sort=True):
        size = _size_order(g)[-1]
        sub = g[g["size"].astype(str) == size]
        for _, r in sub.sort_values(["granularity", M.sparsity, P.variant]).iterrows():
            where = f"{arch} {size} {r['granularity']} {w.pct(r[M.sparsity])}"
            if many.get(r["granularity"], 1) > 1:
                where += f" ({r[P.variant]})"
            if np.isfinite(r[P.round]):
                where += f" (IMP round {int(r[P.round])})"
            row = {"label": where, **{c: r[c] for c in (M.sparsity, "n_seeds", "dense_n")}}
            row.update({c: r[c] for c in ("diff_pts", "diff_ci95_lo", "diff_ci95_hi", "verdict")})
            for x in axes:
                row[x] = _ratio_phrase(a.axes[x], x, r[P.point_id]) or ""
            if len(steps):
                pid = r[P.point_id]
                row[COMPACTED] = _compacted_phrase(steps.loc[pid]) if pid in steps.index else ""
            out.append(row)
    rows = pd.DataFrame(out)
    table = compact(rows)
    for c in rows.columns[rows.columns.get_loc("verdict") + 1 :]:
        table[c] = rows[c].to_numpy()
    return table


#: The compact table's column of the in-run training-step ratio of compacted models.
COMPACTED = "training steps once compacted"


def _granularity_sentences(a: Analysis) -> list[str]:
    """Research question 4 by granularity: each granularity's gain on the first sentence axis at
    its highest sparsity, across model sizes (the points of the largest models are rows of the
    section's compact table, :func:`_largest_models`)."""
    axes, pts = _ratio_points(a)
    if not axes:
        return [
            "Not available: measured costs against dense (no pruned point has a measured cost "
            "and a dense baseline with the same settings)."
        ]
    out = []
    x0 = axes[0]
    t = a.axes[x0].table
    for gran, g in pts[pts[P.point_id].isin(t.index)].groupby("granularity", sort=True):
        parts = []
        for arch, ga in g.groupby("arch", sort=True):
            cells = []
            for size in _size_order(ga):
                top = ga[ga["size"].astype(str) == size].sort_values(M.sparsity).iloc[-1]
                r = t.loc[top[P.point_id]]
                cells.append(f"{size} ({w.pct(top[M.sparsity])}) {w.times(r['ratio'])}")
            parts.append(f"{arch} " + ", ".join(cells))
        out.append(
            f"{gran}, {x0} against dense at each model size's highest {gran} sparsity "
            f"(ratio dense / pruned; smallest model first): " + "; ".join(parts) + "."
        )
    return out


def _cheapest(a: Analysis, cand: pd.DataFrame, best: pd.Series, x: str) -> str:
    """The cheapest point whose difference to the most accurate is resolved within tolerance
    (:func:`analysis.pareto.versus_best`'s verdicts), else the cheapest whose mean is."""
    tol = a.tolerance
    vs = versus_best(cand, best, x, a.y, a.scale, a.sign, tol)
    ok = vs[vs["verdict"].isin([WITHIN, BETTER])]
    if len(ok):
        r, d = cand.loc[ok.index[0]], ok.iloc[0]
        ratio = best[x] / r[x] if r[x] else np.nan
        return (
            f"the cheapest point resolved within {w.fmt(tol)} point(s) of it ({r['label']}) costs "
            f"{w.fmt(r[x])} ({w.fmt(ratio, 2)}× less): {w.signed(d['diff_pts'])} points "
            f"({w.interval(d['diff_ci95_lo'], d['diff_ci95_hi'])})."
        )
    near = vs[vs["diff_pts"] >= -tol]
    if len(near):
        r, d = cand.loc[near.index[0]], near.iloc[0]
        return (
            f"no cheaper point is resolved within {w.fmt(tol)} point(s) of it with these seeds; "
            f"the cheapest whose mean is ({r['label']}, {w.fmt(r[x])}) differs by "
            f"{w.signed(d['diff_pts'])} points "
            f"({w.interval(d['diff_ci95_lo'], d['diff_ci95_hi'])})."
        )
    return f"no cheaper point comes within {w.fmt(tol)} point(s) of it."
