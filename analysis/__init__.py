"""Pareto analysis of sparsity-tune experiments: files in, tables, fronts, plots and a report out.

Notebook use::

    from analysis import load_experiment, analyse, pareto_front, plot
    exp = load_experiment("results/cnn")            # exp.trials, exp.history (DataFrames)
    both = load_experiments(["results/cnn", "results/mlp"])   # analysed together
    a = analyse(exp, xs=["nonzero_params"], y="test_acc", tolerance=1.0)
    a.configs                                       # seed-mean table, one row per configuration
    a.fronts["nonzero_params"].table                # the front, with seed spread and hypervolume
    a.points, a.methods                             # operating points vs dense; methods compared
    fig = plot(a, "front_nonzero_params")           # a matplotlib Figure (report_figure: plotly)

Command line: ``python -m analysis RESULTS_DIR [RESULTS_DIR ...]`` (see ``--help``).
"""

from __future__ import annotations

from analysis.load import AnalysisError, Experiment, load_experiment, load_experiments
from analysis.pareto import (
    front_table,
    hypervolume_2d,
    non_dominated,
    pareto_front,
    pareto_mask,
    reference_point,
)
from analysis.questions import Analysis, analyse
from analysis.tables import add_config_ids, aggregate_seeds

__all__ = [
    "Analysis",
    "AnalysisError",
    "Experiment",
    "add_config_ids",
    "aggregate_seeds",
    "analyse",
    "charts_of",
    "front_table",
    "hypervolume_2d",
    "load_experiment",
    "load_experiments",
    "non_dominated",
    "pareto_front",
    "pareto_mask",
    "plot",
    "reference_point",
    "report_figure",
]


def charts_of(a: Analysis) -> dict:
    """Every chart of the analysis by key (``front_<x>``, ``acc_vs_sparsity``, ...)."""
    return {c.key: c for s in a.sections for c in s.charts}


def plot(a: Analysis, key: str):
    """The matplotlib Figure of chart ``key`` (see :func:`charts_of`)."""
    from analysis.plots import draw

    return draw(_chart(a, key))


def report_figure(a: Analysis, key: str):
    """The plotly Figure of chart ``key``."""
    from analysis.report import figure

    return figure(_chart(a, key))


def _chart(a: Analysis, key: str):
    found = charts_of(a)
    if key not in found:
        raise KeyError(f"no chart {key!r}; this analysis has: {', '.join(found)}")
    return found[key]
