"""The experiment at a glance: trials by status, configurations, seeds and operating points,
and how every verdict in the report is read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analysis import stopping
from analysis import wording as w
from analysis.allocation import sequential_looks
from analysis.load import FINISHED
from analysis.points import P
from analysis.sections.section import Section
from analysis.stats import SEQUENTIAL

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    s = Section("overview", "Experiment")
    counts = a.trials["status"].value_counts()
    sources = getattr(a.experiment, "sources", None) or {}
    if len(sources) > 1:
        per = a.trials["experiment"].value_counts()
        listed = "; ".join(f"{n} ({int(per.get(n, 0))} trials, {p})" for n, p in sources.items())
        s.sentences.append(f"{len(sources)} experiments analysed together: {listed}.")
    n_imp = int(a.points[P.round].notna().sum()) if len(a.points) else 0
    s.answer = (
        f"{counts.get(FINISHED, 0)} of {len(a.trials)} trials finished, giving "
        f"{len(a.configs)} configurations ("
        f"{w.fmt(a.configs['n_seeds'].mean() if len(a.configs) else np.nan)} seeds each on "
        f"average) and {len(a.points)} operating points; every verdict below reads the "
        f"{w.WELCH} of a difference, against a tolerance of {w.fmt(a.tolerance)} point(s)."
    )
    s.sentences.append(
        f"{len(a.trials)} trials: {counts.get(FINISHED, 0)} finished, {counts.get('running', 0)} "
        f"running, {counts.get('stopped', 0)} stopped early, {counts.get('failed', 0)} failed; "
        f"{len(a.configs)} configurations from the finished trials, "
        f"{w.fmt(a.configs['n_seeds'].mean() if len(a.configs) else np.nan)} seeds each on "
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
        f"Differences are in points of {a.y} (x{w.fmt(a.scale)}); every 'within tolerance', "
        f"'better' and 'worse' is read from the {w.WELCH} of a difference: within tolerance when "
        f"it lies above -{w.fmt(a.tolerance)} point(s), worse when below, otherwise not resolved. "
        "Two methods at equal sparsity, the two sides of a matched pair and two architectures "
        "are peers: better or worse when the interval excludes 0, equal within tolerance when "
        "the 90% interval (Schuirmann's two one-sided tests at 5% each; in an adaptive sweep, "
        f"at each look's level) lies inside +-{w.fmt(a.tolerance)} point(s)."
    )
    if (looks := sequential_looks(a.experiment.spec)) is not None:
        s.sentences.append(
            f"Seeds were added adaptively (looks at {', '.join(map(str, looks))} seeds), so the "
            "intervals of the comparisons with dense, between methods and of the matched pairs "
            f"are {SEQUENTIAL}, on the seeds of the last look both sides reached: valid although "
            "the sweep chose when to stop adding seeds (the controls read the methods' "
            "intervals). The other intervals (convergence epochs, measured costs, MLP vs CNN) "
            "are fixed-seed ones over whatever seeds a configuration got, and the sweep chose "
            "those counts from the accuracy results: read them as descriptive."
        )
    failed = a.trials[a.trials["status"] != FINISHED]
    if len(failed):
        s.tables.append(
            ("Unfinished trials", failed[["trial_id", "status", "epochs_done", "error"]])
        )
    return s
