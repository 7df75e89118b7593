"""Measured speedups judged by their own paired rounds: exact interval arithmetic on hand-made
numbers, Benjamini-Hochberg, and the verdicts on rounds recorded by the trial's own measurement
code on this machine, unloaded and with both cores kept busy (tests/data/paired_timings_*.json,
written by benchmarks/record_paired_timings.py)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.load import load_experiment
from analysis.measured import (
    BY_RULE,
    CHEAPER,
    COST_TOLERANCE,
    DEARER,
    FLAT,
    MOVES,
    PAIRED_ROUNDS,
    ROUNDS,
    SAME,
    SEED_MEANS,
    WITHIN_NOISE,
    compacted_speedup,
    judge_axis,
)
from analysis.points import P
from analysis.questions import analyse
from analysis.repeats import combine_seeds, run_intervals
from analysis.stats import fdr_bh
from analysis.synthetic import write_experiment
from sparsity_tune import layout
from sparsity_tune.metrics import M
from sparsity_tune.trial.measure import log_ratio_summary

DATA = Path(__file__).resolve().parents[1] / "data"
BIG, SMALL, NULL = "cnn_d3w128_structured_87.5", "cnn_d2w32_structured_50", "null_copy"
SPARSITY = {BIG: 0.875, SMALL: 0.5, NULL: 0.5}
DENSE_OF = {M.infer_ms_b1: M.infer_ms_dense_b1, M.infer_ms_b256: M.infer_ms_dense_b256}

# ------------------------------------------------------------------ exact arithmetic


def test_a_runs_interval_is_the_t_interval_of_its_rounds() -> None:
    r = run_intervals(np.array([0.5, -0.2]), np.array([0.1, 0.05]), np.array([9.0, 4.0]))
    t9, t4 = stats.t.ppf(0.975, 9), stats.t.ppf(0.975, 4)
    assert r["lo"] == pytest.approx([0.5 - t9 * 0.1, -0.2 - t4 * 0.05])
    assert r["hi"] == pytest.approx([0.5 + t9 * 0.1, -0.2 + t4 * 0.05])
    assert r["p_up"] == pytest.approx([stats.t.sf(5.0, 9), stats.t.sf(-4.0, 4)])
    assert r["p_down"] == pytest.approx([stats.t.cdf(5.0, 9), stats.t.cdf(-4.0, 4)])
    assert r["tested"].tolist() == [True, True]


def test_a_run_that_ships_dense_is_not_tested_and_exact_rounds_are_certain() -> None:
    r = run_intervals(np.array([0.0, 0.3, np.nan]), np.array([0.0, 0.0, 0.1]), np.array([0, 9, 9]))
    assert (r["lo"][0], r["hi"][0], r["p_up"][0], r["p_down"][0]) == (0.0, 0.0, 1.0, 1.0)
    assert (r["lo"][1], r["hi"][1], r["p_up"][1], r["p_down"][1]) == (0.3, 0.3, 0.0, 1.0)
    assert np.isnan(r["lo"][2]) and r["tested"].tolist() == [False, True, False]


def test_seeds_that_agree_within_their_rounds_have_no_between_seed_variance() -> None:
    # y = 0 and 1, se 1 each: Q = 0.5 < k - 1 = 1, so tau² = 0; mu = 0.5, se(mu) = sqrt(1/2)
    c = combine_seeds([0.0, 1.0], [1.0, 1.0], [9.0, 9.0], ["a", "a"]).loc["a"]
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5)
    assert c["tau2"] == 0.0 and c["k"] == 2
    assert (c["mu"], c["lo"], c["hi"]) == pytest.approx((0.5, 0.5 - half, 0.5 + half))


def test_dersimonian_laird_between_seed_variance_by_hand() -> None:
    # y = 0, 2, 4 with se 0.5 (v 0.25, w 4): ybar 2, Q = 4 (4 + 0 + 4) = 32, C = 12 - 48/12 = 8,
    # tau² = (32 - 2) / 8 = 3.75; weights 1 / (0.25 + 3.75) = 0.25; se(mu) = sqrt(1 / 0.75)
    c = combine_seeds([0.0, 2.0, 4.0], [0.5] * 3, [9.0] * 3, ["p"] * 3).loc["p"]
    half = stats.t.ppf(0.975, 2) * math.sqrt(1 / 0.75)
    assert c["tau2"] == pytest.approx(3.75)
    assert (c["mu"], c["lo"], c["hi"]) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert (c["se"], c["df"]) == pytest.approx((math.sqrt(1 / 0.75), 2.0))  # what it is made of
    t9 = stats.t.ppf(0.975, 9)
    assert (c["seeds_lo"], c["seeds_hi"]) == pytest.approx((-0.5 * t9, 4 + 0.5 * t9))


def test_every_seed_p_value_is_the_largest_seed_p_value_doubled() -> None:
    c = combine_seeds([0.3, 1.0, 0.5], [0.1, 0.1, 0.1], [9.0, 9.0, 4.0], ["p"] * 3).loc["p"]
    assert c["p_value"] == pytest.approx(
        2 * max(stats.t.sf(3, 9), stats.t.sf(10, 9), stats.t.sf(5, 4))
    )
    assert c["sign"] == 1 and c["tested"] == 3
    down = combine_seeds([-0.3, -1.0], [0.1, 0.1], [9.0, 9.0], ["p"] * 2).loc["p"]
    assert down["sign"] == -1 and down["p_value"] == pytest.approx(2 * stats.t.sf(3, 9))
    split = combine_seeds([2.0, -2.0], [0.1, 0.1], [9.0, 9.0], ["p"] * 2).loc["p"]
    assert split["p_value"] == 1.0  # faster in one seed, slower in the other: nothing called


def test_one_seed_is_its_own_interval_and_dense_seeds_block_the_claim() -> None:
    one = combine_seeds([0.7], [0.1], [9.0], ["p"]).loc["p"]
    t9 = stats.t.ppf(0.975, 9)
    assert (one["lo"], one["hi"]) == pytest.approx((0.7 - 0.1 * t9, 0.7 + 0.1 * t9))
    assert (one["se"], one["df"]) == pytest.approx((0.1, 9.0))  # one seed: its run's own
    mixed = combine_seeds([1.0, 0.0], [0.01, 0.0], [9.0, 0.0], ["p", "p"]).loc["p"]
    assert mixed["p_value"] == 1.0 and mixed["tested"] == 1
    dense = combine_seeds([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], ["p", "p"]).loc["p"]
    assert np.isnan(dense["p_value"]) and (dense["mu"], dense["lo"], dense["hi"]) == (0, 0, 0)
    assert dense["se"] == 0.0
    lone = combine_seeds([0.0], [0.0], [0.0], ["p"]).loc["p"]  # one run that shipped dense
    assert (lone["lo"], lone["hi"], lone["se"], lone["df"]) == (0.0, 0.0, 0.0, math.inf)


def _simulated(
    effects: tuple[float, ...], n: int, seed: int = 1, stalls: float = 0.1
) -> pd.DataFrame:
    """``n`` points whose seeds have true log-speedups ``effects``, each seed 10 rounds with
    noise sd 0.3 and stalls (a share ``stalls`` of rounds off by ±3, either side: a 20x stall),
    summarised as a run does."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for eff in effects:
            noise = rng.normal(0, 0.3, 10)
            stall = rng.uniform(size=10) < stalls
            noise[stall] += rng.choice([-3.0, 3.0], int(stall.sum()))
            rows.append((i, *log_ratio_summary(np.exp(eff + noise).tolist(), [1.0] * 10)))
    d = pd.DataFrame(rows, columns=["g", "est", "se", "df"])
    return combine_seeds(d["est"], d["se"], d["df"], d["g"])


def test_the_every_seed_test_holds_its_level_when_one_seed_has_no_gain() -> None:
    """Two seeds 2.7x faster, one not faster at all, with stalls in the rounds: "faster in
    every seed" is false, and is called at most at the one-sided 2.5% of a two-sided 5% test.
    With all three seeds faster it is called always without stalls, and still in most points
    when a tenth of the rounds stall 20x (10 rounds trim only one at each end)."""
    partial = _simulated((0.0, 1.0, 1.0), 2000)
    assert ((partial["p_value"] < 0.05) & (partial["sign"] > 0)).mean() <= 0.03
    calm = _simulated((1.0, 1.0, 1.0), 300, seed=2, stalls=0.0)
    assert ((calm["p_value"] < 0.05) & (calm["sign"] > 0)).mean() == 1.0
    stalled = _simulated((1.0, 1.0, 1.0), 500, seed=3)
    assert ((stalled["p_value"] < 0.05) & (stalled["sign"] > 0)).mean() >= 0.7


def test_benjamini_hochberg_by_hand_and_as_scipy_has_it() -> None:
    p = np.array([0.01, 0.02, 0.03, 0.5, np.nan])
    # ranks 1..4 of m = 4: 0.04, 0.04, 0.04, 0.5 (monotone from the top)
    assert fdr_bh(p)[:4] == pytest.approx([0.04, 0.04, 0.04, 0.5]) and np.isnan(fdr_bh(p)[4])
    rng = np.random.default_rng(0)
    q = rng.uniform(size=40) ** 3
    assert fdr_bh(q) == pytest.approx(stats.false_discovery_control(q))
    assert np.isnan(fdr_bh(np.array([np.nan]))).all()


# ------------------------------------------------------------------ recorded rounds


def _recorded(machine: str) -> dict:
    return json.loads((DATA / f"paired_timings_{machine}.json").read_text())


def _table(machine: str, x: str, rounds: bool = True, ships_dense: int = 13) -> pd.DataFrame:
    """Per-seed rows as the report reads them: the recorded cases (each run's medians, and its
    rounds' summary when ``rounds``), plus ``ships_dense`` points whose runs shipped the dense
    model (1.0 by rule), so the axis has the 16 points the demo compares at batch 256."""
    b = "b256" if x == M.infer_ms_b256 else "b1"
    cols = ROUNDS[x]
    rows = []
    for case, seeds in _recorded(machine)["cases"].items():
        for r in seeds:
            dense, ship = r[b]["dense"], r[b]["ship"]
            row = {
                P.point_id: case,
                P.baseline_key: "cnn",
                "seed": r["seed"],
                M.sparsity: SPARSITY[case],
                x: statistics.median(ship),
                DENSE_OF[x]: statistics.median(dense),
            }
            if rounds:
                row |= dict(zip(cols, log_ratio_summary(dense, ship), strict=True))
            rows.append(row)
    for i in range(ships_dense):
        for seed in range(3):
            row = {P.point_id: f"dense{i}", P.baseline_key: "cnn", "seed": seed, M.sparsity: 0.9}
            row |= {x: 10.0, DENSE_OF[x]: 10.0}
            rows.append(row | (dict(zip(cols, (0.0, 0.0, 0.0), strict=True)) if rounds else {}))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("machine", ["quiet", "loaded"])
def test_the_recordings_are_what_the_cases_say(machine) -> None:
    """The fixtures hold a large gain in every seed, and a small model and a self-copy whose
    rounds straddle 1.0 in some seed: the cases the verdicts below are about."""
    rec = _recorded(machine)["cases"]
    for r in rec[BIG]:
        assert r["summary"][M.infer_speedup_b256] > 2.5 and len(r["b256"]["ship"]) >= 10
    for case in (SMALL, NULL):
        logs = [
            math.log(d / s)
            for r in rec[case]
            for d, s in zip(r["b256"]["dense"], r["b256"]["ship"], strict=True)
        ]
        assert min(logs) < 0 < max(logs)


@pytest.mark.parametrize("machine", ["quiet", "loaded"])
def test_a_gain_above_2_5x_in_every_seed_is_called_faster_and_straddling_ones_are_not(machine):
    ax = judge_axis(_table(machine, M.infer_ms_b256), M.infer_ms_b256)
    t = ax.table
    assert ax.state == MOVES and ax.k == 16
    assert t.loc[BIG, "verdict"] == CHEAPER and t.loc[BIG, "test"] == PAIRED_ROUNDS
    assert t.loc[BIG, "ratio"] > 2.5 and t.loc[BIG, "ratio_ci95_lo"] > 1
    assert t.loc[BIG, "p_adjusted"] < 0.05 and t.loc[BIG, "ratio_seeds_lo"] > 1
    for case in (SMALL, NULL):
        assert t.loc[case, "verdict"] in (WITHIN_NOISE, SAME)
        assert t.loc[case, "ratio_seeds_lo"] < 1 < t.loc[case, "ratio_seeds_hi"]
    assert set(t.loc[[f"dense{i}" for i in range(13)], "test"]) == {BY_RULE}
    # a model that ships dense costs exactly what dense costs: the same, resolved
    assert (t.loc["dense0", "ratio"], t.loc["dense0", "verdict"]) == (1.0, SAME)


@pytest.mark.parametrize("machine", ["quiet", "loaded"])
def test_without_rounds_the_same_runs_get_todays_test_and_say_so(machine) -> None:
    """An experiment recorded before the rounds were kept: Welch over the runs' ratios of
    medians, Bonferroni over the 16 points: the large gain is read as flat (the issue's case),
    and the table says which test it was."""
    ax = judge_axis(_table(machine, M.infer_ms_b256, rounds=False), M.infer_ms_b256)
    assert ax.state == FLAT and set(ax.table["test"]) == {SEED_MEANS}
    big = ax.table.loc[BIG]
    assert big["verdict"] == WITHIN_NOISE and big["ratio_family_lo"] < 1 < big["ratio_ci95_lo"]
    assert big["p_adjusted"] == pytest.approx(min(1.0, 16 * big["p_value"]))


def test_the_self_copy_is_never_faster_at_either_batch_size_on_either_machine() -> None:
    """A model timed against its own copy is never faster or slower; it is "the same" exactly
    when its 90% interval (the two one-sided tests at 5%: the 95% one with t_0.95(k - 1) for
    t_0.975(k - 1), k seeds) lies within 10% of 1 either way, else within the noise."""
    band = np.log([1 / (1 + COST_TOLERANCE), 1 + COST_TOLERANCE])
    for machine in ("quiet", "loaded"):
        for x in (M.infer_ms_b1, M.infer_ms_b256):
            r = judge_axis(_table(machine, x), x).table.loc[NULL]
            assert r["verdict"] not in (CHEAPER, DEARER)
            k = int(r["n"])
            assert k > 1
            lo, hi = np.log(r["ratio_ci95_lo"]), np.log(r["ratio_ci95_hi"])
            half = (hi - lo) / 2 * stats.t.ppf(0.95, k - 1) / stats.t.ppf(0.975, k - 1)
            mid = np.log(r["ratio"])
            inside = band[0] < mid - half and mid + half < band[1]
            assert r["verdict"] == (SAME if inside else WITHIN_NOISE), (machine, x)


def test_rounds_of_only_some_seeds_fall_back_to_todays_test() -> None:
    s = _table("quiet", M.infer_ms_b256)
    s.loc[(s[P.point_id] == BIG) & (s["seed"] == 1), M.infer_log_speedup_b256] = np.nan
    t = judge_axis(s, M.infer_ms_b256).table
    assert t.loc[BIG, "test"] == SEED_MEANS and t.loc[SMALL, "test"] == PAIRED_ROUNDS


def test_compacted_training_steps_use_their_rounds_where_kept() -> None:
    base = {M.deploy_format: "compact", P.baseline_key: "b", M.sparsity: 0.9}
    rows = [
        base
        | {P.point_id: "c", "seed": s, M.train_time_speedup: v}
        | {M.train_log_speedup: math.log(v), M.train_log_speedup_se: 0.02}
        | {M.train_log_speedup_df: 15.0}
        for s, v in enumerate([2.0, 2.5, 3.0])
    ]
    rows += [
        base | {P.point_id: "old", "seed": s, M.train_time_speedup: v}
        for s, v in enumerate([2.0, 2.2, 1.8])
    ]
    t = compacted_speedup(pd.DataFrame(rows))
    assert t.loc["c", "test"] == PAIRED_ROUNDS and t.loc["c", "verdict"] == CHEAPER
    c = combine_seeds(np.log([2.0, 2.5, 3.0]), [0.02] * 3, [15.0] * 3, ["c"] * 3).loc["c"]
    assert t.loc["c", "ratio"] == pytest.approx(math.exp(c["mu"]))
    assert t.loc["c", "ratio_ci95_lo"] == pytest.approx(math.exp(c["lo"]))
    logs = np.log([2.0, 2.2, 1.8])
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert t.loc["old", "test"] == SEED_MEANS and t.loc["old", "verdict"] == CHEAPER
    assert (t.loc["old", "ratio_ci95_lo"], t.loc["old", "ratio_ci95_hi"]) == pytest.approx(
        np.exp(ci)
    )


# ------------------------------------------------------------------ through the report


def _add_rounds(trials: list[Path], se: float) -> None:
    """Give each finished synthetic run the rounds summary its figures imply: its ratio of
    medians as the estimate, ``se`` on 9 degrees of freedom; (0, 0, 0) where it ships dense."""
    for d in trials:
        f = d / layout.SUMMARY
        if not f.exists():
            continue
        s = json.loads(f.read_text())
        for b in ("b1", "b256"):
            est = math.log(s[f"infer_ms_dense_{b}"] / s[f"infer_ms_{b}"])
            dense = s[M.deploy_format] == "dense"
            s[f"infer_log_speedup_{b}"] = 0.0 if dense else est
            s[f"infer_log_speedup_{b}_se"] = 0.0 if dense else se
            s[f"infer_log_speedup_{b}_df"] = 0.0 if dense else 9.0
        f.write_text(json.dumps(s))


GRID = {
    "model.arch": ["cnn"],
    "model.depth": [2],
    "model.width": [32, 128],
    "pruning.final_sparsity": [0.0, 0.75, 0.9],
    "pruning.granularity": ["unstructured", "structured"],
}


def test_the_report_names_the_test_and_old_runs_keep_theirs(tmp_path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write_experiment(old, grid=GRID, seeds=(0, 1, 2))
    _add_rounds(write_experiment(new, grid=GRID, seeds=(0, 1, 2)), se=0.02)
    a_old, a_new = analyse(load_experiment(old)), analyse(load_experiment(new))
    t_old, t_new = a_old.axes[M.infer_ms_b256].table, a_new.axes[M.infer_ms_b256].table
    assert set(t_old["test"]) == {SEED_MEANS}
    assert set(t_new["test"]) == {PAIRED_ROUNDS, BY_RULE}
    structured = a_new.points.set_index(P.point_id)["pruning.granularity"] == "structured"
    ids = structured[structured].index.intersection(t_new.index)
    assert len(ids) == 4 and (t_new.loc[ids, "verdict"] == CHEAPER).all()
    section = next(s for s in a_new.sections if s.key == "tradeoffs")
    largest = section.summary[1].set_index("configuration")
    cell = largest.loc["cnn d2×w128 structured 90%", M.infer_ms_b256]
    assert "faster at batch 256 (in every seed, BH-adjusted p " in cell
    assert "Benjamini-Hochberg" in section.sentences[0]  # how the ratios are read, said once
    assert largest.loc["cnn d2×w128 unstructured 90%", M.infer_ms_b256] == (
        f"1.00x at batch 256 ({BY_RULE})"
    )
    wide = next(s for s in a_new.sections if s.key == "tradeoffs").tables[0][1]
    assert set(wide[f"test: {M.infer_ms_b256}"]) == {PAIRED_ROUNDS, BY_RULE}
    old_wide = next(s for s in a_old.sections if s.key == "tradeoffs").tables[0][1]
    assert set(old_wide[f"test: {M.infer_ms_b256}"]) == {SEED_MEANS}


def test_rounds_that_do_not_resolve_leave_the_axis_flat_and_say_how(tmp_path) -> None:
    """The same runs with rounds too noisy to show their gain (error 5 on the log scale): the
    paired test calls nothing, and the flat sentence names it."""
    _add_rounds(write_experiment(tmp_path, grid=GRID, seeds=(0, 1, 2)), se=5.0)
    a = analyse(load_experiment(tmp_path))
    assert a.axes[M.infer_ms_b256].state == FLAT
    text = next(s for s in a.sections if s.key == "tradeoffs").sentences
    line = next(t for t in text if t.startswith("infer_ms_b256"))
    assert "every seed's paired interleaved rounds, Benjamini-Hochberg over the points;" in line
    assert "runs without rounds" not in line
