"""Schedules: the target math, when each method's events fire, and when masks are final."""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.registry import SCHEDULES
from sparsity_tune.trial.schedule import Schedule, gradual_target, imp_target


def plan(steps_per_epoch: int = 10, **dotted) -> Schedule:
    cfg = trial_config({}, dotted)
    return SCHEDULES[cfg.pruning.method].from_config(cfg, steps_per_epoch)


def events(p: Schedule, epochs: int) -> dict[int, float]:
    return {e: t for e in range(epochs + 1) if (t := p.after_epoch(e)) is not None}


def finals(p: Schedule, epochs: int) -> list[int]:
    """Epochs at whose end the schedule says the masks are final."""
    return [e for e in range(epochs + 1) if p.is_final(e, e * 10)]


def test_dense_never_prunes():
    p = plan()
    assert events(p, 30) == {} and p.after_step(5) is None
    assert not p.per_step and not p.rewinds and p.segment_epochs == 30
    assert finals(p, 3) == [0, 1, 2, 3]  # no event ever comes: final from the start


def test_one_shot_fires_once_at_start_epoch_including_init():
    p = plan(
        **{
            "pruning.method": "one_shot",
            "pruning.final_sparsity": 0.9,
            "pruning.start_epoch": 5,
        }
    )
    assert events(p, 30) == {5: 0.9}
    assert finals(p, 8) == [5, 6, 7, 8]
    p0 = plan(**{"pruning.method": "one_shot", "pruning.final_sparsity": 0.9})
    assert events(p0, 30) == {0: 0.9}
    assert p0.is_final(0, 0)


def test_gradual_epoch_frequency_hits_start_multiples_and_end():
    p = plan(
        **{
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.8,
            "pruning.start_epoch": 2,
            "pruning.end_epoch": 9,
            "pruning.frequency": 3,
            "pruning.schedule": "linear",
        }
    )
    ev = events(p, 30)
    assert sorted(ev) == [2, 5, 8, 9]
    assert ev[2] == 0.0 and ev[9] == pytest.approx(0.8)
    assert ev[5] == pytest.approx(0.8 * 3 / 7)
    assert finals(p, 11) == [9, 10, 11]  # only after the last event, not after 2, 5 or 8
    assert max(ev) == min(finals(p, 30))


def test_gradual_step_unit_fires_on_steps_not_epochs():
    p = plan(
        steps_per_epoch=10,
        **{
            "pruning.method": "gradual",
            "pruning.final_sparsity": 0.5,
            "pruning.start_epoch": 1,
            "pruning.end_epoch": 3,
            "pruning.frequency": 7,
            "pruning.frequency_unit": "step",
            "pruning.schedule": "linear",
        },
    )
    assert p.per_step
    assert events(p, 30) == {}
    fired = {s: t for s in range(0, 40) if (t := p.after_step(s)) is not None}
    assert sorted(fired) == [10, 17, 24, 30]
    assert fired[30] == pytest.approx(0.5) and fired[17] == pytest.approx(0.5 * 7 / 20)
    assert [s for s in range(40) if p.is_final(3, s)] == list(range(30, 40))  # steps decide


def test_imp_fires_after_each_round_up_to_rounds():
    p = plan(
        **{"pruning.method": "imp", "pruning.rate": 0.2, "pruning.rounds": 3, "train.epochs": 20}
    )
    ev = events(p, 20)
    assert sorted(ev) == [5, 10, 15]
    assert ev[15] == pytest.approx(1 - 0.8**3)
    assert p.rewinds and p.segment_epochs == 5
    assert finals(p, 20)[0] == 15  # the last prune-and-rewind; the last round trains after it


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_registered_schedule_validates_builds_and_is_final_after_its_last_event(name):
    """Registry round trip: the name validates, builds, and is_final turns True exactly at the
    last event (or at once, with no event) and stays True."""
    cfg = trial_config(
        {}, {"pruning.method": name, "pruning.final_sparsity": 0.5, "train.epochs": 8}
    )
    p = SCHEDULES[name].from_config(cfg, 4)
    assert p.name == name and type(p) is SCHEDULES[name]
    ev = events(p, 8)
    flags = [p.is_final(e, e * 4) for e in range(9)]
    assert flags == sorted(flags)  # False ... False True ... True
    # a schedule that regrows changes its masks until end_step (75% of 8 epochs x 4 steps: 24)
    last = -(-p.end_step // 4) if p.regrows else (max(ev) if ev else 0)
    assert flags.index(True) == last
    assert all(0.0 <= t < 1.0 for t in ev.values())


def test_schedules_import_no_torch():
    """Configs validate through the schedules, so they must not pull torch in (see config)."""
    import subprocess

    code = "import sys, sparsity_tune.trial.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------------- the math

S_I, S_F, T0, T1 = 0.1, 0.9, 2, 6


@pytest.mark.parametrize(
    ("kind", "mid"),
    [
        ("cubic", 0.8),  # 0.9 + (0.1 - 0.9) * 0.5**3
        ("linear", 0.5),  # 0.1 + 0.8 * 0.5
        ("exponential", 0.7),  # 1 - 0.9 * (0.1 / 0.9) ** 0.5 = 1 - 0.9 / 3
    ],
)
def test_gradual_target_at_its_ends_and_midpoint(kind, mid):
    assert gradual_target(0, T0, T1, S_I, S_F, kind) == 0.0
    assert gradual_target(1.999, T0, T1, S_I, S_F, kind) == 0.0
    assert gradual_target(T0, T0, T1, S_I, S_F, kind) == pytest.approx(S_I)
    assert gradual_target(4, T0, T1, S_I, S_F, kind) == pytest.approx(mid)
    assert gradual_target(T1, T0, T1, S_I, S_F, kind) == S_F
    assert gradual_target(100, T0, T1, S_I, S_F, kind) == S_F
    ts = [T0 + i * (T1 - T0) / 40 for i in range(41)]
    values = [gradual_target(t, T0, T1, S_I, S_F, kind) for t in ts]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))


def test_gradual_target_quarter_points_by_hand():
    # cubic, s_i = 0: 0.8 * (1 - 0.75**3) = 0.8 * 0.578125
    assert gradual_target(1, 0, 4, 0.0, 0.8, "cubic") == pytest.approx(0.4625)
    assert gradual_target(3, 0, 4, 0.0, 0.8, "linear") == pytest.approx(0.6)
    # exponential: density (1/16) ** 0.25 = 1/2
    assert gradual_target(25, 0, 100, 0.0, 1 - 1 / 16, "exponential") == pytest.approx(0.5)
    # cubic front-loads: three quarters of the way up after half the time
    assert gradual_target(50, 0, 100, 0.0, 1.0, "cubic") == pytest.approx(0.875)


@pytest.mark.parametrize("kind", ["cubic", "linear", "exponential"])
def test_gradual_target_with_zero_length_schedule(kind):
    assert gradual_target(2.9, 3, 3, 0.2, 0.7, kind) == 0.0
    assert gradual_target(3, 3, 3, 0.2, 0.7, kind) == 0.7
    assert gradual_target(9, 3, 3, 0.2, 0.7, kind) == 0.7


def test_gradual_target_rejects_bad_arguments():
    with pytest.raises(ValueError, match="t1=1"):
        gradual_target(0, 2, 1, 0.0, 0.5, "cubic")
    with pytest.raises(ValueError, match=r"s_f=1\.5"):
        gradual_target(0, 0, 1, 0.0, 1.5, "cubic")
    with pytest.raises(ValueError, match="quadratic"):
        gradual_target(0, 0, 1, 0.0, 0.5, "quadratic")


def test_imp_target_is_one_minus_survival_to_the_rounds():
    assert imp_target(0, 0.2) == 0.0
    assert imp_target(1, 0.2) == pytest.approx(0.2)
    assert imp_target(2, 0.2) == pytest.approx(0.36)
    assert imp_target(3, 0.2) == pytest.approx(0.488)
    assert imp_target(5, 0.5) == pytest.approx(1 - 1 / 32)
    with pytest.raises(ValueError):
        imp_target(-1, 0.2)
    with pytest.raises(ValueError):
        imp_target(1, 1.0)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 0.99),
    st.sampled_from(["cubic", "linear", "exponential"]),
)
def test_property_gradual_target_stays_between_its_ends(p, s_i, s_f, kind):
    lo, hi = min(s_i, s_f), max(s_i, s_f)
    lo = min(lo, 0.99)
    v = gradual_target(10 + 90 * p, 10, 100, lo, hi, kind)
    assert lo - 1e-12 <= v <= hi + 1e-12
