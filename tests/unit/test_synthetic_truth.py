"""Synthetic experiments with a known truth: the written final accuracies are the seed draws of
the configuration's set mean, and the report's fixed-seed verdict on them is the allocator's
one-look verdict (one verdict code for the sweep, the report and the benchmark)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.allocation import Comparison, judge
from analysis.load import load_experiment
from analysis.questions import analyse
from analysis.synthetic import seed_acc, trial_files, write_experiment
from sparsity_tune.metrics import M

GRID = {
    "model.arch": ["mlp"],
    "model.depth": [1],
    "model.width": [32],
    "pruning.final_sparsity": [0.0, 0.5, 0.9],
}
TRUTH = {0.0: 0.80, 0.5: 0.795, 0.9: 0.75}  # true differences: -0.5 and -5 points


def test_seed_acc_depends_on_config_and_seed_only() -> None:
    assert seed_acc("a", 0.8, 3) == seed_acc("a", 0.8, 3)
    assert seed_acc("a", 0.8, 3) - seed_acc("a", 0.7, 3) == pytest.approx(0.1)
    assert seed_acc("a", 0.8, 3, sd=0.02) - 0.8 == pytest.approx(2 * (seed_acc("a", 0.8, 3) - 0.8))
    assert len({seed_acc("a", 0.8, s) for s in range(5)} | {seed_acc("b", 0.8, 0)}) == 6


def test_true_acc_sets_the_final_test_acc_and_keeps_the_rest() -> None:
    cfg, records, summary = trial_files("mlp", 1, 32, 0.5, 2, true_acc=0.7)
    plain_cfg, plain, _ = trial_files("mlp", 1, 32, 0.5, 2)
    assert records[-1][M.test_acc] == pytest.approx(seed_acc("mlp_d1_w32_s50", 0.7, 2))
    assert summary[M.final_test_acc] == records[-1][M.test_acc]
    shift = records[-1][M.test_acc] - plain[-1][M.test_acc]
    assert [r[M.val_acc] - p[M.val_acc] for r, p in zip(records, plain, strict=True)] == (
        pytest.approx([shift] * len(plain))
    )
    assert cfg == plain_cfg and records[-1][M.val_loss] == plain[-1][M.val_loss]


def test_imp_truth_sets_the_final_round_only() -> None:
    kw = {"method": "imp", "rounds": 2, "epochs": 3}
    _, records, _ = trial_files("mlp", 1, 32, 0.0, 0, true_acc=0.6, **kw)
    _, plain, _ = trial_files("mlp", 1, 32, 0.0, 0, **kw)
    assert [r[M.test_acc] - p[M.test_acc] for r, p in zip(records[:6], plain[:6], strict=True)] == [
        0.0
    ] * 6
    assert records[-1][M.test_acc] == pytest.approx(
        seed_acc("mlp_d1_w32_imp_magnitude_init_unstructured", 0.6, 0)
    )


def test_report_verdicts_equal_the_allocators_one_look_verdicts(tmp_path) -> None:
    seeds = (0, 1, 2, 3)
    write_experiment(
        tmp_path, grid=GRID, seeds=seeds, truth=lambda p: TRUTH[p["pruning.final_sparsity"]]
    )
    a = analyse(load_experiment(tmp_path, progress=False, jobs=1), tolerance=1.0)
    names = {0.0: "mlp_d1_w32_s00", 0.5: "mlp_d1_w32_s50", 0.9: "mlp_d1_w32_s90"}
    values = {n: [100 * seed_acc(n, TRUTH[s], k) for k in seeds] for s, n in names.items()}
    cs = [Comparison(names[s], names[s], names[0.0], -1.0) for s in (0.5, 0.9)]
    mine = judge(cs, values, (len(seeds),))
    pruned = a.points[a.points[M.sparsity] > 0].sort_values(M.sparsity)
    assert a.scale == 100 and len(pruned) == 2
    for (_, r), c in zip(pruned.iterrows(), cs, strict=True):
        got = mine.loc[c.key]
        assert (r["diff_pts"], r["diff_ci95_lo"], r["diff_ci95_hi"]) == pytest.approx(
            (got["diff"], got["lo"], got["hi"])
        )
        assert r["verdict"] == got["verdict"]
    assert mine["verdict"].iloc[1] == "worse"  # 5 points below dense: resolved at 4 seeds


def test_a_shared_seed_effect_correlates_a_sweeps_configurations() -> None:
    assert seed_acc("a", 0.8, 3, 0.01, 0.0, "s") == seed_acc("a", 0.8, 3)  # 0: today's draws
    seeds = range(4000)
    a = np.array([seed_acc("a", 0.8, k, 1.0, 0.3, "s") for k in seeds])
    b = np.array([seed_acc("b", 0.7, k, 1.0, 0.3, "s") for k in seeds])
    other = np.array([seed_acc("b", 0.7, k, 1.0, 0.3, "t") for k in seeds])
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.3, abs=0.04)
    assert abs(np.corrcoef(a, other)[0, 1]) < 0.04  # another sweep: its own seed effects
    assert a.std() == pytest.approx(1.0, abs=0.04) and a.mean() == pytest.approx(0.8, abs=0.04)
    # exactly: sqrt(0.3) * common + sqrt(0.7) * own, the own part the unshared draw's
    own = seed_acc("a", 0.0, 5, 1.0)
    common = (seed_acc("a", 0.0, 5, 1.0, 0.3, "s") - np.sqrt(0.7) * own) / np.sqrt(0.3)
    assert seed_acc("b", 0.0, 5, 1.0, 0.3, "s") == pytest.approx(
        np.sqrt(0.3) * common + np.sqrt(0.7) * seed_acc("b", 0.0, 5, 1.0)
    )
    with pytest.raises(ValueError, match=r"shared: .* in \[0, 1\), got 1.0"):
        seed_acc("a", 0.8, 3, shared=1.0)


def test_seed_corr_reaches_the_written_trials() -> None:
    _, records, _ = trial_files("mlp", 1, 32, 0.5, 2, true_acc=0.7, seed_corr=0.5)
    drawn = seed_acc("mlp_d1_w32_s50", 0.7, 2, shared=0.5, sweep="synthetic")
    assert records[-1][M.test_acc] == pytest.approx(drawn)
    assert drawn != pytest.approx(seed_acc("mlp_d1_w32_s50", 0.7, 2))
