"""Figure descriptions: both renderers draw every series; large groups are binned, not dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.charts import BINS, MAX_GROUP_POINTS, by_group_chart, front_chart
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
