"""The research questions of a pruning sweep, answered from seed-aggregated operating points.

:func:`analyse` turns a loaded :class:`~analysis.load.Experiment` (one directory or several) into
operating points (:mod:`analysis.points`: a trial's final network, or each round of an IMP run),
their comparisons with the dense baseline and between methods at equal sparsity
(:mod:`analysis.compare`, Welch intervals from :mod:`analysis.stats`), fronts (one per cost
axis) and report sections. Every "within tolerance", "better" or "worse" in a sentence is a
verdict on the interval of a difference; where the interval straddles the line the sentence says
"not resolved" and how many seeds the observed noise would need. A section whose data is missing
says so in plain words instead of failing. Rendering lives in plots.py / report.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import charts, stopping
from analysis.allocation import sequential_looks, sequential_verdicts
from analysis.compare import DIFF_COLS, at_equal_sparsity, variant_names, versus_dense
from analysis.controls import control_sentences, versus_controls
from analysis.convergence import still_improving
from analysis.load import FINISHED, Experiment
from analysis.measured import (
    BY_RULE,
    CHEAPER,
    DEARER,
    FLAT,
    GRANULARITY,
    PAIRED_ROUNDS,
    SEED_MEANS,
    UNJUDGED,
    Axis,
    compacted_speedup,
    granularity,
    is_measured,
    judge_axis,
)
from analysis.pareto import hypervolume_2d, pareto_mask, reference_point
from analysis.points import DENSE_VARIANT, P, numeric_point_metrics, operating_points
from analysis.stats import (
    BETTER,
    NOT_CONVERGED,
    SEQUENTIAL,
    UNRESOLVED,
    WITHIN,
    WORSE,
    verdict,
    welch,
)
from analysis.tables import (
    DENSE_EPS,
    add_config_ids,
    aggregate_seeds,
    duplicate_seeds,
    identity_columns,
    points_scale,
    seed_mean_history,
)
from sparsity_tune.metrics import LAYER_SPARSITY_PREFIX, M, direction

#: Fronts drawn by default: counted costs first, then measured ones (sparsity_tune.metrics).
DEFAULT_X = (
    M.nonzero_params,
    M.sparse_bytes,
    M.peak_mem_bytes,
    M.train_time_s,
    M.epoch_time_s,
    M.infer_ms_b1,
    M.infer_ms_b256,
    M.deploy_bytes,
)
DEFAULT_Y = M.test_acc
DEFAULT_TOLERANCE = 1.0  # accuracy points (percentage points when accuracies are fractions)
MATCH_RTOL = 0.2  # nonzero params of a "matched" pair differ by at most 20%
REF_MARGIN = 0.1  # hypervolume reference: the worst observed values, 10% of the range beyond
REFERENCE_TEXT = "worst observed value on each axis, pushed 10% of the observed range further"
MAX_PAIR_SENTENCES = 8  # method comparisons spelled out (all are in methods.csv)
WELCH = "Welch 95% interval over seeds"
#: points.csv: why a point counts as still improving at its end (analysis.convergence).
IMPROVING_NOTE = "improving_note"
#: Convergence columns compared with the dense baseline (in epochs; fewer is better).
CONVERGENCE = (P.to99_own, P.early_stop_epoch)


@dataclass
class Front:
    x: str
    y: str
    x_dir: str
    y_dir: str
    table: pd.DataFrame  # the non-dominated operating points, sorted by x, with seed spread
    n_configs: int  # operating points with both values (the candidates)
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
    trials: pd.DataFrame  # experiment.trials + config_id, base_id, label, base_label, arch, size
    configs: pd.DataFrame  # seed aggregates of the finished trials (configs.csv)
    history: pd.DataFrame  # seed-mean per configuration and epoch
    fronts: dict[str, Front]
    sections: list[Section]
    y: str
    tolerance: float
    scale: float  # multiply y differences by this to get points
    usable: pd.DataFrame = field(default_factory=pd.DataFrame)  # points with y and sparsity
    why_unusable: str = ""  # what the sections say when ``usable`` is empty
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per point and seed
    points: pd.DataFrame = field(default_factory=pd.DataFrame)  # seed aggregates (points.csv)
    methods: pd.DataFrame = field(default_factory=pd.DataFrame)  # equal sparsity (methods.csv)
    vs_dense: dict[str, pd.DataFrame] = field(default_factory=dict)  # convergence vs dense
    axes: dict[str, Axis] = field(default_factory=dict)  # each front's x against dense and noise
    duplicates: int = 0  # finished trials whose settings and seed were already counted

    @property
    def sign(self) -> float:
        """+1 when more of ``y`` is better, else -1: differences are signed so + is better."""
        return 1.0 if direction(self.y) == "max" else -1.0


def front_table(configs: pd.DataFrame, x: str, y: str) -> Front:
    """Pareto front of seed means on (x, y), directions from sparsity_tune.metrics.direction."""
    x_dir, y_dir = direction(x), direction(y)
    if x not in configs or y not in configs:  # e.g. no run wrote that summary figure
        configs = configs.iloc[0:0].assign(**{x: np.nan, y: np.nan})
    cand = configs[np.isfinite(configs[x].astype(float)) & np.isfinite(configs[y].astype(float))]
    if cand.empty:
        nan = float("nan")
        return Front(x, y, x_dir, y_dir, cand.iloc[0:0], 0, nan, nan, (nan, nan))
    xv, yv = cand[x].to_numpy(float), cand[y].to_numpy(float)
    mask = pareto_mask(xv, yv, x_dir, y_dir)
    ref = reference_point(xv, yv, x_dir, y_dir, margin=REF_MARGIN)
    hv = hypervolume_2d(xv[mask], yv[mask], ref, x_dir, y_dir)
    flip = {"min": "max", "max": "min"}
    ideal = reference_point(xv, yv, flip[x_dir], flip[y_dir])  # the best observed values
    box = abs(ref[0] - ideal[0]) * abs(ref[1] - ideal[1])
    spread = [f"{m}{s}" for m in (x, y) for s in ("", "_std", "_ci95_lo", "_ci95_hi")]
    lead = [P.point_id, "config_id", "label", "arch", "size", P.round, P.variant, "n_seeds"]
    lead += list(dict.fromkeys(spread))
    extra = [c for c in (M.sparsity,) if c not in lead]
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


# ---------------------------------------------------------------------------------- wording
def _count(v: float) -> str:
    """A count (nonzero parameters; a seed mean of counts) as a whole number: ``26,702``."""
    return f"{round(float(v)):,}" if np.isfinite(v) else "n/a"


def _fmt(v: float, digits: int = 3) -> str:
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def _sp(v: float) -> str:
    """A sparsity (or a percentage of weights) with the digits IMP needs: 0.9375, 6.25."""
    return "n/a" if not np.isfinite(v) else f"{v:.4g}"


def _signed(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v + 0.0:+.2f}".replace("-0.00", "+0.00")


def _interval(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval (a side has one seed)"
    return f"95% CI [{_signed(lo)}, {_signed(hi)}]"


def _seeds(need: float) -> str:
    """How many seeds the observed noise would need, in words."""
    if not np.isfinite(need):
        if need == np.inf:
            return "more than 1000 seeds per configuration (the mean sits on the line)"
        return "at least 2 seeds per configuration to measure the noise"
    return f"about {int(need)} seeds per configuration"


def _diff(r: pd.Series, unit: str = "points") -> str:
    return f"{_signed(r['diff_pts'])} {unit} ({_interval(r['diff_ci95_lo'], r['diff_ci95_hi'])})"


def _counts(verdicts: pd.Series, words: dict[str, str]) -> str:
    n = len(verdicts)
    if (verdicts == NOT_CONVERGED).any():  # every count names them: never a silent remainder
        words = {**words, NOT_CONVERGED: NOT_CONVERGED}
    parts = [f"{words[v]} at {int((verdicts == v).sum())}" for v in words]
    return ", ".join(parts) + f" of {n}"


# ---------------------------------------------------------------------------------- analysis
def analyse(
    exp: Experiment,
    xs: tuple[str, ...] | list[str] = DEFAULT_X,
    y: str = DEFAULT_Y,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Analysis:
    """Operating points, comparisons, fronts and the report sections (no file I/O)."""
    trials = add_config_ids(exp.trials)
    duplicates = int(duplicate_seeds(trials).sum())
    configs = aggregate_seeds(trials)
    hist = seed_mean_history(exp.history, trials)
    hist = hist[hist["config_id"].isin(configs["config_id"])]
    samples = operating_points(trials, exp.history)
    keep = [
        "config_id",
        "base_id",
        P.baseline_key,
        P.round,
        P.variant,
        "label",
        "base_label",
        "arch",
        "size",
        *identity_columns(trials),
    ]
    points = aggregate_seeds(samples, numeric_point_metrics(samples), by=P.point_id, keep=keep)
    has_y = y in points and points[y].notna().any()
    scale = points_scale(points[y].dropna()) if has_y else 1.0
    sign = 1.0 if direction(y) == "max" else -1.0
    if y in points:
        vd = versus_dense(samples, y, scale, sign, tolerance)
        points = points.join(vd.drop(columns="n"), on=P.point_id)
    judged = still_improving(samples, P.point_id)[["still_improving", "note"]]
    points = points.join(judged.rename(columns={"note": IMPROVING_NOTE}), on=P.point_id)
    for c in (f"dense_{y}", "dense_n", *DIFF_COLS):
        if c not in points:
            points[c] = np.nan
    ok = points[y].notna() & points[M.sparsity].notna() if y in points else points.index < 0
    usable = points[ok] if len(points) else points
    fronts = {x: front_table(usable, x, y) for x in xs}
    methods = (
        at_equal_sparsity(samples, usable, y, scale, sign, tolerance=tolerance)
        if len(usable)
        else pd.DataFrame()
    )
    if (looks := sequential_looks(exp.spec)) is not None and len(usable):
        # an adaptive sweep chose when to stop adding seeds: intervals valid under that
        points, methods = sequential_verdicts(
            samples, points, methods, y, scale, sign, tolerance, looks
        )
        usable = points[ok]
    vs = {m: versus_dense(samples, m, 1.0, -1.0) for m in CONVERGENCE if m in samples}
    usable_ids = set(usable[P.point_id]) if len(usable) else set()
    cols = [c for c in samples.columns if not str(c).startswith(LAYER_SPARSITY_PREFIX)]
    judged = samples.loc[samples[P.point_id].isin(usable_ids), cols]
    axes = {x: judge_axis(judged, x) for x in xs}
    why = (
        "no finished trial yet"
        if configs.empty
        else f"no finished configuration has both {y} and sparsity values"
    )
    a = Analysis(exp, trials, configs, hist, fronts, [], y, tolerance, scale, usable, why)
    a.samples, a.points, a.methods, a.vs_dense, a.duplicates, a.axes = (
        samples,
        points,
        methods,
        vs,
        duplicates,
        axes,
    )
    a.sections = [
        _overview(a),
        _dynamics(a),
        _tolerance(a),
        _methods(a),
        _robustness(a),
        _tradeoffs(a),
        _arch(a),
        _matched(a),
    ]
    return a


def _overview(a: Analysis) -> Section:
    s = Section("overview", "Experiment")
    counts = a.trials["status"].value_counts()
    sources = getattr(a.experiment, "sources", None) or {}
    if len(sources) > 1:
        per = a.trials["experiment"].value_counts()
        listed = "; ".join(f"{n} ({int(per.get(n, 0))} trials, {p})" for n, p in sources.items())
        s.sentences.append(f"{len(sources)} experiments analysed together: {listed}.")
    n_imp = int(a.points[P.round].notna().sum()) if len(a.points) else 0
    s.sentences.append(
        f"{len(a.trials)} trials: {counts.get(FINISHED, 0)} finished, {counts.get('running', 0)} "
        f"running, {counts.get('stopped', 0)} stopped early, {counts.get('failed', 0)} failed; "
        f"{len(a.configs)} configurations from the finished trials, "
        f"{_fmt(a.configs['n_seeds'].mean() if len(a.configs) else np.nan)} seeds each on "
        f"average; {len(a.points)} operating points"
        + (f" ({n_imp} of them IMP rounds, round 0 being the dense baseline)" if n_imp else "")
        + ". Unfinished trials are listed in trials.csv and left out of every figure."
    )
    if (b := stopping.budget(a.trials)) is not None:
        s.sentences.append(stopping.sentence(b))
    if a.duplicates:
        s.sentences.append(
            f"{a.duplicates} finished trial(s) repeat the settings and seed of another "
            "(experiments analysed together overlap, or dense runs that differ only in pruning "
            "settings that never acted); each (configuration, seed) counts once."
        )
    s.sentences.append(
        f"Differences are in points of {a.y} (x{_fmt(a.scale)}); every 'within tolerance', "
        f"'better' and 'worse' is read from the {WELCH} of a difference: within tolerance when "
        f"it lies above -{_fmt(a.tolerance)} point(s), worse when below, otherwise not resolved."
    )
    if (looks := sequential_looks(a.experiment.spec)) is not None:
        s.sentences.append(
            f"Seeds were added adaptively (looks at {', '.join(map(str, looks))} seeds), so the "
            f"intervals of the comparisons with dense and between methods are {SEQUENTIAL}, on "
            "the seeds of the last look both sides reached: valid although the sweep chose when "
            "to stop adding seeds."
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


def _lines(points: pd.DataFrame) -> pd.DataFrame:
    """Points with a ``line`` column for the by-size figures: the model size, and the variant
    when several are swept (each variant's line starts at its dense baseline's points). Other
    settings share a line (a random search's learning rates: the figure bins large groups)."""
    pruned = points[points[P.variant] != DENSE_VARIANT]
    if pruned[P.variant].nunique() <= 1:
        return points.assign(line=points["size"].astype(str))
    parts = [pruned.assign(line=pruned["size"].astype(str) + " · " + pruned[P.variant])]
    dense = points[points[P.variant] == DENSE_VARIANT]
    for v, g in pruned.groupby(P.variant, sort=True):
        d = dense[dense[P.baseline_key].isin(g[P.baseline_key])]
        parts.append(d.assign(line=d["size"].astype(str) + " · " + str(v)))
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------- 1
def _dynamics(a: Analysis) -> Section:
    s = Section("dynamics", "1. Training dynamics and convergence")
    c = a.usable
    if c.empty:
        return _no_data(s, a.why_unusable)
    for arch, adf in c.groupby("arch"):
        levels = np.unique(adf[M.sparsity].round(3))
        if len(levels) < 2:
            s.sentences.append(
                f"{arch}: every operating point has sparsity {_sp(levels[0])}, so convergence "
                "cannot be compared across sparsity (the figures show each configuration)."
            )
            continue
        s.sentences.extend(_convergence(a, arch, adf))
    s.sentences.extend(_gradual_note(c))
    s.sentences.extend(_open_points(c))
    ys = [m for m in (P.to99_own, P.to99_dense, P.early_stop_epoch) if m in c]
    if (c[P.round].isna() & (c[M.sparsity] > DENSE_EPS)).any():  # IMP rounds: (a) is the same
        ys.append(M.epochs_to_99pct)
    ys = [m for m in ys if m in c and c[m].notna().any()]
    if not ys:
        s.sentences.append("Not available: convergence (no val_acc in the records).")
    if M.converged in c and c[M.converged].notna().any():  # train.until: epochs to plateau
        ys.insert(len(ys) - (M.epochs_to_99pct in ys), M.epochs_trained)  # the note's "last"
    if ys:
        s.charts.append(
            charts.by_group_chart(
                _lines(c),
                "convergence",
                "Convergence vs sparsity (epochs, counted from the run's or IMP round's start)",
                M.sparsity,
                ys,
                "arch",
                group="line",
                titles={
                    P.to99_own: "(a) to 99% of own best val_acc",
                    P.to99_dense: "(b) to 99% of dense best val_acc",
                    P.early_stop_epoch: "(c) early stop: min val_loss",
                    M.epochs_to_99pct: "final mask only: epochs_to_99pct",
                    M.epochs_trained: "(d) epochs to plateau (train.until)",
                },
                note="one line per model size (and variant); bars: ±1 std over seeds; (b) "
                "averages the runs that reach it; the last panel counts only epochs trained "
                "with the final mask (summary.json)",
            )
        )
    if (c[P.round].notna()).any() and c[P.early_stop_epoch].notna().any():
        s.charts.append(
            charts.imp_rounds_chart(
                c,
                "imp_early_stop",
                "IMP: early-stopping epoch (minimum val_loss) of each round vs weights remaining",
                P.early_stop_epoch,
                "early-stop epoch",
            )
        )
    if a.history.empty:
        s.sentences.append("Not available: per-epoch records (records.jsonl is empty).")
        return s
    s.charts.append(
        charts.curves_chart(
            a.history,
            a.configs,
            "learning_curves",
            "Learning curves (seed mean per epoch)",
            [M.val_loss, M.val_acc],
        )
    )
    s.charts.append(
        charts.curves_chart(
            a.history,
            a.configs,
            "sparsity_schedule",
            "Achieved sparsity per epoch (dashed: the schedule's target)",
            [M.sparsity],
            dashed={M.sparsity: M.target_sparsity},
        )
    )
    return s


_SPEED = {BETTER: "faster", WORSE: "slower", UNRESOLVED: "not resolved"}


def _convergence(a: Analysis, arch: str, adf: pd.DataFrame) -> list[str]:
    out = []
    dense = adf[adf[M.sparsity] <= DENSE_EPS]
    top = adf[M.sparsity].max()
    sparse = adf[np.isclose(adf[M.sparsity], top, atol=5e-4)]
    vd = a.vs_dense.get(P.to99_own, pd.DataFrame())
    vd = vd[vd.index.isin(adf[P.point_id])] if len(vd) else vd
    if adf[P.to99_own].notna().any():
        text = (
            f"{arch}, (a) epochs until a run first reaches 99% of its own best val_acc (over the "
            f"whole run; an IMP round: over the round): "
        )
        text += f"dense {_fmt(dense[P.to99_own].mean())}, " if len(dense) else ""
        text += f"at the highest sparsity {_sp(top)} {_fmt(sparse[P.to99_own].mean())}"
        if len(vd):
            top_vd = vd[vd.index.isin(sparse[P.point_id])]
            text += (
                f"; against the dense run of the same settings ({WELCH}) pruned points "
                f"converge {_counts(vd['verdict'], _SPEED)}"
            )
            if len(top_vd) == 1:
                r = top_vd.iloc[0]
                text += (
                    f"; at {_sp(top)}: {_signed(-r['diff_pts'])} epochs "
                    f"({_interval(-r['diff_ci95_hi'], -r['diff_ci95_lo'])})"
                )
            elif len(top_vd) > 1:
                d = -top_vd["diff_pts"]
                text += f"; at {_sp(top)}: {_signed(d.min())} to {_signed(d.max())} epochs"
        out.append(text + ".")
    if adf[P.reached_dense].notna().any():
        s = a.samples[a.samples[P.point_id].isin(adf[P.point_id])]
        sd = s[s[M.sparsity] <= DENSE_EPS]
        ss = s[s[P.point_id].isin(sparse[P.point_id])]
        parts = []
        for name, g in (("dense runs", sd), (f"at sparsity {_sp(top)}", ss)):
            k, n = int(g[P.reached_dense].sum()), int(g[P.reached_dense].notna().sum())
            if n:
                when = f"after {_fmt(g[P.to99_dense].mean())} epochs, " if k else ""
                parts.append(f"{name} {when}{k} of {n} runs reach it")
        out.append(
            f"{arch}, (b) epochs until a run reaches 99% of the dense baseline's best val_acc "
            f"(seed mean): " + "; ".join(parts) + "."
        )
    imp = adf[adf[P.round].notna()]
    if len(imp) and imp[P.early_stop_epoch].notna().any():
        out.append(_early_stop(a, arch, imp))
    plateau = _plateau_sentence(a, arch, adf)
    if plateau:
        out.append(plateau)
    return out


def _is_open(r: pd.Series) -> bool:
    """Whether a point (a row of ``a.points``) was still improving at its end (NaN: unjudged)."""
    v = r.get("still_improving")
    return bool(pd.notna(v) and v)


def _open_points(c: pd.DataFrame) -> list[str]:
    """How many operating points were still improving at their end (points.csv:
    ``still_improving``, ``improving_note``), with the first as an example."""
    if "still_improving" not in c:
        return []
    flag = c["still_improving"].astype("boolean").fillna(False).to_numpy(bool)
    if not flag.any():
        return []
    open_ = c[flag]
    r = open_.iloc[0]
    return [
        f"Still improving when training ended: {len(open_)} of {len(c)} operating points "
        f"(e.g. {r['label']} at sparsity {_sp(r[M.sparsity])}: {r[IMPROVING_NOTE]}). Every "
        f"comparison with one is '{NOT_CONVERGED}', never better, worse or within; train "
        "longer or set train.until."
    ]


def _plateau_sentence(a: Analysis, arch: str, adf: pd.DataFrame) -> str:
    """(d) Epochs to plateau (train.until) per sparsity and variant, with 95% intervals over
    seeds (points.csv: ``epochs_trained``), and how many points reached their plateau."""
    conv = adf[M.converged] if M.converged in adf else pd.Series(dtype=float)
    ruled = adf[conv.notna()] if len(conv) else adf.iloc[:0]
    if ruled.empty or M.epochs_trained not in ruled:
        return ""
    names = variant_names(a.usable)
    parts = []
    for v, g in ruled.sort_values(M.sparsity).groupby(P.variant, sort=True):
        items = ", ".join(
            f"at {_sp(r[M.sparsity])} {_fmt(r[M.epochs_trained])} "
            f"[{_fmt(r[f'{M.epochs_trained}_ci95_lo'])}, {_fmt(r[f'{M.epochs_trained}_ci95_hi'])}]"
            for _, r in g.iterrows()
        )
        parts.append(f"{names.get(v, v)}: {items}")
    full = int((ruled[M.converged] >= 1.0).sum())
    rest = (
        f"; the other {len(ruled) - full} had a seed hit its epoch cap still improving and "
        "take no part in any verdict"
        if full < len(ruled)
        else ""
    )
    return (
        f"{arch}, (d) epochs to plateau (train.until: the monitored metric stopped improving; "
        f"an IMP round counts from its rewind), seed mean [95% CI] at each sparsity: "
        + "; ".join(parts)
        + f". {full} of {len(ruled)} points converged in every seed{rest}."
    )


def _early_stop(a: Analysis, arch: str, imp: pd.DataFrame) -> str:
    dense = imp[imp[P.variant] == DENSE_VARIANT]
    names = variant_names(a.usable)
    vd = a.vs_dense.get(P.early_stop_epoch, pd.DataFrame())
    acc = P.test_acc_at_early_stop
    text = (
        f"{arch}, (c) IMP early stopping (the epoch of minimum val_loss within a round, as "
        f"Frankle & Carbin): round 0 (dense) {_fmt(dense[P.early_stop_epoch].mean())} epochs, "
        f"{acc} {_fmt(dense[acc].mean())}"
    )
    for v, g in imp[imp[P.variant] != DENSE_VARIANT].groupby(P.variant, sort=True):
        last = g[g[P.remaining] == g[P.remaining].min()]
        text += (
            f"; {names.get(v, v)} at {_sp(100 * last[P.remaining].mean())}% of weights "
            f"remaining: {_fmt(last[P.early_stop_epoch].mean())} epochs, {acc} "
            f"{_fmt(last[acc].mean())}"
        )
        mine = vd[vd.index.isin(g[P.point_id])] if len(vd) else vd
        if len(mine):
            words = {BETTER: "earlier", WORSE: "later", UNRESOLVED: "not resolved"}
            text += f" (vs dense: {_counts(mine['verdict'], words)} rounds)"
    return text + "."


def _gradual_note(c: pd.DataFrame) -> list[str]:
    if "pruning.method" not in c or not (c["pruning.method"] == "gradual").any():
        return []
    g = c[c["pruning.method"] == "gradual"]
    ends = g["pruning.end_epoch"].dropna().unique() if "pruning.end_epoch" in g else []
    end = ", ".join(_fmt(float(e)) for e in sorted(ends)) or "train.epochs"
    return [
        f"Gradual pruning reaches its final mask at end_epoch ({end}); epochs_to_99pct in "
        "summary.json (the 'final mask only' figure) counts only epochs trained with that "
        "mask, so it cannot come before end_epoch. (a) and (b) count from epoch 1 of the run."
    ]


# ---------------------------------------------------------------------------------- 2
_TOL_COLS = [
    "arch",
    "size",
    P.variant,
    P.round,
    M.sparsity,
    "n_seeds",
    "dense_n",
    *DIFF_COLS,
    "label",
]


def _not_converged_sentence(g: pd.DataFrame) -> str:
    """How many compared points were still improving, with the one improving the most, or ""."""
    open_ = g[g["verdict"] == NOT_CONVERGED]
    if open_.empty:
        return ""
    r = open_.iloc[0]
    return (
        f" {len(open_)} {'is' if len(open_) == 1 else 'are'} {NOT_CONVERGED}: a side was "
        f"still improving when its training ended, so no verdict is read from it (e.g. "
        f"sparsity {_sp(r[M.sparsity])}, {r['label']}: {r['convergence_note']}); train longer "
        "or set train.until."
    )


_BEST_COLS = ("arch", "size", M.sparsity, "diff_pts", "diff_ci95_lo", "diff_ci95_hi", "n_seeds")
_BEST_COLS = (*_BEST_COLS, "label")


def _compared(a: Analysis) -> pd.DataFrame:
    """Pruned usable points that have a dense baseline."""
    d = a.usable
    return d[(d[M.sparsity] > DENSE_EPS) & d["dense_n"].fillna(0).gt(0)]


def _tolerance(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section(
        "tolerance", f"2. Highest sparsity within {_fmt(tol)} point(s) of the dense baseline"
    )
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    d = _compared(a)
    if d.empty:
        return _no_data(
            s,
            "no dense baseline (a configuration with sparsity 0 and otherwise the same "
            "settings, or round 0 of an IMP run) among the finished trials; add a dense run "
            "(pruning.method=none, or final_sparsity 0) to the sweep",
        )
    ok = d["verdict"].isin([WITHIN, BETTER])
    words = {WITHIN: "within tolerance", BETTER: "better", WORSE: "worse", UNRESOLVED: "unresolved"}
    for arch, g in d.groupby("arch", sort=True):
        good = g[ok.loc[g.index]].sort_values([M.sparsity, "diff_pts"], ascending=[False, False])
        text = f"{arch}: "
        if len(good):
            r = good.iloc[0]
            text += (
                f"up to sparsity {_sp(r[M.sparsity])} ({r['label']}) is within {_fmt(tol)} "
                f"point(s) of dense: {y} {_fmt(r[y])} vs {_fmt(r[f'dense_{y}'])}, difference "
                f"{_diff(r)} ({int(r['n_seeds'])} vs {int(r['dense_n'])} seeds, {WELCH})."
            )
            floor = r[M.sparsity]
        else:
            text += (
                f"no pruned point is resolved within {_fmt(tol)} point(s) of dense with these "
                "seeds."
            )
            floor = -1.0
        beyond = g[(g["verdict"] == UNRESOLVED) & (g[M.sparsity] > floor)]
        if len(beyond):
            # the sparsest unresolved point whose mean is within (else any), and of those at
            # that sparsity the one the fewest extra seeds would settle
            near = beyond[beyond["diff_pts"] >= -tol]
            near = near if len(near) else beyond
            top = near[np.isclose(near[M.sparsity], near[M.sparsity].max(), atol=5e-4)]
            r = top.sort_values("seeds_needed", na_position="last").iloc[0]
            text += (
                f" Not resolved with {int(r['n_seeds'])} seed(s): sparsity {_sp(r[M.sparsity])} "
                f"({r['label']}): {_diff(r)}; the observed noise would need "
                f"{_seeds(r['seeds_needed'])}."
            )
        counts = {v: int((g["verdict"] == v).sum()) for v in [*words, NOT_CONVERGED]}
        text += (
            f" Of {len(g)} pruned points: {counts[WITHIN] + counts[BETTER]} within tolerance "
            f"({counts[BETTER]} of them better than dense), {counts[WORSE]} worse by more than "
            f"the tolerance, {counts[UNRESOLVED]} not resolved."
        )
        text += _not_converged_sentence(g)
        s.sentences.append(text)
    table = d.sort_values(["arch", "size", P.variant, M.sparsity], kind="stable")
    cols = [c for c in _TOL_COLS if c in table]
    cols[cols.index("n_seeds") : cols.index("n_seeds")] = [y, f"dense_{y}"]
    s.tables.append(
        (
            f"Every pruned point against its dense baseline: difference of {y} in points with "
            f"its {WELCH}; verdict against -{_fmt(tol)} point(s) (all in points.csv)",
            table[cols],
        )
    )
    best = _best_resolved(d, ["arch", "size"])
    s.tables.append(
        (
            "Highest sparsity resolved within tolerance, per architecture and size",
            best[[c for c in _BEST_COLS if c in best]],
        )
    )
    lines = _lines(a.usable)
    dense = lines[lines[M.sparsity] <= DENSE_EPS]
    hl = pd.DataFrame(
        {
            "group": dense["line"],
            "facet": dense["arch"],
            "value": dense[y] - tol / a.scale * a.sign,
        }
    )
    s.charts.append(
        charts.by_group_chart(
            lines,
            "acc_vs_sparsity",
            f"{y} vs sparsity per architecture and size",
            M.sparsity,
            [y],
            "arch",
            group="line",
            hlines={y: hl},
            errors="ci95",
            note=f"dashed: dense {y} minus {_fmt(tol)} point(s), per size; bars: 95% interval "
            "over seeds (the verdicts use the interval of the difference, in the table)",
        )
    )
    return s


def _best_resolved(d: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    ok = d[d["verdict"].isin([WITHIN, BETTER])]
    if ok.empty:
        return ok
    ok = ok.sort_values([M.sparsity, "diff_pts"], ascending=[False, False])
    return ok.groupby(keys, sort=True).head(1).sort_values(keys)


# ---------------------------------------------------------------------------------- methods
def _methods(a: Analysis) -> Section:
    s = Section("methods", "Pruning methods compared at equal sparsity")
    y = a.y
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    pruned = a.usable[a.usable[P.variant] != DENSE_VARIANT]
    n_var = pruned[P.variant].nunique()
    if n_var < 2:
        return _no_data(
            s,
            "the sweep varies no pruning method, score, rewind or granularity (one pruning "
            "variant), so there is nothing to compare at equal sparsity",
        )
    m = a.methods
    names = variant_names(a.usable)
    if m.empty:
        return _no_data(
            s,
            f"the {n_var} pruning variants never reach an equal sparsity (within "
            "0.01) with the same other settings",
        )
    words = {BETTER: "better", WORSE: "worse", UNRESOLVED: "not resolved"}
    pairs = list(m.groupby(["variant_a", "variant_b"], sort=False))
    for (va, vb), g in pairs[:MAX_PAIR_SENTENCES]:
        top = g[M.sparsity].max()
        at = g[np.isclose(g[M.sparsity], top, atol=5e-4)].sort_values("diff_pts")
        text = (
            f"{names.get(va, va)} vs {names.get(vb, vb)}, {y} at equal sparsity ({WELCH}): "
            f"{_counts(g['verdict'], words)} (size × sparsity) cells"
        )
        lo, hi = at.iloc[0], at.iloc[-1]
        text += f"; at {_sp(top)}: {_diff(lo)} ({_where(lo)})"
        if len(at) > 1:
            text += f" to {_diff(hi)} ({_where(hi)})"
        unresolved = g[g["verdict"] == UNRESOLVED]
        if len(unresolved):
            text += (
                f"; the unresolved cells would need {_seeds(unresolved['seeds_needed'].median())}"
                " (median)"
            )
        s.sentences.append(text + ".")
    if len(pairs) > MAX_PAIR_SENTENCES:
        s.sentences.append(
            f"{len(pairs) - MAX_PAIR_SENTENCES} more pairs of variants are in methods.csv."
        )
    s.sentences.extend(control_sentences(versus_controls(m), y))  # pruning.control
    roles = {n.split(" (")[0] for n in names.values()}
    if {"winning ticket", "random re-init", "random pruning"} <= roles:
        s.sentences.append(
            "The sweep has Frankle & Carbin's three: the winning ticket (IMP mask, rewound to "
            "its initial values), random re-initialisation (the same mask, fresh weights) and "
            "random pruning (a random mask); a winning ticket is a good mask *and* its "
            "initialisation only where it beats both controls."
        )
    s.tables.append(
        (
            f"Variants at equal sparsity: a - b in points of {y} with the {WELCH} "
            "(all in methods.csv)",
            m,
        )
    )
    if a.usable[P.round].notna().any():
        s.charts.append(
            charts.imp_rounds_chart(
                a.usable,
                "imp_rounds",
                f"IMP: {M.test_acc_at_best_val} of each round vs weights remaining "
                "(Frankle & Carbin's figure)",
                M.test_acc_at_best_val,
            )
        )
    return s


def _where(r: pd.Series) -> str:
    return f"{r['arch']} {r['size']}, {int(r['n_a'])} vs {int(r['n_b'])} seeds"


# ---------------------------------------------------------------------------------- 3
def _robustness(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("robustness", "3. Robustness across depth, width and seeds")
    if a.usable.empty:
        return _no_data(s, a.why_unusable)
    d = _compared(a)
    per_size = _best_resolved(d, ["arch", "size"])
    for arch, g in a.usable.groupby("arch", sort=True):
        sizes = sorted(g["size"].astype(str).unique())
        if len(sizes) < 2:
            continue
        best = per_size[per_size["arch"] == arch].set_index("size")[M.sparsity]
        vals = {sz: float(best.get(sz, 0.0)) for sz in sizes}
        lo, hi = min(vals, key=vals.get), max(vals, key=vals.get)
        if vals[lo] == vals[hi]:
            s.sentences.append(
                f"{arch}: across {len(sizes)} sizes the highest sparsity resolved within "
                f"{_fmt(tol)} point(s) of dense is {_sp(vals[hi])} for every size."
            )
        else:
            s.sentences.append(
                f"{arch}: across {len(sizes)} sizes the highest sparsity resolved within "
                f"{_fmt(tol)} point(s) of dense ranges from {_sp(vals[lo])} ({lo}) to "
                f"{_sp(vals[hi])} ({hi}) (0: none resolved within)."
            )
    if a.usable.groupby("arch")["size"].nunique().max() < 2:
        s.sentences.append(
            "Not available: depth/width comparison (one model size per architecture)."
        )
    multi = a.usable[(a.usable["n_seeds"] >= 2) & a.usable[f"{y}_std"].notna()]
    if multi.empty:
        s.sentences.append("Not available: seed spread (every configuration ran with one seed).")
    else:
        std = multi[f"{y}_std"] * a.scale
        worst = multi.loc[std.idxmax()]
        text = (
            f"Across seeds, the std of {y} is {_fmt(std.mean(), 2)} points on average over "
            f"{len(multi)} operating points with ≥2 seeds (largest {_fmt(std.max(), 2)} points "
            f"at {worst['label']})"
        )
        half = ((d["diff_ci95_hi"] - d["diff_ci95_lo"]) / 2).dropna()
        if len(half):
            text += (
                f"; the 95% interval of a difference to dense is ±{_fmt(half.median(), 2)} "
                f"points wide (median), against a tolerance of {_fmt(tol)}"
            )
        s.sentences.append(text + ".")
    if len(d):
        r = d.assign(seed_std_pts=d[f"{y}_std"] * a.scale)
        r = r.assign(diff_pts_ci95_hi=r["diff_ci95_hi"], diff_pts_ci95_lo=r["diff_ci95_lo"])
        s.charts.append(
            charts.by_group_chart(
                _lines(r).query(f"{M.sparsity} > {DENSE_EPS}"),
                "robustness",
                "Difference to dense and seed spread vs sparsity",
                M.sparsity,
                ["diff_pts", "seed_std_pts"],
                "arch",
                group="line",
                errors="ci95",
                note="diff_pts: pruned minus dense in points, bars: its 95% interval; "
                "seed_std_pts: std over seeds",
            )
        )
    return s


# ---------------------------------------------------------------------------------- 4
def _tradeoffs(a: Analysis) -> Section:
    y = a.y
    s = Section("tradeoffs", "4. Accuracy / time / memory trade-offs (Pareto fronts)")
    if a.points.empty:
        return _no_data(s, "no finished trial yet")
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
        f"seed noise is called '{FLAT}' and gets no front."
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
            f"{_fmt(f.hypervolume)} (normalised {_fmt(f.hv_normalized)}) against the reference "
            f"point ({x}={_fmt(f.ref[0])}, {y}={_fmt(f.ref[1])}). The most accurate "
            f"({best['label']}, {y} {_fmt(best[y])}) costs {_fmt(best[x])}; "
            + _cheapest(a, cand, best, x, f.x_dir)
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
    costs = [
        c
        for c in (M.epoch_time_s, M.train_time_s, M.peak_mem_bytes, M.sparse_bytes)
        if c in a.usable and a.usable[c].notna().any()
    ]
    if costs:
        s.charts.append(
            charts.by_group_chart(
                _lines(a.usable),
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


def _times(r: float) -> str:
    """A ratio: 3 digits, more near 1 (a 0.3% memory overhead is not "1.00x more")."""
    if not np.isfinite(r):
        return "n/a"
    if abs(r - 1) < 0.01 and round(r, 4) != 1:
        return f"{r:.4f}x"
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def _pct(sparsity: float) -> str:
    return f"{100 * sparsity:.3g}%"


def _ratio_phrase(ax: Axis, x: str, point_id: str) -> str | None:
    """How point ``point_id`` compares with dense on ``x``, in words, or None (not compared)."""
    if point_id not in ax.table.index:
        return None
    r = ax.table.loc[point_id]
    good, bad, plain = _WORDS.get(x, (f"less {x}", f"more {x}", x))
    lo, hi = r["ratio_ci95_lo"], r["ratio_ci95_hi"]
    every = ""
    if r.get("test") == PAIRED_ROUNDS and r["verdict"] in (CHEAPER, DEARER):
        every = f"in every seed, BH-adjusted p {r['p_adjusted']:.2g}, "
    if r["verdict"] == CHEAPER:
        return f"{_times(r['ratio'])} {good} ({every}95% CI [{_times(lo)}, {_times(hi)}])"
    if r["verdict"] == DEARER:
        return (
            f"{_times(1 / r['ratio'])} {bad} ({every}95% CI [{_times(1 / hi)}, {_times(1 / lo)}])"
        )
    if r.get("test") == BY_RULE:
        return f"{_times(r['ratio'])} {plain} ({BY_RULE})"
    if ax.state == FLAT:
        return f"{_times(r['ratio'])} {plain} ({FLAT})"
    if np.isfinite(lo):
        return f"{_times(r['ratio'])} {plain} (within seed noise)"
    return f"{_times(r['ratio'])} {plain} (no interval: one seed)"


def _compacted_phrase(c: pd.Series) -> str:
    """A compacted point's in-run training-step ratio (train_time_speedup), read at 95%."""
    lo, hi, r = c["ratio_ci95_lo"], c["ratio_ci95_hi"], c["ratio"]
    ci = f"measured in the run, 95% CI [{_times(lo)}, {_times(hi)}]"
    if c.get("test") == PAIRED_ROUNDS:
        ci = f"in every seed's interleaved steps, {ci}"
    if c.get("verdict", CHEAPER if lo > 1 else None) == CHEAPER:
        return f"training steps {_times(r)} faster once compacted ({ci})"
    if c.get("verdict", DEARER if hi < 1 else None) == DEARER:
        return f"training steps {_times(1 / r)} slower once compacted ({ci})"
    word = "within seed noise" if np.isfinite(lo) else "no interval: one seed"
    return f"training steps {_times(r)} once compacted ({word}, {ci})"


def _flat_sentence(x: str, kind: str, ax: Axis) -> str:
    r = ax.table["ratio"]
    tests = set(ax.table["test"]) if "test" in ax.table else set()
    how = f"Bonferroni-adjusted {WELCH} of the log values"
    if PAIRED_ROUNDS in tests:
        how = "every seed's paired interleaved rounds, Benjamini-Hochberg over the points" + (
            f"; runs without rounds: {how}" if SEED_MEANS in tests else ""
        )
    return (
        f"{x} ({kind}): {FLAT}: no pruned point's ratio to its dense baseline is resolved "
        f"({ax.k} points, {how}; ratios dense / pruned {_times(r.min())} to "
        f"{_times(r.max())}), so no front is drawn from it (the figure shows the points, by "
        "granularity)."
    )


def _by_granularity(a: Analysis, x: str, ax: Axis) -> str:
    """Per granularity: how many points are cheaper than dense on ``x``, and the ratio range."""
    if ax.state == UNJUDGED:
        return (
            "Not judged against the seed noise: no pruned point has a dense baseline with an "
            "interval (a dense run with at least 2 seeds, and at least 2 seeds of its own)."
        )
    info = a.usable.set_index(P.point_id)
    t = ax.table.join(info[[c for c in (M.sparsity, GRANULARITY) if c in info]], how="left")
    t = t.assign(granularity=granularity(t))
    parts = []
    for g, gt in t.groupby("granularity", sort=True):
        n_c, n_d = int((gt["verdict"] == CHEAPER).sum()), int((gt["verdict"] == DEARER).sum())
        parts.append(
            f"{g} cheaper at {n_c} and dearer at {n_d} of {len(gt)} points "
            f"({_times(gt['ratio'].min())} to {_times(gt['ratio'].max())})"
        )
    return (
        f"Against dense ({RATIO_TEXT}; the axis moves beyond the seed noise at the 5% level): "
        + "; ".join(parts)
        + "."
    )


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


def _granularity_sentences(a: Analysis) -> list[str]:
    """Research question 4 by granularity: per architecture, its largest model at every pruned
    point (measured ratios to dense and the accuracy difference), then each granularity's gain
    at its highest sparsity across model sizes."""
    axes, pts = _ratio_points(a)
    if not axes:
        return [
            "Not available: measured costs against dense (no pruned point has a measured cost "
            "and a dense baseline with the same settings)."
        ]
    out = []
    steps = compacted_speedup(a.samples)
    many = pts.groupby("granularity")[P.variant].nunique()
    for arch, g in pts.groupby("arch", sort=True):
        size = _size_order(g)[-1]
        sub = g[g["size"].astype(str) == size]
        clauses = []
        for _, r in sub.sort_values(["granularity", M.sparsity, P.variant]).iterrows():
            where = f"{r['granularity']} {_pct(r[M.sparsity])}"
            if many.get(r["granularity"], 1) > 1:
                where += f" ({r[P.variant]})"
            if np.isfinite(r[P.round]):
                where += f" (IMP round {int(r[P.round])})"
            said = [p for x in axes if (p := _ratio_phrase(a.axes[x], x, r[P.point_id]))]
            if r[P.point_id] in steps.index:
                said.append(_compacted_phrase(steps.loc[r[P.point_id]]))
            if np.isfinite(r["diff_pts"]):
                said.append(f"{a.y} {_diff(r)}")
            clauses.append(f"{where}: " + ", ".join(said))
        out.append(
            f"{arch} {size} (the largest {arch}; {RATIO_TEXT}; {a.y} as the difference to "
            f"dense in points): " + "; ".join(clauses) + "."
        )
    x0 = axes[0]
    t = a.axes[x0].table
    for gran, g in pts[pts[P.point_id].isin(t.index)].groupby("granularity", sort=True):
        parts = []
        for arch, ga in g.groupby("arch", sort=True):
            cells = []
            for size in _size_order(ga):
                top = ga[ga["size"].astype(str) == size].sort_values(M.sparsity).iloc[-1]
                r = t.loc[top[P.point_id]]
                cells.append(f"{size} ({_pct(top[M.sparsity])}) {_times(r['ratio'])}")
            parts.append(f"{arch} " + ", ".join(cells))
        out.append(
            f"{gran}, {x0} against dense at each model size's highest {gran} sparsity "
            f"(ratio dense / pruned; smallest model first): " + "; ".join(parts) + "."
        )
    return out


def _cheapest(a: Analysis, cand: pd.DataFrame, best: pd.Series, x: str, x_dir: str) -> str:
    """The cheapest point whose difference to the most accurate is resolved within tolerance."""
    y, tol = a.y, a.tolerance
    k = a.sign * a.scale
    d = welch(
        k * cand[y].to_numpy(float),
        a.scale * cand[f"{y}_std"].to_numpy(float),
        cand["n_seeds"].to_numpy(float),
        np.full(len(cand), k * best[y]),
        np.full(len(cand), a.scale * best[f"{y}_std"]),
        np.full(len(cand), float(best["n_seeds"])),
    )
    cheaper = (cand[x] < best[x]) if x_dir == "min" else (cand[x] > best[x])
    ok = cand[cheaper.to_numpy() & (d["lo"] > -tol)]
    if len(ok):
        r = ok.loc[ok[x].idxmin() if x_dir == "min" else ok[x].idxmax()]
        i = cand.index.get_loc(r.name)
        ratio = best[x] / r[x] if r[x] else np.nan
        return (
            f"the cheapest point resolved within {_fmt(tol)} point(s) of it ({r['label']}) costs "
            f"{_fmt(r[x])} ({_fmt(ratio, 2)}× less): {_signed(d['diff'][i])} points "
            f"({_interval(d['lo'][i], d['hi'][i])})."
        )
    near = cand[cheaper.to_numpy() & (d["diff"] >= -tol)]
    if len(near):
        r = near.loc[near[x].idxmin() if x_dir == "min" else near[x].idxmax()]
        i = cand.index.get_loc(r.name)
        return (
            f"no cheaper point is resolved within {_fmt(tol)} point(s) of it with these seeds; "
            f"the cheapest whose mean is ({r['label']}, {_fmt(r[x])}) differs by "
            f"{_signed(d['diff'][i])} points ({_interval(d['lo'][i], d['hi'][i])})."
        )
    return f"no cheaper point comes within {_fmt(tol)} point(s) of it."


# ---------------------------------------------------------------------------------- 5
def _arch(a: Analysis) -> Section:
    y, tol = a.y, a.tolerance
    s = Section("arch", "5. MLP vs CNN")
    c = a.usable
    if c.empty or c["arch"].nunique() < 2:
        archs = ", ".join(sorted(c["arch"].unique())) if len(c) else "none"
        return _no_data(s, f"the finished trials cover one architecture only ({archs})")
    x = M.nonzero_params
    d = _compared(a)
    best_tol = _best_resolved(d, ["arch"]).set_index("arch") if len(d) else pd.DataFrame()
    fronts = {}
    budget = c.groupby("arch")[x].min().max()
    maximise = a.sign > 0
    at_budget = {}
    for arch, adf in c.groupby("arch"):
        fronts[arch] = front_table(adf, x, y).table
        top = adf.loc[adf[y].idxmax() if maximise else adf[y].idxmin()]
        under = adf[adf[x] <= budget]
        if len(under):
            at_budget[arch] = under.loc[under[y].idxmax() if maximise else under[y].idxmin()]
        if not (d["arch"] == arch).any():
            tol_txt = ""
        elif arch in best_tol.index:
            tol_txt = (
                f"; highest sparsity resolved within {_fmt(tol)} point(s) of dense: "
                f"{_sp(best_tol.loc[arch, M.sparsity])}"
            )
        else:
            tol_txt = f"; no pruned point resolved within {_fmt(tol)} point(s) of dense"
        b = at_budget.get(arch)
        s.sentences.append(
            f"{arch}: best {y} {_fmt(top[y])} ({top['label']}, {_count(top[x])} nonzero params); "
            f"best with at most {_count(budget)} nonzero params: "
            f"{_fmt(b[y]) if b is not None else 'n/a'}{tol_txt}."
        )
    if len(at_budget) >= 2:
        (na, ra), (nb, rb) = sorted(at_budget.items(), key=lambda kv: -a.sign * kv[1][y])[:2]
        k = a.sign * a.scale
        dd = welch(
            [k * ra[y]], [a.scale * ra[f"{y}_std"]], [ra["n_seeds"]],
            [k * rb[y]], [a.scale * rb[f"{y}_std"]], [rb["n_seeds"]],
        )  # fmt: skip
        v = {BETTER: "better", WORSE: "worse", UNRESOLVED: "not resolved"}
        word = f"{na} {v[verdict(dd['lo'], dd['hi'], 0.0)[0]]}"
        still = [(n, r) for n, r in ((na, ra), (nb, rb)) if _is_open(r)]
        if still:
            notes = "; ".join(f"{n}: {r[IMPROVING_NOTE]}" for n, r in still)
            word = f"{NOT_CONVERGED}, no verdict ({notes})"
        s.sentences.append(
            f"At most {_count(budget)} nonzero params, {na} vs {nb}: {_signed(dd['diff'][0])} "
            f"points of {y} ({_interval(dd['lo'][0], dd['hi'][0])}, {WELCH}): {word}."
        )
    s.charts.append(charts.arch_compare_chart(c, fronts, x, y))
    return s


# ---------------------------------------------------------------------------------- matched
def matched_pairs(configs: pd.DataFrame, y: str, rtol: float = MATCH_RTOL) -> pd.DataFrame:
    """Each dense configuration beside the sparse configuration of a *larger* model of the same
    architecture whose nonzero_params is closest to it (within ``rtol``), with the difference
    sparse - dense (sign-flipped for a minimised ``y``) and, where the seed spread is known, its
    Welch interval.

    Sparse candidates are sorted by nonzero_params per architecture, so each dense configuration
    looks only at its window (numpy searchsorted), never at all pairs.
    """
    c = configs.dropna(subset=[M.nonzero_params, M.total_params, y])
    dense = c[c[M.sparsity] <= DENSE_EPS]
    sparse = c[c[M.sparsity] > DENSE_EPS]
    rows = []
    for arch, d_arch in dense.groupby("arch", sort=True):
        s_arch = sparse[sparse["arch"] == arch].sort_values(M.nonzero_params, kind="stable")
        if s_arch.empty:
            continue
        nz = s_arch[M.nonzero_params].to_numpy(float)
        total = s_arch[M.total_params].to_numpy(float)
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
            "dense_nonzero_params": c.loc[di, M.nonzero_params].to_numpy(),
            f"dense_{y}": c.loc[di, y].to_numpy(),
            "sparse_label": c.loc[si, "label"].to_numpy(),
            "sparse_nonzero_params": c.loc[si, M.nonzero_params].to_numpy(),
            "sparse_total_params": c.loc[si, M.total_params].to_numpy(),
            "sparse_sparsity": c.loc[si, M.sparsity].to_numpy(),
            f"sparse_{y}": c.loc[si, y].to_numpy(),
        }
    )
    sign = 1.0 if direction(y) == "max" else -1.0
    out = out.assign(sparse_minus_dense=sign * (out[f"sparse_{y}"] - out[f"dense_{y}"]))
    if f"{y}_std" in c and "n_seeds" in c:
        d = welch(
            sign * c.loc[si, y].to_numpy(float),
            c.loc[si, f"{y}_std"].to_numpy(float),
            c.loc[si, "n_seeds"].to_numpy(float),
            sign * c.loc[di, y].to_numpy(float),
            c.loc[di, f"{y}_std"].to_numpy(float),
            c.loc[di, "n_seeds"].to_numpy(float),
        )
        out = out.assign(ci95_lo=d["lo"], ci95_hi=d["hi"], verdict=verdict(d["lo"], d["hi"]))
        if "still_improving" in c:  # points (analyse): a side still improving reads no verdict
            flag = c["still_improving"].astype("boolean").fillna(False)
            open_ = flag.loc[si].to_numpy(bool) | flag.loc[di].to_numpy(bool)
            out.loc[open_, "verdict"] = NOT_CONVERGED
    return out


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
    med = pairs["sparse_minus_dense"].median() * a.scale
    text = (
        f"{len(pairs)} matched pairs (nonzero_params within {int(MATCH_RTOL * 100)}%); "
        f"median difference large-sparse minus small-dense {med:+.2f} points of {y}"
    )
    if "verdict" in pairs:
        v = pairs["verdict"]
        text += (
            f"; by the {WELCH}, the larger sparse model is better in {int((v == BETTER).sum())}, "
            f"worse in {int((v == WORSE).sum())}, not resolved in {int((v == UNRESOLVED).sum())}"
        )
        if (v == NOT_CONVERGED).any():
            text += f", {NOT_CONVERGED} in {int((v == NOT_CONVERGED).sum())} (no verdict)"
    s.sentences.append(text + ".")
    s.tables.append(("Matched pairs", pairs))
    s.charts.append(charts.pairs_chart(pairs, y))
    return s
