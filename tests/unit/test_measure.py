"""Measured costs: live-tensor peak memory (exact, history-independent) and interleaved timing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch

from sparsity_tune.trial.measure import (
    PeakMemory,
    _LiveTensors,
    interleaved_ms,
    interleaved_times,
    log_ratio_summary,
)
from sparsity_tune.trial.trainer import Trainer

MB = 1 << 20


def _floats(nbytes: int) -> torch.Tensor:
    return torch.empty(nbytes // 4)


def test_live_tensors_count_state_allocations_and_frees_exactly():
    state = _floats(MB)
    with _LiveTensors([state]) as live:
        a = torch.ones(MB // 4)  # +1 MB (an operator's output)
        b = a * 2  # +1 MB: peak 3 MB
        del a, b  # both freed
        c = torch.zeros(MB // 8)  # +0.5 MB: below the peak
    assert live.peak() == 3 * MB
    del c


def test_a_state_tensor_freed_inside_the_window_stops_counting():
    holder = [_floats(2 * MB)]
    with _LiveTensors(holder) as live:
        holder.clear()  # freed before the next allocation
        x = torch.ones(MB // 4)
    assert live.peak() == 2 * MB  # never both at once
    del x


def test_an_input_not_listed_as_state_counts_from_the_start():
    unlisted = torch.ones(MB // 4)
    with _LiveTensors([]) as live:
        y = unlisted + 1  # reads 1 MB the window did not allocate, allocates 1 MB
    assert live.peak() == 2 * MB
    del y


def test_views_and_in_place_results_count_once():
    with _LiveTensors([]) as live:
        x = torch.ones(MB // 4)
        x.mul_(2)
        v = x.view(-1, 4).t()
        v.add_(1)
    assert live.peak() == MB


def test_only_the_probe_step_is_measured():
    mem = PeakMemory(torch.device("cpu"), probe_step=1)
    mem.start()
    with mem.step(0, lambda: []):
        _ = torch.ones(MB // 4)
    assert mem.peak() == 0
    with mem.step(1, lambda: []):
        _ = torch.ones(MB // 4)
    assert mem.peak() == MB


def test_interleaved_ms_returns_one_median_per_call():
    calls = []
    ms = interleaved_ms([lambda: calls.append("a"), lambda: calls.append("b")], repeats=5, warmup=1)
    assert len(ms) == 2 and all(m >= 0 for m in ms)
    # warm-up a, b; then turns whose order alternates: a, b / b, a / a, b / ...
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2 + ["a", "b"]


def test_interleaved_times_pairs_every_round_and_keeps_the_floor_of_rounds():
    clock = iter(range(1000))
    times = interleaved_times([lambda: next(clock), lambda: next(clock)], repeats=4, warmup=0)
    assert [len(t) for t in times] == [4, 4]
    slow = interleaved_times(
        [lambda: time.sleep(0.004)], repeats=20, warmup=1, budget_ms=1.0, min_repeats=7
    )
    assert len(slow[0]) == 7  # the budget would allow 1 round; the floor keeps 7


def test_log_ratio_summary_is_the_trimmed_mean_with_yuens_error():
    # 10 rounds, log-ratios log(2) + (-2..7)/100 and one stall: trim 1 each end (g = 1)
    logs = [math.log(2) + d / 100 for d in (-2, -1, 0, 1, 2, 3, 4, 5, 6)] + [3.0]
    ref = [math.exp(v) for v in logs]
    est, se, df = log_ratio_summary(ref, [1.0] * 10)
    kept = sorted(logs)[1:9]
    assert est == pytest.approx(sum(kept) / 8)
    wins = [kept[0], *kept, kept[-1]]
    mean_w = sum(wins) / 10
    s2 = sum((w - mean_w) ** 2 for w in wins) / 9
    assert se == pytest.approx(math.sqrt(9 * s2 / (8 * 7)))
    assert df == 7.0
    # fewer than 10 rounds: nothing trimmed, the plain mean and s / sqrt(n) on n - 1 df
    est, se, df = log_ratio_summary([2.0, 4.0, 8.0], [1.0, 1.0, 1.0])
    assert (est, df) == (pytest.approx(2 * math.log(2)), 2.0)
    assert se == pytest.approx(math.log(2) / math.sqrt(3))
    assert math.isnan(log_ratio_summary([2.0], [1.0])[1])
    with pytest.raises(ValueError, match="as many rounds"):
        log_ratio_summary([1.0, 2.0], [1.0])


SMALL = {"model.width": 48, "train.epochs": 2}
BIG = {"model.width": 1024, "model.depth": 3, "train.epochs": 1}


def _peaks(cfg) -> list[int]:
    records: list[dict] = []
    Trainer(cfg).run(records.append)
    return [r["peak_mem_bytes"] for r in records]


def test_peak_memory_does_not_depend_on_what_ran_before(small_config, tmp_path):
    """The same small trial measures the same after a much larger one in this process (as in a
    reused Ray worker) as it does first thing in a fresh process."""
    cfg = small_config(**SMALL)
    big = _peaks(small_config(**BIG))
    after_big = _peaks(cfg)
    script = (
        "import json, sys\n"
        "from sparsity_tune.trial.config import trial_config\n"
        "from sparsity_tune.trial.trainer import Trainer\n"
        "records = []\n"
        "Trainer(trial_config(json.loads(sys.argv[1]))).run(records.append)\n"
        "print(json.dumps([r['peak_mem_bytes'] for r in records]))\n"
    )
    fresh = json.loads(
        subprocess.run(
            [sys.executable, "-c", script, json.dumps(cfg.model_dump(mode="json"))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
    )
    assert max(big) > 10 * max(after_big)  # the earlier trial really was larger
    for a, f in zip(after_big, fresh, strict=True):
        assert abs(a - f) <= 0.05 * f, (after_big, fresh)
