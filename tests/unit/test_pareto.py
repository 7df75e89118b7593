"""Pareto front and hypervolume: property tests against brute force and against Optuna."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna._hypervolume import compute_hypervolume

from analysis.pareto import (
    hypervolume_2d,
    non_dominated,
    pareto_front,
    pareto_mask,
    reference_point,
)

# Small integer grids make ties and exact duplicates common; NaN checks the "never on front" rule.
coord = st.one_of(st.integers(0, 6).map(float), st.just(float("nan")))
points = st.lists(st.tuples(coord, coord), min_size=0, max_size=40)
directions = st.sampled_from(["min", "max"])


def brute_force_mask(x, y, x_dir, y_dir):
    """O(n²) definition: no other point is at least as good on both and better on one."""
    sx = -1.0 if x_dir == "max" else 1.0
    sy = -1.0 if y_dir == "max" else 1.0
    out = []
    for i in range(len(x)):
        if np.isnan(x[i]) or np.isnan(y[i]):
            out.append(False)
            continue
        dominated = False
        for j in range(len(x)):
            if j == i or np.isnan(x[j]) or np.isnan(y[j]):
                continue
            a_le = sx * x[j] <= sx * x[i] and sy * y[j] <= sy * y[i]
            a_lt = sx * x[j] < sx * x[i] or sy * y[j] < sy * y[i]
            if a_le and a_lt:
                dominated = True
                break
        out.append(not dominated)
    return np.array(out, dtype=bool)


@settings(max_examples=300, deadline=None)
@given(points, directions, directions)
def test_front_equals_brute_force(pts, x_dir, y_dir):
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    got = pareto_mask(x, y, x_dir, y_dir)
    np.testing.assert_array_equal(got, brute_force_mask(x, y, x_dir, y_dir))


def test_duplicates_of_a_front_point_are_all_kept_and_ties_on_one_axis_resolved():
    x = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]
    y = [0.5, 0.5, 0.4, 0.9, 0.5, 0.9]
    # (1,.5)x2 front; (1,.4) dominated by same-x better y; (2,.9) front; (2,.5) dominated;
    # (3,.9) dominated by (2,.9) (tie on y, worse x)
    assert pareto_mask(x, y, "min", "max").tolist() == [True, True, False, True, False, False]


def test_front_dataframe_sorted_by_cost():
    df = pd.DataFrame({"c": [3.0, 1.0, 2.0, 2.5], "acc": [0.9, 0.5, 0.8, 0.7]})
    front = pareto_front(df, "c", "acc")
    assert front["c"].tolist() == [1.0, 2.0, 3.0]


def test_bad_direction_is_a_clear_error():
    with pytest.raises(ValueError, match="use 'min' or 'max'"):
        pareto_mask([1.0], [1.0], "up", "max")


def test_hypervolume_hand_computed():
    # min cost, max acc, ref (10, 0): boxes [1,10]x[0,.5] ∪ [4,10]x[0,.8] ∪ [8,10]x[0,.9]
    # = 3*.5 + 4*.8 + 2*.9 = 1.5 + 3.2 + 1.8 = 6.5; the dominated (5, .6) adds nothing
    x = [1.0, 4.0, 8.0, 5.0]
    y = [0.5, 0.8, 0.9, 0.6]
    assert hypervolume_2d(x, y, ref=(10.0, 0.0)) == pytest.approx(6.5)
    # a point beyond the reference on either axis contributes nothing
    assert hypervolume_2d([*x, 11.0], [*y, 1.0], ref=(10.0, 0.0)) == pytest.approx(6.5)
    assert hypervolume_2d([], [], ref=(1.0, 0.0)) == 0.0


def test_hypervolume_both_minimised_single_point():
    assert hypervolume_2d([2.0], [3.0], ref=(5.0, 7.0), x_dir="min", y_dir="min") == 12.0


finite = st.integers(0, 20).map(float)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=30), directions, directions)
def test_hypervolume_matches_optuna(pts, x_dir, y_dir):
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    ref = reference_point(x, y, x_dir, y_dir)
    # Optuna minimises every objective: flip maximised axes, points must not exceed the reference
    sx = -1.0 if x_dir == "max" else 1.0
    sy = -1.0 if y_dir == "max" else 1.0
    loss = np.column_stack([sx * x, sy * y])
    expected = compute_hypervolume(loss, np.array([sx * ref[0], sy * ref[1]]))
    assert hypervolume_2d(x, y, ref, x_dir, y_dir) == pytest.approx(expected, abs=1e-9)


def test_reference_point_is_the_observed_nadir_plus_a_margin():
    assert reference_point([1.0, 5.0, np.nan], [0.2, 0.9, 0.5], "min", "max") == (5.0, 0.2)
    assert reference_point([1.0, 5.0], [0.2, 0.9], "max", "min") == (1.0, 0.9)
    rx, ry = reference_point([1.0, 5.0], [0.2, 0.9], "min", "max", margin=0.1)
    assert rx == pytest.approx(5.4) and ry == pytest.approx(0.13)
    # a front of two points, each the worst on one axis, keeps area once the margin is there
    assert hypervolume_2d([1.0, 5.0], [0.2, 0.9], (5.0, 0.2)) == 0.0
    assert hypervolume_2d([1.0, 5.0], [0.2, 0.9], (rx, ry)) == pytest.approx(4 * 0.07 + 0.4 * 0.77)
    # all-equal axis: pushed by margin x magnitude
    assert reference_point([2.0, 2.0], [0.5, 0.5], margin=0.1) == pytest.approx((2.2, 0.45))


def test_non_dominated_agrees_with_pareto_mask_and_handles_three_objectives():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(300, 2))
    v[::17, 1] = np.nan
    assert (non_dominated(v, ["min", "max"]) == pareto_mask(v[:, 0], v[:, 1], "min", "max")).all()
    # 3 objectives by hand: max acc, min params, min time
    pts = np.array(
        [[0.9, 100, 5.0], [0.8, 50, 5.0], [0.8, 100, 6.0], [0.9, 100, 5.0], [0.7, 50, 1.0]]
    )
    assert non_dominated(pts, ["max", "min", "min"]).tolist() == [True, True, False, True, True]
