"""When pruning events fire, for each method (the targets themselves are tested in test_pruning)."""

from __future__ import annotations

import pytest

from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.schedule import PruningPlan


def plan(steps_per_epoch: int = 10, **dotted) -> PruningPlan:
    return PruningPlan.from_config(trial_config({}, dotted), steps_per_epoch)


def events(p: PruningPlan, epochs: int) -> dict[int, float]:
    return {e: t for e in range(epochs + 1) if (t := p.after_epoch(e)) is not None}


def test_dense_never_prunes():
    p = plan()
    assert events(p, 30) == {} and p.after_step(5) is None


def test_one_shot_fires_once_at_start_epoch_including_init():
    assert events(
        plan(
            **{
                "pruning.method": "one_shot",
                "pruning.final_sparsity": 0.9,
                "pruning.start_epoch": 5,
            }
        ),
        30,
    ) == {5: 0.9}
    assert events(plan(**{"pruning.method": "one_shot", "pruning.final_sparsity": 0.9}), 30) == {
        0: 0.9
    }


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
    assert events(p, 30) == {}
    fired = {s: t for s in range(0, 40) if (t := p.after_step(s)) is not None}
    assert sorted(fired) == [10, 17, 24, 30]
    assert fired[30] == pytest.approx(0.5) and fired[17] == pytest.approx(0.5 * 7 / 20)


def test_imp_fires_after_each_round_up_to_rounds():
    p = plan(
        **{"pruning.method": "imp", "pruning.rate": 0.2, "pruning.rounds": 3, "train.epochs": 20}
    )
    ev = events(p, 20)
    assert sorted(ev) == [5, 10, 15]
    assert ev[15] == pytest.approx(1 - 0.8**3)
    assert p.rewinds
