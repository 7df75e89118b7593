"""The replay of ``benchmarks/bench_mo_stopping.py`` counts budget and hypervolume exactly.

Its figures (trial-epochs spent, normalized hypervolume) are the issue's verdict on the stopping
rules, so the accounting is checked on hand-made curves where every number is known.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_mo_stopping as bench


def trial(tid: int, config: str, seed: int, acc: list[float], params: list[float]) -> bench.Trial:
    return bench.Trial(
        tid, config, seed, np.array(acc), np.array(params), params[-1], 1.0 + tid, 10.0
    )


def trials() -> list[bench.Trial]:
    # 8 epochs each; "cheap" (10 params) and "big" (1000 params), 2 seeds each
    big = [0.5] * 7 + [0.9]
    cheap = [0.4] * 8
    return [
        trial(0, "cheap", 0, cheap, [10.0] * 8),
        trial(1, "cheap", 1, cheap, [10.0] * 8),
        trial(2, "big", 0, big, [1000.0] * 8),
        trial(3, "big", 1, big, [1000.0] * 8),
    ]


class StopAtTwo(bench.Grid):
    def result(self, t: bench.Trial, epoch: int) -> str:
        return "stop" if epoch == 2 else "continue"


def test_grid_spends_everything_and_keeps_the_whole_front() -> None:
    ts = trials()
    fronts = bench.Fronts(ts)
    out = bench.replay(bench.Grid(ts, 2, 3), ts, [0, 1, 2, 3], 2, fronts)
    assert out["budget"] == 1.0
    assert out["log_params@end"] == pytest.approx(1.0)
    assert out["latency@end"] == pytest.approx(1.0)


def test_stopping_everyone_at_epoch_two_spends_a_quarter() -> None:
    ts = trials()
    fronts = bench.Fronts(ts)
    out = bench.replay(StopAtTwo(ts, 2, 3), ts, [0, 1, 2, 3], 2, fronts)
    assert out["budget"] == 0.25  # 4 trials x 2 of 8 epochs
    # log10 costs 1 and 3; reference x = 3 + 0.1 * 2 = 3.2, y 0.1.
    # grid: cheap (1, 0.4), big (3, 0.9): (3 - 1) * 0.3 + (3.2 - 3) * 0.8 = 0.76
    # stopped at 2: big is at 0.5: 2 * 0.3 + 0.2 * 0.4 = 0.68
    assert fronts.full["log_params"] == pytest.approx(0.76)
    assert out["log_params@end"] == pytest.approx(0.68 / 0.76)
    # checkpoints passed on the way: at 25% the front is the end one
    assert out["log_params@25%"] == pytest.approx(0.68 / 0.76)
    assert out["log_params@50%"] == out["log_params@end"]  # ended earlier: its final front


def test_pareto_rule_replays_on_target_costs() -> None:
    ts = trials()
    rule = bench.Pareto(ts, 2, 3, level=0.9, noise_floor=0.0)
    assert rule.rungs.milestones == (2, 6)
    # seeds identical: no spread; big (1000 params) at 0.5 > cheap's 0.4: never dominated
    out = bench.replay(rule, ts, [0, 1, 2, 3], 4, bench.Fronts(ts))
    assert out["budget"] == 1.0 and not rule.rungs.stopped


def test_pending_seeds_of_a_stopped_configuration_never_start() -> None:
    # cheap (10 params) at 0.9, big (1000) at 0.4: big's first seed stops at the rung of epoch
    # 2 (0.4 + 1.28 * 0.01 < 0.9); its second seed, still queued, never starts (as under Ray)
    ts = [
        trial(0, "cheap", 0, [0.9] * 8, [10.0] * 8),
        trial(1, "cheap", 1, [0.9] * 8, [10.0] * 8),
        trial(2, "big", 0, [0.4] * 8, [1000.0] * 8),
        trial(3, "big", 1, [0.4] * 8, [1000.0] * 8),
    ]
    rule = bench.Pareto(ts, 2, 3, level=0.9, noise_floor=0.01)
    seen: dict[int, int] = {}
    result = rule.result
    rule.result = lambda t, e: seen.__setitem__(t.tid, e) or result(t, e)
    out = bench.replay(rule, ts, [0, 2, 1, 3], 2, bench.Fronts(ts))
    assert set(rule.rungs.stopped) == {"big"}
    assert seen == {0: 8, 2: 2, 1: 8}  # trial 3 trained no epoch
    assert out["budget"] == (8 + 2 + 8) / 32


def test_select_keeps_the_matching_trials_and_names_a_bad_key() -> None:
    mlp = bench.load(bench.DATA, {"arch": "mlp"})
    assert len(mlp) == 66 and {t.config.split("/")[0] for t in mlp} == {"mlp"}
    dense = [t for t in mlp if t.settings["final_sparsity"] == 0]
    assert len(dense) == 6 and {t.clock.kind for t in dense} == {"none"}
    with pytest.raises(SystemExit, match="--select depth=2: no such column"):
        bench.load(bench.DATA, {"depth": "2"})
