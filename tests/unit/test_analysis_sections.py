"""The report's sections: each opens with its answer in one sentence, phrased from the verdicts of
the comparison tables, then a compact table (configuration, sparsity, difference with its
interval, verdict, seeds); the details fold away in report.html."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.equal_budget import ARCH_COLS, arch_at_budget
from analysis.load import load_experiment
from analysis.questions import analyse
from analysis.report import esc, render
from analysis.sections.section import COMPACT_COLS, Section, compact
from analysis.synthetic import write_experiment

NAN = math.nan


def _section(a, key):
    return next(s for s in a.sections if s.key == key)


def test_compact_puts_the_difference_and_its_interval_in_one_cell() -> None:
    rows = pd.DataFrame(
        {
            "label": ["width=64", "width=32"],
            "sparsity": [0.5, 0.9],
            "diff_pts": [0.4321, -3.0],
            "diff_ci95_lo": [-2.08, NAN],
            "diff_ci95_hi": [2.94, NAN],
            "verdict": ["not resolved", "worse"],
            "n_seeds": [3, 1],
            "dense_n": [3, 2],
        }
    )
    got = compact(rows)
    assert list(got.columns) == list(COMPACT_COLS)
    assert got.to_dict("list") == {
        "configuration": ["width=64", "width=32"],
        "sparsity": [0.5, 0.9],
        "difference (95% CI)": ["+0.43 [-2.08, +2.94]", "-3.00 (no interval)"],
        "verdict": ["not resolved", "worse"],
        "seeds": ["3 vs 3", "1 vs 2"],
    }


def test_the_lead_is_the_answer_else_the_first_statement() -> None:
    s = Section("k", "t", sentences=["first.", "second."])
    assert (s.lead, s.details) == ("first.", ["second."])
    s.answer = "the answer."
    assert (s.lead, s.details) == ("the answer.", ["first.", "second."])


def _points(**cols) -> pd.DataFrame:
    base = {
        "arch": ["cnn", "cnn", "mlp", "mlp"],
        "label": ["c-big", "c-small", "m-big", "m-small"],
        "nonzero_params": [5000.0, 800.0, 9000.0, 1000.0],
        "test_acc": [0.95, 0.90, 0.70, 0.60],
        "test_acc_std": [0.01, 0.01, 0.01, 0.01],
        "n_seeds": [3, 3, 3, 3],
    }
    return pd.DataFrame({**base, **cols})


def test_arch_at_budget_compares_the_best_of_each_within_the_common_budget() -> None:
    # budget: the largest of the smallest counts, 1000 (mlp's smallest); cnn's best within it
    # is c-small (0.90), mlp's m-small (0.60): +30 points, Welch [+28.14, +31.86] at 3 vs 3
    got = arch_at_budget(_points(), "test_acc", 100.0, 1.0)
    assert list(got.columns) == list(ARCH_COLS) and len(got) == 1
    r = got.iloc[0]
    assert (r["budget"], r["arch_a"], r["arch_b"]) == (1000.0, "cnn", "mlp")
    assert (r["label_a"], r["label_b"], r["n_a"], r["n_b"]) == ("c-small", "m-small", 3, 3)
    assert r["diff_pts"] == pytest.approx(30.0)
    half = 2.7764451051977987 * math.sqrt(2 * 1.0**2 / 3)  # t(0.975, df=4), std 1 point
    assert r["diff_ci95_lo"] == pytest.approx(30.0 - half)
    assert r["diff_ci95_hi"] == pytest.approx(30.0 + half)
    assert (r["verdict"], r["convergence_note"]) == ("better", "")
    # a minimised metric: the lower mean is "a"
    low = arch_at_budget(_points(), "test_acc", 100.0, -1.0).iloc[0]
    assert (low["arch_a"], low["diff_pts"]) == ("mlp", pytest.approx(30.0))


def test_arch_at_budget_reads_no_verdict_from_a_point_still_improving() -> None:
    pts = _points(
        still_improving=[False, False, False, True],
        improving_note=["", "", "", "val_loss improved by 0.1"],
    )
    r = arch_at_budget(pts, "test_acc", 100.0, 1.0).iloc[0]
    assert r["verdict"] == "not converged"
    assert r["convergence_note"] == "mlp: val_loss improved by 0.1"


def test_arch_at_budget_two_architectures_within_the_tolerance_are_equal() -> None:
    """Peers: a 0.3-point gap whose interval lies inside +-1 point is equal within tolerance,
    and better or worse only against 0 without one."""
    pts = _points(test_acc=[0.95, 0.603, 0.70, 0.60], test_acc_std=[0.001] * 4)
    r = arch_at_budget(pts, "test_acc", 100.0, 1.0, tolerance=1.0).iloc[0]
    assert r["diff_ci95_lo"] > -1.0 and r["diff_ci95_hi"] < 1.0 and r["diff_ci95_lo"] > 0
    assert r["verdict"] == "better"  # excludes 0: better wins over equal
    pts = _points(test_acc=[0.95, 0.603, 0.70, 0.60], test_acc_std=[0.01] * 4)
    r = arch_at_budget(pts, "test_acc", 100.0, 1.0, tolerance=3.0).iloc[0]
    assert (
        r["diff_ci95_lo"] < 0 < r["diff_ci95_hi"] < 3.0 and r["verdict"] == "equal within tolerance"
    )
    assert arch_at_budget(pts, "test_acc", 100.0, 1.0).iloc[0]["verdict"] == "not resolved"


def test_arch_at_budget_needs_two_architectures() -> None:
    one = _points().iloc[:2]
    assert arch_at_budget(one, "test_acc", 100.0, 1.0).empty
    assert arch_at_budget(one.iloc[:0], "test_acc", 100.0, 1.0).empty


def test_tolerance_answers_in_one_sentence_from_the_verdicts(tolerance_sweep) -> None:
    exp = load_experiment(tolerance_sweep)  # 0.5 +0.00 [-2.08, +2.08], 0.9 -3, 0.95 -20
    head = (
        "Highest sparsity whose test_acc is resolved within {} point(s) of the dense baseline "
        "(Welch 95% interval over seeds of the difference): "
    )
    one = _section(analyse(exp, xs=["nonzero_params"], tolerance=1.0), "tolerance")
    assert (
        one.answer
        == head.format(1) + "mlp none (0 of 3 pruned points within, 1 worse, 2 not resolved)."
    )
    caption, table = one.summary
    assert caption.startswith("Per configuration, the sparsest point resolved within 1 point(s)")
    assert list(table.columns) == list(COMPACT_COLS) and len(table) == 1  # one configuration
    row = table.iloc[0]  # nothing within: its sparsest point
    assert (row["verdict"], row["seeds"]) == ("worse", "3 vs 3")
    assert row["sparsity"] == pytest.approx(0.95)
    assert row["difference (95% CI)"].startswith("-20.00 [")
    three = _section(analyse(exp, xs=["nonzero_params"], tolerance=3.0), "tolerance")
    assert (
        three.answer
        == head.format(3) + "mlp 0.5 (1 of 3 pruned points within, 1 worse, 1 not resolved)."
    )
    row = three.summary[1].iloc[0]  # its sparsest point within tolerance
    assert row["verdict"] == "within tolerance" and row["sparsity"] == pytest.approx(0.5)
    assert row["difference (95% CI)"] == "+0.00 [-2.08, +2.08]"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_experiment(root, seeds=(0, 1), epochs=6)
    return analyse(load_experiment(root))


def test_every_section_opens_with_one_sentence_and_a_compact_table(sweep) -> None:
    for s in sweep.sections:
        assert s.answer, s.key
        assert s.answer.endswith(".") and "\n" not in s.answer, s.answer
        # one sentence: no full stop inside it but in numbers ("0.5") and abbreviations
        assert ". " not in s.answer.replace("e.g. ", ""), s.answer
    epochs = ["configuration", "sparsity", "pruned - dense, epochs (95% CI)", "verdict", "seeds"]
    want = {"dynamics": epochs, **{k: list(COMPACT_COLS) for k in ("tolerance", "matched")}}
    for key, cols in want.items():
        assert list(_section(sweep, key).summary[1].columns) == cols, key
    methods = _section(sweep, "methods")  # one pruning variant: nothing to compare, said so
    assert methods.summary is None and methods.answer.startswith("Not available: the sweep")
    arch = _section(sweep, "arch")
    pair = arch_at_budget(sweep.usable, sweep.y, sweep.scale, sweep.sign).iloc[0]
    assert arch.summary[1]["verdict"].tolist() == [pair["verdict"]]  # one owner of the verdict


def test_report_puts_answer_table_figures_then_folded_details(sweep) -> None:
    html = render(sweep)
    for s in sweep.sections:
        part = html.split(f"<section id='sec-{s.key}'>", 1)[1].split("</section>", 1)[0]
        cls = "answer missing" if s.lead.startswith("Not available") else "answer"
        order = [part.index(f"<p class='{cls}'>{esc(s.lead)}</p>")]
        if s.summary is not None:
            order.append(part.index(f"<h3>{esc(s.summary[0])}"))
        if s.charts:
            order.append(part.index(f'id="fig-{s.charts[0].key}"'))
        if s.details or s.tables:
            order.append(part.index("<details><summary>Details: "))
            folded = part.split("<details>", 1)[1]
            assert all(f"<p>{esc(t)}</p>" in folded for t in s.details), s.key
            assert all(f"<h3>{esc(c)}" in folded for c, _ in s.tables), s.key
        assert order == sorted(order), (s.key, order)


def test_versus_best_orders_the_cheaper_points_and_reads_their_interval() -> None:
    from analysis.pareto import versus_best

    cand = pd.DataFrame(
        {
            "nonzero_params": [1000.0, 400.0, 200.0, 2000.0],
            "test_acc": [0.95, 0.945, 0.85, 0.96],
            "test_acc_std": [0.01, 0.01, 0.01, 0.01],
            "n_seeds": [3, 3, 3, 3],
        },
        index=["best", "near", "far", "dearer"],
    )
    got = versus_best(cand, cand.loc["best"], "nonzero_params", "test_acc", 100.0, 1.0, 3.0)
    assert got.index.tolist() == ["far", "near"]  # cheaper only, cheapest first
    half = 2.7764451051977987 * math.sqrt(2 / 3)  # t(0.975, df=4), std 1 point each side
    assert got.loc["near", "diff_pts"] == pytest.approx(-0.5)
    assert got.loc["near", "diff_ci95_lo"] == pytest.approx(-0.5 - half)  # -2.76 > -3: within
    assert got["verdict"].tolist() == ["worse", "within tolerance"]
    assert got.loc["far", "diff_ci95_hi"] == pytest.approx(-10.0 + half)  # below -3: worse
