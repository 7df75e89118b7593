"""``benchmarks/demo_answers.py`` counts a report's resolved comparisons from its files alone.

The main job's goal (at least 80% of the report's comparisons resolved) is checked with this
script, so its reading of each file must be exact: which verdicts count as resolved, that an
exact 1.0 ratio is an answer and not noise, and the sentences only report.html states.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import demo_answers as da


def write(d: Path) -> Path:
    out = d / "exp" / "analysis"
    out.mkdir(parents=True)
    pd.DataFrame(
        {
            "arch": ["cnn"] * 5,
            "size": ["d2×w64"] * 5,
            "sparsity": [0.0, 0.5, 0.75, 0.875, 0.5],
            "n_seeds": [3, 3, 3, 3, 3],
            "test_acc": [0.93, 0.931, 0.92, 0.80, 0.9],
            "test_acc_ci95_lo": [0.92, 0.92, 0.91, 0.79, 0.88],
            "test_acc_ci95_hi": [0.94, 0.94, 0.93, 0.81, 0.92],
            "verdict": [None, "within tolerance", "not resolved", "worse", "not converged"],
            "still_improving": [False, False, False, False, True],
        }
    ).to_csv(out / "points.csv", index=False)
    pd.DataFrame({"verdict": ["better", "not resolved", "worse", "better"]}).to_csv(
        out / "methods.csv", index=False
    )
    pd.DataFrame(
        {
            "axis": [
                "infer_ms_b256",
                "infer_ms_b256",
                "deploy_bytes",
                "nonzero_params",
                "infer_ms_b1",
            ],
            "kind": ["measured", "measured", "measured", "counted", "measured"],
            "ratio": [2.5, 1.0, 1.0, 2.0, 1.05],
            "ratio_ci95_lo": [2.1, 1.0, 1.0, 2.0, 0.9],
            "ratio_ci95_hi": [2.9, 1.0, 1.0, 2.0, 1.2],
            "verdict": [
                "cheaper",
                "same within tolerance",
                "same within tolerance",
                "cheaper",
                "within seed noise",
            ],
        }
    ).to_csv(out / "measured.csv", index=False)
    (out / "report.html").write_text(
        "<p>5 matched pairs (nonzero_params within 10%); median difference +2.07; by the Welch "
        "test, the larger sparse model is better in 1, worse in 0, not resolved in 4.</p>"
        "<p>At most 848 nonzero params, cnn vs mlp: +8.47 points of test_acc (95% CI [+1.00, "
        "+9.00], Welch): cnn better.</p>",
        encoding="utf-8",
    )
    pd.DataFrame({"epochs_done": [75, 100], "train.epochs": [120, 120]}).to_csv(
        out / "trials.csv", index=False
    )
    return out


def test_counts_every_group_and_the_total(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path)
    assert da.main([str(tmp_path / "exp")]) == 0  # the experiment dir: its analysis/ is read
    out = capsys.readouterr().out.splitlines()
    row = {line[:62].strip(): line[62:].split()[:3] for line in out if len(line) > 62}
    assert row["points vs dense (points.csv)"] == ["2", "4", "50%"]
    assert row["methods at equal sparsity (methods.csv)"] == ["3", "4", "75%"]
    # measured axes only (nonzero_params is counted); the same cost as dense is an answer
    assert row["measured costs vs dense (measured.csv)"] == ["3", "4", "75%"]
    assert row["sentences: matched pairs, arch at equal budget (report.html)"] == ["2", "6", "33%"]
    assert row["all"] == ["10", "18", "56%"]
    assert "points still improving at their end: 1 of 5" in out
    assert "trials: 2; trial-epochs spent 175 of 240 allowed" in out
    assert "seeds per point: {3: 5}" in out
    assert "dense cnn d2×w64: test_acc 0.9300 [0.9200, 0.9400], 3 seeds" in out


def test_budget_verdicts_read_from_their_csv_files_when_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """matched.csv and arch.csv (written by the analysis) win over the report's sentences: here
    they disagree with the report on purpose, and the files' counts are printed."""
    out = write(tmp_path)
    pd.DataFrame({"arch": ["cnn"] * 3, "verdict": ["better", "not resolved", "worse"]}).to_csv(
        out / "matched.csv", index=False
    )
    pd.DataFrame({"arch_a": ["cnn"], "verdict": ["not converged"]}).to_csv(
        out / "arch.csv", index=False
    )
    where, said = da.budget_verdicts(out)
    assert where == "matched pairs, arch at equal budget (matched.csv, arch.csv)"
    assert said == ["better", "not resolved", "worse", "not converged"]
    assert da.main([str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {line[:62].strip(): line[62:].split()[:3] for line in lines if len(line) > 62}
    assert row[where] == ["2", "4", "50%"]
    assert row["all"] == ["10", "16", "62%"]
    (out / "arch.csv").write_text("\n", encoding="utf-8")  # no pair of architectures: empty
    assert da.budget_verdicts(out)[1] == ["better", "not resolved", "worse"]


def test_measured_verdicts_count_measured_axes_and_the_analysis_own_resolved_set() -> None:
    m = pd.DataFrame(
        {
            "axis": ["infer_ms_b1", "infer_ms_b1", "train_time_s", "nonzero_params"],
            "kind": ["measured"] * 3 + ["counted"],
            "verdict": ["same within tolerance", "within seed noise", "dearer", "cheaper"],
        }
    )
    got = da.measured_verdicts(m)
    assert got.tolist() == ["same within tolerance", "within seed noise", "dearer"]
    assert da.count(got, da.RESOLVED_COST)[:2] == (2, 3)


def test_sentences_missing_report_and_no_match(tmp_path: Path) -> None:
    assert da.sentence_verdicts(tmp_path / "none.html") == []
    (tmp_path / "r.html").write_text("<p>nothing to count</p>", encoding="utf-8")
    assert da.sentence_verdicts(tmp_path / "r.html") == []


def test_no_points_csv_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no points\.csv"):
        da.analysis_dir(tmp_path)
