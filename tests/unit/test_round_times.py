"""An IMP round's epoch times against its own round 0's: Yuen's two-sample summary checked
against scipy, one row per pruned round, and the measured axis judged from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.measured import CHEAPER, IN_RUN_EPOCHS, SAME, judge_axis
from analysis.points import P
from analysis.round_times import COLUMNS, round_time_ratios, yuen
from sparsity_tune.metrics import M


def test_yuen_equals_scipys_trimmed_welch_test() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0.0, 0.1, 23), rng.lognormal(0.1, 0.3, 17)
    est, se, df = yuen(a, b)
    r = stats.ttest_ind(np.log(a), np.log(b), equal_var=False, trim=0.1)
    assert est == pytest.approx(stats.trim_mean(np.log(a), 0.1) - stats.trim_mean(np.log(b), 0.1))
    assert est / se == pytest.approx(r.statistic) and df == pytest.approx(r.df)


def test_yuen_edge_cases() -> None:
    assert all(math.isnan(v) for v in yuen([1.0], [1.0, 2.0]))  # one epoch: no spread
    assert yuen([2.0, 2.0, 2.0], [1.0, 1.0]) == (pytest.approx(math.log(2)), 0.0, math.inf)


def _history(times: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Segmented history: per trial, a list of rounds, each a list of epoch times."""
    rows = []
    for tid, rounds in times.items():
        for seg, ts in enumerate(rounds):
            for t in ts:
                rows.append({"trial_id": tid, "_seg": seg, M.epoch_time_s: t})
    return pd.DataFrame(rows)


def test_one_row_per_pruned_round_of_the_imp_runs_only() -> None:
    h = _history(
        {
            "imp": [[1.0, 1.1, 0.9], [0.5, 0.55, 0.45], [1.0, 1.0, 1.1]],
            "plain": [[1.0, 1.2, 0.8]],
        }
    )
    out = round_time_ratios(h, {"imp"})
    est, se, df = COLUMNS[M.epoch_time_s]
    assert list(out.index) == [("imp", 1), ("imp", 2)]
    assert out.loc[("imp", 1), est] == pytest.approx(
        np.log([1.0, 1.1, 0.9]).mean() - np.log([0.5, 0.55, 0.45]).mean()
    )
    got = yuen([1.0, 1.1, 0.9], [1.0, 1.0, 1.1])
    assert tuple(out.loc[("imp", 2), [est, se, df]]) == pytest.approx(got)
    assert out[list(COLUMNS[M.train_time_s])].isna().all().all()  # not in this history
    assert round_time_ratios(h, set()).empty


def test_a_round_twice_as_fast_in_every_run_is_cheaper_and_an_unchanged_one_the_same() -> None:
    """Three runs at three machine loads: the in-run ratio is steady although the seconds
    differ 2x between runs."""
    rng = np.random.default_rng(1)
    rows = []
    est, se, df = COLUMNS[M.epoch_time_s]
    for seed, load in enumerate((1.0, 1.5, 2.0)):
        base = load * rng.lognormal(0, 0.02, 15)
        for pid, factor in (("half", 0.5), ("same", 1.0)):
            rnd = load * factor * rng.lognormal(0, 0.02, 15)
            e, s, d = yuen(base, rnd)
            rows.append(
                {P.point_id: pid, P.baseline_key: "b", "seed": seed, M.sparsity: 0.5}
                | {M.epoch_time_s: float(np.median(rnd)), est: e, se: s, df: d}
            )
        rows.append(
            {P.point_id: "r0", P.baseline_key: "b", "seed": seed, M.sparsity: 0.0}
            | {M.epoch_time_s: float(np.median(base))}
        )
    t = judge_axis(pd.DataFrame(rows), M.epoch_time_s).table
    assert t.loc["half", "verdict"] == CHEAPER and t.loc["half", "test"] == IN_RUN_EPOCHS
    assert t.loc["half", "ratio"] == pytest.approx(2.0, rel=0.03)
    assert t.loc["same", "verdict"] == SAME
    assert 1 / 1.1 < t.loc["same", "ratio_ci95_lo"] < t.loc["same", "ratio_ci95_hi"] < 1.1
