"""The allocation benchmark's own logic: the seed correlation it calibrates its simulation with,
measured on a hand-made sweep, and what counts as a wrong verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_allocation as bench

from analysis.allocation import Comparison
from analysis.stats import BETTER, EQUAL, UNRESOLVED, WITHIN, WORSE

#: One base, three seeds: dense D, variants U and S at 50% (points: test_acc x 100)
ACC = {"D": (90, 91, 92), "U": (88, 90, 92), "S": (89, 89, 92)}


def _samples() -> pd.DataFrame:
    rows = [
        {"point_id": p, "baseline_key": "b/imp", "base_id": "b", "arch": "cnn", "seed": s}
        | {"test_acc": v / 100, "sparsity": 0.0 if p == "D" else 0.5 + 0.001 * (p == "S")}
        for p, vs in ACC.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_seed_correlation_by_hand() -> None:
    pairs, icc = bench.seed_correlation(_samples())
    # U-D = (-2, -1, 0), S-D = (-1, -2, 0): var 1 each; var D 1, U 4, S 3
    vs_dense = pairs.loc[("cnn", "pruned vs its dense")]
    assert vs_dense["comparisons"] == 2
    assert (vs_dense["ratio"], vs_dense["sd_side"], vs_dense["sd_diff"]) == pytest.approx(
        (2 / 9, 1.5, 1.0)
    )
    peers = pairs.loc[("cnn", "variant vs variant")]  # U-S = (-1, 1, 0): var 1; sides 4 + 3
    assert (peers["comparisons"], peers["ratio"]) == pytest.approx((1, 1 / 7))
    # two-way ANOVA: SS_seed 14 (df 2), SS_res 2 (df 4); var_u = (7 - 0.5) / 3
    r = icc.set_index("arch").loc["cnn"]
    assert (r["F"], r["df_seed"], r["df_res"]) == pytest.approx((14.0, 2, 4))
    assert r["icc"] == pytest.approx((6.5 / 3) / (6.5 / 3 + 0.5))
    assert r["p"] == pytest.approx(sps.f.sf(14.0, 2, 4))


def test_wrong_verdicts_against_the_truth() -> None:
    vs_dense = Comparison("p vs d", "p", "d", -1.0)
    peers = Comparison("a vs b", "a", "b", equivalence=1.0)
    assert [bench.wrong(v, -0.5, vs_dense) for v in (BETTER, WITHIN, WORSE, UNRESOLVED)] == [
        True,
        False,
        True,
        False,
    ]
    assert bench.wrong(WORSE, -1.0, vs_dense) and not bench.wrong(WORSE, -1.01, vs_dense)
    assert [bench.wrong(EQUAL, d, peers) for d in (0.0, -0.99, 1.0, -1.5)] == [
        False,
        False,
        True,
        True,
    ]
    assert bench.wrong(WORSE, 0.0, peers) and not bench.wrong(WORSE, -0.1, peers)
    assert bench.wrong(BETTER, 0.0, peers) and not bench.wrong(BETTER, 0.1, peers)


def test_truth_mix_sets_each_points_category() -> None:
    """``--mix``: all-zero truths put every point exactly on dense, all-far ones 2 to 4 points
    beyond the line either way; the default keeps the thirds drawn without replacement."""
    rng = np.random.default_rng(0)
    zero = bench.make_sweep(0, 1.0, rng, mix=(1.0, 0.0, 0.0))
    far = bench.make_sweep(1, 1.0, rng, mix=(0.0, 0.0, 1.0))
    thirds = bench.make_sweep(2, 1.0, rng)
    dense = 100 * bench.DENSE_ACC
    points = [c for c in zero.comparisons if not c.peers]
    assert {zero.kind[c.key] for c in points} == {"vs dense, zero"}
    assert [zero.true_diff(c) for c in points] == [0.0] * len(points)
    gaps = [abs(far.truth[c.a] - dense + 1.0) for c in far.comparisons if not c.peers]
    assert len(gaps) == 8 and all(2.0 <= g <= 4.0 for g in gaps)
    cats = pd.Series([thirds.kind[c.key] for c in thirds.comparisons if not c.peers])
    assert cats.value_counts().max() <= 3
