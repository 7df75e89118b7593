"""The adaptive-seeds Searcher, driven through Ray's Searcher API without a Ray sweep: trials are
written as synthetic trial directories with a known truth. Checks the waves, the log, pickling,
and that a searcher restored from a checkpoint older than the last wave adds exactly the seeds,
in the same order, that an uninterrupted one adds."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
import ray.cloudpickle
from ray.tune.search import Searcher

from analysis.synthetic import trial_files, write_trial
from sparsity_tune.keys import SEED_KEY
from sparsity_tune.metrics import DEFAULT_TOLERANCE
from sparsity_tune.sweep import replicate
from sparsity_tune.sweep.plan import SeedsPlan
from sparsity_tune.sweep.replicate import SeedAllocator, trial_epochs
from sparsity_tune.trial.config import trial_config

KEY = "pruning.final_sparsity"
#: dense and 50% at 0.80 (within 1 point: open at 3 seeds of 0.5-point noise); 90% 10 points below
TRUTH = {0.0: 0.80, 0.5: 0.80, 0.9: 0.70}
CONFIGS = [{KEY: s} for s in TRUTH]
SEEDS = SeedsPlan(initial=3, max=12, looks=(3, 6, 12), budget=None)


def run_trial(root: Path, trial_id: str, cfg: dict, converged: bool | None = True) -> None:
    """Write what the trainable would: a finished trial directory ``trial_<id>``."""
    s, seed = cfg[KEY], cfg[SEED_KEY]
    conf, records, summary = trial_files(
        "mlp", 1, 32, s, seed, epochs=2, true_acc=TRUTH[s], seed_sd=0.005, converged=converged
    )
    conf["trial_id"] = trial_id
    write_trial(root / f"trial_{trial_id}", conf, records, summary)


def drive(
    searcher: SeedAllocator,
    root: Path,
    start: int = 0,
    stop_after: int | None = None,
    converged: bool | None = True,
):
    """Suggest, run and complete trials one wave at a time, as Ray would with enough workers;
    returns the (config, seed) sequence handed out and the next trial number."""
    handed, n = [], start
    while stop_after is None or len(handed) < stop_after:
        batch = []
        while True:
            cfg = searcher.suggest(f"t{n:03d}")
            if cfg is None or cfg == Searcher.FINISHED:
                break
            batch.append((f"t{n:03d}", cfg))
            n += 1
            if stop_after is not None and len(handed) + len(batch) >= stop_after:
                break
        if not batch:
            return handed, n, cfg
        for tid, cfg in batch:
            run_trial(root, tid, cfg, converged)
            searcher.on_trial_complete(tid, {"test_acc": 0.0})
            handed.append((cfg[KEY], cfg[SEED_KEY]))
    return handed, n, None


def test_trial_epochs_counts_imp_rounds() -> None:
    base = {"train": {"epochs": 12}, "pruning": {"method": "imp", "rounds": 3}}
    assert trial_epochs(trial_config(base, {})) == 12  # 3 epochs x 4 rounds
    assert trial_epochs(trial_config({"train": {"epochs": 7}}, {})) == 7


def test_waves_add_seeds_to_the_open_comparison_only(tmp_path: Path) -> None:
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(tmp_path))
    handed, _, last = drive(s, tmp_path)
    assert last == Searcher.FINISHED and s.finished
    assert handed[:9] == [(sp, seed) for seed in range(3) for sp in TRUTH]
    added = handed[9:]
    # 90% is resolved (worse) at 3 seeds; 50% vs dense is open: both get seeds 3-5, then 6-11
    assert {sp for sp, _ in added} == {0.0, 0.5}
    assert [seed for sp, seed in added if sp == 0.5] == list(range(3, 12))
    assert [seed for sp, seed in added if sp == 0.0] == list(range(3, 12))
    log = [json.loads(x) for x in (tmp_path / replicate.LOG).read_text().splitlines()]
    assert [e["wave"] for e in log] == list(range(1, len(log) + 1)) and log[-1]["trials"] == []
    assert sum(len(e["trials"]) for e in log) == len(added)
    assert s.spent == pytest.approx(2.0 * len(handed))
    assert log[-1]["states"] == {"resolved": 2}  # both comparisons answered at 12 seeds
    spent = pd.read_csv(tmp_path / replicate.SPENT, index_col="config")
    assert spent["added_seeds"].tolist() == [9, 9, 0] and spent["total"].tolist() == [24, 24, 6]
    assert spent.loc[2, "params"] == '{"pruning.final_sparsity": 0.9}'


def test_the_plans_tolerance_is_the_line_the_waves_chase(tmp_path: Path) -> None:
    """At 5 points, 50% (0 points from dense, 0.5-point noise) is within tolerance at 3 seeds
    and 90% (10 points below) is worse: nothing is open, no seed is added. At the default 1
    point the same results leave 50% open (the test above)."""
    wide = SeedsPlan(3, 12, (3, 6, 12), budget=None, tolerance=5.0)
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], wide, str(tmp_path))
    handed, _, last = drive(s, tmp_path)
    assert last == Searcher.FINISHED and len(handed) == 9
    log = [json.loads(x) for x in (tmp_path / replicate.LOG).read_text().splitlines()]
    assert log[-1]["trials"] == [] and log[-1]["states"] == {"resolved": 2}


def test_a_plan_pickled_before_the_tolerance_reads_the_default() -> None:
    """A searcher checkpointed by an older version has a SeedsPlan without ``tolerance``:
    restored, it judges at the default, as that version did."""
    old = SeedsPlan.__new__(SeedsPlan)
    state = {k: v for k, v in SEEDS.__dict__.items() if k != "tolerance"}
    old.__dict__.update(state)
    assert pickle.loads(pickle.dumps(old)).tolerance == DEFAULT_TOLERANCE == 1.0


def test_the_budget_limits_the_waves(tmp_path: Path) -> None:
    budget = SeedsPlan(3, 12, (3, 6, 12), budget=9 * 2.0 + 6 * 2.0)  # initial + one look
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], budget, str(tmp_path))
    handed, _, last = drive(s, tmp_path)
    assert last == Searcher.FINISHED and len(handed) == 15 and s.spent == 30.0


def test_the_searcher_pickles(tmp_path: Path) -> None:
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(tmp_path))
    drive(s, tmp_path, stop_after=4)
    for dumps, loads in ((pickle.dumps, pickle.loads), (ray.cloudpickle.dumps, pickle.loads)):
        back = loads(dumps(s))
        assert back.get_state() == s.get_state() and back.configs == CONFIGS


def test_a_resume_from_an_older_checkpoint_repeats_the_same_seeds(tmp_path: Path) -> None:
    """Uninterrupted vs: checkpoint after the initial wave, crash after the next wave was
    decided and 2 of its trials ran, restore from that checkpoint (the log is newer). Ray
    checkpoints the searcher with its trial list, so the 2 trials started after the checkpoint
    are unknown to both after the restore and are handed out again (same config and seed: the
    analysis counts a seed once)."""
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref_dir.mkdir(), cut_dir.mkdir()
    ref = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(ref_dir))
    expected, _, _ = drive(ref, ref_dir)

    a = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(cut_dir))
    first, n, _ = drive(a, cut_dir, stop_after=9)
    ckpt = tmp_path / "searcher.pkl"
    a.save(str(ckpt))
    more, n, _ = drive(a, cut_dir, start=n, stop_after=2)  # decides wave 1, runs 2 of it
    assert a.waves == 1 and more == expected[9:11]

    b = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(cut_dir))
    b.restore(str(ckpt))
    wave1 = json.loads((cut_dir / replicate.LOG).read_text().splitlines()[0])["trials"]
    assert b.waves == 1 and b.queue == [tuple(t) for t in wave1]  # from the log, not re-decided
    rest, _, last = drive(b, cut_dir, start=n)
    assert last == Searcher.FINISHED
    assert [*first, *rest] == expected
    lines = (cut_dir / replicate.LOG).read_text().splitlines()
    assert [json.loads(x)["wave"] for x in lines] == list(range(1, len(lines) + 1))
    assert lines == (ref_dir / replicate.LOG).read_text().splitlines()


def test_the_summary_says_what_was_spent_where(tmp_path: Path) -> None:
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(tmp_path))
    assert replicate.describe_spending(str(tmp_path), SEEDS)[0].startswith(
        "adaptive seeds: no wave decided yet"
    )
    drive(s, tmp_path)
    lines = replicate.describe_spending(str(tmp_path), SEEDS)
    assert lines[0] == (
        "adaptive seeds: 54 trial-epochs spent; 18 seed(s) added in 2 wave(s) beyond 3 per "
        "configuration; at the end: 2 resolved"
    )
    assert lines[1].startswith('  {"pruning.final_sparsity": 0.0}: +9 seed(s), 18 trial-epochs')
    assert lines[2].startswith('  {"pruning.final_sparsity": 0.5}: +9 seed(s), 18 trial-epochs')
    assert lines[3].endswith(replicate.LOG) and len(lines) == 4


def test_no_seeds_for_networks_still_improving_and_the_summary_says_why(tmp_path: Path) -> None:
    """Every run ended at its cap still improving: the open comparison of the test above reads
    "not converged", so the first wave adds nothing, and the summary says why and what to do."""
    s = SeedAllocator(CONFIGS, [2.0, 2.0, 2.0], SEEDS, str(tmp_path))
    handed, _, last = drive(s, tmp_path, converged=False)
    assert last == Searcher.FINISHED and len(handed) == 9  # the initial seeds only
    lines = replicate.describe_spending(str(tmp_path), SEEDS)
    assert lines[1] == (
        "  3 operating point(s) were still improving at their end: their comparisons read 'not "
        "converged' and got no seeds (more seeds do not finish training); train.until ends each "
        "run on its plateau"
    )
