"""``benchmarks/families_table.py`` prints the pruning-families tables from an analysis
directory: the methods must be named from their settings, the comparisons oriented method minus
reference, and the verdicts carried over, or the README's table says something the analysis did
not."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import families_table as ft


def point(arch, method, score, control, target, sparsity, acc, lo=math.nan, hi=math.nan):
    return {
        "arch": arch,
        "variant": f"method={method} control={control} score={score}",
        "pruning.method": method,
        "pruning.score": score,
        "pruning.control": control,
        "pruning.start_epoch": 0,
        "pruning.final_sparsity": target,
        "sparsity": sparsity,
        "test_acc": acc,
        "test_acc_ci95_lo": lo,
        "test_acc_ci95_hi": hi,
    }


POINTS = pd.DataFrame(
    [
        point("mlp", "one_shot", "snip", "none", 0.9, 0.89994, 0.40, 0.38, 0.42),
        point("mlp", "one_shot", "snip", "shuffle_layer", 0.9, 0.89994, 0.39, 0.35, 0.43),
        point("mlp", "one_shot", "random", "none", 0.9, 0.89994, 0.30, 0.25, 0.35),
        point("mlp", "gradual", "magnitude", "none", 0.9, 0.9001, 0.50, 0.49, 0.51),
        point("mlp", "one_shot", "snip", "none", 0.5, 0.5, 0.55),
        point("cnn", "one_shot", "snip", "none", 0.9, 0.9, 0.80, 0.70, 0.90),
        point("mlp", "dense", "magnitude", "none", 0.0, 0.0, 0.60),
    ]
)


def diff(arch, a, b, d, lo, hi, verdict, need=math.nan, sparsity=0.9):
    return {
        "arch": arch,
        "sparsity": sparsity,
        "variant_a": a,
        "variant_b": b,
        "diff_pts": d,
        "diff_ci95_lo": lo,
        "diff_ci95_hi": hi,
        "verdict": verdict,
        "seeds_needed": need,
    }


SNIP = "method=one_shot control=none score=snip"
RANDOM = "method=one_shot control=none score=random"
GRADUAL = "method=gradual control=none score=magnitude"
METHODS = pd.DataFrame(
    [
        diff("mlp", SNIP, RANDOM, 10.0, 4.0, 16.0, "better"),
        # the reference first: flipped to snip - gradual, the verdict with it
        diff("mlp", GRADUAL, SNIP, 10.0, 8.0, 12.0, "better"),
        diff(
            "mlp",
            SNIP,
            "method=one_shot control=shuffle_layer score=snip",
            1.0,
            -2.0,
            4.0,
            "not resolved",
            7.0,
        ),
        diff("cnn", SNIP, RANDOM, 1.0, -1.0, 3.0, "not converged"),  # no random point: skipped
    ]
)


def test_method_label_names_the_family_from_settings():
    assert ft.method_label({"pruning.method": "one_shot", "pruning.score": "snip"}) == "snip @init"
    assert ft.method_label({"method": "one_shot", "score": "grasp", "start_epoch": "0.0"}) == (
        "grasp @init"
    )
    assert ft.method_label({"method": "one_shot", "score": "magnitude", "start_epoch": 5}) == (
        "one-shot magnitude"
    )
    assert ft.method_label({"method": "gradual", "score": "random"}) == "gradual random"
    assert ft.method_label({"method": "rigl", "score": "random", "control": "nan"}) == (
        "rigl (random init)"
    )
    assert ft.method_label({"method": "one_shot", "score": "snip", "control": "invert"}) == (
        "snip @init + invert"
    )


def test_cell_is_points_with_half_the_interval():
    assert ft.cell(0.6123, 0.58, 0.64) == "61.2 ±3.0"
    assert ft.cell(0.6123, math.nan, math.nan) == "61.2"
    assert ft.cell(math.nan, 0.1, 0.2) == ""


def test_accuracy_table_rows_in_family_order_columns_per_arch_and_target():
    t = ft.accuracy_table(POINTS)
    assert t.index.tolist() == [
        "snip @init",
        "snip @init + shuffle_layer",
        "random @init",
        "gradual magnitude",
    ]
    assert t.columns.tolist() == ["mlp 50%", "mlp 90%", "cnn 90%"]
    assert t.loc["snip @init"].tolist() == ["55.0", "40.0 ±2.0", "80.0 ±10.0"]
    assert t.loc["gradual magnitude"].tolist() == ["", "50.0 ±1.0", ""]
    compact = ft.accuracy_table(POINTS, [0.9], controls=False)
    assert compact.index.tolist() == ["snip @init", "random @init", "gradual magnitude"]
    assert compact.columns.tolist() == ["mlp 90%", "cnn 90%"]


def test_ordering_table_orients_method_minus_reference():
    t = ft.ordering_table(POINTS, METHODS)
    assert t.to_dict("records") == [
        {
            "arch": "mlp",
            "sparsity": "90%",
            "method": "snip @init",
            "vs random @init": "+10.0 [+4.0, +16.0] better",
            "vs gradual magnitude": "-10.0 [-12.0, -8.0] worse",
        }
    ]


def test_during_training_table_keeps_only_its_methods():
    rigl = "method=rigl control=none score=random"
    points = pd.concat(
        [POINTS, pd.DataFrame([point("mlp", "rigl", "random", "none", 0.9, 0.9, 0.45)])],
        ignore_index=True,
    )
    methods = pd.concat(
        [METHODS, pd.DataFrame([diff("mlp", GRADUAL, rigl, 2.0, -1.0, 5.0, "not resolved", 9.0)])],
        ignore_index=True,
    )
    assert ft.during_training_table(points, methods).to_dict("records") == [
        {
            "arch": "mlp",
            "sparsity": "90%",
            "method": "rigl (random init)",
            "vs gradual magnitude": "-2.0 [-5.0, +1.0] not resolved (~9 seeds)",
        }
    ]
    assert ft.during_training_table(POINTS, METHODS).empty


def test_controls_table_names_methods_and_keeps_seeds_needed():
    controls = pd.DataFrame(
        [
            {
                "arch": "mlp",
                "sparsity": 0.89994,
                "method": "method=one_shot score=snip",
                "control": "shuffle_layer",
                "diff_pts": 1.0,
                "diff_ci95_lo": -2.0,
                "diff_ci95_hi": 4.0,
                "verdict": "not resolved",
                "seeds_needed": 7.0,
            }
        ]
    )
    t = ft.controls_table(POINTS, controls)
    assert t.to_dict("records") == [
        {
            "arch": "mlp",
            "sparsity": "90%",
            "method": "snip @init",
            "- shuffle_layer": "+1.0 [-2.0, +4.0] not resolved (~7 seeds)",
        }
    ]


def test_diff_cell_without_interval():
    row = {"diff_pts": 2.0, "diff_ci95_lo": math.nan, "diff_ci95_hi": math.nan}
    assert ft.diff_cell(row | {"verdict": "not resolved"}) == "+2.0 (no interval) not resolved"


def test_markdown_table():
    df = pd.DataFrame({"a": ["1"]}, index=["x"])
    assert ft.markdown(df) == "| method | a |\n|---|---|\n| x | 1 |"
    assert ft.markdown(df, index=False) == "| a |\n|---|\n| 1 |"
