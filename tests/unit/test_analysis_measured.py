"""Cost axes against dense and the seed noise: the flat rule on hand-built points, the paired
in-run inference ratio, granularity groups in the fronts, deploy figures only on an IMP run's
last round, and section 4's granularity sentences on synthetic sweeps."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.charts import front_chart
from analysis.load import load_experiment
from analysis.measured import (
    CHEAPER,
    COST_TOLERANCE,
    DEARER,
    FLAT,
    MOVES,
    NO_INTERVAL,
    SAME,
    SEED_MEANS,
    SEED_PAIRS,
    UNJUDGED,
    WITHIN_NOISE,
    compacted_speedup,
    granularity,
    judge_axis,
    measured_table,
)
from analysis.points import P
from analysis.questions import analyse
from analysis.sections.tradeoffs import COMPACTED
from analysis.synthetic import write_experiment
from analysis.tables import add_config_ids
from sparsity_tune.metrics import M


def samples(
    points: dict[str, tuple[float, list[float]]],
    x: str = M.train_time_s,
    same_seeds: bool = False,
    **extra,
):
    """A per-seed table: ``{point_id: (sparsity, [value per seed])}``, one shared dense
    baseline (the points at sparsity 0); ``extra`` columns as ``{col: {point_id: [values]}}``.
    The pruned points run other seeds than the dense one (unpaired), unless ``same_seeds``."""
    rows = []
    for pid, (sp, values) in points.items():
        for i, v in enumerate(values):
            seed = i if same_seeds or sp == 0.0 else 100 + i
            row = {P.point_id: pid, P.baseline_key: "base", "seed": seed, M.sparsity: sp, x: v}
            for col, by in extra.items():
                row[col] = by[pid][i]
            rows.append(row)
    return pd.DataFrame(rows)


DENSE_T = [1.00, 1.10, 0.90]


def test_flat_axis_when_no_point_leaves_the_seed_noise() -> None:
    s = samples({"d": (0.0, DENSE_T), "a": (0.5, [1.05, 0.95, 1.00]), "b": (0.9, [0.9, 1.1, 1.0])})
    ax = judge_axis(s, M.train_time_s)
    assert ax.state == FLAT and ax.k == 2
    assert set(ax.table["verdict"]) == {WITHIN_NOISE}
    # the ratio is dense / pruned of the seed geometric means, its interval Welch's on the logs
    a = ax.table.loc["a"]
    logs_d, logs_a = np.log(DENSE_T), np.log([1.05, 0.95, 1.00])
    assert a["ratio"] == pytest.approx(np.exp(logs_d.mean() - logs_a.mean()))
    ci = stats.ttest_ind(logs_d, logs_a, equal_var=False).confidence_interval(0.95)
    assert (a["ratio_ci95_lo"], a["ratio_ci95_hi"]) == pytest.approx(np.exp(ci))
    fam = stats.ttest_ind(logs_d, logs_a, equal_var=False).confidence_interval(1 - 0.05 / 2)
    assert (a["ratio_family_lo"], a["ratio_family_hi"]) == pytest.approx(np.exp(fam))


def test_seed_matched_runs_are_paired_and_the_same_cost_is_resolved() -> None:
    """The same seeds on both sides (an IMP round and its own round 0): the paired t interval
    of the per-seed log ratios. A load that slows a seed's runs on both sides cancels, so a
    point that costs what dense costs is resolved as the same (its interval inside 1 +- 10%),
    and one 30% slower in every seed as dearer; unpaired, both stay within the seed noise."""
    dense = [1.0, 1.5, 2.0]  # seconds per epoch, at three machine loads
    pts = {"d": (0.0, dense), "same": (0.5, [1.01, 1.49, 2.02]), "slow": (0.9, [1.3, 1.96, 2.6])}
    ax = judge_axis(samples(pts, same_seeds=True), M.train_time_s)
    same, slow = ax.table.loc["same"], ax.table.loc["slow"]
    own = np.log(dense) - np.log([1.01, 1.49, 2.02])
    ci = stats.ttest_1samp(own, 0.0).confidence_interval(0.95)
    assert (same["ratio_ci95_lo"], same["ratio_ci95_hi"]) == pytest.approx(np.exp(ci))
    assert 1 / (1 + COST_TOLERANCE) < same["ratio_ci95_lo"] < same["ratio_ci95_hi"] < 1.1
    assert same["verdict"] == SAME and same["test"] == SEED_PAIRS
    assert slow["verdict"] == DEARER and ax.state == MOVES
    apart = judge_axis(samples(pts), M.train_time_s)
    assert set(apart.table["verdict"]) == {WITHIN_NOISE} and apart.state == FLAT
    assert set(apart.table["test"]) == {SEED_MEANS}


def test_an_axis_moves_when_a_point_leaves_the_noise_at_the_family_level() -> None:
    s = samples(
        {"d": (0.0, DENSE_T), "fast": (0.9, [0.50, 0.52, 0.48]), "same": (0.5, [1.0, 1.1, 0.95])}
    )
    ax = judge_axis(s, M.train_time_s)
    assert ax.state == MOVES
    assert ax.table.loc["fast", "verdict"] == CHEAPER
    assert ax.table.loc["fast", "ratio"] == pytest.approx(2.0, rel=0.02)
    assert ax.table.loc["same", "verdict"] == WITHIN_NOISE
    slow = judge_axis(samples({"d": (0.0, DENSE_T), "s": (0.9, [2.0, 2.1, 1.9])}), M.train_time_s)
    assert slow.state == MOVES and slow.table.loc["s", "verdict"] == DEARER


def test_one_point_resolved_alone_among_many_is_not_enough() -> None:
    """At 95% one point of twenty looks faster; Bonferroni over the twenty says flat, and the
    point is then not read alone (protected comparisons)."""
    pts = {"d": (0.0, DENSE_T)}
    for i in range(19):
        pts[f"p{i}"] = (0.5, list(DENSE_T))
    pts["lucky"] = (0.5, [0.60, 0.62, 0.58])
    logs_d, logs_l = np.log(DENSE_T), np.log([0.60, 0.62, 0.58])
    alone = stats.ttest_ind(logs_d, logs_l, equal_var=False).confidence_interval(0.95)
    family = stats.ttest_ind(logs_d, logs_l, equal_var=False).confidence_interval(1 - 0.05 / 20)
    assert alone.low > 0 > family.low  # the case is what the test says it is
    ax = judge_axis(samples(pts), M.train_time_s)
    assert ax.k == 20 and ax.state == FLAT
    assert ax.table.loc["lucky", "verdict"] == WITHIN_NOISE


def test_unjudged_without_seed_spread_or_dense_baseline() -> None:
    one_seed = samples({"d": (0.0, [1.0]), "a": (0.9, [0.5])})
    ax = judge_axis(one_seed, M.train_time_s)
    assert ax.state == UNJUDGED and ax.table.loc["a", "verdict"] == NO_INTERVAL
    no_dense = samples({"a": (0.9, [0.5, 0.6])})
    assert judge_axis(no_dense, M.train_time_s).state == UNJUDGED
    assert judge_axis(no_dense, M.train_time_s).table.empty


def test_equal_noise_free_values_are_within_noise_and_different_ones_resolved() -> None:
    same = samples({"d": (0.0, [400.0] * 3), "u": (0.9, [400.0] * 3)}, x=M.sparse_bytes)
    assert judge_axis(same, M.sparse_bytes).state == FLAT
    smaller = samples({"d": (0.0, [400.0] * 3), "s": (0.9, [100.0] * 3)}, x=M.sparse_bytes)
    ax = judge_axis(smaller, M.sparse_bytes)
    assert ax.state == MOVES and ax.table.loc["s", "ratio"] == pytest.approx(4.0)


def test_shipped_bytes_are_paired_with_the_dense_model_saved_in_the_same_run() -> None:
    """No dense point needed: each run saved its dense model beside the one it ships."""
    s = samples(
        {"s": (0.9, [100.0, 120.0, 110.0]), "u": (0.9, [400.0] * 3)},
        x=M.deploy_bytes,
        **{M.deploy_bytes_dense: {"s": [400.0, 480.0, 440.0], "u": [400.0] * 3}},
    )
    ax = judge_axis(s, M.deploy_bytes)
    assert ax.state == MOVES and ax.k == 2
    assert ax.table.loc["s", "ratio"] == pytest.approx(4.0)
    assert ax.table.loc["s", "verdict"] == CHEAPER and ax.table.loc["u", "ratio"] == 1.0


def test_inference_is_paired_with_the_dense_model_timed_in_the_same_run() -> None:
    """Load moves both timings of a run together: the per-run ratio is steady (2x) although the
    milliseconds vary 3x between runs, so the paired interval resolves it."""
    dense_ms = [10.0, 20.0, 30.0]
    s = samples(
        {"a": (0.9, [5.0, 10.1, 14.9])},
        x=M.infer_ms_b256,
        **{M.infer_ms_dense_b256: {"a": dense_ms}},
    )
    ax = judge_axis(s, M.infer_ms_b256)
    r = ax.table.loc["a"]
    own = np.log(dense_ms) - np.log([5.0, 10.1, 14.9])
    ci = stats.ttest_1samp(own, 0.0).confidence_interval(0.95)
    assert r["ratio"] == pytest.approx(np.exp(own.mean()))
    assert (r["ratio_ci95_lo"], r["ratio_ci95_hi"]) == pytest.approx(np.exp(ci))
    assert r["dense_n"] == 3 and r["verdict"] == CHEAPER and ax.state == MOVES
    # unpaired, the same milliseconds against a dense baseline of the same spread: not resolved
    unpaired = samples({"d": (0.0, dense_ms), "a": (0.9, [5.0, 10.1, 14.9])})
    assert judge_axis(unpaired, M.train_time_s).state == FLAT


def test_in_run_training_speedup_only_of_compacted_runs() -> None:
    s = samples(
        {"c": (0.9, [2.0, 2.2, 1.8]), "u": (0.9, [1.0, 1.0, 1.0])},
        x=M.train_time_speedup,
        **{M.deploy_format: {"c": ["compact"] * 3, "u": ["dense", "csr", "dense"]}},
    )
    t = compacted_speedup(s)
    assert list(t.index) == ["c"]  # a run never compacted has no such measurement (1.0 by rule)
    logs = np.log([2.0, 2.2, 1.8])
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert t.loc["c", "ratio"] == pytest.approx(np.exp(logs.mean()))
    assert (t.loc["c", "ratio_ci95_lo"], t.loc["c", "ratio_ci95_hi"]) == pytest.approx(np.exp(ci))


def test_granularity_groups_dense_points_apart() -> None:
    pts = pd.DataFrame(
        {
            M.sparsity: [0.0, 0.5, 0.9, 0.5, np.nan],
            "pruning.granularity": ["structured", "nm", "structured", None, "unstructured"],
        }
    )
    assert granularity(pts).tolist() == [
        "dense",
        "nm",
        "structured",
        "unstructured",
        "unstructured",
    ]
    assert granularity(pts.drop(columns="pruning.granularity")).tolist()[1] == "unstructured"


def test_front_points_are_coloured_and_marked_by_granularity_and_flat_axes_get_no_front() -> None:
    c = pd.DataFrame(
        {
            "label": ["d", "u", "s"],
            "granularity": ["dense", "unstructured", "structured"],
            M.train_time_s: [1.0, 1.0, 0.4],
            M.test_acc: [0.9, 0.85, 0.8],
        }
    )
    front = c.loc[[0, 2]]
    chart = front_chart(c, front, M.train_time_s, M.test_acc, "granularity")
    series = {s.name: s for s in chart.panels[0].series}
    assert {"unstructured", "Pareto front", "dense (front)", "structured (front)"} == set(series)
    assert series["dense (front)"].marker == "square"
    # styles follow the registry's order of granularities: unstructured, nm, structured
    assert series["unstructured"].marker == "circle"
    assert series["structured (front)"].marker == "triangle-up"
    assert series["structured (front)"].color != series["unstructured"].color
    flat = front_chart(c, front, M.train_time_s, M.test_acc, "granularity", draw_front=False)
    names = [s.name for s in flat.panels[0].series]
    assert "Pareto front" not in names and sorted(names) == ["dense", "structured", "unstructured"]
    assert "no front" in flat.title


GRAN = {
    "model.arch": ["mlp", "cnn"],
    "model.depth": [2],
    "model.width": [32, 128],
    "pruning.final_sparsity": [0.0, 0.75, 0.9],
    "pruning.granularity": ["unstructured", "structured"],
}


@pytest.fixture(scope="module")
def gran(tmp_path_factory):
    root = tmp_path_factory.mktemp("gran")
    write_experiment(root, grid=GRAN, seeds=(0, 1, 2))
    return analyse(load_experiment(root))


def _tradeoffs(a) -> list[str]:
    return next(s for s in a.sections if s.key == "tradeoffs").sentences


def _largest(a) -> pd.DataFrame:
    """Section 4's compact table (the largest models' pruned points), by configuration."""
    return next(s for s in a.sections if s.key == "tradeoffs").summary[1].set_index("configuration")


def test_section_four_compares_granularities_on_measured_axes(gran) -> None:
    text = _tradeoffs(gran)
    # the dense runs of both granularities never pruned: one configuration, counted once
    dense = gran.points[gran.points[M.sparsity] == 0]
    assert len(dense) == 4 and (dense["n_seeds"] == 3).all()
    assert set(dense["label"]) == {
        f"arch={a} width={w} · dense" for a in GRAN["model.arch"] for w in (32, 128)
    }
    assert "Counted costs" in text[0] and "nonzero_params, sparse_bytes" in text[0]
    assert "infer_ms_b1, infer_ms_b256, deploy_bytes" in text[0]
    by_x = {t.split(" (")[0]: t for t in text[1:9]}
    assert by_x["nonzero_params"].startswith("nonzero_params (counted): ")
    assert by_x["infer_ms_b256"].startswith("infer_ms_b256 (measured): ")
    assert "structured cheaper at 8 and dearer at 0 of 8 points" in by_x["infer_ms_b256"]
    # the compact table: one row per pruned point of each architecture's largest model
    largest = _largest(gran)
    assert {c.split(" ")[1] for c in largest.index if c.startswith("cnn ")} == {"d2×w128"}
    row = largest.loc["cnn d2×w128 structured 90%"]
    # structured 90% on the wide CNN: the synthetic model's 1 + 9 x 128/192 = 7x, measured noise
    assert 6.0 < float(row[M.infer_ms_b256].split("x faster at batch 256")[0]) < 8.0
    assert "95% CI [" in row[M.infer_ms_b256]
    assert re.fullmatch(r"-\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", row["difference (95% CI)"])
    assert row[COMPACTED].startswith("training steps ")
    assert "faster once compacted (measured in the run" in row[COMPACTED]
    # the unstructured CNN ships dense: exactly 1.00x, said as the same cost as dense
    row = largest.loc["cnn d2×w128 unstructured 90%"]
    assert row[M.infer_ms_b256] == (
        "1.00x at batch 256 (same within tolerance: within 10% of dense by two one-sided tests "
        "at 5%, 95% CI [1.00x, 1.00x])"
    )
    grows = next(t for t in text if t.startswith("structured, infer_ms_b256 against dense"))
    small, wide = (
        float(grows.split("; mlp")[0].split(f"d2×w{w} (90%) ")[1].split("x")[0]) for w in (32, 128)
    )
    assert wide > small > 1  # gains grow with width
    keys = {c.key for s in gran.sections for c in s.charts}
    assert {"measured_vs_sparsity", "front_infer_ms_b256", "front_deploy_bytes"} <= keys


def test_section_four_says_flat_and_draws_no_front_from_noise(tmp_path) -> None:
    """Unstructured only: masked training runs at dense shapes, so train_time_s differs from
    dense by noise alone."""
    grid = {**GRAN, "model.arch": ["mlp"], "pruning.granularity": ["unstructured"]}
    write_experiment(tmp_path, grid=grid, seeds=(0, 1, 2))
    a = analyse(load_experiment(tmp_path))
    assert a.axes[M.train_time_s].state == FLAT
    line = next(t for t in _tradeoffs(a) if t.startswith("train_time_s"))
    assert line.startswith("train_time_s (measured): flat: within seed noise: no pruned point")
    assert "so no front is drawn from it" in line
    chart = next(c for s in a.sections for c in s.charts if c.key == "front_train_time_s")
    assert "Pareto front" not in [s.name for s in chart.panels[0].series]
    assert a.axes[M.nonzero_params].state == MOVES  # counted: noise-free, it moves
    table = measured_table(a.points, a.axes)
    assert set(table.loc[table["axis"] == M.train_time_s, "axis_state"]) == {FLAT}
    assert set(table["kind"]) == {"counted", "measured"}


def test_deploy_figures_are_never_attached_to_earlier_imp_rounds(tmp_path) -> None:
    grid = {
        "model.arch": ["cnn"],
        "model.depth": [2],
        "model.width": [128],
        "pruning.final_sparsity": [0.0],
        "pruning.method": ["imp"],
        "pruning.granularity": ["unstructured", "structured"],
    }
    write_experiment(tmp_path, grid=grid, seeds=(0, 1, 2), rounds=3)
    a = analyse(load_experiment(tmp_path))
    pts = a.points.set_index(P.point_id)
    last = pts[P.round] == 3
    for m in (M.infer_ms_b256, M.infer_ms_dense_b256, M.deploy_bytes, M.train_time_speedup):
        assert pts.loc[last, m].notna().all() and pts.loc[~last, m].isna().all(), m
    for x in (M.infer_ms_b1, M.infer_ms_b256):
        compared = pts.loc[a.axes[x].table.index]
        assert len(compared) == 2 and (compared[P.round] == 3).all(), x  # final networks only
        assert (a.fronts[x].table[P.round] == 3).all(), x
    # round 0 ships nothing: the final rounds' bytes are read against the dense model each run
    # saved (deploy_bytes_dense), never against a figure borrowed from another round
    compared = pts.loc[a.axes[M.deploy_bytes].table.index]
    assert len(compared) == 2 and (compared[P.round] == 3).all()
    assert a.axes[M.deploy_bytes].state == MOVES  # structured ships a compacted, smaller model
    # train_time_s is a record: every round has its own, compared with round 0
    assert len(a.axes[M.train_time_s].table) == 6
    largest = _largest(a)
    for k in (1, 2):  # earlier rounds: training time and accuracy, no deploy figure
        rows = largest[largest.index.str.endswith(f"(IMP round {k})")]
        assert len(rows) == 2  # both granularities
        for x in (M.infer_ms_b256, M.infer_ms_b1, M.deploy_bytes, COMPACTED):
            assert (rows[x] == "").all(), (k, x)
        assert rows[M.train_time_s].str.contains("training epochs").all()
        assert rows["difference (95% CI)"].str.contains(" [", regex=False).all()
    row = largest.loc["cnn d2×w128 structured 87.5% (IMP round 3)"]
    assert "faster at batch 256" in row[M.infer_ms_b256]
    assert "faster once compacted" in row[COMPACTED]


def test_never_pruned_runs_share_a_configuration_whatever_their_pruning_settings(tmp_path):
    write_experiment(
        tmp_path,
        grid={
            "model.arch": ["mlp"],
            "model.depth": [1],
            "model.width": [32],
            "pruning.final_sparsity": [0.0, 0.5],
            "pruning.granularity": ["unstructured", "structured"],
        },
        seeds=(0, 1),
    )
    t = add_config_ids(load_experiment(tmp_path).trials)
    dense = t[t[M.sparsity] == 0]
    assert dense["config_id"].nunique() == 1 and set(dense["label"]) == {"dense"}
    assert t.loc[t[M.sparsity] > 0, "config_id"].nunique() == 2
    a = analyse(load_experiment(tmp_path))
    assert a.duplicates == 2  # the second granularity's dense runs, seed for seed
    assert "dense runs that differ only in pruning settings" in a.sections[0].sentences[1]


# ------------------------------------------------------------------ "the same": TOST


BAND = (1 / (1 + COST_TOLERANCE), 1 + COST_TOLERANCE)


def test_the_same_cost_is_read_by_the_two_one_sided_tests_on_seed_pairs() -> None:
    """Seed-matched runs whose per-seed log ratios are -s, 0, +s: paired t, 2 degrees of
    freedom. With s = 0.045 the 95% interval (t_0.975(2) = 4.302653) reaches past 1 +- 10%,
    the 90% one (t_0.95(2) = 2.919986) does not: the same by TOST at 5% each side. With
    s = 0.07 the 90% interval reaches past as well: within the seed noise."""
    dense = [1.0, 1.5, 2.0]
    own = {"same": np.array([-0.045, 0.0, 0.045]), "wide": np.array([-0.07, 0.0, 0.07])}
    pts = {"d": (0.0, dense)} | {
        k: (0.5, list(np.array(dense) * np.exp(-v))) for k, v in own.items()
    }
    t = judge_axis(samples(pts, same_seeds=True), M.train_time_s).table
    for k, s in (("same", 0.045), ("wide", 0.07)):
        ci95 = np.exp(stats.ttest_1samp(own[k], 0.0).confidence_interval(0.95))
        assert (t.loc[k, "ratio_ci95_lo"], t.loc[k, "ratio_ci95_hi"]) == pytest.approx(ci95)
        assert ci95[1] == pytest.approx(np.exp(4.302653 * s / np.sqrt(3)))
        assert not BAND[0] < ci95[0] < ci95[1] < BAND[1]  # the old rule: not the same
    assert np.exp(2.919986 * 0.045 / np.sqrt(3)) < BAND[1] < np.exp(2.919986 * 0.07 / np.sqrt(3))
    assert t.loc["same", "verdict"] == SAME and t.loc["same", "test"] == SEED_PAIRS
    assert t.loc["wide", "verdict"] == WITHIN_NOISE


def _rounds_axis(runs: dict[str, list[tuple[float, float, float]]]):
    """An IMP round's epoch-time axis from each run's in-run summary ``(est, se, df)`` against
    its round 0, one run per seed (round 0 rows as the dense baseline)."""
    from analysis.round_times import COLUMNS

    est, se, df = COLUMNS[M.epoch_time_s]
    rows = []
    for pid, seeds in runs.items():
        for seed, (e, s, d) in enumerate(seeds):
            rows.append(
                {P.point_id: pid, P.baseline_key: "b", "seed": seed, M.sparsity: 0.5}
                | {M.epoch_time_s: 1.0, est: e, se: s, df: d}
            )
    for seed in range(max(len(v) for v in runs.values())):
        rows.append(
            {P.point_id: "r0", P.baseline_key: "b", "seed": seed, M.sparsity: 0.0}
            | {M.epoch_time_s: 1.0}
        )
    return judge_axis(pd.DataFrame(rows), M.epoch_time_s).table


def test_the_same_cost_from_runs_rounds_uses_the_combined_se_and_df() -> None:
    """Three seeds with log ratios -d, 0, +d (se 0.01 each): DerSimonian-Laird's tau² is
    d² - 1e-4, so each seed weighs 1 / d² and se(mu) = d / sqrt(3), 2 degrees of freedom.
    d = 0.052: 95% half-width 4.302653 x 0.030022 = 0.1292 (past log 1.1 = 0.0953), 90% half
    2.919986 x 0.030022 = 0.0877 (inside): the same. One seed: its run's own t interval,
    est 0, se 0.04, df 4: 95% half 2.776445 x 0.04 = 0.111 (past), 90% 2.131847 x 0.04 = 0.0853:
    the same; se 0.05: 90% 0.107 (past), within the noise."""
    d = 0.052
    t = _rounds_axis(
        {
            "three": [(-d, 0.01, 14.0), (0.0, 0.01, 14.0), (d, 0.01, 14.0)],
            "one": [(0.0, 0.04, 4.0)],
            "one_wide": [(0.0, 0.05, 4.0)],
        }
    )
    assert t.loc["three", "ratio_ci95_hi"] == pytest.approx(np.exp(4.302653 * d / np.sqrt(3)))
    assert t.loc["one", "ratio_ci95_hi"] == pytest.approx(np.exp(2.776445 * 0.04))
    for k in ("three", "one"):
        assert t.loc[k, "ratio_ci95_hi"] > BAND[1] and t.loc[k, "verdict"] == SAME, k
    assert np.exp(2.131847 * 0.05) > BAND[1] and t.loc["one_wide", "verdict"] == WITHIN_NOISE
