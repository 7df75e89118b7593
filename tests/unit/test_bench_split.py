"""The overhead split that ``benchmarks/bench_sweep_efficiency.py`` prints adds up.

The benchmark reports the issue's figure, overhead per trial, and splits it into a start-up paid
once per worker slot, a marginal cost paid by every trial and the end of the sweep; a split that
did not add up to the figure it explains would mislead whoever reads it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_sweep_efficiency as bench

TRAINER = bench.TRAINER


def line(pid: int, start: float, end: float, trainer: float) -> dict:
    return {
        "pid": pid,
        "start": start,
        "end": end,
        "thread_cpu": trainer,
        "process_cpu": trainer,
        "items": {TRAINER: [trainer, trainer, 1]},
    }


def test_split_adds_up_to_the_overhead(tmp_path: Path) -> None:
    # two worker slots over a 30 s sweep; the later trials' times outside the trainer (0.5, 0.8,
    # 0.1) have a mean (0.467) unlike their median (0.5), which must not leave a remainder
    lines = [
        line(1, 2.0, 12.0, 9.0),
        line(1, 12.5, 21.0, 8.0),
        line(2, 3.0, 14.0, 9.5),
        line(2, 14.2, 29.0, 14.0),
        line(1, 21.0, 25.1, 4.0),
    ]
    (tmp_path / "workers.jsonl").write_text("".join(f"{json.dumps(x)}\n" for x in lines))
    profile = bench._profile(tmp_path, {}, {}, t_start=0.0, t_end=30.0)
    work = sum(x["items"][TRAINER][1] for x in lines)
    r = bench.Result("long", len(lines), 10, 30.0, 0.0, work, work, 2, {}, "", "", profile=profile)
    start, marginal, end = bench.split(r)
    assert start + marginal + end == pytest.approx(r.overhead)
    # by hand: heads 2 + 3 s, first trials 1 and 1.5 s outside the trainer against the later
    # ones' mean; gaps 0.5 + 0.2 s; tails 30 - 25.1 and 30 - 29 s
    mean = (0.5 + 0.1 + 0.8) / 3
    assert start == pytest.approx((2 + 3 + (1 - mean) + (1.5 - mean)) / 5)
    assert marginal == pytest.approx((mean * 5 + 0.7) / 5)
    assert end == pytest.approx((4.9 + 1.0) / 5)


def test_no_split_when_a_cpu_had_no_worker(tmp_path: Path) -> None:
    (tmp_path / "workers.jsonl").write_text(json.dumps(line(1, 1.0, 5.0, 3.0)) + "\n")
    profile = bench._profile(tmp_path, {}, {}, t_start=0.0, t_end=6.0)
    r = bench.Result("short", 1, 1, 6.0, 0.0, 3.0, 3.0, 2, {}, "", "", profile=profile)
    assert bench.split(r) is None
