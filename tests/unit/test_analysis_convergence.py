"""Still improving at the end? The per-segment gains, the point judgement (the plateau rule's
``converged`` first, the gain-against-seed-noise fallback for fixed-epoch runs), and the
"not converged" verdict that replaces better / worse / within in every comparison."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.compare import at_equal_sparsity, versus_dense
from analysis.convergence import (
    GAIN_EPOCHS,
    LAST_GAIN,
    LAST_VALUE,
    MONITORED,
    segment_gains,
    still_improving,
)
from analysis.load import load_experiment
from analysis.points import P, _round0_length, numeric_point_metrics, operating_points
from analysis.stats import BETTER, NOT_CONVERGED, VERDICTS, WORSE
from analysis.synthetic import simple_trial
from analysis.tables import add_config_ids, aggregate_seeds, identity_columns


def _history(curves: dict[tuple[str, int], list[tuple[float, float]]]) -> pd.DataFrame:
    rows = []
    for (tid, seg), values in curves.items():
        for j, (loss, acc) in enumerate(values, start=1):
            rows.append({"trial_id": tid, "_seg": seg, "_rel": j, "val_loss": loss, "val_acc": acc})
    return pd.DataFrame(rows)


def test_segment_gains_over_the_last_k_epochs():
    h = _history(
        {
            ("a", 0): [(1.0, 0.1), (0.8, 0.3), (0.7, 0.4), (0.65, 0.45), (0.64, 0.5)],
            ("b", 0): [(1.0, 0.2), (0.9, 0.1)],  # shorter than k: k = 1
            ("b", 1): [(0.5, 0.7)],  # one epoch: no gain
        }
    )
    g = segment_gains(h, ["val_loss", "val_acc"], k=3)
    a, b0, b1 = g.loc[("a", 0)], g.loc[("b", 0)], g.loc[("b", 1)]
    # a: epoch 2 -> 5; loss falls 0.16 (a gain), accuracy rises 0.2 (a gain)
    assert a[GAIN_EPOCHS] == 3 and a[f"{LAST_GAIN}:val_loss"] == pytest.approx(0.16)
    assert a[f"{LAST_GAIN}:val_acc"] == pytest.approx(0.2)
    assert a[f"{LAST_VALUE}:val_loss"] == 0.64
    # b0: epoch 1 -> 2; loss falls 0.1, accuracy falls 0.1 (a loss: negative)
    assert b0[GAIN_EPOCHS] == 1 and b0[f"{LAST_GAIN}:val_loss"] == pytest.approx(0.1)
    assert b0[f"{LAST_GAIN}:val_acc"] == pytest.approx(-0.1)
    assert math.isnan(b1[GAIN_EPOCHS]) and math.isnan(b1[f"{LAST_GAIN}:val_loss"])
    assert b1[f"{LAST_VALUE}:val_acc"] == 0.7
    with pytest.raises(ValueError, match="k=0"):
        segment_gains(h, ["val_loss"], k=0)


def _seeds(point, converged, gains, values, k=3):
    n = len(gains)
    return pd.DataFrame(
        {
            "pid": [point] * n,
            "converged": converged,
            LAST_GAIN: gains,
            LAST_VALUE: values,
            GAIN_EPOCHS: [k] * n,
            MONITORED: ["val_loss"] * n,
        }
    )


def test_still_improving_by_the_rule_then_by_gain_against_seed_noise():
    s = pd.concat(
        [
            # the rule judged: one seed hit its cap still improving -> the point is open
            _seeds("rule_open", [1.0, 1.0, 0.0], [0.0, 0.01, 0.09], [0.5, 0.5, 0.5]),
            # the rule judged every seed converged: closed, whatever the gain says
            _seeds("rule_done", [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
            # fallback: gain 0.05 < noise std([.5,.6,.7]) / sqrt(3) = 0.0577: closed
            _seeds("small", [np.nan] * 3, [0.05, 0.05, 0.05], [0.5, 0.6, 0.7]),
            # fallback: gain 0.1 > 0.0577: open
            _seeds("large", [np.nan] * 3, [0.1, 0.1, 0.1], [0.5, 0.6, 0.7]),
            # one seed: no noise to measure, a gain above the floor (0.1% of 0.5 x 3 epochs)
            # counts; none does not
            _seeds("one_up", [np.nan], [0.002], [0.5]),
            _seeds("one_flat", [np.nan], [0.0], [0.5]),
            # collapsed to chance: every seed ends on the same loss (noise 0), drifting by 1e-4;
            # under the floor 0.001 x 3 x 2.3026 = 0.0069, so not learning
            _seeds("collapsed", [np.nan] * 3, [1e-4] * 3, [2.3026] * 3),
            # no gain computable (one-epoch segments): not judged, blocks nothing
            _seeds("unknown", [np.nan] * 2, [np.nan] * 2, [0.5, 0.6]),
        ]
    )
    j = still_improving(s, "pid")
    expected = {
        "rule_open": True,
        "rule_done": False,
        "small": False,
        "large": True,
        "one_up": True,
        "one_flat": False,
        "collapsed": False,
        "unknown": False,
    }
    assert j["still_improving"].to_dict() == expected
    assert j.loc["rule_open", "note"] == (
        "1 of 3 seeds hit their epoch cap still improving; val_loss improved by 0.0333 over its "
        "last 3 epochs (seed mean)"
    )
    assert j.loc["large", "note"] == (
        "val_loss improved by 0.1 over its last 3 epochs (seed mean), above its seed noise 0.0577"
    )
    assert j.loc["small", "noise"] == pytest.approx(0.1 / math.sqrt(3))
    assert j.loc["collapsed", "noise"] == pytest.approx(0.001 * 3 * 2.3026)
    assert j.loc["one_up", "note"] == (
        "val_loss improved by 0.002 over its last 3 epochs (seed mean), above the floor 0.0015 "
        "(0.001 of its end value per epoch)"
    )
    assert math.isnan(j.loc["rule_open", "noise"])  # the rule judged, no threshold
    assert (j.loc[[k for k, v in expected.items() if not v], "note"] == "").all()
    assert j.loc["rule_open", ["unconverged", "ruled", "n"]].tolist() == [1, 3, 3]


def _samples(root: Path) -> pd.DataFrame:
    exp = load_experiment(root)
    return operating_points(add_config_ids(exp.trials), exp.history)


DENSE = [0.90, 0.91, 0.92]
PRUNED = [0.70, 0.71, 0.72]  # 20 points worse: resolved "worse" when converged


def test_a_comparison_with_an_open_side_is_not_converged(tmp_path: Path):
    for seed in range(3):
        simple_trial(tmp_path / "a", sparsity=0.0, seed=seed, acc=DENSE[seed])
        simple_trial(tmp_path / "a", sparsity=0.9, seed=seed, acc=PRUNED[seed])
        simple_trial(tmp_path / "b", sparsity=0.0, seed=seed, acc=DENSE[seed])
        simple_trial(tmp_path / "b", sparsity=0.9, seed=seed, acc=PRUNED[seed], converged=False)
        # fixed-epoch runs (no rule): the synthetic val_loss still falls 0.33 in its last epoch
        simple_trial(tmp_path / "c", sparsity=0.0, seed=seed, acc=DENSE[seed], converged=None)
        simple_trial(tmp_path / "c", sparsity=0.9, seed=seed, acc=PRUNED[seed])
    converged = versus_dense(_samples(tmp_path / "a"), "test_acc", 100.0, 1.0, 1.0)
    assert converged["verdict"].tolist() == [WORSE] and converged["convergence_note"].eq("").all()

    pruned_open = versus_dense(_samples(tmp_path / "b"), "test_acc", 100.0, 1.0, 1.0).iloc[0]
    assert pruned_open["verdict"] == NOT_CONVERGED and math.isnan(pruned_open["seeds_needed"])
    assert pruned_open["diff_pts"] == pytest.approx(-20.0)  # the numbers stay, for the reader
    assert pruned_open["convergence_note"].startswith(
        "pruned: 3 of 3 seeds hit their epoch cap still improving; val_loss improved by "
    )

    dense_open = versus_dense(_samples(tmp_path / "c"), "test_acc", 100.0, 1.0, 1.0).iloc[0]
    gain = 1.4 * (math.exp(-1) - math.exp(-2))  # the synthetic dense val_loss, epoch 1 -> 2
    assert dense_open["verdict"] == NOT_CONVERGED
    assert dense_open["convergence_note"].startswith(
        f"dense: val_loss improved by {gain:.3g} over its last 1 epochs (seed mean), above the "
        "floor "  # every seed ends on the same loss: no seed noise, the floor is the threshold
    )
    assert NOT_CONVERGED in VERDICTS


def _methods(root: Path, open_seed: int | None) -> pd.Series:
    for seed in range(3):
        simple_trial(root, sparsity=0.0, seed=seed, acc=DENSE[seed])
        simple_trial(root, sparsity=0.5, seed=seed, acc=0.8 + seed / 100)
        simple_trial(
            root, sparsity=0.5, seed=seed, acc=0.6 + seed / 100, score="random",
            converged=seed != open_seed,
        )  # fmt: skip
    samples = _samples(root)
    keep = ["config_id", "base_id", P.baseline_key, P.round, P.variant, "label", "base_label"]
    keep += ["arch", "size", *identity_columns(samples)]
    points = aggregate_seeds(samples, numeric_point_metrics(samples), by=P.point_id, keep=keep)
    m = at_equal_sparsity(samples, points, "test_acc", 100.0, 1.0)
    assert len(m) == 1
    return m.iloc[0]


def test_methods_at_equal_sparsity_with_an_open_variant(tmp_path: Path):
    closed = _methods(tmp_path / "closed", None)
    assert closed["verdict"] == BETTER and closed["convergence_note"] == ""
    assert closed["variant_a"] != "score=random"  # magnitude first: 20 points better
    r = _methods(tmp_path / "open", 1)  # one seed of the random variant hit its cap
    assert r["verdict"] == NOT_CONVERGED and r["diff_pts"] == pytest.approx(20.0)
    assert math.isnan(r["seeds_needed"])
    assert r["convergence_note"].startswith("b: 1 of 3 seeds hit their epoch cap")


def test_round0_shared_by_planned_length_under_a_plateau_rule():
    rows = pd.DataFrame(
        {
            "trial_id": ["t1", "t1", "t2", "t2", "t3", "t3", "t4"],
            "_seg": [0, 1, 0, 1, 0, 1, 0],
            "epoch": [4, 9, 6, 10, 5, 8, 3],
            "train.until.metric": ["val_loss"] * 4 + [None, None, "val_loss"],
            "pruning.epochs_per_round": [None, None, None, None, None, None, 7.0],
            "train.epochs": [40, 40, 40, 40, 20, 20, 28],
            "pruning.rounds": [3, 3, 3, 3, 3, 3, 3],
        }
    )
    # ruled trials: planned 40 // 4 = 10 (t1, t2 share it whatever their round 0 took),
    # epochs_per_round 7 (t4); a fixed-epoch trial keeps its measured round 0 (t3: 5)
    assert _round0_length(rows).tolist() == ["p10", "p10", "p10", "p10", "5", "5", "p7"]
    fixed = rows.drop(columns="train.until.metric")
    assert _round0_length(fixed).tolist() == ["4", "4", "6", "6", "5", "5", "3"]


def test_the_report_marks_open_points_and_reads_no_verdict_from_them(tmp_path: Path):
    from analysis.questions import analyse

    for seed in range(3):  # fixed-epoch runs whose val_loss still falls: judged by the fallback
        simple_trial(tmp_path, sparsity=0.0, seed=seed, acc=DENSE[seed], converged=None)
        simple_trial(tmp_path, sparsity=0.9, seed=seed, acc=PRUNED[seed], converged=None)
    a = analyse(load_experiment(tmp_path))
    assert a.points["still_improving"].tolist() == [True, True]
    assert a.points["improving_note"].str.contains("above the floor").all()
    dynamics = " ".join(next(s for s in a.sections if s.key == "dynamics").sentences)
    assert "Still improving when training ended: 2 of 2 operating points" in dynamics
    tolerance = " ".join(next(s for s in a.sections if s.key == "tolerance").sentences)
    assert "0 worse by more than the tolerance, 0 not resolved. 1 is not converged" in tolerance
    pruned = a.points[a.points["sparsity"] > 0].iloc[0]
    assert pruned["verdict"] == NOT_CONVERGED and pruned["convergence_note"].startswith("pruned:")


def test_arch_and_matched_comparisons_read_no_verdict_from_open_points(tmp_path: Path):
    from analysis.equal_budget import matched_pairs
    from analysis.questions import analyse

    for seed in range(3):
        for arch, conv in (("mlp", None), ("cnn", True)):  # mlp: fixed epochs, still falling
            simple_trial(tmp_path, arch=arch, width=64, seed=seed, acc=DENSE[seed], converged=conv)
            simple_trial(
                tmp_path, arch=arch, width=128, sparsity=0.5, seed=seed, acc=PRUNED[seed],
                converged=conv,
            )  # fmt: skip
    a = analyse(load_experiment(tmp_path))
    arch = " ".join(next(s for s in a.sections if s.key == "arch").sentences)
    assert "not converged, no verdict (mlp: val_loss improved by" in arch
    pairs = matched_pairs(a.usable, "test_acc").set_index("arch")
    assert pairs.loc["mlp", "verdict"] == NOT_CONVERGED
    assert pairs.loc["cnn", "verdict"] == WORSE  # 20 points below, converged: a plain verdict
    matched = " ".join(next(s for s in a.sections if s.key == "matched").sentences)
    assert "not converged in 1 (no verdict)" in matched
