"""The main job in miniature: search_spaces/demo.yaml with tiny epochs and a slice of the data,
through the real launcher (Ray Tune, the trainer), then ``python -m analysis``: every research
question the sweep covers is answered with numbers, none says "Not available"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from analysis.load import load_experiment
from analysis.questions import analyse
from sparsity_tune.sweep import launch

REPO = Path(__file__).resolve().parents[2]
#: Sections the demo must answer: the five questions and the method comparison.
ANSWERED = ("dynamics", "tolerance", "methods", "robustness", "tradeoffs", "arch")


@pytest.fixture(scope="module")
def demo(ray_session, tmp_path_factory, data_root) -> Path:
    """demo.yaml as shipped, shrunk: 2 rounds of 2 epochs, one width, 2 seeds, 600 samples."""
    spec = yaml.safe_load((REPO / "search_spaces" / "demo.yaml").read_text())
    assert spec["pruning"]["method"] == "imp"
    grid = spec["search"]["parameters"]
    assert set(grid["model.arch"]["values"]) == {"mlp", "cnn"}
    assert len(grid["model.depth"]["values"]) >= 2 and len(grid["model.width"]["values"]) >= 2
    grid["model.width"] = {"values": [8]}
    grid["model.depth"] = {"values": [1, 2]}
    spec["search"]["seeds"] = [0, 1]
    spec["search"]["checkpoint_every"] = 6
    spec["dataset"].update(root=str(data_root), train_limit=600, test_limit=300)
    spec["train"]["epochs"] = 6
    spec["pruning"].update(rounds=2, epochs_per_round=2)
    tmp = tmp_path_factory.mktemp("demo")
    path = tmp / "demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert launch.main([str(path), "--storage", str(tmp / "res"), "--no-wandb"]) == 0
    return tmp / "res" / "demo"


NUMBER = re.compile(r"\d")


@pytest.mark.slow
def test_demo_answers_every_question_with_numbers(demo: Path) -> None:
    a = analyse(load_experiment(demo))
    assert len(a.trials) == 16 and (a.trials["status"] == "finished").all()
    # IMP rounds are the operating points: 8 configurations x 2 pruned rounds + 4 shared round 0
    assert len(a.points) == 8 * 2 + 4 and a.points["round"].notna().all()
    for s in a.sections:
        if s.key not in ANSWERED:
            continue
        text = " ".join(s.sentences)
        assert "Not available" not in text, (s.key, text)
        assert s.sentences and all(NUMBER.search(t) for t in s.sentences), (s.key, s.sentences)
    by = {s.key: " ".join(s.sentences) for s in a.sections}
    for arch in ("mlp", "cnn"):
        assert f"{arch}, (a) epochs until a run first reaches 99%" in by["dynamics"]
        assert f"{arch}, (b) epochs until a run reaches 99% of the dense" in by["dynamics"]
        assert f"{arch}, (c) IMP early stopping" in by["dynamics"]
        assert re.search(rf"{arch}: (up to sparsity|no pruned point is resolved)", by["tolerance"])
        assert f"{arch}: across 2 sizes the highest sparsity" in by["robustness"]
    assert "95% CI [" in by["tolerance"] and "pruned points:" in by["tolerance"]
    assert "winning ticket (score=magnitude) vs random pruning (score=random)" in by["methods"]
    assert "At most " in by["arch"] and ("cnn vs mlp" in by["arch"] or "mlp vs cnn" in by["arch"])
    keys = {c.key for s in a.sections for c in s.charts}
    assert {"imp_rounds", "imp_early_stop", "learning_curves", "convergence"} <= keys
