"""What a trial sends Tune and when (trainable._Cadence), and the measurement budget of
measure.interleaved_ms: both on a fake clock, so nothing here depends on the machine's speed."""

from __future__ import annotations

import pytest

from sparsity_tune.sweep import trainable
from sparsity_tune.sweep.validate import validate_spec
from sparsity_tune.trial import measure


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(trainable.time, "monotonic", c)
    return c


def decisions(cadence: trainable._Cadence, clock: Clock, epoch_s: float, epochs: int) -> dict:
    out = {}
    for epoch in range(1, epochs + 1):
        clock.t += epoch_s
        out[epoch] = cadence.decide(epoch)
    return out


def test_checkpoints_every_n_epochs_when_the_floor_is_zero(clock: Clock) -> None:
    got = decisions(trainable._Cadence(2, 0.0, 1e9), clock, 0.2, 7)
    assert [e for e, d in got.items() if d == "checkpoint"] == [2, 4, 6]
    assert all(d is None for e, d in got.items() if e % 2)


def test_checkpoints_no_closer_than_the_floor(clock: Clock) -> None:
    # epochs of 1 s, every 2 epochs, at least 5 s apart: epochs 6, 12, 18 (not 2, 4, 8, ...)
    got = decisions(trainable._Cadence(2, 5.0, 1e9), clock, 1.0, 19)
    assert [e for e, d in got.items() if d == "checkpoint"] == [6, 12, 18]


def test_plain_results_at_most_once_per_interval_and_a_checkpoint_counts_as_one(
    clock: Clock,
) -> None:
    got = decisions(trainable._Cadence(4, 0.0, 1.0), clock, 0.3, 9)
    # results when a second has passed since the last one sent: 0.3 s epochs -> every 4th;
    # the checkpoint at epoch 4 and 8 resets the clock of plain results
    assert got == {
        1: None,
        2: None,
        3: None,
        4: "checkpoint",
        5: None,
        6: None,
        7: None,
        8: "checkpoint",
        9: None,
    }


def test_fifo_sends_fewer_results_than_asha() -> None:
    assert trainable.report_interval("asha") == trainable.REPORT_INTERVAL_S
    assert trainable.report_interval("fifo") > trainable.report_interval("asha")


def test_checkpoint_floor_is_a_validated_search_key() -> None:
    spec = validate_spec({"name": "x", "search": {"checkpoint_min_interval_s": 0}})
    assert spec.search.checkpoint_min_interval_s == 0
    assert validate_spec({"name": "x"}).search.checkpoint_min_interval_s == 5.0
    with pytest.raises(Exception, match="checkpoint_min_interval_s"):
        validate_spec({"name": "x", "search": {"checkpoint_min_interval_s": -1}})


def test_interleaved_ms_times_fewer_rounds_of_slow_calls(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])

    def call(ms: float):
        def run() -> None:
            now[0] += ms / 1e3
            runs.append(ms)

        return run

    # a round of 10 ms: 20 rounds would take 200 ms; a 45 ms budget times 5 (the floor)
    runs: list[float] = []
    got = measure.interleaved_ms([call(4.0), call(6.0)], repeats=20, warmup=2, budget_ms=45)
    assert got == pytest.approx([4.0, 6.0]) and len(runs) == 2 * (2 + 5)
    # a budget of 120 ms: 12 rounds
    runs = []
    measure.interleaved_ms([call(4.0), call(6.0)], repeats=20, warmup=2, budget_ms=120)
    assert len(runs) == 2 * (2 + 12)
    # fast calls, or no budget: all 20
    runs = []
    measure.interleaved_ms([call(0.1)], repeats=20, warmup=1, budget_ms=45)
    assert len(runs) == 21
    runs = []
    measure.interleaved_ms([call(6.0)], repeats=20, warmup=1)
    assert len(runs) == 21


def test_rung_epochs_are_always_sent(clock: Clock) -> None:
    got = decisions(trainable._Cadence(100, 0.0, 1e9, always=(1, 2, 4)), clock, 0.01, 6)
    assert [e for e, d in got.items() if d == "result"] == [1, 2, 4]
