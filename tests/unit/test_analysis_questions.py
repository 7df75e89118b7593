"""Seed aggregation, fronts on configurations, and the report's answers on hand-made sweeps."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import hypervolume_2d
from analysis.equal_budget import matched_pairs
from analysis.load import load_experiment, load_experiments
from analysis.questions import analyse
from analysis.stats import SEQUENTIAL
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


def test_highest_sparsity_within_tolerance_reads_the_interval(tolerance_sweep):
    # dense .90 .91 .92; 0.5: mean equal to dense, 95% CI of the difference [-2.08, +2.08];
    # 0.9: -3 points [-5.27, -0.73]; 0.95: -20 points (see test_analysis_compare)
    exp = load_experiment(tolerance_sweep)
    one = _section(analyse(exp, xs=["nonzero_params"], tolerance=1.0), "tolerance")
    # a mean difference of 0 is not "within 1 point" when its interval reaches -2.08
    assert one.sentences[0].startswith(
        "mlp: no pruned point is resolved within 1 point(s) of dense with these seeds."
    )
    assert "Not resolved with 3 seed(s): sparsity 0.5 " in one.sentences[0]
    assert "+0.00 points (95% CI [-2.08, +2.08])" in one.sentences[0]
    assert (
        "Of 3 pruned points: 0 within tolerance (0 of them better than dense), 1 worse"
        in (one.sentences[0])
    )
    three = _section(analyse(exp, xs=["nonzero_params"], tolerance=3.0), "tolerance")
    assert "mlp: up to sparsity 0.5 " in three.sentences[0]
    assert "+0.00 points (95% CI [-2.08, +2.08]) (3 vs 3 seeds" in three.sentences[0]
    assert "Not resolved with 3 seed(s): sparsity 0.9 " in three.sentences[0]
    table = three.tables[0][1]
    table = table.set_index(table["sparsity"].round(6))
    assert table["verdict"].to_dict() == {
        0.5: "within tolerance",
        0.9: "not resolved",
        0.95: "worse",
    }
    assert table.loc[0.9, "diff_ci95_hi"] == pytest.approx(-0.733, abs=1e-3)
    assert table.loc[0.9, "seeds_needed"] > 3
    best = three.tables[1][1]
    assert best["sparsity"].tolist() == [0.5]


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
    # the two sides are peers: within the tolerance (in the metric's units) they are equal
    spread = configs.assign(test_acc=[0.80, 0.803, 0.86, 0.99], test_acc_std=0.01, n_seeds=3)
    r = matched_pairs(spread, "test_acc", tolerance=0.03).iloc[0]
    assert -0.03 < r["ci95_lo"] < 0 < r["ci95_hi"] < 0.03
    assert r["verdict"] == "equal within tolerance"
    assert matched_pairs(spread, "test_acc").iloc[0]["verdict"] == "not resolved"


def test_two_architectures_are_compared(tmp_path):
    write_experiment(tmp_path, seeds=(0, 1), epochs=6)
    a = analyse(load_experiment(tmp_path))
    arch = _section(a, "arch")
    assert len(arch.sentences) == 3 and {s.split(":")[0] for s in arch.sentences[:2]} == {
        "cnn",
        "mlp",
    }
    assert arch.sentences[2].startswith("At most ") and "95% CI [" in arch.sentences[2]
    assert [c.key for c in arch.charts] == ["arch_compare"]
    # the per-architecture answer agrees with section 2's (same sparsity, or both say none)
    for line in _section(a, "tolerance").sentences:
        name = line.split(":")[0]
        mine = next(t for t in arch.sentences if t.startswith(name + ":"))
        if "up to sparsity" in line:
            sparsity = line.split("up to sparsity ")[1].split(" ")[0]
            assert f"highest sparsity resolved within 1 point(s) of dense: {sparsity}." in mine
        else:
            assert "no pruned point resolved within 1 point(s) of dense" in mine
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
    points = [(0.0, 0.30, 1000), (0.5, 0.305, 500), (0.9, 0.40, 100), (0.8, 0.5, 300)]
    for s, loss, cost in points:
        for seed, jitter in enumerate((-0.001, 0.0, 0.001)):
            d = simple_trial(tmp_path, sparsity=s, cost=cost, seed=seed)
            lines = (d / "records.jsonl").read_text().splitlines()
            recs = [json.loads(ln) for ln in lines]
            for r in recs:
                r["val_loss"] = loss + jitter
            (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"], y="val_loss", tolerance=1.0)
    f = a.fronts["nonzero_params"]
    assert f.y_dir == "min" and f.table["nonzero_params"].tolist() == [100, 500, 1000]
    assert f.ref == pytest.approx((1000 + 90, 0.5 + 0.02))  # worst = highest loss
    tol = _section(a, "tolerance")
    # points of y (x100 when all values lie in [0, 1]): 0.305 vs 0.30 = 0.5 worse, sign flipped;
    # both sides sd 0.1 point over 3 seeds: df 4, CI -0.5 ± 2.776 * 0.0816 = [-0.73, -0.27]
    assert "up to sparsity 0.5 " in tol.sentences[0]
    assert "-0.50 points (95% CI [-0.73, -0.27])" in tol.sentences[0]


def test_no_validation_split_nulls_do_not_break_the_analysis(tmp_path):
    """The trainer writes val_acc NaN and epochs_to_99pct null when there is no validation split."""
    for s, seed in ((0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)):
        d = simple_trial(tmp_path, sparsity=s, seed=seed)
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
    assert "Not available: convergence (no val_acc in the records)" in dyn
    # two seeds with the same accuracy: a zero-width interval, resolved within
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
        "methods",
        "robustness",
        "tradeoffs",
        "arch",
        "matched",
    ]
    for s in a.sections:
        assert s.sentences, s.key  # every section says something: an answer or why not


LOTTERY = {
    "model.arch": ["mlp"],
    "model.depth": [2],
    "model.width": [64],
    "pruning.final_sparsity": [0.0],
    "pruning.method": ["imp"],
    "pruning.score": ["magnitude", "random"],
    "pruning.rewind": ["init", "reinit"],
}


def test_an_imp_sweep_is_read_as_rounds(tmp_path):
    """Rounds are the operating points: round 0 is the dense baseline, sections 2 and 4 use the
    rounds, and the methods are compared at equal sparsity (winning ticket vs both controls)."""
    write_experiment(tmp_path, grid=LOTTERY, seeds=(0, 1, 2), epochs=4, rounds=4, rate=0.5)
    a = analyse(load_experiment(tmp_path), xs=["nonzero_params"])
    assert len(a.configs) == 4 and len(a.points) == 1 + 4 * 4  # shared round 0 + 4 rounds each
    tol = _section(a, "tolerance").sentences[0]
    assert "no dense baseline" not in tol and "Of 16 pruned points" in tol
    front = a.fronts["nonzero_params"].table
    assert front["round"].notna().all() and front["round"].nunique() > 1  # rounds on the front
    methods = _section(a, "methods")
    text = " ".join(methods.sentences)
    assert "winning ticket (rewind=init score=magnitude) vs random re-init" in text
    assert "winning ticket (rewind=init score=magnitude) vs random pruning" in text
    assert "Frankle & Carbin's three" in text
    assert {c.key for c in methods.charts} == {"imp_rounds"}
    chart = methods.charts[0]
    (panel,) = chart.panels
    assert panel.xreverse and panel.xticks == [6.25, 12.5, 25.0, 50.0, 100.0]
    assert all(s.x[0] == 100.0 for s in panel.series)  # every line starts at round 0
    dyn = " ".join(_section(a, "dynamics").sentences)
    assert "mlp, (c) IMP early stopping" in dyn and "at 6.25% of weights remaining" in dyn
    assert "imp_early_stop" in {c.key for c in _section(a, "dynamics").charts}
    # the equal-sparsity table: 6 pairs of 4 variants at 4 sparsities, the control second
    assert len(a.methods) == 24
    assert set(
        a.methods.loc[a.methods["variant_a"] == "rewind=init score=magnitude", "variant_b"]
    ) == {
        "rewind=reinit score=magnitude",
        "rewind=init score=random",
        "rewind=reinit score=random",
    }


def test_one_sparsity_everywhere_is_said_not_compared(tmp_path):
    for width in (32, 64):
        for seed in (0, 1):
            simple_trial(tmp_path, width=width, sparsity=0.5, seed=seed, acc=0.8 + seed / 100)
    a = analyse(load_experiment(tmp_path))
    dyn = _section(a, "dynamics").sentences[0]
    assert dyn.startswith("mlp: every operating point has sparsity 0.5, so convergence cannot")
    assert "highest sparsity" not in dyn


def test_several_experiments_pool_only_equal_settings(tmp_path):
    """Two experiments sharing the dense baseline: the dense configuration is one (its seeds from
    both counted once each), the pruned ones are compared with it, the report names both."""
    for seed in (0, 1, 2):
        simple_trial(tmp_path / "a", sparsity=0.0, seed=seed, acc=0.90 + seed / 100, experiment="a")
        simple_trial(tmp_path / "b", sparsity=0.0, seed=seed, acc=0.90 + seed / 100, experiment="b")
        simple_trial(tmp_path / "b", sparsity=0.8, seed=seed, acc=0.89 + seed / 100, experiment="b")
    exp = load_experiments([tmp_path / "a", tmp_path / "b"])
    a = analyse(exp, xs=["nonzero_params"])
    assert set(a.trials["experiment"]) == {"a", "b"} and a.duplicates == 3
    dense = a.configs[a.configs["sparsity"] == 0.0]
    assert (
        len(dense) == 1 and dense["n_seeds"].iloc[0] == 3 and dense["experiment"].iloc[0] == "a+b"
    )
    over = " ".join(_section(a, "overview").sentences)
    assert "2 experiments analysed together: a (3 trials" in over and "b (6 trials" in over
    assert "3 finished trial(s) repeat the settings and seed of another" in over
    pruned = a.points[a.points["sparsity"] > 0].iloc[0]
    assert pruned["dense_n"] == 3 and pruned["diff_pts"] == pytest.approx(-1.0)


def test_pooled_experiments_take_the_adaptive_seeds_plan_and_say_what_differs(tmp_path):
    """An adaptive sweep analysed with a fixed-seed one: every comparison gets the sequential
    intervals (valid for both; the fixed-seed ones are not valid for the adaptive sweep), and
    the warnings name the differing seeds plans and tolerances and what the report uses."""
    for seed in (0, 1, 2):
        simple_trial(tmp_path / "a", sparsity=0.0, seed=seed, acc=0.90 + seed / 100, experiment="a")
        simple_trial(tmp_path / "b", sparsity=0.8, seed=seed, acc=0.89 + seed / 100, experiment="b")
    (tmp_path / "a" / "spec.yaml").write_text(
        yaml.safe_dump({"name": "a", "search": {"seeds": [0, 1, 2]}})
    )
    b = {"name": "b", "search": {"seeds": {"initial": 3, "max": 12}, "tolerance": 2.0}}
    (tmp_path / "b" / "spec.yaml").write_text(yaml.safe_dump(b))
    exp = load_experiments([tmp_path / "a", tmp_path / "b"])
    assert exp.spec["name"] == "a" and exp.spec["search"]["seeds"] == {"initial": 3, "max": 12}
    seeds, told = exp.warnings
    assert "search.seeds differ (a: [0, 1, 2], b: {'initial': 3, 'max': 12})" in seeds
    assert "sequential intervals of b's {'initial': 3, 'max': 12}" in seeds
    assert "search.tolerance differ (a: 1.0, b: 2.0); the report judges at 1.0 unless" in told
    a = analyse(exp, xs=["nonzero_params"])
    assert a.tolerance == 1.0 and SEQUENTIAL in " ".join(_section(a, "overview").sentences)
    b["search"].pop("tolerance")  # unset is the default 1: the same as a's
    (tmp_path / "b" / "spec.yaml").write_text(yaml.safe_dump(b))
    assert len(load_experiments([tmp_path / "a", tmp_path / "b"]).warnings) == 1
    same = load_experiments([tmp_path / "b", tmp_path / "b"])  # one experiment twice
    assert same.warnings == [] and same.spec["search"] == b["search"]
