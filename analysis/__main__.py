"""``python -m analysis RESULTS_DIR [RESULTS_DIR ...]``: tables, Pareto fronts, plots and
report.html of a sweep, or of several analysed together.

Exit status 2 with one clear message for bad input (missing, empty or foreign directory, unknown
metric, a tolerance that is not a finite number >= 0, an output directory that is a symlink or
another user's); no traceback. Damaged trial files are one warning each on stderr (the trial is
counted as ``damaged``), never an exit. W&B is used only with ``--wandb``, with the mode,
project, entity and group given on this command line.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from analysis.allocation import sequential_looks
from analysis.load import AnalysisError, Experiment, load_experiments, spec_tolerance
from analysis.questions import DEFAULT_X, DEFAULT_Y, analyse
from analysis.safe_io import Refused
from sparsity_tune.metrics import NUMERIC as NUMERIC_METRICS
from sparsity_tune.metrics import M
from sparsity_tune.wandb_setup import DEFAULT_PROJECT

#: the --x/--y choices: every numeric metric of the registry but the epoch counter
NUMERIC = [m for m in NUMERIC_METRICS if m != M.epoch]


def _metric(name: str) -> str:
    if name not in NUMERIC:
        raise argparse.ArgumentTypeError(
            f"unknown metric {name!r}; allowed: {', '.join(NUMERIC)} (names from sparsity_tune.metrics)"
        )
    return name


def _tolerance(raw: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not math.isfinite(v) or v < 0 or v > 100:
        raise argparse.ArgumentTypeError(
            f"--tolerance {raw!r}: allowed: accuracy points, a finite number from 0 to 100, e.g. 1"
        )
    return v


def _wandb_name(raw: str) -> str:
    from sparsity_tune.keys import NAME_RE, NAME_RULE

    if not NAME_RE.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"{raw!r}: allowed: {NAME_RULE}")
    return raw


MAX_WARNINGS = 20  # damaged-trial warnings printed one by one; the rest are counted


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Analyse an experiment directory: trials.csv, history.csv, configs.csv, "
        "pareto_<x>.csv, hypervolume.csv, plots/*.png and report.html.",
    )
    p.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="experiment directory (or one trial's --out dir); several are analysed together",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="output directory (default: RESULTS_DIR/analysis; for several directories "
        "analysis-NAME+NAME beside the first)",
    )
    p.add_argument(
        "--x",
        nargs="+",
        type=_metric,
        default=list(DEFAULT_X),
        metavar="METRIC",
        help=f"x axes of the fronts; direction from sparsity_tune.metrics, costs minimised (default: {' '.join(DEFAULT_X)})",
    )
    p.add_argument(
        "--y",
        type=_metric,
        default=DEFAULT_Y,
        metavar="METRIC",
        help=f"accuracy axis (default: {DEFAULT_Y}; direction from sparsity_tune.metrics)",
    )
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        default=None,
        metavar="PTS",
        help="accuracy points a pruned model may lose vs dense (default: the sweep's "
        "search.tolerance, which is 1 unless its spec sets it)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log tables and plots to a W&B run (job_type analysis), offline unless "
        "--wandb-mode online; spec.yaml's wandb settings are never used",
    )
    p.add_argument(
        "--wandb-mode",
        choices=("offline", "online"),
        default="offline",
        help="with --wandb: online uploads now (needs `wandb login`); default offline",
    )
    p.add_argument("--wandb-project", type=_wandb_name, default=DEFAULT_PROJECT, help="W&B project")
    p.add_argument("--wandb-entity", type=_wandb_name, help="W&B entity (default: your own)")
    p.add_argument(
        "--wandb-group", type=_wandb_name, help="W&B group (default: the experiment name)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or file list")
    return p


def default_out(exp: Experiment) -> Path:
    """RESULTS_DIR/analysis; for several experiments, analysis-<names> beside the first."""
    if not exp.sources:
        return exp.root / "analysis"
    return exp.root.parent / ("analysis-" + "+".join(Path(n).name for n in exp.sources))


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.wandb and (args.wandb_mode != "offline" or args.wandb_entity or args.wandb_group):
        p.error("--wandb-mode/--wandb-entity/--wandb-group need --wandb")
    t0 = time.perf_counter()
    try:
        exp = load_experiments(args.results_dirs, progress=None if not args.quiet else False)
    except AnalysisError as err:
        print(f"python -m analysis: error: {err}", file=sys.stderr)
        return 2
    out = args.out or default_out(exp)
    for w in exp.warnings[:MAX_WARNINGS]:
        print(f"python -m analysis: warning: {w}", file=sys.stderr)
    if len(exp.warnings) > MAX_WARNINGS:
        print(
            f"python -m analysis: warning: ... and {len(exp.warnings) - MAX_WARNINGS} more "
            "(see the error column of trials.csv)",
            file=sys.stderr,
        )
    from analysis.outputs import write_all

    swept = spec_tolerance(exp.spec)
    if args.tolerance is not None and swept is not None and args.tolerance != swept:
        adaptive = sequential_looks(exp.spec) is not None
        print(
            f"python -m analysis: warning: --tolerance {args.tolerance:g} is not the sweep's "
            f"search.tolerance {swept:g}"
            + (
                f"; its seeds were added for the comparisons open at {swept:g} point(s). The "
                "verdicts stay valid (the sequential intervals hold whatever the sweep chased)"
                if adaptive
                else ""
            ),
            file=sys.stderr,
        )
    a = analyse(exp, xs=tuple(dict.fromkeys(args.x)), y=args.y, tolerance=args.tolerance)
    try:
        written = write_all(a, out, png=not args.no_plots)
        if args.wandb:
            from analysis.wandb_log import WandbTarget, log_analysis

            target = WandbTarget(
                mode=args.wandb_mode,
                project=args.wandb_project,
                entity=args.wandb_entity,
                group=args.wandb_group,
            )
            log_analysis(a, written, out_dir=out, where=target)
    except Refused as err:
        print(f"python -m analysis: error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        counts = a.trials["status"].value_counts().to_dict()
        print(
            f"{len(a.trials)} trials {counts}, {len(a.configs)} configurations -> {out}/ "
            f"({len(written)} files, {time.perf_counter() - t0:.1f} s)"
        )
        for s in a.sections[1:]:  # the answer first, then the details (report.html folds them)
            print(f"\n{s.title}")
            print(f"  {s.lead}")
            for sentence in s.details:
                print(f"  - {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
