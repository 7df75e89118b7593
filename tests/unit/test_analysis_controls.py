"""Each method against its own controls: the pairs kept, their orientation, the sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.controls import control_sentences, split_variant, versus_controls


def pair(va, vb, diff, lo, hi, sparsity=0.9, n=(3, 3), need=np.nan, verdict="x"):
    return {
        "arch": "mlp",
        "size": "d2×w64",
        "base_label": "mlp d2×w64",
        "sparsity": sparsity,
        "variant_a": va,
        "variant_b": vb,
        "test_acc_a": 0.5,
        "test_acc_b": 0.4,
        "n_a": n[0],
        "n_b": n[1],
        "diff_pts": diff,
        "diff_ci95_lo": lo,
        "diff_ci95_hi": hi,
        "verdict": verdict,
        "seeds_needed": need,
    }


B, W, U = "better", "worse", "not resolved"
METHODS = pd.DataFrame(
    [
        pair("control=none score=snip", "control=shuffle_layer score=snip", 4.0, 1.0, 7.0, verdict=B),
        # the control first (it did better on average): flipped to method - control
        pair(
            "control=invert score=snip", "control=none score=snip", 2.0, -1.0, 5.0, need=12.0,
            verdict=U,
        ),
        pair("control=none score=snip", "control=none score=grasp", 1.0, 0.5, 1.5),  # no control
        pair("control=invert score=snip", "control=shuffle_layer score=snip", 1.0, 0.5, 1.5),
        pair("control=none score=grasp", "control=shuffle_layer score=snip", 1.0, 0.5, 1.5),
        pair(
            "control=none score=grasp", "control=reinit score=grasp", -3.0, -5.0, -1.0, n=(3, 4),
            verdict=W,
        ),
        pair("control=none score=grasp", "control=reinit score=grasp", 9.0, 8.0, 10.0, 0.5, verdict=B),
    ]
)  # fmt: skip


def test_split_variant():
    assert split_variant("control=none score=snip") == {"control": "none", "score": "snip"}
    assert split_variant("pruned") == {}


def test_only_method_vs_own_control_oriented_method_minus_control():
    t = versus_controls(METHODS)
    assert t[["method", "control", "sparsity"]].values.tolist() == [
        ["score=snip", "shuffle_layer", 0.9],
        ["score=snip", "invert", 0.9],
        ["score=grasp", "reinit", 0.9],
        ["score=grasp", "reinit", 0.5],
    ]
    assert t["diff_pts"].tolist() == [4.0, -2.0, -3.0, 9.0]
    assert t["diff_ci95_lo"].tolist() == [1.0, -5.0, -5.0, 8.0]
    assert t["diff_ci95_hi"].tolist() == [7.0, 1.0, -1.0, 10.0]
    assert t["verdict"].tolist() == ["better", "not resolved", "worse", "better"]
    assert t["n_method"].tolist() == [3, 3, 3, 3] and t["n_control"].tolist() == [3, 3, 4, 3]


def test_sentences_say_what_the_interval_resolves_at_the_highest_sparsity():
    got = control_sentences(versus_controls(METHODS), "test_acc")
    assert got == [
        "score=grasp vs its reinit control at 90% sparsity (mlp d2×w64): -3.00 points of "
        "test_acc (95% CI [-5.00, -1.00], 3 vs 4 seeds): its reinit control does better.",
        "score=snip vs its invert control at 90% sparsity (mlp d2×w64): -2.00 points of "
        "test_acc (95% CI [-5.00, +1.00], 3 vs 3 seeds): not resolved (about 12 seeds per "
        "configuration needed).",
        "score=snip vs its shuffle_layer control at 90% sparsity (mlp d2×w64): +4.00 points of "
        "test_acc (95% CI [+1.00, +7.00], 3 vs 3 seeds): its mask carries information beyond "
        "its layer densities.",
    ]


def test_the_verdict_is_methods_csvs_turned_with_the_orientation():
    """Peers: a control listed first that did better reads "worse" for the method; two
    networks collapsed to chance (interval [0, 0]) are equal within tolerance, and say so."""
    m = pd.DataFrame(
        [
            pair("control=shuffle_layer score=snip", "control=none score=snip", 3.0, 1.0, 5.0,
                 verdict=B),
            pair("control=none score=grasp", "control=invert score=grasp", 0.0, 0.0, 0.0,
                 sparsity=0.99, verdict="equal within tolerance"),
        ]
    )  # fmt: skip
    t = versus_controls(m)
    assert t["verdict"].tolist() == ["worse", "equal within tolerance"]
    assert (t["diff_ci95_lo"].tolist(), t["diff_ci95_hi"].tolist()) == ([-5.0, 0.0], [-1.0, 0.0])
    got = control_sentences(t, "test_acc")
    assert got[0].endswith(
        "equal to its invert control within tolerance: its ranking does no better than keeping "
        "the lowest-scored weights."
    )
    assert got[1].endswith("its shuffle_layer control does better.")


def test_no_pairs_no_rows():
    assert versus_controls(METHODS.iloc[2:3]).empty
    assert control_sentences(versus_controls(METHODS.iloc[:0]), "test_acc") == []


def test_not_converged_in_methods_stands_and_is_said():
    """An interval that would read "better" is no claim when methods.csv found a side still
    improving: controls.csv and the sentence keep "not converged" (and no seeds estimate)."""
    m = pd.DataFrame(
        [
            pair(
                "control=none score=snip",
                "control=shuffle_layer score=snip",
                4.0,
                1.0,
                7.0,
                verdict="not converged",
            ),
            pair(
                "control=reinit score=snip",
                "control=none score=snip",
                2.0,
                1.0,
                3.0,
                verdict="not converged",
            ),
            pair(
                "control=none score=snip",
                "control=invert score=snip",
                4.0,
                1.0,
                7.0,
                verdict="better",
            ),
        ]
    )
    t = versus_controls(m)
    assert t["control"].tolist() == ["shuffle_layer", "reinit", "invert"]
    assert t["verdict"].tolist() == ["not converged", "not converged", "better"]
    assert t["diff_pts"].tolist() == [4.0, -2.0, 4.0]
    assert control_sentences(t, "test_acc")[2] == (
        "score=snip vs its shuffle_layer control at 90% sparsity (mlp d2×w64): +4.00 points of "
        "test_acc (95% CI [+1.00, +7.00], 3 vs 3 seeds): not judged: a side was still "
        "improving when its training ended."
    )
