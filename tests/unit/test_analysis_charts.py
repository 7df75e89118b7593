"""Figure descriptions: both renderers draw every series; large groups are binned, not dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.charts import (
    BINS,
    MAX_GROUP_POINTS,
    by_group_chart,
    curves_chart,
    front_chart,
    sparsity_color,
)
from analysis.plots import draw
from analysis.report import figure


def _configs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    s = rng.uniform(0, 0.99, n)
    acc = 0.9 - 0.5 * np.clip(s - 0.8, 0, None) + rng.normal(0, 0.01, n)
    return pd.DataFrame(
        {
            "arch": "mlp",
            "size": "d1×w32",
            "label": [f"c{i}" for i in range(n)],
            "sparsity": s,
            "test_acc": acc,
            "test_acc_std": np.full(n, 0.01),
            "nonzero_params": 1000 * (1 - s) + 10,
        }
    )


def test_large_groups_are_binned_with_spread_across_configurations():
    rng = np.random.default_rng(0)
    c = _configs(MAX_GROUP_POINTS * 3, rng)
    chart = by_group_chart(c, "k", "t", "sparsity", ["test_acc"], "arch")
    (series,) = chart.panels[0].series
    assert len(series.x) == BINS and "quantile bins" in chart.note
    # each bin is the mean of an equal share of the configurations, in order of x
    order = c.sort_values("sparsity")
    first = order.iloc[: len(c) // BINS]
    assert series.y[0] == pytest.approx(first["test_acc"].mean())
    assert series.yerr[0] == pytest.approx(first["test_acc"].std())
    assert np.all(np.diff(series.x) > 0)


def test_small_groups_keep_every_configuration_with_seed_std_bars():
    c = _configs(20, np.random.default_rng(1))
    chart = by_group_chart(c, "k", "t", "sparsity", ["test_acc"], "arch")
    (series,) = chart.panels[0].series
    assert len(series.x) == 20 and np.allclose(series.yerr, 0.01)
    assert series.x.tolist() == sorted(c["sparsity"])


def test_both_renderers_draw_every_series():
    c = _configs(50, np.random.default_rng(2))
    front = c.nsmallest(3, "nonzero_params")
    chart = front_chart(c, front, "nonzero_params", "test_acc")
    fig = draw(chart)
    ax = fig.axes[0]
    assert len(ax.lines) + len(ax.containers) >= len(chart.panels[0].series)
    pfig = figure(chart)
    assert [t.name for t in pfig.data] == [s.name for s in chart.panels[0].series]
    assert len(pfig.data[0].x) == 47 and len(pfig.data[1].x) == 3  # dominated, front


def test_learning_curves_have_a_sparsity_colour_bar_and_labelled_dense_curves():
    configs = pd.DataFrame(
        {
            "config_id": ["d32", "d64", "s", "imp"],
            "arch": "mlp",
            "size": ["d1×w32", "d1×w64", "d1×w64", "d1×w64"],
            "label": ["dense 32", "dense 64", "sparse", "imp"],
            "sparsity": [0.0, 0.0, 0.9, 0.75],
            "pruning.method": ["none", "none", "gradual", "imp"],
        }
    )
    hist = pd.DataFrame(
        {
            "config_id": [c for c in configs["config_id"] for _ in range(4)],
            "epoch": [1, 2, 3, 4] * 4,
            "val_acc": np.linspace(0.5, 0.9, 16),
            "sparsity": [0.0] * 8 + [0.5, 0.8, 0.9, 0.9] + [0.0, 0.0, 0.75, 0.75],
            "target_sparsity": [0.0] * 8 + [0.5, 0.8, 0.9, 0.9] + [0.0, 0.0, 0.75, 0.75],
        }
    )
    chart = curves_chart(hist, configs, "lc", "t", ["val_acc"])
    assert chart.colorbar == "sparsity"
    (panel,) = chart.panels
    labels = [s.end_label for s in panel.series if s.end_label]
    assert labels == ["dense d1×w32", "dense d1×w64"]  # one label per dense curve, its size
    imp = [s for s in panel.series if s.text and s.text[0] == "imp"]
    assert [len(s.x) for s in imp] == [2, 2]  # IMP: one piece per round, in its own colour
    assert imp[0].color == sparsity_color(0.0) and imp[1].color == sparsity_color(0.75)
    fig = draw(chart)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "sparsity"  # the colour bar
    assert [t.get_text() for t in fig.axes[0].texts] == labels
    pfig = figure(chart)
    bars = [t for t in pfig.data if t.marker is not None and t.marker.showscale]
    assert len(bars) == 1 and bars[0].marker.colorbar.title.text == "sparsity"
    assert [t.text[0] for t in pfig.data if t.mode == "text"] == labels


def test_log_ticks_keep_one_of_two_that_would_overlap():
    """IMP rounds of structured and unstructured pruning: 50% vs 50.02% remaining, 12.5 vs
    12.56 (the demo's report printed both, on top of each other)."""
    from analysis.charts import log_ticks

    remaining = np.array([100, 50.0, 50.0219, 25.0, 25.0371, 12.5, 12.5644, 6.25])
    assert log_ticks(remaining) == [6.25, 12.6, 25.0, 50.0, 100.0]
    assert log_ticks(np.array([100, 90, 80])) == [80.0, 100.0]  # 100/90 < 1.2: 90 dropped
    assert log_ticks(np.array([0.0, 1.0])) == [1.0]  # nothing at zero on a log axis


def test_counts_print_whole_with_their_seed_spread():
    """Nonzero parameters are counts: a seed mean prints as "848 ± 12", not "847.667"."""
    from analysis.report import _table_html

    df = pd.DataFrame(
        {
            "label": ["a", "b", "c"],
            "nonzero_params": [847.667, 1000.0, np.nan],
            "nonzero_params_std": [12.3, 0.0, np.nan],
            "test_acc": [0.91234, 0.5, 0.7],
        }
    )
    html = _table_html("t", df)
    assert "847.667" not in html and "847.7" not in html
    assert "<td>848 ± 12</td>" in html and "<td>1,000</td>" in html
    assert "nonzero_<wbr>params (mean ± seed std)" in html and "params_<wbr>std" not in html
    assert "<td>0.9123</td>" in html  # other numbers as before


def test_a_wide_table_shows_its_verdict_first_in_a_scroll_box():
    """The demo's methods table hid its verdict column beyond the right edge."""
    from analysis.report import _CSS, _table_html

    df = pd.DataFrame(
        {
            "arch": ["cnn"],
            "base_label": ["arch=cnn depth=2"],
            "sparsity": [0.5],
            "diff_ci95_lo": [-1.0],
            "verdict": ["not resolved"],
        }
    )
    html = _table_html("t", df)
    heads = [h.split("</th>")[0] for h in html.split("<th>")[1:]]
    assert [h.replace("<wbr>", "") for h in heads] == [
        "arch",
        "base_label",
        "verdict",
        "sparsity",
        "diff_ci95_lo",
    ]
    assert "diff_<wbr>ci95_<wbr>lo" in html  # headers may wrap
    assert ".tbl{overflow:auto;max-height:75vh" in _CSS  # its scroll bar stays on screen
