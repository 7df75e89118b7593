"""The pruning-families tables (README, docs/benchmarks.md), read back from an analysis directory.

Run, after both sweeps::

    python -m analysis /work/results/pruning_families /work/results/pruning_families_dst
    python benchmarks/families_table.py /work/results/analysis-pruning_families+pruning_families_dst

It reads only what ``python -m analysis`` wrote, so re-deriving the tables after the analysis
changes is one command:

- ``points.csv``: ``test_acc`` per method and sparsity (seed mean and its 95% interval); a
  method is named from its ``pruning.*`` columns (:func:`method_label`), never from the
  variant text, whose wording depends on which settings vary across the directories analysed;
- ``methods.csv``: the differences the ordering of Frankle et al. 2021 is about (each
  pruning-at-initialisation score against random pruning at initialisation and against gradual
  magnitude pruning during training), with the analysis's interval, verdict and seeds needed;
- ``controls.csv``: each method against its sanity-check controls (``pruning.control``).

``--compact`` prints the README's short form: the control-free methods at the top sparsities.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from sparsity_tune.metrics import M

METRIC: Final = M.test_acc
SCALE: Final = 100.0  #: accuracy in points
#: Pruning at initialisation, the scores Frankle et al. 2021 test (magnitude at init is theirs too).
PAI: Final = ("snip", "grasp", "synflow")
RANDOM_INIT: Final = "random @init"
AFTER_TRAINING: Final = "gradual magnitude"
#: Order of the rows: at initialisation, then during training.
ORDER: Final = (
    "magnitude @init",
    "snip @init",
    "grasp @init",
    "synflow @init",
    RANDOM_INIT,
    AFTER_TRAINING,
    "gradual random",
    "set (random init)",
    "set (magnitude init)",
    "rigl (random init)",
    "rigl (magnitude init)",
)
CONTROL_ORDER: Final = ("none", "shuffle_layer", "invert", "reinit")


def analysis_dir(path: Path) -> Path:
    """``path`` itself when it holds points.csv, else its ``analysis/`` folder."""
    for d in (path, path / "analysis"):
        if (d / "points.csv").is_file():
            return d
    raise SystemExit(f"no points.csv in {path} or {path / 'analysis'}: run python -m analysis")


def method_label(settings: Mapping[str, object]) -> str:
    """A reader's name for a pruning method from its ``pruning.*`` settings (prefix optional):
    one-shot at step 0 is "<score> @init", gradual is "gradual <score>", SET/RigL name their
    initial mask's score; a control other than ``none`` is appended after " + "."""
    s = {str(k).removeprefix("pruning."): str(v) for k, v in settings.items()}
    method, score = s.get("method", ""), s.get("score", "magnitude")
    if method == "one_shot" and s.get("start_epoch", "0") in ("0", "0.0"):
        name = f"{score} @init"
    elif method in ("gradual", "one_shot", "imp"):
        name = f"{method.replace('_', '-')} {score}"
    elif method in ("set", "rigl"):
        name = f"{method} ({score} init)"
    else:
        name = f"{method} {score}".strip()
    control = s.get("control", "none")
    return name if control in ("none", "nan", "") else f"{name} + {control}"


def _labels(points: pd.DataFrame) -> pd.Series:
    cols = [c for c in points.columns if c.startswith("pruning.")]
    return pd.Series(
        [method_label(dict(zip(cols, row, strict=True))) for row in points[cols].itertuples(False)],
        index=points.index,
    )


def _target(points: pd.DataFrame) -> pd.Series:
    return points["pruning.final_sparsity"].astype(float).round(4)


def _rank(label: str) -> tuple[int, int, str]:
    base, _, control = label.partition(" + ")
    i = ORDER.index(base) if base in ORDER else len(ORDER)
    j = CONTROL_ORDER.index(control) if control in CONTROL_ORDER else 0
    return (i, j, label)


def cell(mean: float, lo: float, hi: float, digits: int = 1) -> str:
    """``mean`` in points with the half-width of its interval: ``"61.2 ±3.4"``; ``"61.2"``
    without an interval (one seed)."""
    if not math.isfinite(mean):
        return ""
    m = f"{SCALE * mean:.{digits}f}"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{m} ±{SCALE * (hi - lo) / 2:.{digits}f}"
    return m


def accuracy_table(
    points: pd.DataFrame, sparsities: Sequence[float] | None = None, controls: bool = True
) -> pd.DataFrame:
    """Rows: methods (:data:`ORDER`, each followed by its controls when ``controls``); columns:
    ``"<arch> <sparsity>%"``; cells: :func:`cell` of the seed mean of ``test_acc``."""
    lo, hi = f"{METRIC}_ci95_lo", f"{METRIC}_ci95_hi"
    pruned = points[points["sparsity"] > 0]
    p = pd.DataFrame(
        {
            "arch": pruned["arch"].astype(str),
            "label": _labels(pruned),
            "target": _target(pruned),
            "mean": pruned[METRIC].astype(float),
            "lo": pruned[lo].astype(float) if lo in pruned else math.nan,
            "hi": pruned[hi].astype(float) if hi in pruned else math.nan,
        }
    )
    if not controls:
        p = p[~p["label"].str.contains(" + ", regex=False)]
    if sparsities is not None:
        p = p[p["target"].isin([round(float(s), 4) for s in sparsities])]
    rows: dict[str, dict[str, str]] = {}
    for d in p.sort_values(["arch", "target"], ascending=[False, True]).to_dict("records"):
        col = f"{d['arch']} {100 * d['target']:g}%"
        rows.setdefault(d["label"], {})[col] = cell(d["mean"], d["lo"], d["hi"])
    cols = list(dict.fromkeys(c for v in rows.values() for c in v))
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols).fillna("")
    return out.loc[sorted(out.index, key=_rank)]


def _variant_labels(points: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(arch, variant text) -> method label, from the points that carry that variant."""
    labels = _labels(points)
    return {
        (str(a), str(v)): str(lab)
        for a, v, lab in zip(points["arch"], points["variant"], labels, strict=True)
    }


def diff_cell(row: Mapping[str, object], sign: float = 1.0) -> str:
    """``"+4.1 [+1.2, +7.0] better"`` from a methods.csv/controls.csv row (already in points),
    oriented by ``sign``; ``"(n seeds)"`` appended where unresolved with a seeds estimate."""
    d, lo, hi = (sign * float(row[k]) for k in ("diff_pts", "diff_ci95_lo", "diff_ci95_hi"))
    lo, hi = min(lo, hi), max(lo, hi)
    verdict = str(row.get("verdict", ""))
    if sign < 0:
        verdict = {"better": "worse", "worse": "better"}.get(verdict, verdict)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{d:+.1f} (no interval) {verdict}"
    text = f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] {verdict}"
    need = float(row.get("seeds_needed", math.nan))
    if verdict == "not resolved" and math.isfinite(need):
        text += f" (~{int(need)} seeds)"
    return text


def versus_table(
    points: pd.DataFrame,
    methods: pd.DataFrame,
    mine: Sequence[str],
    refs: Sequence[str],
) -> pd.DataFrame:
    """Per arch, sparsity and method of ``mine`` (labels of :func:`method_label`): its
    difference to each reference of ``refs``, from methods.csv (points of ``test_acc``, method
    minus reference, the analysis's 95% interval and verdict), one column per reference."""
    names = _variant_labels(points)
    targets = sorted(_target(points[points["sparsity"] > 0]).unique())
    rows = []
    for r in methods.to_dict("records"):
        a = names.get((str(r["arch"]), str(r["variant_a"])))
        b = names.get((str(r["arch"]), str(r["variant_b"])))
        me, ref = (a, b) if a in mine and b in refs else (b, a)
        if me not in mine or ref not in refs:
            continue
        target = min(targets, key=lambda t: abs(t - float(r["sparsity"])))
        rows.append(
            {
                "arch": r["arch"],
                "sparsity": f"{100 * target:g}%",
                "method": me,
                "vs": ref,
                "diff": diff_cell(r, 1.0 if a == me else -1.0),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["arch", "sparsity", "method"])
    t = pd.DataFrame(rows).pivot_table(
        index=["arch", "sparsity", "method"], columns="vs", values="diff", aggfunc="first"
    )
    t = t[[c for c in refs if c in t.columns]].fillna("")
    t.columns = [f"vs {c}" for c in t.columns]
    return t.reset_index()


def ordering_table(points: pd.DataFrame, methods: pd.DataFrame) -> pd.DataFrame:
    """Each pruning-at-initialisation score (:data:`PAI`) against random pruning at
    initialisation and gradual magnitude pruning: the ordering of Frankle et al. 2021."""
    return versus_table(points, methods, [f"{p} @init" for p in PAI], [RANDOM_INIT, AFTER_TRAINING])


def during_training_table(points: pd.DataFrame, methods: pd.DataFrame) -> pd.DataFrame:
    """SET, RigL and gradual random pruning against gradual magnitude pruning."""
    mine = [m for m in ORDER if m.startswith(("set ", "rigl ")) or m == "gradual random"]
    return versus_table(points, methods, mine, [AFTER_TRAINING])


def _without_control(variant: str) -> str:
    return " ".join(p for p in str(variant).split() if not p.startswith("control="))


def controls_table(points: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """controls.csv (method - control) per arch, sparsity and method (named as in
    :func:`accuracy_table`), one column per control."""
    if controls.empty:
        return pd.DataFrame(columns=["arch", "sparsity", "method"])
    names = {
        (a, _without_control(v)): lab
        for (a, v), lab in _variant_labels(points).items()
        if " + " not in lab
    }
    targets = sorted(_target(points[points["sparsity"] > 0]).unique())
    c = controls.assign(
        method=[
            names.get((str(a), str(m)), str(m))
            for a, m in zip(controls["arch"], controls["method"], strict=True)
        ],
        sparsity=[
            f"{100 * min(targets, key=lambda t: abs(t - s)):g}%" for s in controls["sparsity"]
        ],
        diff=[diff_cell(r) for r in controls.to_dict("records")],
    )
    t = c.pivot_table(
        index=["arch", "sparsity", "method"], columns="control", values="diff", aggfunc="first"
    )
    t = t[[k for k in CONTROL_ORDER if k in t.columns]].fillna("")
    t.columns = [f"- {k}" for k in t.columns]
    return t.reset_index()


def markdown(df: pd.DataFrame, index: bool = True, index_name: str = "method") -> str:
    """A GitHub table of ``df`` (its index as the first column when ``index``)."""
    head = ([index_name] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in zip(df.index, df.itertuples(index=False), strict=True):
        vals = ([str(i)] if index else []) + [str(v) for v in row]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("analysis", type=Path, help="an analysis directory (or its experiment)")
    ap.add_argument(
        "--compact",
        action="store_true",
        help="the README's form: no controls, only the two highest sparsities",
    )
    args = ap.parse_args(argv)
    d = analysis_dir(args.analysis)
    points = pd.read_csv(d / "points.csv")
    methods = pd.read_csv(d / "methods.csv")
    controls = pd.read_csv(d / "controls.csv")
    if args.compact:
        top = sorted(_target(points[points["sparsity"] > 0]).unique())[-2:]
        print(markdown(accuracy_table(points, top, controls=False)))
        return 0
    print(f"test_acc (points), seed mean ±half its 95% interval ({d}/points.csv)\n")
    print(markdown(accuracy_table(points)))
    print(
        "\nPruning at initialisation minus each reference, points [95% CI] verdict (methods.csv)\n"
    )
    print(markdown(ordering_table(points, methods), index=False))
    print("\nDuring training minus gradual magnitude, points [95% CI] verdict (methods.csv)\n")
    print(markdown(during_training_table(points, methods), index=False))
    print("\nEach method minus its control, points [95% CI] verdict (controls.csv)\n")
    print(markdown(controls_table(points, controls), index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
