"""Operating points on hand-built histories: IMP rounds, the three convergence definitions, and
each (point, seed) counted once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import load_experiment
from analysis.points import P, operating_points
from analysis.synthetic import write_trial
from analysis.tables import add_config_ids
from sparsity_tune.metrics import RECORD_KEYS, M


def records(val_acc, val_loss, test_acc, sparsity, peak=None):
    """One record per epoch; target_sparsity = sparsity (IMP rounds are told apart by it)."""
    out = []
    for i, (va, vl, ta, sp) in enumerate(zip(val_acc, val_loss, test_acc, sparsity, strict=True)):
        r = dict.fromkeys(RECORD_KEYS, 0.0)
        r.update(
            epoch=i + 1,
            val_acc=va,
            val_loss=vl,
            test_acc=ta,
            sparsity=sp,
            target_sparsity=sp,
            total_params=1000,
            nonzero_params=1000 - 800 * sp,
            peak_mem_bytes=(peak or [100] * len(val_acc))[i],
        )
        out.append(r)
    return out


def trial(root: Path, tid: str, seed: int, recs: list, summary: dict | None = None, **pruning):
    cfg = {
        "trial_id": tid,
        "experiment": "hand",
        "seed": seed,
        "params": {},
        "config": {
            "model": {"arch": "mlp", "depth": 1, "width": 8},
            "train": {"epochs": len(recs), "seed": seed},
            "pruning": {"method": "none", "score": "magnitude", "rewind": "init", **pruning},
        },
    }
    return write_trial(
        root / tid, cfg, recs, summary or {"epochs": len(recs), "infer_ms_b256": 7.0}
    )


def points_of(root: Path) -> pd.DataFrame:
    exp = load_experiment(root)
    return operating_points(add_config_ids(exp.trials), exp.history)


def test_imp_rounds_are_operating_points(tmp_path: Path) -> None:
    # 3 rounds of 3 epochs at sparsity 0, 0.5, 0.75 (records are taken before each prune)
    va = [0.50, 0.80, 0.79, 0.60, 0.85, 0.84, 0.55, 0.70, 0.72]
    vl = [1.00, 0.50, 0.60, 0.90, 0.40, 0.45, 0.95, 0.62, 0.60]
    ta = [0.49, 0.78, 0.77, 0.59, 0.83, 0.82, 0.54, 0.69, 0.71]
    sp = [0.0] * 3 + [0.5] * 3 + [0.75] * 3
    peak = [10, 30, 20, 5, 6, 7, 8, 8, 9]
    trial(tmp_path, "imp0", 0, records(va, vl, ta, sp, peak), method="imp", rounds=2, rate=0.5)
    pts = points_of(tmp_path).set_index(P.round).sort_index()
    assert pts.index.tolist() == [0.0, 1.0, 2.0]
    assert pts[M.sparsity].tolist() == [0.0, 0.5, 0.75]
    # the round's last record, as a trial's final record
    assert pts[M.test_acc].tolist() == [0.77, 0.82, 0.71]
    assert pts[M.peak_mem_bytes].tolist() == [30, 7, 9]  # max over the round
    # best val_acc of the round, its epoch counted from the round's start, test_acc there
    assert pts[M.best_val_acc].tolist() == [0.80, 0.85, 0.72]
    assert pts[M.best_epoch].tolist() == [2, 2, 3]
    assert pts[M.test_acc_at_best_val].tolist() == [0.78, 0.83, 0.71]
    # (c) early stopping: the epoch of minimum val_loss in the round, and test_acc there
    assert pts[P.early_stop_epoch].tolist() == [2, 2, 3]
    assert pts[P.test_acc_at_early_stop].tolist() == [0.78, 0.83, 0.71]
    # (a) 99% of the round's own best: .792 -> 2; .8415 -> 2; .7128 -> 3
    assert pts[P.to99_own].tolist() == [2, 2, 3]
    assert pts[M.epochs_to_99pct].tolist() == [2, 2, 3]
    # (b) 99% of the dense baseline's best (round 0: .80 -> .792): round 1 at its epoch 2,
    # round 2 never (.72); round 0 itself at epoch 2
    assert pts[P.to99_dense].tolist()[:2] == [2, 2] and np.isnan(pts[P.to99_dense].iloc[2])
    assert pts[P.reached_dense].tolist() == [1.0, 1.0, 0.0]
    # summary-only figures describe the final network: on the last round only
    assert np.isnan(pts.loc[0.0, M.infer_ms_b256]) and pts.loc[2.0, M.infer_ms_b256] == 7.0
    assert pts.loc[0.0, P.point_id].endswith("/r0") and pts[P.remaining].tolist() == [1, 0.5, 0.25]
    assert "IMP round 0 (dense)" in pts.loc[0.0, "label"]


def test_round_zero_is_shared_by_imp_variants_and_counted_once(tmp_path: Path) -> None:
    va = [0.5, 0.8, 0.6, 0.7]
    vl = [1.0, 0.5, 0.9, 0.6]
    sp = [0.0, 0.0, 0.5, 0.5]
    for score in ("magnitude", "random"):
        for seed in (0, 1):
            recs = records(va, vl, va, sp)
            trial(tmp_path, f"{score}{seed}", seed, recs, method="imp", score=score, rounds=1)
    pts = points_of(tmp_path)
    r0 = pts[pts[P.round] == 0]
    assert len(r0) == 2 and r0[P.point_id].nunique() == 1  # one shared point, one row a seed
    assert sorted(r0["seed"]) == [0, 1] and r0["config_id"].isna().all()
    r1 = pts[pts[P.round] == 1]
    assert sorted(r1[P.variant]) == ["score=magnitude"] * 2 + ["score=random"] * 2
    assert set(r0[P.variant]) == {"dense"}


def test_three_convergence_definitions_on_gradual_and_dense_runs(tmp_path: Path) -> None:
    # dense, two seeds: best val .90 and .92 -> dense baseline best (seed mean) .91, 99% = .9009
    trial(
        tmp_path,
        "d0",
        0,
        records([0.6, 0.85, 0.90, 0.90], [1, 0.6, 0.5, 0.52], [0.6] * 4, [0.0] * 4),
    )
    trial(
        tmp_path,
        "d1",
        1,
        records([0.6, 0.92, 0.91, 0.90], [1, 0.5, 0.55, 0.6], [0.6] * 4, [0.0] * 4),
    )
    # gradual to 0.8: dense phase peaks at .90 (epoch 2), final mask from epoch 3 on
    sp = [0.4, 0.6, 0.8, 0.8]
    summary = {"epochs_to_99pct": 4, "best_val_acc": 0.86}  # the trainer's final-mask figure
    trial(
        tmp_path,
        "g0",
        0,
        records([0.7, 0.90, 0.80, 0.86], [0.8, 0.4, 0.7, 0.45], [0.6] * 4, sp),
        summary,
        method="gradual",
        final_sparsity=0.8,
    )
    pts = points_of(tmp_path).set_index("trial_id")
    # (a) 99% of its own best over the whole run (.90 -> .891): epoch 2, not the final mask's 4
    assert pts.loc["g0", P.to99_own] == 2 and pts.loc["g0", M.epochs_to_99pct] == 4
    assert pts.loc["d0", P.to99_own] == 3 and pts.loc["d1", P.to99_own] == 2
    # (b) 99% of the dense best (.9009): d0 never (.90), d1 at 2, g0 never (.90 < .9009)
    assert np.isnan(pts.loc["d0", P.to99_dense]) and pts.loc["d0", P.reached_dense] == 0
    assert pts.loc["d1", P.to99_dense] == 2 and pts.loc["d1", P.reached_dense] == 1
    assert np.isnan(pts.loc["g0", P.to99_dense]) and pts.loc["g0", P.reached_dense] == 0
    # (c) epoch of minimum val_loss
    assert pts.loc["g0", P.early_stop_epoch] == 2 and pts.loc["d0", P.early_stop_epoch] == 3
    assert (
        np.isnan(pts.loc["g0", P.round]) and pts.loc["g0", P.point_id] == pts.loc["g0", "config_id"]
    )


def test_no_validation_split_leaves_convergence_empty(tmp_path: Path) -> None:
    nan = float("nan")
    trial(tmp_path, "d0", 0, records([nan] * 3, [nan] * 3, [0.5, 0.6, 0.7], [0.0] * 3))
    pts = points_of(tmp_path)
    assert pts[[P.to99_own, P.early_stop_epoch, P.to99_dense]].isna().all().all()
    assert pts[M.test_acc].tolist() == pytest.approx([0.7])
