"""Strategy registry round trip: every registered method x score x granularity either validates
and trains to the sparsity its granularity promises, or is refused naming both keys."""

from __future__ import annotations

import itertools

import pytest
import torch

from sparsity_tune.keys import ConfigError
from sparsity_tune.trial import granularity, nm, schedule, scores, structured
from sparsity_tune.trial.pruning import count_pruned
from sparsity_tune.trial.registry import GRANULARITIES, SCHEDULES, SCORES
from sparsity_tune.trial.trainer import Trainer

COMBOS = list(itertools.product(SCHEDULES, SCORES, GRANULARITIES))
# a fixed N:M pattern has one event; set/rigl drop and regrow single weights; iterative SynFlow
# needs a sequence of targets, which a fixed pattern does not have
REFUSED = {
    ("gradual", "nm"): ("pruning.method='gradual'", "pruning.granularity='nm'"),
    ("imp", "nm"): ("pruning.method='imp'", "pruning.granularity='nm'"),
    ("set", "nm"): ("pruning.method='set'", "pruning.granularity='nm'"),
    ("rigl", "nm"): ("pruning.method='rigl'", "pruning.granularity='nm'"),
    ("set", "structured"): ("pruning.method='set'", "pruning.granularity='structured'"),
    ("rigl", "structured"): ("pruning.method='rigl'", "pruning.granularity='structured'"),
}


def test_registries_hold_every_strategy_class_under_its_own_name():
    for registry, base in (
        (SCHEDULES, schedule.Schedule),
        (SCORES, scores.Score),
        (GRANULARITIES, granularity.Granularity),
    ):
        assert all(issubclass(cls, base) and cls.name == n for n, cls in registry.items())
    assert set(SCHEDULES) == {"none", "one_shot", "gradual", "imp", "set", "rigl"}
    assert set(SCORES) == {"magnitude", "random", "snip", "grasp", "synflow"}
    assert {
        "unstructured": granularity.Unstructured,
        "nm": nm.NM,
        "structured": structured.Structured,
    } == GRANULARITIES


@pytest.mark.parametrize(("method", "score", "gran"), COMBOS, ids=["-".join(c) for c in COMBOS])
def test_every_combination_runs_or_is_refused_by_name(small_config, method, score, gran):
    settings = {
        "dataset.train_limit": 200,
        "dataset.test_limit": 100,
        "model.hidden": [12, 8],
        "train.epochs": 2,
        "pruning.method": method,
        "pruning.score": score,
        "pruning.granularity": gran,
        "pruning.final_sparsity": 0.5,
        "pruning.rounds": 1,
    }
    refused = REFUSED.get((method, gran))
    if score == "synflow" and gran == "nm":  # default synflow_iterations: 100
        refused = ("pruning.synflow_iterations=100", "pruning.granularity='nm'")
    if refused is not None:
        with pytest.raises(ConfigError) as err:
            small_config(**settings)
        assert all(key in str(err.value) for key in refused), str(err.value)
        return
    trainer = Trainer(small_config(**settings))
    records: list[dict] = []
    trainer.run(records.append)
    assert len(records) == 2
    final = records[-1]
    if method == "none":
        assert final["sparsity"] == 0.0
    else:  # pruned, to what the granularity allows for the target, and applied to the weights
        lo, hi = trainer.granularity.allowed_pruned(trainer.dense_masks(), final["target_sparsity"])
        assert lo <= count_pruned(trainer.dense_masks()) <= hi
        # imp: one round at the default rate 0.2; nm: 1 - n/m = 0.5 whatever final_sparsity says
        assert final["target_sparsity"] == pytest.approx(0.2 if method == "imp" else 0.5)
        assert final["sparsity"] > 0.1
        for name, p in trainer.params.items():
            assert torch.all(p[~trainer.masks[name]] == 0), name


# ------------------------------------------------------------------ keys a piece owns


def test_pieces_own_their_keys_and_the_pruning_section_collects_them():
    """snip and grasp declare their data needs in saliency.py, synflow its passes; set and rigl
    ``update_every``, ``end_step``, ``drop_fraction`` in dst.py, once for both. The pruning
    section ends with them (scores first), defaults as declared."""
    from sparsity_tune.trial.config import PruningConfig
    from sparsity_tune.trial.dst import SET, DynamicSparseKeys, RigL
    from sparsity_tune.trial.registry import piece_keys
    from sparsity_tune.trial.saliency import Grasp, ScoreDataKeys, Snip, SynFlow, SynFlowKeys

    keys = piece_keys()
    assert list(keys) == [
        "score_batch_size",
        "score_batches",
        "synflow_iterations",
        "update_every",
        "end_step",
        "drop_fraction",
    ]
    assert Snip.config_keys is Grasp.config_keys is ScoreDataKeys
    assert SynFlow.config_keys is SynFlowKeys
    assert SET.config_keys is RigL.config_keys is DynamicSparseKeys
    unowned = [*GRANULARITIES.values(), scores.Magnitude, scores.Random, schedule.Iterative]
    assert all(piece.config_keys is None for piece in unowned)
    assert list(PruningConfig.model_fields)[-6:] == list(keys)
    p = PruningConfig()
    assert (p.score_batch_size, p.score_batches, p.synflow_iterations) == (100, 1, 100)
    assert (p.update_every, p.end_step, p.drop_fraction) == (100, None, 0.3)
    with pytest.raises(ConfigError, match=r"pruning\.update_every=0: allowed: greater than or"):
        from sparsity_tune.trial.config import trial_config

        trial_config({}, {"pruning.update_every": 0})


def test_a_key_declared_twice_differently_is_refused(monkeypatch):
    from pydantic import BaseModel, Field

    from sparsity_tune.trial.registry import piece_keys

    class Clash(BaseModel):
        update_every: int = Field(5, ge=1)

    monkeypatch.setattr(scores.Random, "config_keys", Clash)
    with pytest.raises(TypeError) as err:
        piece_keys()
    assert str(err.value) == (
        "pruning.update_every is declared by both Clash and DynamicSparseKeys; declare it once "
        "and share the declaration"
    )


def test_every_key_a_piece_owns_keeps_older_identities():
    """A key a piece adds must sit in ``LATER_DEFAULTS`` at its declared default, or every
    ``config_id`` written before it existed would change."""
    from sparsity_tune.keys import LATER_DEFAULTS
    from sparsity_tune.trial.registry import piece_keys

    declared = {f"pruning.{k}": field.default for k, (_, field) in piece_keys().items()}
    assert {k: LATER_DEFAULTS.get(k, "missing") for k in declared} == declared
