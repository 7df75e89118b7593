"""The research questions of a pruning sweep, answered from seed-aggregated operating points.

:func:`analyse` turns a loaded :class:`~analysis.load.Experiment` (one directory or several) into
operating points (:mod:`analysis.points`: a trial's final network, or each round of an IMP run),
their comparisons with the dense baseline and between methods at equal sparsity
(:mod:`analysis.compare`, Welch intervals from :mod:`analysis.stats`), fronts (one per cost
axis, :func:`analysis.pareto.front_table`) and the report's sections, one module each under
:mod:`analysis.sections` (their words from :mod:`analysis.wording`). Every "within tolerance",
"better" or "worse" in a sentence is a verdict on the interval of a difference; where the
interval straddles the line the sentence says "not resolved" and how many seeds the observed
noise would need. A section whose data is missing says so in plain words instead of failing.
Rendering lives in plots.py / report.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.allocation import sequential_looks, sequential_verdicts
from analysis.compare import DIFF_COLS, at_equal_sparsity, versus_dense
from analysis.convergence import IMPROVING_NOTE, still_improving
from analysis.equal_budget import matched_pairs
from analysis.load import Experiment, spec_tolerance
from analysis.measured import Axis, judge_axis
from analysis.pareto import Front, front_table
from analysis.points import P, numeric_point_metrics, operating_points
from analysis.sections import (
    arch,
    dynamics,
    matched,
    methods,
    overview,
    robustness,
    tolerance,
    tradeoffs,
)
from analysis.sections.section import Section
from analysis.tables import (
    add_config_ids,
    aggregate_seeds,
    duplicate_seeds,
    identity_columns,
    points_scale,
    seed_mean_history,
)
from sparsity_tune.metrics import DEFAULT_TOLERANCE, LAYER_SPARSITY_PREFIX, M, direction

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
#: Convergence columns compared with the dense baseline (in epochs; fewer is better).
CONVERGENCE = (P.to99_own, P.early_stop_epoch)
#: The report's sections in order, one module each: ``build(a: Analysis) -> Section``.
SECTIONS = (overview, dynamics, tolerance, methods, robustness, tradeoffs, arch, matched)


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
    matched: pd.DataFrame = field(default_factory=pd.DataFrame)  # equal budget (matched.csv)
    vs_dense: dict[str, pd.DataFrame] = field(default_factory=dict)  # convergence vs dense
    axes: dict[str, Axis] = field(default_factory=dict)  # each front's x against dense and noise
    duplicates: int = 0  # finished trials whose settings and seed were already counted

    @property
    def sign(self) -> float:
        """+1 when more of ``y`` is better, else -1: differences are signed so + is better."""
        return 1.0 if direction(self.y) == "max" else -1.0


# ---------------------------------------------------------------------------------- analysis
def analyse(
    exp: Experiment,
    xs: tuple[str, ...] | list[str] = DEFAULT_X,
    y: str = DEFAULT_Y,
    tolerance: float | None = None,
) -> Analysis:
    """Operating points, comparisons, fronts and the report sections (no file I/O).
    ``tolerance`` (accuracy points): None reads the sweep's own ``search.tolerance`` from its
    spec.yaml (:func:`~analysis.load.spec_tolerance`), else :data:`DEFAULT_TOLERANCE`."""
    if tolerance is None:
        tolerance = spec_tolerance(exp.spec)
        tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
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
    matched = (
        matched_pairs(usable, y, tolerance=tolerance / scale) if len(usable) else pd.DataFrame()
    )
    if (looks := sequential_looks(exp.spec)) is not None and len(usable):
        # an adaptive sweep chose when to stop adding seeds: intervals valid under that
        points, methods, matched = sequential_verdicts(
            samples, points, methods, matched, y, scale, sign, tolerance, looks
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
    a.samples, a.points, a.methods, a.matched, a.vs_dense, a.duplicates, a.axes = (
        samples,
        points,
        methods,
        matched,
        vs,
        duplicates,
        axes,
    )
    a.sections = [section.build(a) for section in SECTIONS]
    return a
