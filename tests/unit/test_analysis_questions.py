"""Seed aggregation, fronts on configurations, and the report's answers on hand-made sweeps."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import hypervolume_2d
from analysis.load import load_experiment
from analysis.questions import analyse, matched_pairs
from analysis.synthetic import simple_trial, write_experiment
from analysis.tables import add_config_ids, aggregate_seeds


def _section(a, key):
    return next(s for s in a.sections if s.key == key)


def test_seeds_pool_into_one_configuration_with_t_interval(tmp_path):
    for seed, acc in enumerate([0.80, 0.90, 0.85]):
        simple_trial(tmp_path, width=64, sparsity=0.5, seed=seed, acc=acc)
    simple_trial(tmp_path, width=32, sparsity=0.5, seed=0, acc=0.7)
    exp = load_experiment(tmp_path)
    trials = add_config_ids(exp.trials)
    assert trials.groupby("model.width")["config_id"].nunique().eq(1).all()  # seeds pooled
    assert trials["config_id"].nunique() == 2
    assert set(trials["label"]) == {"width=64", "width=32"}  # only the settings that vary
    c = aggregate_seeds(trials).set_index("label")
    row = c.loc["width=64"]
    assert row["n_seeds"] == 3
    assert row["test_acc"] == pytest.approx(0.85)
    assert row["test_acc_std"] == pytest.approx(0.05)
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t(0.975, df=2)
    assert row["test_acc_ci95_lo"] == pytest.approx(0.85 - half)
    assert row["test_acc_ci95_hi"] == pytest.approx(0.85 + half)
    one = c.loc["width=32"]
    assert (
        one["n_seeds"] == 1 and np.isnan(one["test_acc_std"]) and np.isnan(one["test_acc_ci95_hi"])
    )


def test_unfinished_trials_are_kept_but_never_on_a_front(tmp_path):
    simple_trial(tmp_path, width=64, seed=0, acc=0.90, cost=1000)
    simple_trial(tmp_path, width=32, seed=0, acc=0.80, cost=500)
    # would dominate everything if it counted
    simple_trial(tmp_path, width=16, seed=0, acc=0.99, cost=10, status="running")
    simple_trial(tmp_path, width=8, seed=0, acc=0.99, cost=5, status="failed")
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"])
    assert len(a.trials) == 4
    front = a.fronts["nonzero_params"].table
    assert sorted(front["nonzero_params"]) == [500, 1000]
    assert set(a.configs["label"]) == {"width=64", "width=32"}


def test_front_hypervolume_and_reference_are_stated(tmp_path):
    pts = [(0.0, 0.90, 1000), (0.5, 0.89, 500), (0.8, 0.85, 200), (0.9, 0.80, 300)]
    for s, acc, cost in pts:
        simple_trial(tmp_path, sparsity=s, acc=acc, cost=cost)
    f = analyse(load_experiment(tmp_path), xs=["nonzero_params"]).fronts["nonzero_params"]
    assert f.table["nonzero_params"].tolist() == [200, 500, 1000]  # (300, .80) is dominated
    # worst observed cost and accuracy, pushed 10% of the observed range further
    assert f.ref == pytest.approx((1000 + 0.1 * 800, 0.80 - 0.1 * 0.10))
    # boxes to the reference: (500-200)*(.85-.79) + (1000-500)*(.89-.79) + (1080-1000)*(.90-.79)
    assert f.hypervolume == pytest.approx(300 * 0.06 + 500 * 0.10 + 80 * 0.11)
    assert f.hypervolume == pytest.approx(
        hypervolume_2d(f.table["nonzero_params"], f.table["test_acc"], f.ref)
    )
    # normalised by the box from the best observed values (200, .90) to the reference
    assert f.hv_normalized == pytest.approx(f.hypervolume / ((1080 - 200) * (0.90 - 0.79)))
    assert (f.table["hv_ref_x"] == f.ref[0]).all() and (f.table["hv_ref_y"] == f.ref[1]).all()


def test_highest_sparsity_within_tolerance(tmp_path):
    for seed in (0, 1):
        simple_trial(tmp_path, sparsity=0.0, seed=seed, acc=0.900)
        simple_trial(tmp_path, sparsity=0.5, seed=seed, acc=0.895)
        simple_trial(tmp_path, sparsity=0.9, seed=seed, acc=0.880)
        simple_trial(tmp_path, sparsity=0.95, seed=seed, acc=0.700)
    exp = load_experiment(tmp_path)
    one = _section(analyse(exp, xs=["nonzero_params"], tolerance=1.0), "tolerance")
    three = _section(analyse(exp, xs=["nonzero_params"], tolerance=3.0), "tolerance")
    assert "up to sparsity 0.5 " in one.sentences[0] and "drop 0.5 points" in one.sentences[0]
    assert "up to sparsity 0.9 " in three.sentences[0] and "drop 2 points" in three.sentences[0]
    table = three.tables[0][1]
    assert table["sparsity"].tolist() == [0.9] and table["drop_pts"].iloc[0] == pytest.approx(2.0)
    tight = _section(analyse(exp, xs=["nonzero_params"], tolerance=0.2), "tolerance")
    assert tight.sentences[0].startswith("mlp: no pruned configuration stays within 0.2 point(s)")
    assert "smallest drop is 0.5 points at sparsity 0.5" in tight.sentences[0]


def test_sections_without_data_say_so(tmp_path):
    # one architecture, no dense baseline, one seed, one size
    simple_trial(tmp_path, sparsity=0.5, acc=0.8)
    simple_trial(tmp_path, sparsity=0.9, acc=0.7)
    a = analyse(load_experiment(tmp_path))
    assert "no dense baseline" in _section(a, "tolerance").sentences[0]
    assert "one architecture only (mlp)" in _section(a, "arch").sentences[0]
    rob = " ".join(_section(a, "robustness").sentences)
    assert "one seed" in rob and "one model size" in rob
    assert _section(a, "matched").sentences[0].startswith("Not available")


def test_nothing_finished_yet_is_not_an_error(tmp_path):
    simple_trial(tmp_path, seed=0, status="running")
    simple_trial(tmp_path, seed=1, status="failed")
    a = analyse(load_experiment(tmp_path))
    assert a.configs.empty and all(f.n_configs == 0 for f in a.fronts.values())
    for key in ("dynamics", "tolerance", "robustness", "tradeoffs", "arch", "matched"):
        assert _section(a, key).sentences[0].startswith("Not available")


def test_matched_pairs_compare_large_sparse_with_small_dense():
    configs = pd.DataFrame(
        {
            "arch": ["mlp", "mlp", "mlp", "cnn"],
            "label": ["small dense", "big sparse", "big sparse far", "cnn sparse"],
            "nonzero_params": [1000, 1100, 5000, 1000],
            "total_params": [1000, 10000, 10000, 8000],
            "sparsity": [0.0, 0.89, 0.5, 0.87],
            "test_acc": [0.80, 0.84, 0.86, 0.99],
            "n_seeds": [1, 1, 1, 1],
        }
    )
    p = matched_pairs(configs, "test_acc")
    assert len(p) == 1  # the far one is outside 20%; the cnn is another architecture
    r = p.iloc[0]
    assert r["sparse_label"] == "big sparse" and r["sparse_minus_dense"] == pytest.approx(0.04)


def test_two_architectures_are_compared(tmp_path):
    write_experiment(tmp_path, seeds=(0, 1), epochs=6)
    a = analyse(load_experiment(tmp_path))
    arch = _section(a, "arch")
    assert len(arch.sentences) == 2 and {s.split(":")[0] for s in arch.sentences} == {"cnn", "mlp"}
    assert [c.key for c in arch.charts] == ["arch_compare"]
    # the per-architecture answer agrees with section 2's (same sparsity, or both say none)
    for line in _section(a, "tolerance").sentences:
        name = line.split(":")[0]
        mine = next(t for t in arch.sentences if t.startswith(name + ":"))
        if "up to sparsity" in line:
            sparsity = line.split("up to sparsity ")[1].split(" ")[0]
            assert f"highest sparsity within 1 point(s) of dense: {sparsity}." in mine
        else:
            assert "no pruned configuration within 1 point(s) of dense" in mine
    keys = {c.key for s in a.sections for c in s.charts}
    assert {
        "learning_curves",
        "sparsity_schedule",
        "acc_vs_sparsity",
        "convergence",
        "cost_vs_sparsity",
        "robustness",
        "front_nonzero_params",
    } <= keys


def test_minimised_y_metric_flips_the_front_and_the_tolerance(tmp_path):
    # y = val_loss (minimised): lower cost and lower loss are both better
    for s, loss, cost in [(0.0, 0.30, 1000), (0.5, 0.305, 500), (0.9, 0.40, 100), (0.8, 0.5, 300)]:
        d = simple_trial(tmp_path, sparsity=s, cost=cost)
        lines = (d / "records.jsonl").read_text().splitlines()
        recs = [json.loads(ln) for ln in lines]
        for r in recs:
            r["val_loss"] = loss
        (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"], y="val_loss", tolerance=1.0)
    f = a.fronts["nonzero_params"]
    assert f.y_dir == "min" and f.table["nonzero_params"].tolist() == [100, 500, 1000]
    assert f.ref == pytest.approx((1000 + 90, 0.5 + 0.02))  # worst = highest loss
    tol = _section(a, "tolerance")
    # the tolerance is in points of y (x100 when all values lie in [0, 1]): 0.305 vs 0.30 = 0.5
    assert "up to sparsity 0.5 " in tol.sentences[0]


def test_no_validation_split_nulls_do_not_break_the_analysis(tmp_path):
    """The trainer writes val_acc NaN and epochs_to_99pct null when there is no validation split."""
    for s in (0.0, 0.5):
        d = simple_trial(tmp_path, sparsity=s)
        recs = [json.loads(ln) for ln in (d / "records.jsonl").read_text().splitlines()]
        for r in recs:
            r["val_acc"] = r["val_loss"] = float("nan")
        (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        summary = json.loads((d / "summary.json").read_text())
        summary.update(epochs_to_99pct=None, best_val_acc=float("nan"))
        (d / "summary.json").write_text(json.dumps(summary))
    exp = load_experiment(tmp_path)
    assert exp.trials["epochs_to_99pct"].dtype.kind == "f"
    a = analyse(exp, xs=["nonzero_params"])
    dyn = " ".join(_section(a, "dynamics").sentences)
    assert "Not available: epochs_to_99pct" in dyn
    assert "up to sparsity 0.5" in _section(a, "tolerance").sentences[0]


_BLANKABLE = [
    "test_acc",
    "sparsity",
    "nonzero_params",
    "total_params",
    "epochs_to_99pct",
    "val_loss",
    "train_time_s",
    "peak_mem_bytes",
    "model.arch",
    "model.width",
]


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_experiment(
        root,
        grid={"model.depth": [1], "pruning.final_sparsity": [0.0, 0.5, 0.9]},
        seeds=(0, 1),
        epochs=3,
    )
    return load_experiment(root)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    blank=st.lists(
        st.tuples(st.sampled_from(_BLANKABLE), st.sampled_from(["all", "half"])), max_size=4
    )
)
def test_missing_values_never_crash_a_section(small_sweep, blank):
    trials = small_sweep.trials.copy()
    for col, how in blank:
        rows = trials.index if how == "all" else trials.index[::2]
        trials.loc[rows, col] = np.nan if trials[col].dtype.kind == "f" else None
    exp = dataclasses.replace(small_sweep, trials=trials)
    a = analyse(exp, xs=["nonzero_params", "train_time_s"])
    assert [s.key for s in a.sections] == [
        "overview",
        "dynamics",
        "tolerance",
        "robustness",
        "tradeoffs",
        "arch",
        "matched",
    ]
    for s in a.sections:
        assert s.sentences, s.key  # every section says something: an answer or why not
