"""Welch intervals, verdicts and seeds needed: hand-computed cases and scipy's own Welch test."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats
from analysis.stats import BETTER, UNRESOLVED, WITHIN, WORSE, seeds_needed, verdict, welch


def test_doctests() -> None:
    assert doctest.testmod(stats).failed == 0


def test_welch_by_hand() -> None:
    # a = .80 .82 .84 (sd .02), b = .78 .80 .82 (sd .02), 3 seeds each:
    # se = sqrt(.02²/3 + .02²/3) = .0163299; df = (n-1)(s²+s²)²/(s⁴+s⁴) = 4; t(.975, 4) = 2.776445
    d = welch([0.82], [0.02], [3], [0.80], [0.02], [3])
    assert d["diff"][0] == pytest.approx(0.02)
    assert d["se"][0] == pytest.approx(0.0163299, rel=1e-5)
    assert d["df"][0] == pytest.approx(4.0)
    half = 2.776445 * 0.0163299
    assert d["lo"][0] == pytest.approx(0.02 - half, rel=1e-5)
    assert d["hi"][0] == pytest.approx(0.02 + half, rel=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_welch_matches_scipy_ttest_ind_unequal_var(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.8, rng.uniform(0.001, 0.05), rng.integers(2, 7))
    b = rng.normal(0.79, rng.uniform(0.001, 0.05), rng.integers(2, 7))
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    d = stats.welch_samples(a, b)
    assert d["diff"] == pytest.approx(a.mean() - b.mean())
    assert d["df"] == pytest.approx(ref.df)
    assert (d["lo"], d["hi"]) == pytest.approx((ci.low, ci.high))
    assert d["diff"] / d["se"] == pytest.approx(ref.statistic)


def test_welch_vectorised_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    m = rng.uniform(0, 1, (2, 50))
    s = rng.uniform(0.01, 0.1, (2, 50))
    n = rng.integers(2, 6, (2, 50))
    d = welch(m[0], s[0], n[0], m[1], s[1], n[1])
    for i in (0, 17, 49):
        one = welch([m[0, i]], [s[0, i]], [n[0, i]], [m[1, i]], [s[1, i]], [n[1, i]])
        assert d["lo"][i] == pytest.approx(one["lo"][0]) and d["hi"][i] == one["hi"][0]


def test_one_seed_has_no_interval_and_zero_spread_is_the_point() -> None:
    d = welch([0.9, 0.9], [np.nan, 0.0], [1, 3], [0.8, 0.8], [0.01, 0.0], [3, 3])
    assert np.isnan(d["lo"][0]) and np.isnan(d["hi"][0])  # one seed: no spread, no interval
    assert d["lo"][1] == pytest.approx(0.1) and d["hi"][1] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("lo", "hi", "tol", "expected"),
    [
        (-0.5, 0.5, 1.0, WITHIN),  # whole interval above -1: within, though it touches 0
        (0.1, 2.0, 1.0, BETTER),  # above 0: better (and so within)
        (-3.0, -1.5, 1.0, WORSE),  # below -1: worse by more than the tolerance
        (-1.5, 0.5, 1.0, UNRESOLVED),  # straddles -1
        (-1.0, 0.5, 1.0, UNRESOLVED),  # touching the line is not above it
        (np.nan, np.nan, 1.0, UNRESOLVED),  # one seed
        (-0.5, 0.5, 0.0, UNRESOLVED),  # tolerance 0: better / worse / not resolved
        (-2.0, -0.1, 0.0, WORSE),
        (0.2, 0.3, 0.0, BETTER),
    ],
)
def test_verdict_reads_the_whole_interval(lo, hi, tol, expected) -> None:
    assert verdict([lo], [hi], tol)[0] == expected


def test_seeds_needed_by_hand() -> None:
    # sd 1 and 1, gap 1: n per side with (t_.975 + t_.8)(df) * sqrt(2/n) <= 1, df = 2(n-1).
    # n = 16: df 30, 2.0423 + 0.8538 = 2.8961 > sqrt(8) = 2.8284; n = 17: df 32, 2.8899 <= 2.9155
    assert seeds_needed(1.0, 1.0, 1.0) == 17
    assert seeds_needed(1.0, 1.0, -1.0) == 17  # the side of the line does not matter
    for n in (16, 17):  # the same rule, from scipy's quantiles
        df = 2 * (n - 1)
        lhs = (sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * math.sqrt(2 / n)
        assert (lhs <= 1.0) == (n == 17)
    assert seeds_needed(1.0, 1.0, 100.0) == 2  # already resolvable with the fewest seeds
    assert math.isnan(seeds_needed(float("nan"), 1.0, 1.0))  # one seed: spread unknown
    assert seeds_needed(1.0, 1.0, 0.0) == math.inf  # the mean sits on the line
    assert seeds_needed(1.0, 1.0, 0.05) == math.inf  # beyond MAX_SEEDS


def test_seeds_needed_many_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(11)
    sa, sb = rng.uniform(0.1, 3, 300), rng.uniform(0.1, 3, 300)
    gap = rng.uniform(-2, 2, 300)
    sa[:3], sb[3], gap[4] = np.nan, 0.0, 0.0  # unknown spread; one side exact; on the line
    sa[5] = sb[5] = 0.0
    gap[6] = 0.01  # beyond MAX_SEEDS
    many = stats.seeds_needed_many(sa, sb, gap)
    one = [seeds_needed(float(a), float(b), float(g)) for a, b, g in zip(sa, sb, gap, strict=True)]
    assert np.array_equal(many, np.array(one), equal_nan=True)
    assert many[6] == math.inf and many[5] == 2.0 and np.isnan(many[0])
