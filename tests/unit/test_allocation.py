"""The allocation of seeds to open comparisons: states, expected resolution, the exact order on
a hand-made case, the budget, and what was spent where."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from analysis import allocation
from analysis.allocation import (
    OPEN,
    OUT_OF_REACH,
    OVER_BUDGET,
    RESOLVED,
    WAITING,
    Comparison,
    judge,
    p_resolve,
    plan_wave,
    report_comparisons,
    spent_where,
)
from analysis.load import load_experiment, spec_tolerance
from analysis.questions import analyse
from analysis.stats import BETTER, EQUAL, NOT_CONVERGED, SEQUENTIAL, UNRESOLVED
from analysis.synthetic import write_experiment

SCHEDULE = (3, 6, 12)
#: sd 0.1 each; Y and P2/P3 sit 0.3 above Z and D: unresolved at 3 seeds with 3 looks
#: (t(1 - 0.05/6, 4) * 0.0816 = 0.335 > 0.3)
VALUES = {
    "D": [0.0, 0.1, 0.2],
    "P1": [1.0, 1.1, 1.2],  # resolved: better
    "P2": [0.3, 0.4, 0.5],
    "P3": [0.3, 0.4, 0.5],
    "P4": [0.05, 0.1, 0.15],  # diff 0 to D: never resolves
    "X": [0.35, 0.4, 0.45],  # less noise, but ten times the cost
    "Y": [0.3, 0.4, 0.5],
    "Z": [0.0, 0.1, 0.2],
    "W": [0.3, 0.4, 0.5],  # W vs U: the next look's seeds of both are already launched
    "U": [0.0, 0.1, 0.2],
    "V": [0.3, 0.4],  # before the first look, whose seed is launched
}
COSTS = {"D": 1.0, "P1": 1.0, "P2": 1.0, "P3": 3.0, "P4": 1.0, "X": 10.0, "Y": 1.0, "Z": 1.0}
COSTS |= {"W": 1.0, "U": 1.0, "V": 1.0}
COMPARISONS = [
    Comparison("Y vs Z", "Y", "Z"),  # first in the list, no shared side
    Comparison("P1 vs D", "P1", "D"),
    Comparison("P2 vs D", "P2", "D"),
    Comparison("P3 vs D", "P3", "D"),
    Comparison("P4 vs D", "P4", "D"),
    Comparison("X vs D", "X", "D"),
    Comparison("P2 vs P3", "P2", "P3"),
    Comparison("W vs U", "W", "U"),
    Comparison("V vs D", "V", "D"),
]


def _p(gap: float, sd_a: float, sd_b: float, n: int) -> float:
    """Expected resolution by hand: normal cdf of gap/se minus the t quantile at 1 - 0.05/6."""
    s2 = sd_a**2 + sd_b**2
    df = (n - 1) * s2**2 / (sd_a**4 + sd_b**4)
    return float(sps.norm.cdf(gap / math.sqrt(s2 / n) - sps.t.ppf(1 - 0.05 / 6, df)))


def test_doctests() -> None:
    assert doctest.testmod(allocation).failed == 0


def test_p_resolve_by_hand() -> None:
    assert p_resolve(0.3, 0.1, 0.1, 6, 3) == pytest.approx(_p(0.3, 0.1, 0.1, 6))
    assert p_resolve(-0.3, 0.1, 0.1, 6, 3) == pytest.approx(_p(0.3, 0.1, 0.1, 6))
    assert p_resolve(0.3, 0.05, 0.1, 6, 3) == pytest.approx(_p(0.3, 0.05, 0.1, 6))
    assert p_resolve(0.0, 0.1, 0.1, 6, 3) == pytest.approx(_p(0.0, 0.1, 0.1, 6))  # 0.002
    assert (p_resolve(0.1, 0.0, 0.0, 6, 3), p_resolve(0.0, 0.0, 0.0, 6, 3)) == (1.0, 0.0)


def test_judge_reads_each_comparison_at_its_look() -> None:
    t = judge(COMPARISONS, VALUES, SCHEDULE)
    assert t.loc["P1 vs D", "verdict"] == BETTER
    assert t.loc["P2 vs D", "verdict"] == UNRESOLVED
    assert t.loc["P2 vs D", "look"] == 3 and t.loc["V vs D", "look"] == 0
    half = sps.t.ppf(1 - 0.05 / 6, 4) * math.sqrt(0.02 / 3)
    assert (t.loc["P2 vs D", "lo"], t.loc["P2 vs D", "hi"]) == pytest.approx(
        (0.3 - half, 0.3 + half)
    )
    assert t.loc["P4 vs D", "seeds_needed"] == math.inf


def test_peers_are_equal_by_the_two_one_sided_tests_at_the_looks_own_level() -> None:
    """Two looks (3, 6), even spending: each look's level is 97.5%, so its two one-sided
    tests are at 2.5% each: the bounds are the 95% two-sided Welch interval (scipy's), not the
    90% one of a fixed-seed sweep. At look 6 here: 90% reach 0.2171, 95% 0.2578, 97.5% 0.2978
    (the look's own two-sided interval). Margin 0.28: equal (though the look's interval reaches
    past it); margin 0.24: not resolved at the look, equal with one look (fixed seeds)."""
    a = [0.1, -0.2, 0.3, 0.0, -0.1, 0.2]
    b = [0.0, 0.1, -0.1, 0.2, -0.2, 0.05]
    ref = sps.ttest_ind(a, b, equal_var=False)
    reach = {
        q: max(-ref.confidence_interval(q).low, ref.confidence_interval(q).high)
        for q in (0.90, 0.95, 0.975)
    }
    assert reach[0.90] < 0.24 < reach[0.95] < 0.28 < reach[0.975]  # the cases
    values = {"a": a, "b": b}
    cs = [Comparison(f"m{tol}", "a", "b", equivalence=tol) for tol in (0.28, 0.24)]
    t = judge(cs, values, (3, 6))
    assert t["look"].tolist() == [6, 6]
    assert t.loc["m0.28", "hi"] == pytest.approx(ref.confidence_interval(0.975).high)
    assert t["verdict"].tolist() == [EQUAL, UNRESOLVED]
    assert judge(cs, values, (6,))["verdict"].tolist() == [EQUAL, EQUAL]


def test_allocation_order_on_a_hand_made_case() -> None:
    """Step 1: the dense baseline D is needed by P2, P3 and X, so a comparison with D pays a
    third of D's seeds: P2 vs D costs 3/3 + 3 = 4, Y vs Z 6, P3 vs D 1 + 9 = 10, X vs D
    1 + 30 = 31; P2 vs D goes first (it plans D's seeds 3-5 and P2's). Step 2: D is free now,
    Y vs Z costs 6, P3 vs D 9, X vs D 30: Y vs Z. Step 3: P3 vs D (9; all 21 spent). Step 4: X vs
    D costs 30, more than the 0 left: over budget. W vs U waits for seeds launched."""
    w = plan_wave(
        COMPARISONS, VALUES, COSTS, SCHEDULE, budget=21.0, launched={"W": 6, "U": 6, "V": 3}
    )
    got = [(d.config, d.first_seed, d.seeds, d.cost, d.comparison) for d in w.decisions]
    assert got == [
        ("P2", 3, 6, 3.0, "P2 vs D"),
        ("D", 3, 6, 3.0, "P2 vs D"),
        ("Y", 3, 6, 3.0, "Y vs Z"),
        ("Z", 3, 6, 3.0, "Y vs Z"),
        ("P3", 3, 6, 9.0, "P3 vs D"),
    ]
    assert w.spent == 21.0
    p = _p(0.3, 0.1, 0.1, 6)
    assert [d.score for d in w.decisions[::2]] == pytest.approx([p / 4, p / 6, p / 9])
    assert w.table["state"].to_dict() == {
        "Y vs Z": OPEN,
        "P1 vs D": RESOLVED,
        "P2 vs D": OPEN,
        "P3 vs D": OPEN,
        "P4 vs D": OUT_OF_REACH,
        "X vs D": OVER_BUDGET,
        "P2 vs P3": OUT_OF_REACH,
        "W vs U": WAITING,
        "V vs D": WAITING,
    }
    assert w.table.loc["X vs D", "p_resolve"] == pytest.approx(_p(0.3, 0.05, 0.1, 6))
    assert w.decisions[0].why == "P2: seeds 4-6 for P2 vs D (P(resolved at 6 seeds) = 0.99, cost 3)"


def test_without_budget_nothing_is_planned_and_the_plan_is_pure() -> None:
    none = plan_wave(COMPARISONS, VALUES, COSTS, SCHEDULE, budget=0.0)
    assert none.decisions == [] and none.spent == 0.0
    assert set(none.table["state"]) == {OVER_BUDGET, RESOLVED, OUT_OF_REACH}
    a = plan_wave(COMPARISONS, VALUES, COSTS, SCHEDULE, budget=100.0)
    b = plan_wave(COMPARISONS, VALUES, COSTS, SCHEDULE, budget=100.0)
    assert (
        a.decisions == b.decisions and a.spent == 58.0
    )  # 21 above, X's 30, W and U's 6, V's third seed


def test_a_launched_look_waits_and_the_last_look_is_out_of_reach() -> None:
    cs = [Comparison("A vs B", "A", "B")]
    vals = {"A": [0.2, 0.3, 0.4], "B": [0.0, 0.1, 0.2]}  # 95%: 0.2 +- 0.227, unresolved
    w = plan_wave(cs, vals, {"A": 1.0, "B": 1.0}, SCHEDULE, 99.0, launched={"A": 6, "B": 6})
    assert w.decisions == [] and w.table.loc["A vs B", "state"] == WAITING
    w = plan_wave(cs, vals, {"A": 1.0, "B": 1.0}, (3,), 99.0)  # one look: nothing to add
    assert w.decisions == [] and w.table.loc["A vs B", "state"] == OUT_OF_REACH


def test_an_imp_round_and_its_baseline_share_one_configuration() -> None:
    """Both sides from one IMP trial per seed: one configuration gets the seeds, once."""
    cs = [Comparison("r1 vs r0", "imp/r1", "imp/r0", config_a="imp", config_b="imp")]
    vals = {"imp/r1": [0.3, 0.4, 0.5], "imp/r0": [0.0, 0.1, 0.2]}
    w = plan_wave(cs, vals, {"imp": 4.0}, SCHEDULE, 99.0)
    assert [(d.config, d.first_seed, d.seeds, d.cost) for d in w.decisions] == [("imp", 3, 6, 12.0)]


def test_spent_where_sums_per_configuration() -> None:
    w = plan_wave(
        COMPARISONS, VALUES, COSTS, SCHEDULE, budget=21.0, launched={"W": 6, "U": 6, "V": 3}
    )
    t = spent_where(w.decisions, {g: 3 * c for g, c in COSTS.items()})
    assert t.loc["P3", ["initial", "added_seeds", "added", "total"]].tolist() == [9.0, 3, 9.0, 18.0]
    assert t.loc["D", "for"] == "P2 vs D" and t.loc["P4", "added_seeds"] == 0
    assert t.index[0] == "X" and t["added"].sum() == w.spent  # X: 30 initial, the most


def test_seeds_past_the_look_inform_the_estimate_not_the_verdict() -> None:
    """A has 5 seeds, B 3: the verdict reads the first 3 of each (look 3); the allocator's
    expected resolution uses all 5 (a later look must wait for B's seeds 4-6 alone)."""
    cs = [Comparison("A vs B", "A", "B")]
    vals = {"A": [0.3, 0.4, 0.5, 0.45, 0.35], "B": [0.0, 0.1, 0.2]}
    w = plan_wave(cs, vals, {"A": 1.0, "B": 2.0}, SCHEDULE, 99.0, launched={"A": 5, "B": 3})
    assert w.table.loc["A vs B", "look"] == 3 and w.table.loc["A vs B", "diff"] == pytest.approx(
        0.3
    )
    sd_a = float(np.std(vals["A"], ddof=1))
    assert w.table.loc["A vs B", "p_resolve"] == pytest.approx(_p(0.3, sd_a, 0.1, 6))
    assert [(d.config, d.first_seed, d.seeds, d.cost) for d in w.decisions] == [
        ("A", 5, 6, 1.0),
        ("B", 3, 6, 6.0),
    ]


@pytest.mark.parametrize(
    ("grid", "fixed"),
    [
        ({"pruning.final_sparsity": [0.0, 0.5, 0.9], "pruning.score": ["magnitude", "random"]}, {}),
        ({"pruning.method": ["imp"], "pruning.score": ["magnitude", "random"]}, {"rounds": 2}),
    ],
    ids=["gradual", "imp"],
)
def test_report_comparisons_are_the_reports_own(tmp_path, grid, fixed) -> None:
    """On a written experiment, judge() with one look (3 seeds) gives exactly the report's
    intervals and verdicts, for the comparisons with dense and between methods alike."""
    base = {"model.arch": ["mlp"], "model.depth": [1], "model.width": [32]}
    write_experiment(tmp_path, grid={**base, **grid}, seeds=(0, 1, 2), epochs=3, **fixed)
    a = analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)
    cs, values = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    t = judge(cs, values, (3,))
    vd = a.points.set_index("point_id")
    vd = vd[vd["verdict"].notna()]
    mine = t[t.index.str.endswith(" vs dense")]
    assert len(mine) == len(vd) > 0
    for pid, r in vd.iterrows():
        got = mine.loc[f"{pid} vs dense"]
        assert (got["lo"], got["hi"], got["verdict"]) == (
            pytest.approx(r["diff_ci95_lo"]),
            pytest.approx(r["diff_ci95_hi"]),
            r["verdict"],
        )
    pairs = t[~t.index.str.endswith(" vs dense") & ~t.index.str.startswith("matched:")]
    assert len(pairs) == len(a.methods) > 0
    got = sorted(zip(pairs["lo"], pairs["hi"], pairs["verdict"], strict=True))
    ref = a.methods[["diff_ci95_lo", "diff_ci95_hi", "verdict"]].itertuples(index=False)
    for (lo, hi, v), (rlo, rhi, rv) in zip(got, sorted(ref), strict=True):
        assert (lo, hi, v) == (pytest.approx(rlo), pytest.approx(rhi), rv)
    sides = {g for c in cs for g in c.configs}
    assert sides <= set(a.samples["config_id"].dropna().astype(str))
    if "imp" in str(grid):  # an IMP round and its baseline grow together: one configuration
        assert all(len(c.configs) == 1 for c in cs if c.key.endswith(" vs dense"))


def test_an_adaptive_sweeps_report_uses_the_sequential_intervals(tmp_path) -> None:
    """spec.yaml with seeds {initial, max}: the report's intervals and verdicts are judge()'s at
    the last look (5 seeds back, looks 3, 6, 12: the first 3 seeds at level 1 - 0.05/3), and the
    overview names the procedure; the same files with a seed list keep the Welch 95% intervals."""
    grid = {"pruning.final_sparsity": [0.0, 0.5, 0.9], "pruning.score": ["magnitude", "random"]}
    base = {"model.arch": ["mlp"], "model.depth": [1], "model.width": [32]}
    write_experiment(tmp_path, grid={**base, **grid}, seeds=(0, 1, 2, 3, 4), epochs=3)
    fixed = analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    spec["search"]["seeds"] = {"initial": 3, "max": 12}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    a = analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)
    cs, values = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    t = judge(cs, values, (3, 6, 12))
    assert set(t["look"]) == {3}
    pruned = a.points[a.points["verdict"].notna()].set_index("point_id")
    assert len(pruned) == 4
    for pid, r in pruned.iterrows():
        got = t.loc[f"{pid} vs dense"]
        assert (r["diff_ci95_lo"], r["diff_ci95_hi"], r["verdict"]) == (
            pytest.approx(got["lo"]),
            pytest.approx(got["hi"]),
            got["verdict"],
        )
    width = (pruned["diff_ci95_hi"] - pruned["diff_ci95_lo"]).to_numpy()
    ref = fixed.points[fixed.points["verdict"].notna()].set_index("point_id").loc[pruned.index]
    assert (width > (ref["diff_ci95_hi"] - ref["diff_ci95_lo"]).to_numpy()).all()
    pairs = t[~t.index.str.endswith(" vs dense") & ~t.index.str.startswith("matched:")]
    assert sorted(a.methods["diff_ci95_lo"].astype(float)) == pytest.approx(sorted(pairs["lo"]))
    assert sorted(fixed.methods["diff_ci95_lo"].astype(float)) != pytest.approx(sorted(pairs["lo"]))
    overview = " ".join(a.sections[0].sentences)
    assert SEQUENTIAL in overview and SEQUENTIAL not in " ".join(fixed.sections[0].sentences)
    # and it says which intervals are not sequential ones
    assert "(convergence epochs, measured costs, MLP vs CNN) are fixed-seed" in overview
    assert "descriptive" not in " ".join(fixed.sections[0].sentences)


def test_seed_matched_sides_are_judged_paired_at_the_sequential_level() -> None:
    """Sides given as Series over the same seeds: the paired t interval of the first L
    differences at the look's level, and the seeds needed from the differences' spread;
    plain lists (independent sides) keep Welch's."""
    import pandas as pd

    a = [80.0, 83.0, 86.0, 81.0, 84.0, 87.0]
    b = [80.4, 83.5, 86.3, 81.6, 84.2, 87.5]  # a seed effect shared with a: 3 points of spread
    cs = [Comparison("a vs b", "a", "b", -1.0)]
    seeds = [0, 1, 2, 3, 4, 5]
    t = judge(cs, {"a": pd.Series(a, index=seeds), "b": pd.Series(b, index=seeds)}, (3, 6))
    r = t.loc["a vs b"]
    q = 1 - 0.05 / 2
    ci = sps.ttest_rel(a, b).confidence_interval(q)
    assert bool(r["paired"]) and r["look"] == 6
    assert (r["lo"], r["hi"]) == pytest.approx((ci.low, ci.high))
    assert r["sd_a"] == pytest.approx(np.std(np.subtract(a, b), ddof=1)) and r["sd_b"] == 0
    assert r["verdict"] == "within tolerance"  # [-0.69, -0.31] above -1
    w = judge(cs, {"a": a, "b": b}, (3, 6)).loc["a vs b"]
    assert not w["paired"] and w["verdict"] == UNRESOLVED  # Welch: +-4 points wide
    shifted = judge(
        cs, {"a": pd.Series(a, index=seeds), "b": pd.Series(b, index=seeds[::-1])}, (3, 6)
    )
    assert not shifted.loc["a vs b", "paired"]  # other seeds in that order: not pairs


def test_out_of_reach_is_a_small_chance_at_the_last_look_not_short_of_full_power() -> None:
    """A vs B: 0.1 apart, sd 0.1 each; at 12 seeds P(resolved) is 0.44 though 80% power needs
    more than 12 seeds: open. C vs B, 0.05 apart: 0.09 at 12 seeds, under REACH: out of reach."""
    from analysis.stats import seeds_needed

    cs = [Comparison("A vs B", "A", "B"), Comparison("C vs B", "C", "B")]
    vals = {"A": [0.1, 0.2, 0.3], "B": [0.0, 0.1, 0.2], "C": [0.05, 0.15, 0.25]}
    w = plan_wave(cs, vals, {"A": 1.0, "B": 1.0, "C": 1.0}, SCHEDULE, 99.0)
    assert seeds_needed(0.1, 0.1, 0.1, level=1 - 0.05 / 3) > 12
    assert _p(0.1, 0.1, 0.1, 12) == pytest.approx(0.444, abs=0.001)
    assert _p(0.05, 0.1, 0.1, 12) == pytest.approx(0.086, abs=0.001)
    assert round(allocation.REACH, 12) == 0.2
    assert w.table["state"].to_dict() == {"A vs B": OPEN, "C vs B": OUT_OF_REACH}
    assert [(d.config, d.first_seed, d.seeds) for d in w.decisions] == [("A", 3, 6), ("B", 3, 6)]


IMP = {"pruning.method": ["imp"], "pruning.final_sparsity": [0.0]}


def _matched_experiment(tmp_path, looks: dict | None = None, imp: bool = False, **fixed):
    """MLPs of widths 32 and 64 at sparsities 0-0.8 (or IMP runs of 3 rounds): some 64-wide
    points have about as many nonzero parameters as the 32-wide dense, so question 5 has
    matched pairs."""
    grid = {"model.arch": ["mlp"], "model.depth": [1], "model.width": [32, 64]}
    grid |= IMP if imp else {"pruning.final_sparsity": [0.0, 0.5, 0.75, 0.8]}
    fixed |= {"rounds": 3} if imp else {}
    write_experiment(tmp_path, grid=grid, seeds=(0, 1, 2, 3, 4), epochs=3, **fixed)
    if looks is not None:
        spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
        spec["search"]["seeds"] = looks
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)


@pytest.mark.parametrize("imp", [False, True], ids=["gradual", "imp"])
def test_matched_pairs_are_comparisons_the_allocator_adds_seeds_for(tmp_path, imp) -> None:
    """Question 5's pairs are peers in the allocator's list, keyed by their points, sides from
    the configurations whose trials produce them (an IMP round 0 has no config_id of its own:
    the run's); judged at one look they are the report's matched.csv exactly (symmetric
    verdict, tolerance in the metric's units there)."""
    a = _matched_experiment(tmp_path, imp=imp)
    assert len(a.matched) > 0 and {"sparse_point_id", "dense_point_id"} <= set(a.matched)
    cs, values = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    matched = {c.key: c for c in cs if c.key.startswith("matched:")}
    assert len(matched) == len(a.matched)
    t = judge(list(matched.values()), values, (5,))
    run_cfg = a.trials.set_index("trial_id")["config_id"].astype(str)
    by_point = a.samples.groupby("point_id")["trial_id"].first()
    for r in a.matched.itertuples(index=False):
        c = matched[allocation.matched_key(r.sparse_point_id, r.dense_point_id)]
        assert c.peers and c.equivalence == a.tolerance
        want = (run_cfg[by_point[r.sparse_point_id]], run_cfg[by_point[r.dense_point_id]])
        assert c.configs == want
        got = t.loc[c.key]
        assert got["lo"] / a.scale == pytest.approx(r.ci95_lo)
        assert got["hi"] / a.scale == pytest.approx(r.ci95_hi)
        assert got["verdict"] == r.verdict


def test_an_adaptive_sweeps_matched_pairs_read_the_sequential_interval(tmp_path) -> None:
    """With seeds {initial: 3, max: 12} matched.csv's intervals are judge()'s at the look (3
    of the 5 seeds back), wider than the fixed-seed ones of the same files."""
    fixed = _matched_experiment(tmp_path / "fixed")
    a = _matched_experiment(tmp_path / "adaptive", looks={"initial": 3, "max": 12})
    cs, values = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    t = judge([c for c in cs if c.key.startswith("matched:")], values, (3, 6, 12))
    assert len(t) == len(a.matched) > 0 and set(t["look"]) == {3}
    keys = [allocation.matched_key(s, d) for s, d in zip(a.matched["sparse_point_id"],
            a.matched["dense_point_id"], strict=True)]  # fmt: skip
    assert a.matched["ci95_lo"].to_numpy() == pytest.approx(t.loc[keys, "lo"].to_numpy() / a.scale)
    assert list(a.matched["verdict"]) == list(t.loc[keys, "verdict"])
    wide = (a.matched["ci95_hi"] - a.matched["ci95_lo"]).to_numpy()
    assert (wide > (fixed.matched["ci95_hi"] - fixed.matched["ci95_lo"]).to_numpy()).all()


def test_no_seeds_for_a_comparison_still_improving_and_its_verdict_stays(tmp_path) -> None:
    """Every segment ended at its cap still improving: the report says "not converged" for
    every comparison, also under the sequential procedure, and the allocator has nothing to
    add seeds for (seeds do not settle a network that has not finished training)."""
    a = _matched_experiment(tmp_path, looks={"initial": 3, "max": 12}, converged=False)
    assert set(a.points["verdict"].dropna()) == {NOT_CONVERGED}
    assert len(a.matched) and set(a.matched["verdict"]) == {NOT_CONVERGED}
    cs, _ = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    assert cs == []


def test_one_point_still_improving_keeps_the_others_comparisons_with_its_dense(tmp_path) -> None:
    """Only the comparisons with the open side drop out: the 50% point still improving takes its
    own "vs dense" comparison out of the allocator's list, not the 90% point's, which shares
    the dense baseline."""
    from analysis.synthetic import simple_trial

    for seed in range(3):
        simple_trial(tmp_path, sparsity=0.0, seed=seed, acc=0.80 + seed / 100)
        simple_trial(tmp_path, sparsity=0.5, seed=seed, acc=0.79 + seed / 100, converged=False)
        simple_trial(tmp_path, sparsity=0.9, seed=seed, acc=0.70 + seed / 100)
    a = analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)
    flags = a.usable.set_index("sparsity")["still_improving"].astype(bool).to_dict()
    assert flags == {0.0: False, 0.5: True, 0.9: False}
    cs, _ = report_comparisons(a.samples, a.usable, a.y, a.scale, a.sign, a.tolerance)
    pid = a.usable.set_index("sparsity")["point_id"]
    assert [c.key for c in cs] == [f"{pid[0.9]} vs dense"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"tolerance": 2.5}, 2.5),
        ({"tolerance": 0}, 0.0),
        ({}, None),
        ({"tolerance": "2"}, None),  # not a spec the sweep validated: no claim on its value
        ({"tolerance": True}, None),
        ({"tolerance": float("nan")}, None),
        ({"tolerance": 101}, None),
    ],
)
def test_spec_tolerance_reads_what_the_sweep_validated(search: dict, expected) -> None:
    assert spec_tolerance({"search": search}) == expected
    assert spec_tolerance({}) is None and spec_tolerance({"search": [1]}) is None


def test_the_report_judges_at_the_sweeps_tolerance_unless_told(tmp_path, capsys) -> None:
    """search.tolerance in spec.yaml is the analysis's default (the line the sweep's seeds
    chased); --tolerance overrides it, with a warning that names both."""
    from analysis.__main__ import main

    grid = {"model.arch": ["mlp"], "model.depth": [1], "model.width": [32]}
    write_experiment(tmp_path, grid={**grid, "pruning.final_sparsity": [0.0, 0.5]}, epochs=2)
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert analyse(load_experiment(tmp_path, progress=False, jobs=1)).tolerance == 1.0
    spec["search"] = {**spec["search"], "tolerance": 2.5}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    exp = load_experiment(tmp_path, progress=False, jobs=1)
    assert analyse(exp).tolerance == 2.5 and analyse(exp, tolerance=0.5).tolerance == 0.5
    out = tmp_path / "out"
    assert main([str(tmp_path), "--out", str(out), "--no-plots", "--quiet"]) == 0
    assert "tolerance 2.5 point(s)" in (out / "report.html").read_text()
    assert "--tolerance" not in capsys.readouterr().err
    assert (
        main([str(tmp_path), "--out", str(out), "--no-plots", "--quiet", "--tolerance", "1"]) == 0
    )
    err = capsys.readouterr().err
    assert "warning: --tolerance 1 is not the sweep's search.tolerance 2.5" in err
    assert "tolerance 1 point(s)" in (out / "report.html").read_text()


def test_peers_chance_of_resolution_is_the_likelier_line() -> None:
    """Two peers 0.1 apart, sd 0.3 each, 6 seeds, one look: clearing 0 (two-sided 95%) is
    unlikely; clearing the equivalence bound 0.9 away with TOST's one-sided quantile (the
    two-sided 90% level) is likely: the allocator plans with the latter, and a line that cannot
    be cleared (a NaN gap) has no chance."""
    c = Comparison("A vs B", "A", "B", equivalence=1.0)
    to_zero = p_resolve(0.1, 0.3, 0.3, 6, 1, 0.95)
    to_margin = p_resolve(0.9, 0.3, 0.3, 6, 1, 0.90)
    assert to_zero < 0.2 < 0.9 < to_margin
    assert allocation._chance(c, 0.1, 0.3, 0.3, 6, 0.95) == pytest.approx(to_margin)
    assert math.isnan(p_resolve(math.nan, 0.0, 0.0, 6, 1))
    far = Comparison("A vs C", "A", "C", equivalence=1.0)  # 1.5 apart: only 0 can be cleared
    assert allocation._chance(far, 1.5, 0.3, 0.3, 6, 0.95) == pytest.approx(
        p_resolve(1.5, 0.3, 0.3, 6, 1, 0.95)
    )
