"""How the report words a number (analysis.wording): exact strings, edge cases included."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import wording as w
from analysis.stats import BETTER, NOT_CONVERGED, UNRESOLVED, WORSE

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("v", "want"),
    [(0.94213, "0.942"), (12.5833, "12.583"), (10.0, "10"), (61812.4, "61,812"), (NAN, "n/a")],
)
def test_fmt(v: float, want: str) -> None:
    assert w.fmt(v) == want


def test_whole_sp_pct_times() -> None:
    assert (w.whole(26701.6), w.whole(NAN)) == ("26,702", "n/a")
    assert (w.sp(0.937512), w.sp(0.0), w.sp(NAN)) == ("0.9375", "0", "n/a")
    assert (w.pct(0.875), w.pct(0.87512)) == ("87.5%", "87.5%")
    assert w.times(2.2834) == "2.28x"
    assert w.times(1.003) == "1.0030x"  # near 1: four decimals, not "1.00x"
    assert w.times(1.0) == "1.00x"
    assert w.times(12.34) == "12.3x"
    assert w.times(NAN) == "n/a"


def test_signed_and_interval() -> None:
    assert (w.signed(0.4321), w.signed(-1.4), w.signed(-0.001)) == ("+0.43", "-1.40", "+0.00")
    assert w.signed(NAN) == "n/a"
    assert w.interval(-2.481, 3.349) == "95% CI [-2.48, +3.35]"
    assert w.interval(NAN, 1.0) == "no interval (a side has one seed)"
    row = pd.Series({"diff_pts": 0.43, "diff_ci95_lo": -2.48, "diff_ci95_hi": 3.35})
    assert w.diff(row) == "+0.43 points (95% CI [-2.48, +3.35])"
    assert w.diff(row, "epochs") == "+0.43 epochs (95% CI [-2.48, +3.35])"


def test_seeds_phrase() -> None:
    assert w.seeds_phrase(71.0) == "about 71 seeds per configuration"
    assert w.seeds_phrase(INF).startswith("more than 1000 seeds")
    assert w.seeds_phrase(NAN) == "at least 2 seeds per configuration to measure the noise"


def test_counts_names_not_converged_only_when_present() -> None:
    words = {BETTER: "faster", WORSE: "slower", UNRESOLVED: "not resolved"}
    v = pd.Series([WORSE, UNRESOLVED, UNRESOLVED])
    assert w.counts(v, words) == "faster at 0, slower at 1, not resolved at 2 of 3"
    v = pd.Series([BETTER, NOT_CONVERGED])
    assert w.counts(v, words) == (
        f"faster at 1, slower at 0, not resolved at 0, {NOT_CONVERGED} at 1 of 2"
    )
