"""Which steps a W&B run already holds is read from its files with W&B's own reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparsity_tune import wandb_setup
from sparsity_tune.sweep import wandb_log

pytestmark = pytest.mark.slow


def test_steps_come_from_the_run_files_and_empty_fragments_go(tmp_path: Path) -> None:
    import wandb

    rid = wandb_setup.run_id("exp", "t1")
    run = wandb.init(
        project="p",
        id=rid,
        dir=str(tmp_path),
        mode="offline",
        resume="allow",
        reinit="create_new",
        settings=wandb_setup.wandb_settings(),
    )
    for step in (1, 2, 3):
        run.log({"val_acc": step / 10}, step=step)
    run.finish(exit_code=1)  # interrupted: steps 1..3 are in the file
    (real,) = wandb_log.run_dirs(tmp_path, rid)

    # a fragment cut right after its header (a launcher SIGKILLed after wandb.init), and one
    # killed before wandb-core created its log: both hold nothing and are removed
    header_only = real.with_name(f"offline-run-29990101_000000-{rid}")
    header_only.mkdir()
    log = next(real.glob("*.wandb"))
    (header_only / log.name).write_bytes(log.read_bytes()[:7])
    no_log = real.with_name(f"offline-run-29990101_000001-{rid}")
    no_log.mkdir()
    # W&B's name for a second run directory in the same second: "-<n>" appended
    suffixed = real.with_name(f"offline-run-29990101_000001-{rid}-3")
    (suffixed / "logs").mkdir(parents=True)
    other = real.with_name(f"offline-run-29990101_000001-{rid}0")  # another run's id
    other.mkdir()
    assert set(wandb_log.run_dirs(tmp_path, rid)) == {real, header_only, no_log, suffixed}

    found = wandb_log.scan_run(tmp_path, rid)
    assert found.steps == [1, 2, 3] and not found.finished
    assert wandb_log.run_dirs(tmp_path, rid) == [real]
    assert other.exists()  # not this run's

    # the log of a launcher killed mid-write: W&B's reader stops at the tear, without error
    cut = real.with_name(f"offline-run-29990101_000002-{rid}")
    shutil.copytree(real, cut)
    cut_log = next(cut.glob("*.wandb"))
    cut_log.write_bytes(cut_log.read_bytes()[:-40])
    assert wandb_log.scan_run(tmp_path, rid, prune_empty=False).steps[:3] == [1, 2, 3]
