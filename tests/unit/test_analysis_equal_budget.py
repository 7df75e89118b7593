"""Equal-budget comparisons (matched pairs, architectures) are peers: "equal within tolerance"
by Schuirmann's two one-sided tests at 5% each, the 90% Welch interval inside the margin;
hand-computed with scipy's t quantiles."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from analysis.equal_budget import arch_at_budget, matched_pairs
from analysis.stats import EQUAL, UNRESOLVED

# 3 seeds a side, std s: se = s sqrt(2/3), Welch df 4
T95, T975 = sps.t.ppf(0.95, 4), sps.t.ppf(0.975, 4)  # 2.131847, 2.776445


def test_quantiles() -> None:
    assert (round(T95, 6), round(T975, 6)) == (2.131847, 2.776445)


def _configs(dense: float, sparse: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arch": ["mlp", "mlp"],
            "label": ["small dense", "big sparse"],
            "nonzero_params": [1000, 1100],
            "total_params": [1000, 10000],
            "sparsity": [0.0, 0.89],
            "test_acc": [dense, sparse],
            "test_acc_std": [0.01, 0.01],
            "n_seeds": [3, 3],
        }
    )


def test_a_matched_pair_is_equal_when_its_90_interval_is_inside_the_margin() -> None:
    # diff 0.003, se 0.01 sqrt(2/3) = 0.0081650: 90% reach 0.003 + 0.017407 = 0.020407,
    # 95% reach 0.003 + 0.022670 = 0.025670
    se = 0.01 * math.sqrt(2 / 3)
    assert 0.003 + T95 * se == pytest.approx(0.020407, abs=1e-6)
    assert 0.003 + T975 * se == pytest.approx(0.025670, abs=1e-6)
    c = _configs(0.80, 0.803)
    r = matched_pairs(c, "test_acc", tolerance=0.023).iloc[0]
    assert (r["ci95_lo"], r["ci95_hi"]) == pytest.approx((0.003 - T975 * se, 0.003 + T975 * se))
    assert r["ci95_hi"] > 0.023 and r["verdict"] == EQUAL  # the 95% rule: not resolved
    assert matched_pairs(c, "test_acc", tolerance=0.02).iloc[0]["verdict"] == UNRESOLVED


def _points(c_small: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arch": ["cnn", "cnn", "mlp", "mlp"],
            "label": ["c-big", "c-small", "m-big", "m-small"],
            "nonzero_params": [5000.0, 800.0, 9000.0, 1000.0],
            "test_acc": [0.95, c_small, 0.70, 0.60],
            "test_acc_std": [0.01, 0.01, 0.01, 0.01],
            "n_seeds": [3, 3, 3, 3],
        }
    )


def test_two_architectures_are_equal_when_the_90_interval_is_inside_the_margin() -> None:
    # budget 1000: c-small (60.3) against m-small (60.0), +0.3 points, se sqrt(2/3) points:
    # 90% [-1.4407, +2.0407], 95% [-1.9670, +2.5670]; margin 2.3 points: equal by TOST only
    se = math.sqrt(2 / 3)
    r = arch_at_budget(_points(0.603), "test_acc", 100.0, 1.0, tolerance=2.3).iloc[0]
    assert (r["arch_a"], r["diff_pts"]) == ("cnn", pytest.approx(0.3))
    assert (r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx(
        (0.3 - T975 * se, 0.3 + T975 * se)
    )
    assert r["diff_ci95_hi"] > 2.3 > 0.3 + T95 * se and r["verdict"] == EQUAL
    r = arch_at_budget(_points(0.603), "test_acc", 100.0, 1.0, tolerance=2.0).iloc[0]
    assert 0.3 + T95 * se > 2.0 and r["verdict"] == UNRESOLVED
