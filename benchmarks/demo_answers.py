"""How many of the report's comparisons are resolved, read back from an analysis directory.

Run: ``python benchmarks/demo_answers.py results/demo`` (the experiment, or its ``analysis/``).

The check behind the main job's goals (README, "The demo's answers"): it reads only the files the
analysis wrote, so anyone can recount a report without re-running it.

- ``points.csv``: every pruned operating point against its dense baseline (``verdict``: better,
  within tolerance, worse; or not resolved, not converged). Dense points have no verdict.
- ``methods.csv``: pruning variants at equal sparsity (better, worse, equal within tolerance;
  or not resolved, not converged).
- ``measured.csv``: measured cost axes only (counted costs have no noise to resolve): cheaper,
  dearer or the same (within 10% of dense, :data:`analysis.measured.SAME`) is resolved; "within
  seed noise" and "no interval" are not.
- ``matched.csv`` and ``arch.csv``: the matched large-sparse vs small-dense pairs and the two
  best architectures at an equal parameter budget (better, worse, not resolved, not converged).
  An analysis written before those files existed states them only in ``report.html``'s
  sentences ("better in a, worse in b, not resolved in c"; "X better/worse/not resolved"),
  which are read instead.

What counts as resolved is the analysis's own set (:data:`analysis.stats.RESOLVED_VERDICTS`,
:data:`analysis.measured.RESOLVED_COSTS`), not a copy.

Also printed: how many points are marked still improving (``still_improving``), the dense
baselines' ``test_acc`` per size, the seeds per point, and the budget spent in trial-epochs
(``trials.csv``: the epochs each trial trained, against the epochs its config allowed).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from analysis.measured import RESOLVED_COSTS
from analysis.stats import RESOLVED_VERDICTS

RESOLVED_ACC = set(RESOLVED_VERDICTS)
RESOLVED_COST = set(RESOLVED_COSTS)
MEASURED_AXES = {"infer_ms_b1", "infer_ms_b256", "train_time_s", "epoch_time_s", "peak_mem_bytes"}
#: "... the larger sparse model is better in 1, worse in 0, not resolved in 4."
MATCHED = re.compile(r"better in (\d+), worse in (\d+), not resolved in (\d+)")
#: "At most 848 nonzero params, cnn vs mlp: +8.47 points ... : cnn not resolved."
ARCH = re.compile(
    r"At most [\d,]+ nonzero params, \w+ vs \w+: .*?: \w+ (better|worse|not resolved)\."
)


def analysis_dir(path: Path) -> Path:
    """``path`` itself when it holds points.csv, else its ``analysis/`` folder."""
    for d in (path, path / "analysis"):
        if (d / "points.csv").is_file():
            return d
    raise SystemExit(
        f"no points.csv in {path} or {path / 'analysis'}: run python -m analysis first"
    )


def count(verdicts: pd.Series, resolved: set[str]) -> tuple[int, int, Counter]:
    """(resolved, total, counts per verdict) of the non-empty ``verdicts``."""
    v = verdicts.dropna().astype(str)
    v = v[v != ""]
    return int(v.isin(resolved).sum()), len(v), Counter(v)


def measured_verdicts(m: pd.DataFrame) -> pd.Series:
    """measured.csv's verdicts on measured axes."""
    return m.loc[m["axis"].isin(MEASURED_AXES) | (m.get("kind") == "measured"), "verdict"]


def sentence_verdicts(report: Path) -> list[str]:
    """The verdicts the report states only in sentences (matched pairs, arch at equal budget)."""
    if not report.is_file():
        return []
    text = html.unescape(re.sub(r"<[^>]+>", " ", report.read_text(encoding="utf-8")))
    text = re.sub(r"\s+", " ", text)
    out: list[str] = []
    if mt := MATCHED.search(text):
        b, w, u = map(int, mt.groups())
        out += ["better"] * b + ["worse"] * w + ["not resolved"] * u
    out += [mt.group(1) for mt in ARCH.finditer(text)]
    return out


BUDGET_FILES = ("matched.csv", "arch.csv")


def budget_verdicts(d: Path) -> tuple[str, list[str]]:
    """The verdicts at an equal parameter budget and where they were read: ``matched.csv`` and
    ``arch.csv`` (an empty file: no such comparison), else the sentences of ``report.html``."""
    if all((d / name).is_file() for name in BUDGET_FILES):
        out: list[str] = []
        for name in BUDGET_FILES:
            try:
                table = pd.read_csv(d / name)
            except pd.errors.EmptyDataError:  # no comparison: no columns either
                continue
            out += table.get("verdict", pd.Series(dtype=object)).dropna().astype(str).tolist()
        return "matched pairs, arch at equal budget (matched.csv, arch.csv)", out
    return "sentences: matched pairs, arch at equal budget (report.html)", sentence_verdicts(
        d / "report.html"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", type=Path, help="experiment directory or its analysis/ folder")
    args = ap.parse_args(argv)
    d = analysis_dir(args.results)
    points = pd.read_csv(d / "points.csv")
    methods = pd.read_csv(d / "methods.csv") if (d / "methods.csv").is_file() else pd.DataFrame()
    measured = pd.read_csv(d / "measured.csv") if (d / "measured.csv").is_file() else None
    groups = {
        "points vs dense (points.csv)": count(points.get("verdict", pd.Series()), RESOLVED_ACC),
        "methods at equal sparsity (methods.csv)": count(
            methods.get("verdict", pd.Series(dtype=object)), RESOLVED_ACC
        ),
    }
    if measured is not None and len(measured):
        groups["measured costs vs dense (measured.csv)"] = count(
            measured_verdicts(measured), RESOLVED_COST
        )
    where, said = budget_verdicts(d)
    groups[where] = count(pd.Series(said, dtype=object), RESOLVED_ACC)
    total_r = total_n = 0
    print(f"{'comparisons':<62}{'resolved':>9}{'of':>5}{'share':>8}  verdicts")
    for name, (r, n, c) in groups.items():
        total_r, total_n = total_r + r, total_n + n
        share = f"{r / n:.0%}" if n else "-"
        print(f"{name:<62}{r:>9}{n:>5}{share:>8}  {dict(c)}")
    share = f"{total_r / total_n:.0%}" if total_n else "-"
    print(f"{'all':<62}{total_r:>9}{total_n:>5}{share:>8}")
    if "still_improving" in points:
        k = int(points["still_improving"].fillna(False).astype(bool).sum())
        print(f"points still improving at their end: {k} of {len(points)}")
    trials = d / "trials.csv"
    if trials.is_file():
        t = pd.read_csv(trials)
        done = pd.to_numeric(t.get("epochs_done", pd.Series(dtype=float)), errors="coerce")
        cap = pd.to_numeric(t.get("train.epochs", pd.Series(dtype=float)), errors="coerce")
        print(f"trials: {len(t)}; trial-epochs spent {int(done.sum())} of {int(cap.sum())} allowed")
    if "n_seeds" in points:
        print(f"seeds per point: {dict(Counter(points['n_seeds'].astype(int)))}")
    dense = points[points["sparsity"] <= 1e-3] if "sparsity" in points else points.iloc[:0]
    for _, r in dense.iterrows():
        print(
            f"dense {r.get('arch', '')} {r.get('size', '')}: test_acc {r['test_acc']:.4f} "
            f"[{r.get('test_acc_ci95_lo', float('nan')):.4f}, "
            f"{r.get('test_acc_ci95_hi', float('nan')):.4f}], {int(r.get('n_seeds', 0))} seeds"
            + (f", {r['epochs_trained']:.1f} epochs" if pd.notna(r.get("epochs_trained")) else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
