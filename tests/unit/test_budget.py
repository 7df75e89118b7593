"""The memory estimate counts what a score holds while it scores, read from the registered score.

The network: MNIST-1D (40 inputs, 10 classes), an MLP 40-64-64-10 with the output layer unpruned;
its leaf modules' outputs per sample are Flatten 40, Linear 64, ReLU 64, Linear 64, ReLU 64,
Linear 10.
"""

from __future__ import annotations

import pytest

from sparsity_tune.keys import ConfigError
from sparsity_tune.trial import budget
from sparsity_tune.trial.config import trial_config
from sparsity_tune.trial.scores import Magnitude, ScoringMemory

N_PARAMS = (40 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)  # 7434
N_PRUNABLE = 40 * 64 + 64 * 64  # 6656: the output layer is not pruned
LARGEST = 64 * 64  # the largest prunable weight
PER_SAMPLE_ACT = (40 + 64 + 64 + 64 + 64 + 10) + 2 * 64  # every output, the largest twice
PER_SAMPLE_DATA = 40 * 4 + 8  # float32 inputs + an int64 label
EVAL_ACT = 256 * 2 * 64 * 4  # eval batch 256: larger than a training batch's 64 * 434 * 4
BASE = {
    "model.arch": "mlp",
    "model.depth": 2,
    "model.width": 64,
    "train.batch_size": 64,
    "train.eval_batch_size": 256,
    "dataset.train_limit": 800,
    "dataset.test_limit": 400,
    "pruning.method": "one_shot",
    "pruning.final_sparsity": 0.5,
}


def _need(**keys) -> budget.Need:
    return budget.estimate(trial_config({}, {**BASE, **keys}))


def _scoring(**keys) -> int:
    return dict(_need(**keys).parts)["scoring"]


def test_the_network_is_the_one_the_figures_assume() -> None:
    parts = dict(_need().parts)
    assert parts["parameters"] == N_PARAMS * 4
    assert parts["pruning scores"] == N_PRUNABLE * 4
    assert parts["activations (batch 64)"] == EVAL_ACT
    assert 64 * PER_SAMPLE_ACT * 4 < EVAL_ACT


@pytest.mark.parametrize(
    ("score", "want"),
    [
        ("magnitude", 0),
        ("random", 0),
        # a masked copy; accumulators + one batch's gradients; a layer temporary; 100 samples
        # held; the graph of 100 samples, beyond the evaluation batch's activations
        (
            "snip",
            (N_PARAMS + 2 * N_PRUNABLE + LARGEST) * 4
            + 100 * PER_SAMPLE_DATA
            + (100 * PER_SAMPLE_ACT * 4 - EVAL_ACT),
        ),
        # a masked copy; four weight-shaped buffers, two layer temporaries; a double-backward
        # graph of 100 samples
        (
            "grasp",
            (N_PARAMS + 4 * N_PRUNABLE + 2 * LARGEST) * 4
            + 100 * PER_SAMPLE_DATA
            + (2 * 100 * PER_SAMPLE_ACT * 4 - EVAL_ACT),
        ),
        # a float64 copy, float64 gradients and scores, a float64 layer temporary; one float64
        # sample (under EVAL_ACT)
        ("synflow", (2 * N_PARAMS + 3 * N_PRUNABLE + 2 * LARGEST) * 4),
    ],
)
def test_scoring_memory_per_registered_score(score: str, want: int) -> None:
    assert _scoring(**{"pruning.score": score}) == want


def test_score_data_keys_size_the_scoring_memory() -> None:
    grasp = {"pruning.score": "grasp", "pruning.score_batch_size": 10, "pruning.score_batches": 5}
    # 2 x 10 samples of graph stay under the evaluation batch's activations: only buffers + data
    assert _scoring(**grasp) == (N_PARAMS + 4 * N_PRUNABLE + 2 * LARGEST) * 4 + 50 * PER_SAMPLE_DATA
    for key in ("pruning.score", "pruning.score_batch_size", "pruning.score_batches"):
        assert budget.affects(key), key


def test_no_pruning_scores_nothing() -> None:
    assert _scoring(**{"pruning.score": "grasp", "pruning.method": "none"}) == 0


def test_the_estimate_reads_the_score_not_its_name(monkeypatch) -> None:
    """A score that declares copies is counted whatever its name: here ``magnitude``."""
    declared = ScoringMemory(
        model_copies=3, weight_buffers=0.5, held_samples=7, layer_temporaries=1
    )
    monkeypatch.setattr(Magnitude, "scoring_memory", classmethod(lambda cls, cfg: declared))
    want = (3 * N_PARAMS + N_PRUNABLE // 2 + LARGEST) * 4 + 7 * PER_SAMPLE_DATA
    assert _scoring() == want


def test_a_refusal_names_the_score_when_scoring_tips_it(monkeypatch) -> None:
    magnitude = _need().total
    monkeypatch.setattr(budget, "ram", lambda total=False: magnitude)
    budget.check_could_fit(trial_config({}, BASE))  # fits exactly
    with pytest.raises(ConfigError) as err:
        budget.check_could_fit(trial_config({}, {**BASE, "pruning.score": "synflow"}))
    message = str(err.value)
    assert "scoring 168.1 KiB" in message  # (2 x 7434 + 3 x 6656 + 2 x 4096) x 4 bytes
    assert message.endswith(
        "; or a lighter pruning.score (pruning.score='synflow' holds 168.1 KiB while it scores; "
        "pruning.score_batch_size and score_batches size its batches)"
    )


def test_imp_with_rewind_reinit_counts_the_ticket_it_trains_beside() -> None:
    """``rewind: reinit`` trains the winning ticket beside the re-initialised network: a second
    model with its gradients and optimizer state (adam: two buffers), on top of the rewind copy."""
    imp = {"pruning.method": "imp", "pruning.rounds": 2, "train.optimizer": "adam"}
    reinit = dict(_need(**imp, **{"pruning.rewind": "reinit"}).parts)
    assert reinit["reinit ticket"] == (1 + 1 + 2) * N_PARAMS * 4
    assert reinit["rewind copy"] == N_PARAMS * 4
    rewound = dict(_need(**imp, **{"pruning.rewind": "init"}).parts)
    assert rewound["reinit ticket"] == 0 and rewound["rewind copy"] == N_PARAMS * 4
    assert dict(_need().parts)["reinit ticket"] == 0  # one-shot pruning never rewinds
