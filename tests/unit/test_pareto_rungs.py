"""The pure rule of Pareto-aware successive halving (sparsity_tune.sweep.pareto_rungs)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from sparsity_tune.sweep import pareto_rungs
from sparsity_tune.sweep.pareto_rungs import (
    CONTINUE,
    STOP,
    Observation,
    ParetoRungs,
    PhaseClock,
    decide,
    pooled_spread,
    rung_epochs,
)

T90_DF2 = 1.8856180831641272  # scipy.stats.t.ppf(0.9, 2)
Z90 = 1.2815515655446004  # scipy.stats.norm.ppf(0.9)


def obs(config: str, cost: float, *accs: float) -> list[Observation]:
    return [Observation(config, s, (cost,), a) for s, a in enumerate(accs)]


def test_doctests() -> None:
    assert doctest.testmod(pareto_rungs).failed == 0


# ------------------------------------------------------------------ cost: compared at own cost
def test_cheap_accurate_never_stops_costly_that_may_still_reach_the_front() -> None:
    # pooled sd: cheap [0.80, 0.80] -> 0, costly [0.70, 0.80] -> ss 0.005; sd sqrt(0.005/2) = 0.05
    # costly: mean 0.75, bound 0.75 + 1.8856 * 0.05 / sqrt(2) = 0.8167 > 0.80: it may still win
    group = obs("cheap", 100, 0.80, 0.80) + obs("costly", 1000, 0.70, 0.80)
    d = decide(group, "costly", level=0.9, noise_floor=0.0)
    assert not d.stop and d.by is None
    assert d.mean == pytest.approx(0.75) and d.n == 2
    assert d.bound == pytest.approx(0.75 + T90_DF2 * 0.05 / math.sqrt(2))


def test_costly_stopped_only_when_its_bound_is_beaten_by_something_no_costlier() -> None:
    # the same spread, costly lower: bound 0.65 + 0.0667 = 0.7167 < 0.80
    group = obs("cheap", 100, 0.80, 0.80) + obs("costly", 1000, 0.60, 0.70)
    d = decide(group, "costly", level=0.9, noise_floor=0.0)
    assert d.stop and d.by == "cheap"
    assert d.bound == pytest.approx(0.65 + T90_DF2 * 0.05 / math.sqrt(2))


def test_a_costlier_accurate_config_never_stops_a_cheaper_one() -> None:
    group = obs("cheap", 100, 0.10, 0.10) + obs("costly", 1000, 0.99, 0.99)
    assert not decide(group, "cheap", level=0.9, noise_floor=0.0).stop


def test_equal_cost_higher_mean_dominates_and_ties_do_not() -> None:
    group = obs("a", 100, 0.9) + obs("b", 100, 0.5)
    assert decide(group, "b", noise_floor=0.1).by == "a"  # 0.5 + 0.128 < 0.9
    tie = obs("a", 100, 0.5) + obs("b", 100, 0.5)
    assert not decide(tie, "b", noise_floor=0.0).stop  # identical points do not dominate


def test_dominator_is_the_best_of_the_dominating_configs() -> None:
    group = obs("x", 50, 0.7) + obs("y", 80, 0.9) + obs("z", 100, 0.2) + obs("w", 500, 0.99)
    d = decide(group, "z", noise_floor=0.01)
    assert d.stop and d.by == "y"  # w is costlier: it never counts


def test_several_costs_dominate_only_when_all_are_no_larger() -> None:
    a = [Observation("a", 0, (100.0, 5.0), 0.9)]
    b = [Observation("b", 0, (200.0, 1.0), 0.5)]  # more params, faster: a does not dominate
    assert not decide(a + b, "b", noise_floor=0.0).stop
    c = [Observation("c", 0, (200.0, 6.0), 0.5)]
    assert decide(a + c, "c", noise_floor=0.0).by == "a"


def test_min_gain_stops_points_that_add_little_hypervolume() -> None:
    # others: (log10 100 = 2, 0.8), (log10 10000 = 4, 0.9); ref x = 4 + 0.1 * 2 = 4.2, y 0
    # front hv: (4 - 2) * 0.8 + (4.2 - 4) * 0.9 = 1.78
    # candidate at log10 1000 = 3, bound 0.82 (noise 0): adds (4 - 3) * 0.02 = 0.02 -> 1.12%
    group = obs("a", 100, 0.8) + obs("b", 10000, 0.9) + obs("c", 1000, 0.82)
    d = decide(group, "c", noise_floor=0.0, min_gain=0.02)
    assert d.stop and d.by is None and d.gain == pytest.approx(0.02 / 1.78)
    assert not decide(group, "c", noise_floor=0.0, min_gain=0.01).stop


def test_bad_input_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"level=1\.2"):
        decide(obs("a", 1, 0.5), "a", level=1.2)
    with pytest.raises(ValueError, match="'zz' has no observation"):
        decide(obs("a", 1, 0.5), "zz")
    with pytest.raises(ValueError, match="reduction_factor=1"):
        rung_epochs(1, 1, 10)
    two = [Observation("a", 0, (1.0, 2.0), 0.5), Observation("b", 0, (1.0, 2.0), 0.1)]
    with pytest.raises(ValueError, match=r"min_gain=0\.1 needs exactly one cost"):
        decide(two, "a", min_gain=0.1)


# ------------------------------------------------------------------ seeds pooled
def test_one_unlucky_seed_does_not_stop_a_configuration() -> None:
    # A's seeds 0.80 and 0.60 (mean 0.70); B, cheaper, 0.72 twice. Seed by seed (ASHA), A's
    # 0.60 is beaten; pooled: sd sqrt((0.02 + 0) / 2) = 0.1, df 2,
    # bound 0.70 + 1.8856 * 0.1 / sqrt(2) = 0.8333 > 0.72
    group = obs("B", 100, 0.72, 0.72) + obs("A", 200, 0.80, 0.60)
    d = decide(group, "A", level=0.9, noise_floor=0.0)
    assert not d.stop
    assert d.bound == pytest.approx(0.70 + T90_DF2 * 0.1 / math.sqrt(2))
    # the same seeds, both bad: stopped
    bad = obs("B", 100, 0.72, 0.72) + obs("A", 200, 0.61, 0.60)
    assert decide(bad, "A", level=0.9, noise_floor=0.0).stop


def test_pooled_spread_and_noise_floor() -> None:
    sd, df = pooled_spread(obs("a", 1, 0.5, 0.7, 0.6) + obs("b", 2, 0.4, 0.2) + obs("c", 3, 0.9))
    # a: ss 0.02 (df 2), b: ss 0.02 (df 1), c: one seed, left out
    assert df == 3.0 and sd == pytest.approx(math.sqrt(0.04 / 3))
    assert pooled_spread(obs("a", 1, 0.5))[1] == 0.0
    # no spread seen yet: the floor with the normal quantile
    d = decide(obs("a", 1, 0.5) + obs("b", 2, 0.3), "b", level=0.9, noise_floor=0.05)
    assert d.bound == pytest.approx(0.3 + Z90 * 0.05)
    # a spread below the floor is raised to it (df from the pooled seeds)
    d = decide(obs("a", 1, 0.5, 0.5) + obs("b", 2, 0.3, 0.3), "b", level=0.9, noise_floor=0.05)
    assert d.bound == pytest.approx(0.3 + T90_DF2 * 0.05 / math.sqrt(2))


def test_a_seed_reported_twice_counts_once() -> None:
    group = [*obs("a", 1, 0.5, 0.7), Observation("a", 0, (1.0,), 0.1)]
    assert decide(group, "a", noise_floor=0.0).mean == pytest.approx(0.6)


# ------------------------------------------------------------------ phase of the schedule
def test_rung_epochs() -> None:
    assert rung_epochs(2, 3, 20) == (2, 6, 18)
    assert rung_epochs(1, 2, 9) == (1, 2, 4, 8)
    assert rung_epochs(1, 1.5, 5) == (1, 2, 3)  # 1, 1.5 -> 1 (dropped), 2.25, 3.375
    assert rung_epochs(5, 2, 5) == ()


def test_imp_rungs_move_to_round_ends() -> None:
    c = PhaseClock("imp", period=8)
    assert [c.rung_epoch(m) for m in (1, 2, 8, 9, 18)] == [8, 8, 8, 16, 24]
    assert c.phase(8) == ("round", 1, 8) and c.phase(16) == ("round", 2, 8)
    assert PhaseClock("imp", period=6).phase(12) != PhaseClock("imp", period=4).phase(12)


def test_gradual_phase_equal_only_at_equal_progress_and_timing() -> None:
    a, b = PhaseClock("gradual", 0, 6), PhaseClock("gradual", 0, 12)
    assert a.phase(3) == b.phase(6) == ("pruning", 0.5, 1)
    assert a.phase(3) != b.phase(3)  # half-way vs a quarter of the way
    assert PhaseClock("gradual", 0, 6, period=2).phase(3) != a.phase(3)
    # just after the final event vs after epochs of recovery
    assert a.phase(6) == ("recovering", 0) and b.phase(12) == ("recovering", 0)
    assert a.phase(12) == ("recovering", 6) != b.phase(12)
    assert PhaseClock("gradual", 2, 6).phase(1) == ("pruning", 0.0, 1)


def test_one_shot_and_dense_phases() -> None:
    c = PhaseClock("one_shot", start=5)
    assert [c.phase(e) for e in (4, 5, 7)] == [("dense",), ("recovering", 0), ("recovering", 2)]
    assert PhaseClock("none").phase(3) == ("dense",) and PhaseClock("none").rung_epoch(3) == 3


def test_trials_at_different_phases_never_judge_each_other() -> None:
    rungs = ParetoRungs([4], noise_floor=0.0)
    early, late = PhaseClock("gradual", 0, 8), PhaseClock("gradual", 0, 4)
    # epoch 4: 'early' is half-way through its pruning, 'late' has just finished
    assert rungs.on_epoch("good_late", 0, 4, (100,), 0.9, late) == CONTINUE
    assert rungs.on_epoch("bad_early", 0, 4, (200,), 0.1, early) == CONTINUE
    assert rungs.on_epoch("bad_late", 0, 4, (200,), 0.1, late) == STOP


def test_a_dense_trial_is_judged_by_every_phase_and_never_judges_a_pruned_one() -> None:
    def sweep(rungs: ParetoRungs) -> list[str]:
        gradual, dense = PhaseClock("gradual", 0, 6), PhaseClock("none")
        return [
            rungs.on_epoch("pruned_small", 0, 2, (100,), 0.80, gradual),
            # dense and costlier, behind a pruned trial that carries pruning damage: stopped
            rungs.on_epoch("dense_big", 0, 2, (1000,), 0.70, dense),
            # dense and cheap, far ahead: it never stops a pruned trial mid-schedule
            rungs.on_epoch("dense_small", 0, 2, (50,), 0.95, dense),
            rungs.on_epoch("pruned_big", 0, 2, (500,), 0.85, gradual),
            # but it does stop a costlier dense one
            rungs.on_epoch("dense_mid", 0, 2, (200,), 0.90, dense),
        ]

    rungs = ParetoRungs([2], noise_floor=0.0)
    assert sweep(rungs) == [CONTINUE, STOP, CONTINUE, CONTINUE, STOP]
    assert rungs.stopped["dense_big"]["by"] == "pruned_small"
    assert rungs.stopped["dense_mid"]["by"] == "dense_small"
    # rebuilt from the saved log, later dense trials meet every phase seen before
    resumed = ParetoRungs.from_log(json.loads(json.dumps(rungs.log[:1])), [2], noise_floor=0.0)
    assert resumed.on_epoch("dense_big", 0, 2, (1000,), 0.70, PhaseClock("none")) == STOP
    assert resumed.stopped["dense_big"]["by"] == "pruned_small"


# ------------------------------------------------------------------ bookkeeping and resume
def sweep_events() -> list[tuple]:
    clock = PhaseClock("gradual", 0, 2)
    return [
        ("A", 0, 2, (100,), 0.80, clock),
        ("B", 0, 2, (1000,), 0.70, clock),
        ("C", 0, 2, (1000,), 0.50, clock),
        ("A", 1, 2, (100,), 0.82, clock),
        ("B", 1, 2, (1000,), 0.90, clock),
        ("C", 1, 2, (1000,), 0.52, clock),
        ("B", 0, 6, (1000,), 0.91, clock),
        ("C", 0, 3, (1000,), 0.60, clock),  # not a rung, but C is stopped
        ("A", 0, 6, (100,), 0.85, clock),
    ]


def test_decisions_of_a_small_sweep() -> None:
    rungs = ParetoRungs([2, 6], level=0.9, noise_floor=0.15)
    got = [rungs.on_epoch(*e) for e in sweep_events()]
    # B's first seed, alone: bound 0.70 + 1.2816 * 0.15 = 0.892 > A's 0.80 -> continue;
    # C's: 0.50 + 0.192 = 0.692 < 0.80 -> stop, by A; C's later records: stop, not logged
    assert got == [CONTINUE, CONTINUE, STOP, CONTINUE, CONTINUE, STOP, CONTINUE, STOP, CONTINUE]
    assert set(rungs.stopped) == {"C"} and len(rungs.log) == 7
    assert rungs.stopped["C"]["seed"] == "0" and rungs.stopped["C"]["by"] == "A"
    assert rungs.log[2]["bound"] == pytest.approx(0.5 + Z90 * 0.15)
    # B's second seed: pooled sd sqrt((0.0002 + 0.02) / 2) = 0.1005 is below the floor: 0.15,
    # with the pooled df 2: bound 0.80 + 1.8856 * 0.15 / sqrt(2)
    b1 = rungs.log[4]
    assert (b1["config"], b1["n"], b1["action"]) == ("B", 2, CONTINUE)
    assert b1["bound"] == pytest.approx(0.80 + T90_DF2 * 0.15 / math.sqrt(2))


@pytest.mark.parametrize("cut", range(len(sweep_events()) + 1))
def test_saved_decisions_round_trip_through_an_interruption(cut: int) -> None:
    events = sweep_events()
    whole = ParetoRungs([2, 6], noise_floor=0.15)
    expected = [whole.on_epoch(*e) for e in events]
    first = ParetoRungs([2, 6], noise_floor=0.15)
    got = [first.on_epoch(*e) for e in events[:cut]]
    saved = json.loads(json.dumps(first.log))  # what the file holds
    resumed = ParetoRungs.from_log(saved, [2, 6], noise_floor=0.15)
    # a restored trial re-reports the rungs it had passed: the saved answers, nothing new logged
    replayed = [resumed.on_epoch(*e) for e in events[:cut]]
    assert replayed == got and len(resumed.log) == len(saved)
    got += [resumed.on_epoch(*e) for e in events[cut:]]
    assert got == expected
    assert resumed.log == whole.log and resumed.stopped == whole.stopped


def test_from_log_does_not_recompute() -> None:
    # a saved stop stands even when the rule with these settings would continue it
    entry = {
        "config": "A",
        "seed": "0",
        "epoch": 2,
        "phase": ["dense"],
        "costs": [1.0],
        "accuracy": 0.9,
        "action": STOP,
        "mean": 0.9,
        "n": 1,
        "bound": 0.9,
        "by": "Z",
    }
    rungs = ParetoRungs.from_log([entry], [2])
    assert rungs.on_epoch("A", 1, 1, (1.0,), 0.99, PhaseClock("none")) == STOP
    assert rungs.on_epoch("B", 0, 2, (1.0,), 0.1, PhaseClock("none")) == STOP  # A's 0.9 beats it


def test_a_group_refuses_mixed_numbers_of_costs() -> None:
    mixed = [Observation("a", 0, (1.0,), 0.5), Observation("b", 0, (1.0, 2.0), 0.4)]
    with pytest.raises(ValueError, match="'b' and 'a' have different numbers of costs"):
        decide(mixed, "a")


def test_a_large_rung_decides_fast() -> None:
    import time

    rungs = ParetoRungs([2])
    clock = PhaseClock("none")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(3000):
        rungs.on_epoch(f"c{i}", 0, 2, (float(rng.random()),), float(rng.random()), clock)
    # 3,000 configurations at one rung: about 0.1 s on a quiet laptop; 10 s would stall Ray
    assert time.perf_counter() - t0 < 10
    assert 0 < len(rungs.stopped) < 3000
