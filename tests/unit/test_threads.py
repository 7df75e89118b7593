"""The single-trial CLI's default torch thread count (device.default_threads)."""

from __future__ import annotations

import pytest

from sparsity_tune.trial import device, trainer


@pytest.mark.parametrize(
    ("allowance", "machine", "load", "want"),
    [
        (2, 2, 0.1, 2),  # quiet: every CPU
        (2, 2, 0.7, 1),  # most of a core busy already
        (2, 2, 2.0, 1),  # two busy processes: one thread, never zero
        (2, 2, 9.0, 1),
        (8, 8, 3.2, 5),
        (2, 64, 16.0, 2),  # a busy big machine, this process pinned to 2 of its CPUs: 0.5 busy
        (4, 64, 64.0, 1),
    ],
)
def test_default_threads_is_the_allowance_less_the_load(
    monkeypatch, allowance: int, machine: int, load: float, want: int
) -> None:
    monkeypatch.setattr(device, "cpu_allowance", lambda: allowance)
    monkeypatch.setattr(device.os, "cpu_count", lambda: machine)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (load, load, load))
    assert device.default_threads() == want


def test_the_cli_default_applies_only_without_threads_or_a_cpu_share(
    monkeypatch, small_config
) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(device, "default_threads", lambda: 3)
    try:
        unset = small_config(**{"train.epochs": 1, "train.threads": None})
        assert trainer.Trainer(unset).threads == 3 == torch.get_num_threads()
        assert trainer.Trainer(unset, cpus=2.0).threads == 2  # a sweep's resources.cpu
        assert trainer.Trainer(unset, cpus=0.5).threads == 1
        assert trainer.Trainer(small_config(**{"train.epochs": 1})).threads == 1  # given
    finally:
        torch.set_num_threads(before)
