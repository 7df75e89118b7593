"""Welch intervals, verdicts and seeds needed: hand-computed cases and scipy's own Welch test."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats
from analysis.stats import (
    BETTER,
    EQUAL,
    UNRESOLVED,
    WITHIN,
    WORSE,
    resolution_lines,
    seeds_needed,
    verdict,
    welch,
)


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


# --- the sequential procedure (valid under optional stopping) --------------------------------


def test_look_schedule_doubles_up_to_the_maximum() -> None:
    assert stats.look_schedule(3, 12) == (3, 6, 12)
    assert stats.look_schedule(3, 10) == (3, 6, 10)
    assert stats.look_schedule(3, 13) == (3, 6, 12, 13)
    assert stats.look_schedule(2, 16) == (2, 4, 8, 16)
    assert stats.look_schedule(3, 3) == (3,)
    assert stats.look_schedule(2, 3) == (2, 3)


@pytest.mark.parametrize(("initial", "maximum"), [(1, 4), (3, 2), (0, 0)])
def test_look_schedule_rejects_what_has_no_interval(initial: int, maximum: int) -> None:
    with pytest.raises(ValueError, match=f"initial={initial}, max={maximum}"):
        stats.look_schedule(initial, maximum)


def test_sequential_level_spends_alpha_evenly() -> None:
    assert stats.sequential_level(1) == pytest.approx(0.95)
    assert stats.sequential_level(3) == pytest.approx(1 - 0.05 / 3)
    assert stats.sequential_level(4, 0.9) == pytest.approx(0.975)
    with pytest.raises(ValueError, match="looks must be >= 1, got 0"):
        stats.sequential_level(0)


def test_look_of_is_the_last_look_reached() -> None:
    got = stats.look_of(np.array([0, 1, 2, 3, 5, 6, 11, 12, 40]), (3, 6, 12))
    assert got.tolist() == [0, 0, 0, 3, 3, 6, 6, 12, 12]


def test_sequential_samples_cuts_to_the_common_look_and_widens() -> None:
    a = np.array([0.80, 0.82, 0.84, 0.99, 0.10])  # 5 seeds: look 3 uses the first three only
    b = np.array([0.78, 0.80, 0.82, 0.81, 0.79, 0.80, 0.83])
    got = stats.sequential_samples(a, b, (3, 6, 12))
    ref = stats.welch_samples(a[:3], b[:3], level=1 - 0.05 / 3)
    assert got["look"] == 3.0
    assert (got["lo"], got["hi"], got["df"]) == pytest.approx((ref["lo"], ref["hi"], 4.0))
    # t(1 - 0.05/6, 4) = 4.8509 against t(.975, 4) = 2.7764 for the fixed-seed interval
    half = sps.t.ppf(1 - 0.05 / 6, 4) * 0.0163299
    assert got["hi"] - got["diff"] == pytest.approx(half, rel=1e-5)
    one = stats.sequential_samples(a[:3], b[:3], (3,))  # one look: today's Welch interval
    assert (one["lo"], one["hi"]) == pytest.approx(
        (0.02 - 2.776445 * 0.0163299, 0.02 + 2.776445 * 0.0163299), rel=1e-5
    )
    before = stats.sequential_samples(a[:2], b, (3, 6))
    assert before["look"] == 0.0 and math.isnan(before["lo"])


def _stop_when_resolved(
    rng: np.random.Generator, schedule: tuple[int, ...], level: float, sims: int
) -> float:
    """Share of wrong verdicts when a true difference sits exactly on the line (tolerance 0,
    truth 0: every resolved verdict is wrong) and seeds are added look by look until the
    interval at ``level`` resolves: the optional stopping an adaptive sweep does."""
    wrong = 0
    for _ in range(sims):
        a = rng.normal(0.0, 1.0, schedule[-1])
        b = rng.normal(0.0, 2.0, schedule[-1])  # unequal spreads: the Welch case
        for n in schedule:
            d = stats.welch_samples(a[:n], b[:n], level)
            if verdict([d["lo"]], [d["hi"]], 0.0)[0] != UNRESOLVED:
                wrong += 1
                break
    return wrong / sims


def test_sequential_procedure_keeps_false_verdicts_at_nominal_under_optional_stopping() -> None:
    """The fast version of benchmarks/bench_allocation.py: 4,000 simulated nulls, 4 looks."""
    schedule = stats.look_schedule(3, 24)  # (3, 6, 12, 24)
    rate = _stop_when_resolved(
        np.random.default_rng(0), schedule, stats.sequential_level(len(schedule)), 4000
    )
    assert rate <= 0.05
    # the check can fail: reusing the fixed-seed 95% interval at every look inflates the rate
    naive = _stop_when_resolved(np.random.default_rng(0), schedule, stats.LEVEL, 4000)
    assert naive > 0.08


def test_look_levels_split_the_error_over_the_looks() -> None:
    even = stats.look_levels((3, 6, 12))
    assert even == pytest.approx((1 - 0.05 / 3,) * 3)
    linear = stats.look_levels((3, 6, 12, 24), spending="linear")
    assert [1 - q for q in linear] == pytest.approx([0.00625, 0.00625, 0.0125, 0.025])
    assert sum(1 - q for q in stats.look_levels((3, 6, 10), 0.9, "linear")) == pytest.approx(0.1)
    assert stats.look_levels((4,), spending="linear") == pytest.approx((0.95,))  # one look
    with pytest.raises(ValueError, match=r"spending: one of \('even', 'linear'\), got 'pocock'"):
        stats.look_levels((3, 6), spending="pocock")
    with pytest.raises(ValueError, match=r"schedule: increasing seed counts, got \(6, 6\)"):
        stats.look_levels((6, 6))


def test_sequential_samples_reads_each_looks_own_level() -> None:
    a = np.array([0.80, 0.82, 0.84, 0.86, 0.79, 0.83])
    b = np.array([0.78, 0.80, 0.82, 0.81, 0.79, 0.80])
    for n, miss in ((3, 0.05 * 3 / 12), (6, 0.05 * 3 / 12)):
        got = stats.sequential_samples(a[:n], b[:n], (3, 6, 12), spending="linear")
        ref = stats.welch_samples(a[:n], b[:n], level=1 - miss)
        assert (got["lo"], got["hi"]) == pytest.approx((ref["lo"], ref["hi"]))
    twelve = np.r_[a, a] + 0.001 * np.arange(12), np.r_[b, b]
    got = stats.sequential_samples(*twelve, (3, 6, 12), spending="linear")
    ref = stats.welch_samples(*twelve, level=1 - 0.05 * 6 / 12)
    assert got["look"] == 12.0 and (got["lo"], got["hi"]) == pytest.approx((ref["lo"], ref["hi"]))


def test_linear_spending_keeps_false_verdicts_at_nominal_under_optional_stopping() -> None:
    """As the even-spending test below, with each look at its own (linear) level."""
    rng, schedule = np.random.default_rng(1), stats.look_schedule(3, 24)
    levels = stats.look_levels(schedule, spending="linear")
    wrong, sims = 0, 4000
    for _ in range(sims):
        a, b = rng.normal(0.0, 1.0, schedule[-1]), rng.normal(0.0, 2.0, schedule[-1])
        for n, q in zip(schedule, levels, strict=True):
            d = stats.welch_samples(a[:n], b[:n], q)
            if verdict([d["lo"]], [d["hi"]], 0.0)[0] != UNRESOLVED:
                wrong += 1
                break
    assert wrong / sims <= 0.05


# ------------------------------------------------------------------ equivalence: TOST


def test_tost_bounds_are_the_one_sided_quantile_at_the_level() -> None:
    # diff 0.3, se 0.2, df 5: t_0.95(5) = 2.015048 (the 90% interval), t_0.9875(5) = 3.163381
    lo, hi = stats.tost_bounds([0.3], [0.2], [5.0])
    assert (lo[0], hi[0]) == pytest.approx((0.3 - 2.015048 * 0.2, 0.3 + 2.015048 * 0.2))
    assert (lo[0], hi[0]) == pytest.approx(
        (0.3 - sps.t.ppf(0.95, 5) * 0.2, 0.3 + sps.t.ppf(0.95, 5) * 0.2)
    )
    lo, hi = stats.tost_bounds([0.3], [0.2], [5.0], level=1 - 0.05 / 4)  # a look of 4
    assert hi[0] - 0.3 == pytest.approx(sps.t.ppf(0.9875, 5) * 0.2) == pytest.approx(0.632676)
    lo, hi = stats.tost_bounds([0.3, 0.3, 0.3], [0.0, 0.2, np.nan], [np.inf, np.inf, np.nan])
    assert (lo[0], hi[0]) == (0.3, 0.3)  # no spread: the point itself
    assert hi[1] - 0.3 == pytest.approx(1.644854 * 0.2)  # infinite df: the normal quantile
    assert np.isnan(lo[2]) and np.isnan(hi[2])  # no interval


def test_tost_bounds_are_the_welch_interval_at_twice_the_level_minus_one() -> None:
    """The TOST bounds at level L are scipy's two-sided Welch interval at 2L - 1."""
    a, b = np.array([0.80, 0.83, 0.81, 0.86]), np.array([0.79, 0.80, 0.84])
    d = stats.welch_samples(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    lo, hi = stats.tost_bounds([d["diff"]], [d["se"]], [d["df"]])
    assert (lo[0], hi[0]) == pytest.approx((ci.low, ci.high))


def _peer(diff: float, se: float, df: float, tol: float) -> tuple[str, str]:
    """(verdict read by TOST, verdict read from the 95% interval) of two peers."""
    h95 = sps.t.ppf(0.975, df) * se
    eq = stats.tost_bounds([diff], [se], [df])
    tost = verdict([diff - h95], [diff + h95], tol, symmetric=True, equivalence=eq)[0]
    return tost, verdict([diff - h95], [diff + h95], tol, symmetric=True)[0]


def test_equal_by_tost_where_the_95_interval_would_not_say_so() -> None:
    # diff 0.2, se 0.4, df 10, tolerance 1: t_0.95(10) = 1.812461, t_0.975(10) = 2.228139
    # 90%: [0.2 - 0.724985, 0.2 + 0.724985] = [-0.525, 0.925] inside (-1, 1): equal;
    # 95%: [-0.691, 1.091] reaches past 1 (and straddles 0): not resolved
    assert 0.2 + 1.812461 * 0.4 < 1.0 < 0.2 + 2.228139 * 0.4
    assert _peer(0.2, 0.4, 10.0, 1.0) == (EQUAL, UNRESOLVED)
    # diff 0.5: 90% [-0.225, 1.225] reaches past 1 as well: equal under neither rule
    assert _peer(0.5, 0.4, 10.0, 1.0) == (UNRESOLVED, UNRESOLVED)
    # the 95% interval decides better / worse first: a resolved gain inside the margin is better
    assert _peer(0.5, 0.1, 10.0, 1.0) == (BETTER, BETTER)
    assert _peer(0.2, 0.4, 10.0, 0.0) == (UNRESOLVED, UNRESOLVED)  # no margin: no equal


def _equal_rate(rng: np.random.Generator, level: float | None, sims: int = 4000) -> float:
    """Share of "equal within 1" verdicts for two normal samples of 6 (sd 0.5 and 0.6) whose
    true difference is exactly +-1, the margin (every "equal" is wrong): read by TOST at the
    95% level, or (``level`` None) from the 95% interval itself, the rule before."""
    truth = np.where(np.arange(sims) < sims // 2, 1.0, -1.0)
    a = rng.normal(truth[:, None], 0.5, (sims, 6))
    b = rng.normal(0.0, 0.6, (sims, 6))
    d = welch(a.mean(1), a.std(1, ddof=1), 6, b.mean(1), b.std(1, ddof=1), 6)
    eq = None if level is None else stats.tost_bounds(d["diff"], d["se"], d["df"], level)
    return float((verdict(d["lo"], d["hi"], 1.0, True, equivalence=eq) == EQUAL).mean())


def test_tost_claims_equal_at_most_at_its_nominal_5_percent_on_the_margin() -> None:
    """4,000 simulated differences sitting on the margin: TOST's error rate is at most alpha =
    5% (plus 3 binomial standard deviations), and well above the 95% interval's 2.5%, which
    is what the change buys."""
    tost = _equal_rate(np.random.default_rng(0), stats.LEVEL)
    old = _equal_rate(np.random.default_rng(0), None)
    assert tost <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert old <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 4000)
    assert tost >= 0.035 and tost - old >= 0.015


def test_resolution_lines_are_the_verdicts_lines_at_their_levels() -> None:
    """With a reference: -tolerance at the level. Peers: 0 at the level and the nearer
    equivalence bound at 2 level - 1 (the one-sided quantile TOST reads), NaN outside the
    margin; without a tolerance only 0."""
    ((g, q),) = resolution_lines([-0.4, -1.5], 1.0)
    assert g.tolist() == pytest.approx([0.6, -0.5]) and q == 0.95
    (g0, q0), (ge, qe) = resolution_lines([-0.4, 1.5], 1.0, symmetric=True, level=0.975)
    assert g0.tolist() == pytest.approx([0.4, 1.5]) and q0 == 0.975
    assert ge[0] == pytest.approx(0.6) and np.isnan(ge[1]) and qe == pytest.approx(0.95)
    assert [q for _, q in resolution_lines([0.2], 0.0, symmetric=True)] == [0.95]
