"""Each point against its dense baseline, and methods at equal sparsity, with Welch intervals
checked against scipy and verdicts by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.compare import (
    at_equal_sparsity,
    role,
    sparsity_cells,
    variant_names,
    variant_order,
    versus_dense,
)
from analysis.load import load_experiment
from analysis.points import P, numeric_point_metrics, operating_points
from analysis.stats import BETTER, EQUAL, UNRESOLVED, WITHIN, WORSE, seeds_needed
from analysis.synthetic import simple_trial, write_experiment
from analysis.tables import add_config_ids, aggregate_seeds, identity_columns


def _samples(root: Path) -> pd.DataFrame:
    exp = load_experiment(root)
    return operating_points(add_config_ids(exp.trials), exp.history)


def _points(samples: pd.DataFrame) -> pd.DataFrame:
    keep = ["config_id", "base_id", P.baseline_key, P.round, P.variant, "label", "base_label"]
    keep += ["arch", "size", *identity_columns(samples)]
    return aggregate_seeds(samples, numeric_point_metrics(samples), by=P.point_id, keep=keep)


def _ci(a, b) -> tuple[float, float]:
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return ci.low, ci.high


DENSE = [0.90, 0.91, 0.92]


def test_versus_dense_interval_and_verdict_against_the_tolerance(tmp_path: Path) -> None:
    pruned = {0.5: [0.905, 0.91, 0.915], 0.9: [0.87, 0.88, 0.89], 0.95: [0.70, 0.71, 0.72]}
    for seed in range(3):
        simple_trial(tmp_path, sparsity=0.0, seed=seed, acc=DENSE[seed])
        for s, accs in pruned.items():
            simple_trial(tmp_path, sparsity=s, seed=seed, acc=accs[seed])
    samples = _samples(tmp_path)
    sparsity = samples.groupby(P.point_id)["sparsity"].first()
    for tol, expected in (
        # 0.5: diff 0, CI [-2.08, +2.08]; 0.9: diff -3, CI [-5.27, -0.73]; 0.95: diff -20
        (1.0, {0.5: UNRESOLVED, 0.9: UNRESOLVED, 0.95: WORSE}),
        (3.0, {0.5: WITHIN, 0.9: UNRESOLVED, 0.95: WORSE}),
        (0.5, {0.5: UNRESOLVED, 0.9: WORSE, 0.95: WORSE}),
    ):
        vd = versus_dense(samples, "test_acc", 100.0, 1.0, tol)
        assert len(vd) == 3 and (vd["dense_n"] == 3).all() and (vd["n"] == 3).all()
        for pid, r in vd.iterrows():
            s = sparsity[pid]
            lo, hi = _ci(100 * np.array(pruned[s]), 100 * np.array(DENSE))
            assert r["diff_pts"] == pytest.approx(100 * (np.mean(pruned[s]) - np.mean(DENSE)))
            assert (r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx((lo, hi))
            assert r["verdict"] == expected[s], (tol, s)
            assert np.isnan(r["seeds_needed"]) == (r["verdict"] != UNRESOLVED)
    vd = versus_dense(samples, "test_acc", 100.0, 1.0, 1.0)
    vd.index = vd.index.map(sparsity)
    # se = sqrt(1/3 + .25/3) = .6455, df = .41667² / ((1/3)²/2 + (.25/3)²/2) = 2.941,
    # t(.975, 2.941) = 3.219: ±2.078
    assert vd.loc[0.5, "diff_ci95_lo"] == pytest.approx(-2.078, abs=1e-3)
    assert (vd.loc[0.9, "diff_ci95_lo"], vd.loc[0.9, "diff_ci95_hi"]) == pytest.approx(
        (-5.267, -0.733), abs=1e-3
    )


def test_a_minimised_metric_is_sign_flipped(tmp_path: Path) -> None:
    for seed in range(3):
        simple_trial(tmp_path, sparsity=0.0, seed=seed, acc=DENSE[seed])
        simple_trial(tmp_path, sparsity=0.5, seed=seed, acc=DENSE[seed] - 0.1)
    samples = _samples(tmp_path)
    up = versus_dense(samples, "test_acc", 100.0, 1.0).iloc[0]
    down = versus_dense(samples, "test_acc", 100.0, -1.0).iloc[0]
    assert up["diff_pts"] == pytest.approx(-10) and up["verdict"] == WORSE
    assert down["diff_pts"] == pytest.approx(10) and down["verdict"] == BETTER
    assert down["diff_ci95_lo"] == pytest.approx(-up["diff_ci95_hi"])


def test_imp_round_zero_is_the_baseline_and_each_seed_counts_once(tmp_path: Path) -> None:
    grid = {
        "model.arch": ["mlp"],
        "model.depth": [1],
        "model.width": [32],
        "pruning.final_sparsity": [0.0],
        "pruning.method": ["imp"],
        "pruning.score": ["magnitude", "random"],
    }
    write_experiment(tmp_path, grid=grid, seeds=(0, 1, 2), epochs=3, rounds=2, rate=0.5)
    samples = _samples(tmp_path)
    vd = versus_dense(samples, "test_acc", 100.0, 1.0)
    assert len(vd) == 4  # 2 variants x 2 pruned rounds
    assert (vd["dense_n"] == 3).all()  # 3 seeds, though 6 trials repeat round 0
    r0 = samples[samples[P.round] == 0].sort_values("seed")
    assert vd["dense_test_acc"].iloc[0] == pytest.approx(r0["test_acc"].mean())


def _two_methods(root: Path, accs: dict[str, list[float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A dense run and two scores at 90% per seed (``accs``: score -> test_acc per seed): the
    per-seed samples and the points."""
    for seed in range(3):
        simple_trial(root, sparsity=0.0, seed=seed, acc=0.9)
        for score, a in accs.items():
            simple_trial(root, sparsity=0.9, seed=seed, acc=a[seed], score=score)
    samples = _samples(root)
    return samples, _points(samples)


def test_methods_at_equal_sparsity(tmp_path: Path) -> None:
    accs = {"magnitude": [0.80, 0.82, 0.84], "random": [0.60, 0.65, 0.70]}
    samples, points = _two_methods(tmp_path, accs)
    m = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0)
    assert len(m) == 1
    r = m.iloc[0]
    assert (r["variant_a"], r["variant_b"]) == ("score=magnitude", "score=random")  # control last
    lo, hi = _ci(100 * np.array(accs["magnitude"]), 100 * np.array(accs["random"]))
    assert r["diff_pts"] == pytest.approx(17.0)
    assert (r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx((lo, hi))
    assert r["verdict"] == BETTER and r["n_a"] == r["n_b"] == 3
    names = variant_names(points)
    assert names["score=random"] == "random pruning (score=random)"


def test_methods_within_the_tolerance_of_each_other_are_equal(tmp_path: Path) -> None:
    """Two peers whose interval lies inside +-tolerance: equal within tolerance; with a smaller
    tolerance (or none) not resolved, the seeds needed naming the gap to the nearer bound."""
    accs = {"magnitude": [0.800, 0.803, 0.806], "random": [0.799, 0.802, 0.807]}
    samples, points = _two_methods(tmp_path, accs)
    lo, hi = _ci(100 * np.array(accs["magnitude"]), 100 * np.array(accs["random"]))
    assert -1.0 < lo < hi < 1.0 and not (lo > -0.5 and hi < 0.5)  # the case it claims
    r = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0, tolerance=1.0).iloc[0]
    assert (r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx((lo, hi))
    assert r["verdict"] == EQUAL and np.isnan(r["seeds_needed"])
    r = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0, tolerance=0.5).iloc[0]
    assert r["verdict"] == UNRESOLVED and r["seeds_needed"] > 3
    assert at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0).iloc[0]["verdict"] == (
        UNRESOLVED
    )


def test_methods_are_equal_by_the_two_one_sided_tests_the_90_interval(tmp_path: Path) -> None:
    """Equivalence is Schuirmann's TOST at 5% each side: the 90% Welch interval (scipy's)
    inside +-tolerance. At 0.75 points the 95% interval [-0.80, +0.87] reaches past the margin
    but the 90% one [-0.60, +0.67] does not: equal (the 95% rule left it unresolved); at 0.5
    neither is inside."""
    accs = {"magnitude": [0.800, 0.803, 0.806], "random": [0.799, 0.802, 0.807]}
    samples, points = _two_methods(tmp_path, accs)
    a, b = 100 * np.array(accs["magnitude"]), 100 * np.array(accs["random"])
    lo, hi = _ci(a, b)
    ci90 = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    assert lo < -0.75 < 0.75 < hi and -0.75 < ci90.low < ci90.high < 0.75  # the case
    assert ci90.low < -0.5 < 0.5 < ci90.high
    r = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0, tolerance=0.75).iloc[0]
    assert (r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx((lo, hi))  # still the 95%
    assert r["verdict"] == EQUAL and np.isnan(r["seeds_needed"])
    r = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0, tolerance=0.5).iloc[0]
    assert r["verdict"] == UNRESOLVED
    # seeds needed: the fewer of those clearing 0 (two-sided 95%) and those clearing the
    # nearer equivalence bound with TOST's one-sided quantile (the 90% interval)
    d, sa, sb = a.mean() - b.mean(), a.std(ddof=1), b.std(ddof=1)
    to_zero = seeds_needed(sa, sb, abs(d))
    to_margin = seeds_needed(sa, sb, 0.5 - abs(d), level=0.90)
    assert to_margin < seeds_needed(sa, sb, 0.5 - abs(d)) and to_margin < to_zero
    assert r["seeds_needed"] == to_margin


def test_peers_at_chance_in_every_seed_are_equal_not_open() -> None:
    """Both methods at exactly the same value in every seed (two collapsed networks): an
    interval of [0, 0], equal within any positive tolerance."""
    from analysis.compare import _judge

    st = pd.DataFrame({"mean": [10.0], "std": [0.0], "n": [3.0]})
    r = _judge(st, st, 1.0, 1.0, 1.0, symmetric=True).iloc[0]
    assert (r["diff_ci95_lo"], r["diff_ci95_hi"], r["verdict"]) == (0.0, 0.0, EQUAL)


def test_sparsity_cells_match_within_a_hundredth_and_per_base() -> None:
    pts = pd.DataFrame(
        {
            "base_id": ["a", "a", "a", "a", "b"],
            "sparsity": [0.0, 0.748, 0.75, 0.8, 0.75],
        }
    )
    cells = sparsity_cells(pts)
    assert np.isnan(cells[0]) if isinstance(cells[0], float) else pd.isna(cells[0])
    assert cells[1] == cells[2] != cells[3]
    assert cells[4] != cells[2]  # another base: never compared


def test_roles_and_order_put_the_controls_last() -> None:
    assert role({"method": "imp", "score": "magnitude", "rewind": "init"}) == "winning ticket"
    assert role({"method": "imp", "score": "magnitude", "rewind": "3"}) == "winning ticket"
    assert role({"method": "imp", "score": "magnitude", "rewind": "none"}) is None
    assert role({"method": "imp", "rewind": "reinit"}) == "random re-init"
    assert role({"method": "gradual", "score": "random"}) == "random pruning"
    pts = pd.DataFrame(
        {
            P.variant: ["rewind=reinit", "rewind=init", "rewind=none", "dense"],
            "pruning.method": ["imp"] * 4,
            "pruning.rewind": ["reinit", "init", "none", "init"],
            "test_acc": [0.95, 0.80, 0.85, 0.99],
        }
    )
    assert variant_order(pts, "test_acc", 1.0) == ["rewind=none", "rewind=init", "rewind=reinit"]


def test_roles_come_from_the_registered_pieces_not_their_names(monkeypatch) -> None:
    """A score registered under another name with the same properties gets the same role; the
    granularities that compact or fix a pattern are no winning ticket (masks not free per
    weight); a setting left out takes its config default."""
    from sparsity_tune.trial import registry
    from sparsity_tune.trial.scores import Magnitude, Random

    class Coin(Random):
        name = "coin"

    class Size(Magnitude):
        name = "size"

    monkeypatch.setitem(registry.SCORES, "coin", Coin)
    monkeypatch.setitem(registry.SCORES, "size", Size)
    assert role({"method": "one_shot", "score": "coin"}) == "random pruning"
    assert role({"method": "imp", "score": "size"}) == "winning ticket"
    assert role({"method": "imp"}) == "winning ticket"  # magnitude, init, unstructured
    assert role({"method": "imp", "granularity": "structured"}) is None
    assert role({"method": "imp", "granularity": "nm"}) is None
    assert role({"method": "imp", "score": "snip"}) is None  # data-driven, not |w|
    assert role({"method": "gradual"}) is None  # never rewinds
    assert role({}) is None  # the default method is none
    assert role({"method": "no-such-method", "score": "no-such-score"}) is None
