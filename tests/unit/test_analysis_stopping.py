"""What early stopping saved and may have cost, in the report and on the front (analysis.stopping)."""

from __future__ import annotations

import doctest

import pandas as pd

from analysis import stopping
from analysis.load import load_experiment
from analysis.questions import analyse
from analysis.synthetic import simple_trial


def _section(a, key):
    return next(s for s in a.sections if s.key == key)


def test_doctests() -> None:
    assert doctest.testmod(stopping).failed == 0


def test_budget_counts_finished_and_stopped_only() -> None:
    t = pd.DataFrame(
        {
            "status": ["finished", "stopped", "stopped", "running", "failed"],
            "epochs_done": [10, 2, 6, 3, 1],
            "train.epochs": [10, 10, 10, 10, 10],
        }
    )
    b = stopping.budget(t)
    assert (b.trained, b.planned, b.stopped) == (18, 30, 2)
    assert b.saved == 0.4
    assert stopping.budget(t[t.status != "stopped"]) is None
    assert stopping.budget(t.drop(columns="train.epochs")) is None


def test_report_says_what_was_saved_and_marks_stopped_trials(tmp_path) -> None:
    simple_trial(tmp_path, width=64, seed=0, acc=0.90, cost=1000)
    simple_trial(tmp_path, width=32, seed=0, acc=0.80, cost=500)
    # stopped after 1 of 2 epochs: one dominated (cost 800, 0.7), one not (cost 100, 0.5)
    simple_trial(tmp_path, width=48, seed=0, acc=0.70, cost=800, status="stopped")
    simple_trial(tmp_path, width=8, seed=0, acc=0.50, cost=100, status="stopped")
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"])
    over = " ".join(_section(a, "overview").sentences)
    assert "2 trial(s) stopped by the scheduler" in over
    assert "trained 6 of the 8 trial-epochs" in over and "(25% saved)" in over
    trade = _section(a, "tradeoffs")
    text = " ".join(trade.sentences)
    assert "1 of the 2 stopped trial(s) left a model the front on nonzero_params does not" in text
    assert "width=8" in text
    front = next(c for c in trade.charts if c.key == "front_nonzero_params")
    marked = [s for s in front.panels[0].series if s.name == "stopped early (last epoch)"]
    assert len(marked) == 1
    assert sorted(marked[0].x.tolist()) == [100.0, 800.0]
    assert sorted(marked[0].y.tolist()) == [0.5, 0.7]
    assert "grey triangles: trials stopped early" in front.note
    # the stopped trials never enter the front itself
    assert sorted(a.fronts["nonzero_params"].table["nonzero_params"]) == [500, 1000]


def test_no_stop_no_sentence(tmp_path) -> None:
    simple_trial(tmp_path, width=64, seed=0, acc=0.90, cost=1000)
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"])
    assert "stopped by the scheduler" not in " ".join(_section(a, "overview").sentences)
