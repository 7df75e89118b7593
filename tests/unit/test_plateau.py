"""The plateau rule on hand-made curves: exact stop epochs, ties, min_delta, the cap, direction."""

from __future__ import annotations

import math

import pytest

from sparsity_tune.trial.plateau import Outcome, Rule, State, converged, observe, run

NAN = float("nan")


@pytest.mark.parametrize(
    ("values", "patience", "cap", "expected"),
    [
        # improves every epoch: the cap ends it, not converged
        ([5, 4, 3, 2, 1, 0], 2, 6, Outcome(6, False, 6)),
        # best at epoch 3, then 2 epochs without improvement: stops at 5
        ([3, 2, 1, 1.5, 1.2, 0.5], 2, 10, Outcome(5, True, 3)),
        # patience 1: the first epoch that does not improve ends it
        ([3, 2, 2.5, 0], 1, 10, Outcome(3, True, 2)),
        # a late improvement resets the count: best at 5, stop at 5 + 3
        ([3, 2, 2.1, 2.2, 1, 1.1, 1.2, 1.3, 0], 3, 20, Outcome(8, True, 5)),
        # ties never improve: 1, 1, 1 after the best ends it
        ([2, 1, 1, 1, 1], 3, 10, Outcome(5, True, 2)),
        # the history runs out before the rule or the cap: what was seen
        ([3, 2], 3, 10, Outcome(2, False, 2)),
        # plateau and cap on the same epoch: the rule fired, converged
        ([1, 2, 3], 2, 3, Outcome(3, True, 1)),
        # the cap one epoch before the rule would fire: not converged
        ([1, 2, 3], 2, 2, Outcome(2, False, 1)),
    ],
)
def test_stop_epochs_minimised(values, patience, cap, expected):
    assert run(Rule("min", patience), values, cap) == expected


def test_min_delta_counts_only_larger_changes():
    rule = Rule("min", patience=2, min_delta=0.1)
    # 1.0 -> 0.95 (gain 0.05: no) -> 0.9 (0.1 exactly: no, must be more) -> stop at 3
    assert run(rule, [1.0, 0.95, 0.9, 0.5], cap=10) == Outcome(3, True, 1)
    # 1.0 -> 0.85 (0.15: yes, best 0.85 at 2) -> 0.8, 0.76 (< 0.1 below 0.85) -> stop at 4
    assert run(rule, [1.0, 0.85, 0.8, 0.76, 0.1], cap=10) == Outcome(4, True, 2)
    # with min_delta 0 the same curve improves every epoch
    assert run(Rule("min", 2), [1.0, 0.85, 0.8, 0.76], cap=4) == Outcome(4, False, 4)


def test_maximised_metric_improves_upwards():
    rule = Rule("max", patience=2, min_delta=0.01)
    # 0.5, 0.6 (best), 0.605 (+0.005 <= 0.01: no), 0.6 -> stop at 4
    assert run(rule, [0.5, 0.6, 0.605, 0.6, 0.9], cap=10) == Outcome(4, True, 2)
    assert run(rule, [0.1, 0.2, 0.3], cap=3) == Outcome(3, False, 3)


def test_nan_never_improves_and_a_diverged_run_plateaus():
    rule = Rule("min", patience=2)
    assert run(rule, [1.0, NAN, NAN, 0.1], cap=10) == Outcome(3, True, 1)
    # NaN from the start: no best at all, the rule still ends it after `patience` epochs
    s = State()
    for v in (NAN, NAN):
        s = observe(rule, s, v)
    assert s.best is None and s.since == 2 and converged(rule, s)


def test_observe_step_by_step_and_state_round_trip():
    rule = Rule("min", patience=3)
    s = State()
    seen = []
    for v in (2.0, 1.0, 1.5, 1.0, 0.9):
        s = observe(rule, s, v)
        seen.append((s.best, s.best_epoch, s.epochs, s.since))
    assert seen == [(2.0, 1, 1, 0), (1.0, 2, 2, 0), (1.0, 2, 3, 1), (1.0, 2, 4, 2), (0.9, 5, 5, 0)]
    assert State.from_dict(s.as_dict()) == s
    assert State.from_dict(State().as_dict()) == State()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up", "patience": 1}, "mode='up'"),
        ({"mode": "min", "patience": 0}, "patience=0"),
        ({"mode": "min", "patience": 1, "min_delta": -0.1}, "min_delta=-0.1"),
        ({"mode": "min", "patience": 1, "min_delta": math.inf}, "min_delta=inf"),
    ],
)
def test_bad_rules_are_refused_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rule(**kwargs)


def test_run_refuses_an_empty_history_and_a_bad_cap():
    with pytest.raises(ValueError, match="empty"):
        run(Rule("min", 1), [], cap=3)
    with pytest.raises(ValueError, match="cap=0"):
        run(Rule("min", 1), [1.0], cap=0)
