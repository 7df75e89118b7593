"""The research questions of a pruning sweep, answered from the seed-mean configuration table.

:func:`analyse` turns a loaded :class:`~analysis.load.Experiment` into fronts (one per cost axis)
and report sections. Every sentence is built from numbers computed here; a section whose data is
missing says so in plain words instead of failing. Rendering lives in plots.py / report.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import charts
from analysis.load import FINISHED, Experiment
from analysis.pareto import hypervolume_2d, pareto_mask, reference_point
from analysis.tables import (
    DENSE_EPS,
    add_config_ids,
    aggregate_seeds,
    identity_columns,
    points_scale,
    seed_mean_history,
)
from sparsity_tune.metrics import direction

DEFAULT_X = ("nonzero_params", "sparse_bytes", "peak_mem_bytes", "train_time_s", "epoch_time_s")
DEFAULT_Y = "test_acc"
DEFAULT_TOLERANCE = 1.0  # accuracy points (percentage points when accuracies are fractions)
MATCH_RTOL = 0.2  # nonzero params of a "matched" pair differ by at most 20%
REF_MARGIN = 0.1  # hypervolume reference: the worst observed values, 10% of the range beyond
REFERENCE_TEXT = "worst observed value on each axis, pushed 10% of the observed range further"


@dataclass
class Front:
    x: str
    y: str
    x_dir: str
    y_dir: str
    table: pd.DataFrame  # the non-dominated configurations, sorted by x, with seed spread
    n_configs: int  # configurations with both values (the candidates)
    hypervolume: float
    hv_normalized: float  # hypervolume / area of the box from the ideal to the reference point
    ref: tuple[float, float]  # REFERENCE_TEXT, over the candidates


@dataclass
class Section:
    key: str
    title: str
    sentences: list[str] = field(default_factory=list)
    charts: list[charts.Chart] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


@dataclass
class Analysis:
    experiment: Experiment
    trials: pd.DataFrame  # experiment.trials + config_id, base_id, label, arch, size
    configs: pd.DataFrame  # seed aggregates of the finished trials
    history: pd.DataFrame  # seed-mean per configuration and epoch
    fronts: dict[str, Front]
    sections: list[Section]
    y: str
    tolerance: float
    scale: float  # multiply y differences by this to get points
    usable: pd.DataFrame = field(default_factory=pd.DataFrame)  # configs with y and sparsity
    why_unusable: str = ""  # what the sections say when ``usable`` is empty


def front_table(configs: pd.DataFrame, x: str, y: str) -> Front:
    """Pareto front of seed means on (x, y), directions from sparsity_tune.metrics.direction."""
    x_dir, y_dir = direction(x), direction(y)
    cand = configs[np.isfinite(configs[x].astype(float)) & np.isfinite(configs[y].astype(float))]
    if cand.empty:
        return Front(
            x,
            y,
            x_dir,
            y_dir,
            cand.iloc[0:0],
            0,
            float("nan"),
            float("nan"),
            (float("nan"), float("nan")),
        )
    xv, yv = cand[x].to_numpy(float), cand[y].to_numpy(float)
    mask = pareto_mask(xv, yv, x_dir, y_dir)
    ref = reference_point(xv, yv, x_dir, y_dir, margin=REF_MARGIN)
    hv = hypervolume_2d(xv[mask], yv[mask], ref, x_dir, y_dir)
    flip = {"min": "max", "max": "min"}
    ideal = reference_point(xv, yv, flip[x_dir], flip[y_dir])  # the best observed values
    box = abs(ref[0] - ideal[0]) * abs(ref[1] - ideal[1])
    spread = [f"{m}{s}" for m in (x, y) for s in ("", "_std", "_ci95_lo", "_ci95_hi")]
    lead = ["config_id", "label", "arch", "size", "n_seeds", *dict.fromkeys(spread)]
    extra = [c for c in ("sparsity",) if c not in lead]
    cols = [*lead, *extra, *(c for c in identity_columns(configs) if c in configs)]
    table = cand.loc[mask, [c for c in dict.fromkeys(cols) if c in cand]]
    table = table.sort_values([x, y], kind="stable")
    table = table.assign(
        hypervolume=hv,
        hv_normalized=hv / box if box > 0 else np.nan,
        hv_ref_x=ref[0],
        hv_ref_y=ref[1],
        hv_reference=REFERENCE_TEXT,
    )
    return Front(x, y, x_dir, y_dir, table, len(cand), hv, hv / box if box > 0 else np.nan, ref)


def dense_baselines(configs: pd.DataFrame, y: str, scale: float) -> pd.DataFrame:
    """Each configuration beside the dense configuration with the same non-pruning settings:
    ``dense_<y>`` and ``drop_pts`` (dense minus this, in points)."""
    dense = configs[configs["sparsity"] <= DENSE_EPS]
    base = dense.groupby("base_id")[y].mean().rename(f"dense_{y}")
    out = configs.join(base, on="base_id")
    sign = 1.0 if direction(y) == "max" else -1.0
    return out.assign(drop_pts=sign * (out[f"dense_{y}"] - out[y]) * scale)


def _fmt(v: float, digits: int = 3) -> str:
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def analyse(
    exp: Experiment,
    xs: tuple[str, ...] | list[str] = DEFAULT_X,
    y: str = DEFAULT_Y,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Analysis:
    """Configurations, fronts and the report sections (the whole computation, no file I/O)."""
    trials = add_config_ids(exp.trials)
    configs = aggregate_seeds(trials)
    hist = seed_mean_history(exp.history, trials)
    hist = hist[hist["config_id"].isin(configs["config_id"])]
    usable = configs[configs[y].notna() & configs["sparsity"].notna()] if len(configs) else configs
    scale = points_scale(configs[y].dropna()) if len(configs) and configs[y].notna().any() else 1.0
    fronts = {x: front_table(configs, x, y) for x in xs}
    why = (
        "no finished trial yet"
        if configs.empty
        else f"no finished configuration has both {y} and sparsity values"
    )
    a = Analysis(exp, trials, configs, hist, fronts, [], y, tolerance, scale, usable, why)
    a.sections = [
        _overview(a),
        _dynamics(a),
        _tolerance(a),
        _robustness(a),
        _tradeoffs(a),
        _arch(a),
        _matched(a),
    ]
    return a


def _overview(a: Analysis) -> Section:
    s = Section("overview", "Experiment")
    counts = a.trials["status"].value_counts()
    s.sentences.append(
        f"{len(a.trials)} trials: {counts.get(FINISHED, 0)} finished, {counts.get('running', 0)} "
        f"running, {counts.get('stopped', 0)} stopped early, {counts.get('failed', 0)} failed; {len(a.configs)} configurations from the "
        f"finished trials, {_fmt(a.configs['n_seeds'].mean() if len(a.configs) else np.nan)} seeds "
        f"each on average. Unfinished trials are listed in trials.csv and left out of every figure."
    )
    failed = a.trials[a.trials["status"] != FINISHED]
    if len(failed):
        s.tables.append(
            ("Unfinished trials", failed[["trial_id", "status", "epochs_done", "error"]])
        )
    return s


def _no_data(s: Section, why: str) -> Section:
    s.sentences.append(f"Not available: {why}.")
    return s


def _dynamics(a: Analysis) -> Section:
    s = Section("dynamics", "1. Training dynamics and convergence")
    c = a.usable
    if c.empty:
        return _no_data(s, a.why_unusable)
    for arch, adf in c.groupby("arch"):
        dense = adf[adf["sparsity"] <= DENSE_EPS]
        top = adf["sparsity"].round(2).max()
        sparse = adf[adf["sparsity"].round(2) == top]
        ref_name = "dense" if len(dense) else "least sparse"
        if dense.empty:
            dense = adf[adf["sparsity"].round(2) == adf["sparsity"].round(2).min()]
        e_d, e_s = dense["epochs_to_99pct"].mean(), sparse["epochs_to_99pct"].mean()
        l_d, l_s = dense["val_loss"].mean(), sparse["val_loss"].mean()
        if np.isfinite(e_d) or np.isfinite(e_s):
            s.sentences.append(
                f"{arch}: {ref_name} configurations reach 99% of their best val_acc after "
                f"{_fmt(e_d)} epochs on average (epochs_to_99pct), the sparsest (sparsity "
                f"{_fmt(top)}) after {_fmt(e_s)}; final val_loss {_fmt(l_d)} vs {_fmt(l_s)}."
            )
    if "epochs_to_99pct" in c and c["epochs_to_99pct"].notna().any():
        s.charts.append(
            charts.by_group_chart(
                c,
                "convergence",
                "Epochs to 99% of best val_acc vs sparsity",
                "sparsity",
                ["epochs_to_99pct"],
                "arch",
                note="one line per model size; bars: ±1 std over seeds",
            )
        )
    else:
        s.sentences.append("Not available: epochs_to_99pct (no summary.json yet).")
    if a.history.empty:
        s.sentences.append("Not available: per-epoch records (records.jsonl is empty).")
        return s
    s.charts.append(
        charts.curves_chart(
            a.history,
            c,
            "learning_curves",
            "Learning curves (seed mean per epoch)",
            ["val_loss", "val_acc"],
        )
    )
    s.charts.append(
        charts.curves_chart(
            a.history,
            c,
            "sparsity_schedule",
            "Achieved sparsity per epoch (dashed: the schedule's target)",
            ["sparsity"],
            dashed={"sparsity": "target_sparsity"},
        )
    )
    return s


def _tolerance_table(a: Analysis) -> pd.DataFrame:
    d = dense_baselines(a.usable, a.y, a.scale)
    return d[d[f"dense_{a.y}"].notna()]


def _best_within(d: pd.DataFrame, tol: float, keys: list[str]) -> pd.DataFrame:
    ok = d[d["drop_pts"] <= tol]
    if ok.empty:
        return ok
    idx = ok.sort_values(["sparsity", "drop_pts"], ascending=[False, True]).groupby(keys).head(1)
    return idx.sort_values(keys)


def _tolerance(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section(
        "tolerance", f"2. Highest sparsity within {_fmt(tol)} point(s) of the dense baseline"
    )
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    d = _tolerance_table(a)
    if d.empty:
        return _no_data(
            s,
            "no dense baseline (a configuration with sparsity 0 and otherwise the "
            "same settings) among the finished trials; add a dense run (pruning.method=none, or final_sparsity 0) to the sweep",
        )
    pruned = d[d["sparsity"] > DENSE_EPS]
    best = _best_within(pruned, tol, ["arch"]).set_index("arch")
    for arch in sorted(d["arch"].unique()):
        if arch in best.index:
            r = best.loc[arch]
            s.sentences.append(
                f"{arch}: up to sparsity {_fmt(r['sparsity'])} ({r['label']}) stays within "
                f"{_fmt(tol)} point(s): {y} {_fmt(r[y])} vs dense {_fmt(r[f'dense_{y}'])} "
                f"(drop {_fmt(r['drop_pts'], 2)} points, {int(r['n_seeds'])} seed(s))."
            )
            continue
        cand = pruned[pruned["arch"] == arch]
        if cand.empty:
            s.sentences.append(f"{arch}: no pruned configuration with a dense baseline to compare.")
            continue
        r = cand.loc[cand["drop_pts"].idxmin()]
        s.sentences.append(
            f"{arch}: no pruned configuration stays within {_fmt(tol)} point(s); the smallest "
            f"drop is {_fmt(r['drop_pts'], 2)} points at sparsity {_fmt(r['sparsity'])} "
            f"({r['label']}: {y} {_fmt(r[y])} vs dense {_fmt(r[f'dense_{y}'])})."
        )
    per_size = _best_within(d, tol, ["arch", "size"])
    cols = ["arch", "size", "sparsity", y, f"dense_{y}", "drop_pts", "n_seeds", "label"]
    s.tables.append(
        (
            "Highest sparsity within tolerance, per architecture and size "
            "(sparsity 0: no pruned configuration of that size is within it)",
            per_size[cols],
        )
    )
    dense = d[d["sparsity"] <= DENSE_EPS]
    hl = pd.DataFrame(
        {
            "group": dense["size"],
            "facet": dense["arch"],
            "value": dense[y] - tol / a.scale * (1 if direction(y) == "max" else -1),
        }
    )
    s.charts.append(
        charts.by_group_chart(
            a.usable,
            "acc_vs_sparsity",
            f"{y} vs sparsity per architecture and size",
            "sparsity",
            [y],
            "arch",
            hlines={y: hl},
            note=f"dashed: dense {y} minus {_fmt(tol)} point(s), per size; bars: ±1 std over seeds",
        )
    )
    return s


def _robustness(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("robustness", "3. Robustness across depth, width and seeds")
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    d = dense_baselines(a.usable, y, a.scale)
    per_size = _best_within(d[d[f"dense_{y}"].notna()], tol, ["arch", "size"])
    for arch, g in per_size.groupby("arch"):
        if g["size"].nunique() < 2:
            continue
        lo, hi = g.loc[g["sparsity"].idxmin()], g.loc[g["sparsity"].idxmax()]
        s.sentences.append(
            f"{arch}: across {g['size'].nunique()} sizes the highest sparsity within {_fmt(tol)} "
            f"point(s) ranges from {_fmt(lo['sparsity'])} ({lo['size']}) to {_fmt(hi['sparsity'])} "
            f"({hi['size']})."
        )
    if d.groupby("arch")["size"].nunique().max() < 2:
        s.sentences.append(
            "Not available: depth/width comparison (one model size per architecture)."
        )
    multi = d[(d["n_seeds"] >= 2) & d[f"{y}_std"].notna()]
    if multi.empty:
        s.sentences.append("Not available: seed spread (every configuration ran with one seed).")
    else:
        std = multi[f"{y}_std"] * a.scale
        worst = multi.loc[std.idxmax()]
        s.sentences.append(
            f"Across seeds, the std of {y} is {_fmt(std.mean(), 2)} points on average over "
            f"{len(multi)} configurations with ≥2 seeds (largest {_fmt(std.max(), 2)} points at "
            f"{worst['label']}); median 95% interval half-width "
            f"{_fmt(((multi[f'{y}_ci95_hi'] - multi[y]) * a.scale).median(), 2)} points."
        )
    d = d.assign(seed_std_pts=d[f"{y}_std"] * a.scale)
    ys = [c for c in ("drop_pts", "seed_std_pts") if d[c].notna().any()]
    if ys:
        s.charts.append(
            charts.by_group_chart(
                d,
                "robustness",
                "Accuracy drop from dense and seed spread vs sparsity",
                "sparsity",
                ys,
                "arch",
                note="drop_pts: dense minus pruned, in points; seed_std_pts: std over seeds",
            )
        )
    return s


def _tradeoffs(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("tradeoffs", "4. Accuracy / time / memory trade-offs (Pareto fronts)")
    if a.configs.empty:
        return _no_data(s, "no finished trial yet")
    s.sentences.append(
        f"Fronts of the seed means; hypervolume reference point: the {REFERENCE_TEXT}; "
        "normalised hypervolume divides by the box from the best observed values to it."
    )
    for x, f in a.fronts.items():
        if f.n_configs == 0:
            s.sentences.append(f"{x}: not available (no configuration has both {x} and {y}).")
            continue
        cand = a.configs[a.configs[x].notna() & a.configs[y].notna()]
        best = cand.loc[cand[y].idxmax() if f.y_dir == "max" else cand[y].idxmin()]
        near = cand[(best[y] - cand[y]) * a.scale * (1 if f.y_dir == "max" else -1) <= tol]
        cheap = near.loc[near[x].idxmin() if f.x_dir == "min" else near[x].idxmax()]
        ratio = best[x] / cheap[x] if cheap[x] else np.nan
        if cheap["config_id"] == best["config_id"]:
            cheaper = f"no cheaper configuration is within {_fmt(tol)} point(s) of it."
        else:
            cheaper = (
                f"the cheapest within {_fmt(tol)} point(s) of it ({cheap['label']}) costs "
                f"{_fmt(cheap[x])} ({_fmt(ratio, 2)}× less)."
            )
        s.sentences.append(
            f"{x}: {len(f.table)} of {f.n_configs} configurations are on the front; hypervolume "
            f"{_fmt(f.hypervolume)} (normalised {_fmt(f.hv_normalized)}) against the reference "
            f"point ({x}={_fmt(f.ref[0])}, {y}={_fmt(f.ref[1])}). The "
            f"most accurate ({best['label']}, {y} {_fmt(best[y])}) costs {_fmt(best[x])}; "
            + cheaper
        )
        s.charts.append(charts.front_chart(cand, f.table, x, y))
    costs = [
        c
        for c in ("epoch_time_s", "train_time_s", "peak_mem_bytes", "sparse_bytes")
        if c in a.usable and a.usable[c].notna().any()
    ]
    if costs:
        s.charts.append(
            charts.by_group_chart(
                a.usable,
                "cost_vs_sparsity",
                "Time per epoch and memory vs sparsity",
                "sparsity",
                costs,
                "arch",
                note="final epoch's record (peak_mem_bytes: max over epochs), seed mean; "
                "one line per model size",
            )
        )
    return s


def _arch(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("arch", "5. MLP vs CNN")
    c = a.usable
    if c.empty or c["arch"].nunique() < 2:
        archs = ", ".join(sorted(c["arch"].unique())) if len(c) else "none"
        return _no_data(s, f"the finished trials cover one architecture only ({archs})")
    x = "nonzero_params"
    d = _tolerance_table(a)
    pruned = d[d["sparsity"] > DENSE_EPS]
    best_tol = _best_within(pruned, tol, ["arch"]).set_index("arch") if len(d) else None
    fronts = {}
    budget = c.groupby("arch")[x].min().max()
    maximise = direction(y) == "max"
    for arch, adf in c.groupby("arch"):
        fronts[arch] = front_table(adf, x, y).table
        top = adf.loc[adf[y].idxmax() if maximise else adf[y].idxmin()]
        under = adf.loc[adf[x] <= budget, y]
        at_budget = (under.max() if maximise else under.min()) if len(under) else np.nan
        if best_tol is None or not (d["arch"] == arch).any():
            tol_txt = ""
        elif arch in best_tol.index:
            tol_txt = (
                f"; highest sparsity within {_fmt(tol)} point(s) of dense: "
                f"{_fmt(best_tol.loc[arch, 'sparsity'])}"
            )
        else:
            tol_txt = f"; no pruned configuration within {_fmt(tol)} point(s) of dense"
        s.sentences.append(
            f"{arch}: best {y} {_fmt(top[y])} ({top['label']}, {_fmt(top[x])} nonzero params); "
            f"best with at most {_fmt(budget)} nonzero params: {_fmt(at_budget)}{tol_txt}."
        )
    s.charts.append(charts.arch_compare_chart(c, fronts, x, y))
    return s


def matched_pairs(configs: pd.DataFrame, y: str, rtol: float = MATCH_RTOL) -> pd.DataFrame:
    """Each dense configuration beside the sparse configuration of a *larger* model of the same
    architecture whose nonzero_params is closest to it (within ``rtol``).

    Sparse candidates are sorted by nonzero_params per architecture, so each dense configuration
    looks only at its window (numpy searchsorted), never at all pairs.
    """
    c = configs.dropna(subset=["nonzero_params", "total_params", y])
    dense = c[c["sparsity"] <= DENSE_EPS]
    sparse = c[c["sparsity"] > DENSE_EPS]
    rows = []
    for arch, d_arch in dense.groupby("arch", sort=True):
        s_arch = sparse[sparse["arch"] == arch].sort_values("nonzero_params", kind="stable")
        if s_arch.empty:
            continue
        nz = s_arch["nonzero_params"].to_numpy(float)
        total = s_arch["total_params"].to_numpy(float)
        for i, d in enumerate(d_arch.itertuples(index=False)):
            d_nz, d_total = float(d.nonzero_params), float(d.total_params)
            lo = np.searchsorted(nz, d_nz * (1 - rtol), side="left")
            hi = np.searchsorted(nz, d_nz * (1 + rtol), side="right")
            window = np.arange(lo, hi)
            window = window[total[window] > d_total]
            if window.size == 0:
                continue
            j = window[np.argmin(np.abs(nz[window] - d_nz))]
            rows.append((arch, d_arch.index[i], s_arch.index[j]))
    if not rows:
        return pd.DataFrame()
    di = [r[1] for r in rows]
    si = [r[2] for r in rows]
    out = pd.DataFrame(
        {
            "arch": [r[0] for r in rows],
            "dense_label": c.loc[di, "label"].to_numpy(),
            "dense_nonzero_params": c.loc[di, "nonzero_params"].to_numpy(),
            f"dense_{y}": c.loc[di, y].to_numpy(),
            "sparse_label": c.loc[si, "label"].to_numpy(),
            "sparse_nonzero_params": c.loc[si, "nonzero_params"].to_numpy(),
            "sparse_total_params": c.loc[si, "total_params"].to_numpy(),
            "sparse_sparsity": c.loc[si, "sparsity"].to_numpy(),
            f"sparse_{y}": c.loc[si, y].to_numpy(),
        }
    )
    sign = 1.0 if direction(y) == "max" else -1.0
    return out.assign(sparse_minus_dense=sign * (out[f"sparse_{y}"] - out[f"dense_{y}"]))


def _matched(a: Analysis) -> Section:
    y = a.y
    s = Section("matched", "Large-sparse vs small-dense at matched nonzero parameters")
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    pairs = matched_pairs(a.usable, y)
    if pairs.empty:
        return _no_data(
            s,
            "no dense configuration has a sparse configuration of a larger model "
            f"with nonzero_params within {int(MATCH_RTOL * 100)}% of it",
        )
    wins = int((pairs["sparse_minus_dense"] > 0).sum())
    med = pairs["sparse_minus_dense"].median() * a.scale
    s.sentences.append(
        f"In {wins} of {len(pairs)} matched pairs (nonzero_params within {int(MATCH_RTOL * 100)}%),"
        f" the larger sparse model is more accurate; median difference {med:+.2f} points of {y}."
    )
    s.tables.append(("Matched pairs", pairs))
    s.charts.append(charts.pairs_chart(pairs, y))
    return s
