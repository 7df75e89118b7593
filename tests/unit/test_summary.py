"""The end-of-sweep summary says what the analysis says: the same trial rows, seed aggregates and
Pareto set (it calls the analysis's functions), plus trials that failed before they started."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.load import load_experiment
from analysis.pareto import pareto_mask
from analysis.questions import analyse
from analysis.synthetic import write_experiment
from sparsity_tune import layout
from sparsity_tune.metrics import M
from sparsity_tune.sweep import plan as planner
from sparsity_tune.sweep.summary import print_summary, summarise, trials_frame
from sparsity_tune.sweep.validate import validate_spec

OBJECTIVES = {M.test_acc: "max", M.nonzero_params: "min"}
GRID = {"model.arch": ["mlp"], "model.depth": [1], "model.width": [32, 64]}


def test_summary_and_analysis_agree(tmp_path: Path) -> None:
    write_experiment(tmp_path, grid=GRID, seeds=(0, 1, 2), failed=1)
    s = summarise(trials_frame(tmp_path), OBJECTIVES)
    a = analyse(load_experiment(tmp_path))
    mine = s.configs.set_index("config_id")
    theirs = a.configs.set_index("config_id").loc[mine.index]
    for m in (M.test_acc, f"{M.test_acc}_std", M.nonzero_params, "n_seeds"):
        np.testing.assert_allclose(mine[m].astype(float), theirs[m].astype(float))
    c = s.configs
    expected = c[pareto_mask(c[M.nonzero_params], c[M.test_acc], "min", "max")]
    assert set(s.front["config_id"]) == set(expected["config_id"]) and len(s.front) >= 1
    assert s.counts[layout.FAILED] == 1 and s.counts[layout.FINISHED] == len(a.trials) - 1


def test_a_trial_that_failed_before_it_started_is_counted(tmp_path: Path, capsys) -> None:
    write_experiment(tmp_path, grid=GRID, seeds=(0,), name="s")
    early = tmp_path / "trial_early"
    early.mkdir()
    (early / layout.ERROR).write_text("ValueError: no such node\n")
    (early / "params.json").write_text('{"train.seed": 4, "model.width": 8}')
    plan = planner.build(validate_spec({"name": "s"}), str(tmp_path), str(tmp_path.parent))
    s = print_summary(plan)
    out = capsys.readouterr().out
    assert s.counts == {layout.FINISHED: 10, layout.FAILED: 1}
    assert "11 trial(s): 10 finished, 0 stopped early, 1 failed" in out
    assert "failed trials: early" in out and "best test_acc first" in out


def test_damaged_trials_make_the_sweep_exit_1(monkeypatch, capsys) -> None:
    """A trial whose files cannot be read is left out of every figure: the sweep must not say
    "all done" (exit 0) about it."""
    from types import SimpleNamespace

    from sparsity_tune.sweep import launch, summary
    from sparsity_tune.sweep.stop import Stop

    def fake(counts):
        monkeypatch.setattr(summary, "print_summary", lambda plan: SimpleNamespace(counts=counts))

    fake({layout.FINISHED: 3})
    assert launch._report(None, None, Stop()) == launch.EXIT_OK
    fake({layout.FINISHED: 3, layout.DAMAGED: 1})
    assert launch._report(None, None, Stop()) == launch.EXIT_FAILED
    assert "1 trial(s) have files that cannot be read" in capsys.readouterr().out
