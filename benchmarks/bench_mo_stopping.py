"""Early-stopping rules replayed on one recorded pruning grid: hypervolume kept vs budget spent.

Run: ``python benchmarks/bench_mo_stopping.py [--repeats 20] [--workers 8] [--png docs/mo_stopping.png]``
(the curves come from ``benchmarks/data/mo_grid_curves.csv.gz``, recorded once by
``benchmarks/mo_grid_record.py``: 132 MNIST-1D trials, gradual pruning, 16 epochs each).

The multi-fidelity literature compares schedulers on tabulated benchmarks this way: the recorded
per-epoch curves stand in for training, and each rule is replayed on them many times with the
trials in shuffled orders (``--repeats``), ``--workers`` trials running at a time, one epoch a
tick. A rule sees each record as it would in a sweep and answers stop or continue. Rules:

- **grid**: every trial to the end (the reference: 100% of the trial-epochs);
- **asha**: Ray Tune's own ``_Bracket`` (``ray.tune.schedulers.async_hyperband``: the bookkeeping
  ``ASHAScheduler`` delegates to, driven here without a cluster) on ``test_acc``;
- **moasha**: Syne Tune's own ``MOASHA`` (``syne_tune.optimizer.schedulers.multiobjective``,
  non-dominated sorting with its default priority), driven through ``on_trial_add`` and
  ``on_trial_result``, objectives ``1 - test_acc`` and the record's ``nonzero_params``;
- **pareto**: ours (:class:`sparsity_tune.sweep.pareto_rungs.ParetoRungs`): accuracy compared at
  each configuration's own fixed cost (as ``pareto_asha`` takes it: the schedule target's
  estimate of the nonzero parameters, the record's own count once the schedule is over), at equal phase
  of the pruning schedule (each trial's clock as the scheduler builds it: the dense trials have
  their own), seeds pooled; a stopped configuration's seeds not yet started never start, as
  under Ray (the scheduler stops a pending trial of a stopped configuration before it runs).

All use grace 1 epoch and reduction factor 3 (``search.grace_period`` and ``reduction_factor``'s
defaults; pareto at its own defaults, level 0.9 and noise floor 0.01) unless ``--grace``/``--rf``
say otherwise.

**Held-out check** (``--holdout arch=mlp arch=cnn``): a setting of pareto chosen on this grid is
in-sample. This mode chooses one on the trials of the first selection (here the MLPs, each half
judged against its own grid's front) by a rule fixed beforehand: of :data:`HOLDOUT_SETTINGS`,
the one with the least budget among those keeping >= 95% of the hypervolume; it then reports
that setting on the held-out trials (the CNNs) and on the whole grid.

Figures: the **normalized hypervolume** of the front of configurations (seed means of each
trial's last record so far: what the analysis would draw), divided by that of the full grid, on
two planes: accuracy vs ``log10(nonzero_params)`` (costs span three orders of magnitude; on a
linear axis the few cheapest points decide the whole area) and accuracy vs ``infer_ms_b256`` (the
shipped model's measured latency: a trial stopped before its final pruning event ships dense, so
it counts the dense latency of its architecture). Reference point: 10% above the worst cost of
the grid, accuracy 0.1 (chance). Both are read **anytime**, when 10/25/35/50/100% of the grid's
trial-epochs have been spent (a rule that has finished keeps its final front), and at the end.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import mo_grid_record
import numpy as np
import pandas as pd

from analysis.pareto import hypervolume_2d
from sparsity_tune.metrics import M
from sparsity_tune.sweep.pareto_rungs import STOP, ParetoRungs, PhaseClock, rung_epochs
from sparsity_tune.sweep.pareto_stop import phase_clock, target_costs

DATA = Path(__file__).parent / "data" / "mo_grid_curves.csv.gz"
KEYS = ("arch", "width", "granularity", "final_sparsity")
END_EPOCH = 6  # the recorded schedule: gradual 0 -> 6 (mo_grid_record.END_EPOCH)
RECORDED = PhaseClock("gradual", 0, END_EPOCH)
CHECKPOINTS = (0.10, 0.25, 0.35, 0.50, 1.0)
PLANES = ("log_params", "latency")
COLORS = {"grid": "#1f77b4", "asha": "#ff7f0e", "moasha": "#2ca02c", "pareto": "#d62728"}


@dataclass
class Trial:
    tid: int
    config: str
    seed: int
    acc: np.ndarray  # test_acc per epoch (index 0: epoch 1)
    params: np.ndarray  # nonzero_params per epoch
    target_params: float  # nonzero_params at the schedule's target, as pareto_asha estimates it
    latency: float  # infer_ms_b256 of the shipped model
    dense_latency: float  # that of the dense model of the same arch and width
    #: the trial's pruning schedule, as pareto_asha reads it (default: the recorded one)
    clock: PhaseClock = RECORDED
    settings: dict = field(default_factory=dict)  # arch, width, ... seed (for --select)


def load(path: Path, select: dict[str, str] | None = None) -> list[Trial]:
    """The recorded trials; ``select`` keeps those whose settings match (values as text)."""
    df = pd.read_csv(path).sort_values([*KEYS, "seed", "epoch"])
    for k, v in (select or {}).items():
        if k not in df.columns:
            raise SystemExit(f"--select {k}={v}: no such column; allowed: {', '.join(KEYS)}")
        df = df[df[k].astype(str) == v]
        if df.empty:
            raise SystemExit(f"--select {k}={v}: no trial has it")
    dense = (
        df[df.final_sparsity == 0].groupby(["arch", "width"])["infer_ms_b256"].median().to_dict()
    )
    out = []
    for i, (key, g) in enumerate(df.groupby([*KEYS, "seed"], sort=True)):
        settings = dict(zip([*KEYS, "seed"], key, strict=True))
        settings = {k: v.item() if hasattr(v, "item") else v for k, v in settings.items()}
        cfg = mo_grid_record.config(settings)
        (estimate,) = target_costs(cfg, (M.nonzero_params,))
        out.append(
            Trial(
                tid=i,
                config="/".join(str(k) for k in key[:-1]),
                seed=int(key[-1]),
                acc=g.test_acc.to_numpy(float),
                params=g.nonzero_params.to_numpy(float),
                target_params=estimate,
                latency=float(g.infer_ms_b256.iloc[-1]),
                dense_latency=float(dense[(key[0], key[1])]),
                clock=phase_clock(cfg),
                settings=settings,
            )
        )
    return out


# ---------------------------------------------------------------------------- the rules
class Grid:
    def __init__(self, trials: list[Trial], grace: int, rf: float) -> None:
        pass

    def add(self, t: Trial) -> None:
        pass

    def skip(self, t: Trial) -> bool:
        """Whether ``t`` is dropped before it starts (its configuration already stopped)."""
        return False

    def result(self, t: Trial, epoch: int) -> str:
        return "continue"


class RayAsha(Grid):
    """Ray Tune's ASHA bookkeeping itself (one bracket, as ``ASHAScheduler``'s default)."""

    def __init__(self, trials: list[Trial], grace: int, rf: float) -> None:
        from ray.tune.schedulers.async_hyperband import _Bracket

        max_t = len(trials[0].acc)
        self.bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=rf, s=0)

    def result(self, t: Trial, epoch: int) -> str:
        trial = SimpleNamespace(trial_id=t.tid)
        return self.bracket.on_result(trial, epoch, t.acc[epoch - 1]).lower()


class SyneMoasha(Grid):
    """Syne Tune's MOASHA itself, objectives minimised: error and the record's nonzero params."""

    def __init__(self, trials: list[Trial], grace: int, rf: float) -> None:
        from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

        self.moasha = MOASHA(
            config_space={},
            metrics=["err", "nonzero_params"],
            do_minimize=True,
            time_attr="epoch",
            max_t=len(trials[0].acc),
            grace_period=grace,
            reduction_factor=rf,
        )
        self._trials: dict[int, object] = {}

    def add(self, t: Trial) -> None:
        import datetime

        from syne_tune.backend.trial_status import Trial as SyneTrial

        st = SyneTrial(trial_id=t.tid, config={}, creation_time=datetime.datetime.now())
        self._trials[t.tid] = st
        self.moasha.on_trial_add(st)

    def result(self, t: Trial, epoch: int) -> str:
        res = {"epoch": epoch, "err": 1 - t.acc[epoch - 1], "nonzero_params": t.params[epoch - 1]}
        return self.moasha.on_trial_result(self._trials[t.tid], res).lower()


class Pareto(Grid):
    """Ours: the pure rule of the Ray scheduler, on the schedule's target costs."""

    def __init__(self, trials: list[Trial], grace: int, rf: float, **kw: float) -> None:
        self.rungs = ParetoRungs(rung_epochs(grace, rf, len(trials[0].acc)), **kw)

    def skip(self, t: Trial) -> bool:
        return t.config in self.rungs.stopped

    def result(self, t: Trial, epoch: int) -> str:
        # as the scheduler: the target's estimate, the record's own count once settled
        settled = t.clock.settled(epoch)
        cost = (t.params[epoch - 1] if settled else t.target_params,)
        return self.rungs.on_epoch(t.config, t.seed, epoch, cost, t.acc[epoch - 1], t.clock)


RULES = {"grid": Grid, "asha": RayAsha, "moasha": SyneMoasha, "pareto": Pareto}


# ---------------------------------------------------------------------------- replay
class Fronts:
    """Hypervolume of the configurations' fronts, normalized by the full grid's."""

    def __init__(self, trials: list[Trial]) -> None:
        self.trials = trials
        last = {t.tid: len(t.acc) for t in trials}
        self.ref: dict[str, tuple[float, float]] = {}
        for plane in PLANES:
            x = [self._cost(t, len(t.acc), plane) for t in trials]
            x += [self._cost(t, 1, plane) for t in trials]  # stopped early: dense-ish costs
            self.ref[plane] = (max(x) + 0.1 * (max(x) - min(x)), 0.1)
        self.full = {p: self._hv(last, p) for p in PLANES}

    @staticmethod
    def _cost(t: Trial, epoch: int, plane: str) -> float:
        if plane == "log_params":
            return math.log10(t.params[epoch - 1])
        return t.latency if epoch >= END_EPOCH else t.dense_latency

    def _hv(self, seen: dict[int, int], plane: str) -> float:
        pts: dict[str, list[tuple[float, float]]] = {}
        for t in self.trials:
            e = seen.get(t.tid, 0)
            if e:
                pts.setdefault(t.config, []).append((self._cost(t, e, plane), t.acc[e - 1]))
        if not pts:
            return 0.0
        xy = np.array([np.mean(v, axis=0) for v in pts.values()])
        return hypervolume_2d(xy[:, 0], xy[:, 1], self.ref[plane])

    def normalized(self, seen: dict[int, int]) -> dict[str, float]:
        return {p: self._hv(seen, p) / self.full[p] for p in PLANES}


def replay(
    rule: Grid, trials: list[Trial], order: list[int], workers: int, fronts: Fronts
) -> dict[str, float]:
    """One sweep: ``workers`` trials at a time in ``order``, one epoch a tick."""
    total = sum(len(t.acc) for t in trials)
    queue = [trials[i] for i in order]
    running: list[Trial] = []
    seen: dict[int, int] = {}
    spent = 0
    marks: dict[str, float] = {}
    pending = list(CHECKPOINTS)
    while queue or running:
        while len(running) < workers and queue:
            t = queue.pop(0)
            if rule.skip(t):
                continue
            rule.add(t)
            running.append(t)
        for t in list(running):
            e = seen.get(t.tid, 0) + 1
            seen[t.tid] = e
            spent += 1
            if rule.result(t, e) == STOP or e == len(t.acc):
                running.remove(t)
        while pending and spent >= pending[0] * total:
            for p, v in fronts.normalized(seen).items():
                marks[f"{p}@{pending[0]:.0%}"] = v
            pending.pop(0)
    end = fronts.normalized(seen)
    for c in pending:  # finished before this much was spent: its final front
        for p, v in end.items():
            marks[f"{p}@{c:.0%}"] = v
    return {"budget": spent / total, **{f"{p}@end": v for p, v in end.items()}, **marks}


def run(
    trials: list[Trial],
    fronts: Fronts,
    rules: list[str],
    repeats: int,
    workers: int,
    grace: int,
    rf: float,
    **pareto_kw: float,
) -> pd.DataFrame:
    """Every rule on the same ``repeats`` shuffled orders (order r: numpy seed r)."""
    rows = []
    for r in range(repeats):
        order = list(np.random.default_rng(r).permutation(len(trials)))
        for name in rules:
            np.random.seed(r)  # MOASHA draws its bracket with numpy's global generator
            kw = pareto_kw if name == "pareto" else {}
            rule = RULES[name](trials, grace, rf, **kw)
            rows.append({"rule": name, "repeat": r, **replay(rule, trials, order, workers, fronts)})
    return pd.DataFrame(rows)


#: Settings of each rule for the trade-off table: (grace, reduction factor, pareto's level).
TRADEOFF = {
    "asha": [(g, rf, None) for g in (1, 2, 3) for rf in (2, 3, 4)],
    "moasha": [(g, rf, None) for g in (1, 2, 3) for rf in (2, 3, 4)],
    "pareto": [(g, rf, lv) for g in (1, 2, 3) for rf in (2, 3) for lv in (0.8, 0.9, 0.95)],
}


def tradeoff(trials: list[Trial], fronts: Fronts, args: argparse.Namespace) -> pd.DataFrame:
    """Budget and final hypervolume of each rule under each of its :data:`TRADEOFF` settings."""
    rows = []
    for name, settings in TRADEOFF.items():
        for g, rf, lv in settings:
            kw = {"level": lv, "noise_floor": args.noise_floor, "min_gain": args.min_gain}
            kw = kw if lv else {}
            df = run(trials, fronts, [name], args.repeats, args.workers, g, rf, **kw)
            rows.append(
                {
                    "rule": name,
                    "setting": f"grace {g}, rf {rf:g}" + (f", level {lv:g}" if lv else ""),
                    "budget": df.budget.mean(),
                    **{p: df[f"{p}@end"].mean() for p in PLANES},
                }
            )
    return pd.DataFrame(rows)


#: pareto settings the held-out check chooses among: (grace, reduction factor, level, min_gain).
HOLDOUT_SETTINGS = [
    (g, rf, lv, mg)
    for g in (1, 2)
    for rf in (2, 3, 4)
    for lv in (0.8, 0.9, 0.95)
    for mg in (0.0, 0.01)
]


def holdout(path: Path, choose_on: dict, test_on: dict, args: argparse.Namespace) -> str:
    """Choose a pareto setting on ``choose_on``'s trials, report it on ``test_on``'s and on all."""

    def score(select: dict | None, g: int, rf: float, lv: float, mg: float) -> dict:
        trials = load(path, select)
        kw = {"level": lv, "noise_floor": args.noise_floor, "min_gain": mg}
        df = run(trials, Fronts(trials), ["pareto"], args.repeats, args.workers, g, rf, **kw)
        return {
            "budget": df.budget.mean(),
            **{p: df[f"{p}@end"].mean() for p in PLANES},
        }

    tried = [(s, score(choose_on, *s)) for s in HOLDOUT_SETTINGS]
    ok = [(s, r) for s, r in tried if r["log_params"] >= 0.95]
    if not ok:
        return "no setting kept 95% of the hypervolume on the selection half"
    best, chosen = min(ok, key=lambda sr: sr[1]["budget"])
    name = "grace {}, rf {:g}, level {:g}, min_gain {:g}".format(*best)
    lines = [
        f"chosen on {fmt(choose_on)} (least budget with >= 95% HV of {len(tried)}): {name}",
        "| trials | trial-epochs spent | HV log10 params | HV latency |",
        "|---|---|---|---|",
    ]
    for label, select in ((fmt(choose_on), choose_on), (fmt(test_on) + " (held out)", test_on)):
        r = chosen if select is choose_on else score(select, *best)
        lines.append(
            f"| {label} | {r['budget']:.1%} | {r['log_params']:.1%} | {r['latency']:.1%} |"
        )
    r = score(None, *best)
    lines.append(f"| all | {r['budget']:.1%} | {r['log_params']:.1%} | {r['latency']:.1%} |")
    return "\n".join(lines)


def fmt(select: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in select.items())


def parse_select(items: list[str], flag: str) -> dict[str, str]:
    bad = [s for s in items if "=" not in s]
    if bad:
        raise SystemExit(f"{flag} {bad[0]}: expected KEY=VALUE, e.g. arch=mlp")
    return dict(s.split("=", 1) for s in items)


def table(df: pd.DataFrame) -> str:
    cols = ["budget"] + [f"{p}@{c}" for p in PLANES for c in ("end", "25%", "50%")]
    agg = df.groupby("rule", sort=False)[cols].agg(["mean", "std"])
    lines = [
        "| rule | trial-epochs spent | HV log10 params: end | @25% | @50% | HV latency: end | @25% | @50% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in agg.index:
        cells = [
            f"{agg.loc[rule, (c, 'mean')]:.1%} ± {agg.loc[rule, (c, 'std')]:.1%}" for c in cols
        ]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(df: pd.DataFrame, trade: pd.DataFrame | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 3 if trade is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.2))
    xs = list(CHECKPOINTS)
    if trade is not None:
        ax = axes[2]
        for rule, g in trade.groupby("rule", sort=False):
            ax.scatter(g.budget * 100, g.log_params * 100, label=rule, s=18, color=COLORS[rule])
        ax.axhline(95, color="grey", lw=0.8, ls="--")
        ax.axvline(35, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("grid trial-epochs spent (%)")
        ax.set_title("each rule's settings: final HV (log10 params)")
        ax.legend()
    for ax, plane in zip(axes[:2], PLANES, strict=True):
        for rule, g in df.groupby("rule", sort=False):
            ys = [g[f"{plane}@{c:.0%}"].mean() for c in xs]
            c = COLORS[str(rule)]
            ax.plot([x * 100 for x in xs], [y * 100 for y in ys], marker="o", label=rule, color=c)
            end = g[f"{plane}@end"].mean() * 100
            ax.scatter([g.budget.mean() * 100], [end], marker="*", s=120, color=c)
        ax.axhline(95, color="grey", lw=0.8, ls="--")
        ax.axvline(35, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("grid trial-epochs spent (%)")
        ax.set_title(
            "accuracy vs " + ("log10 nonzero params" if plane == "log_params" else "infer_ms_b256")
        )
    axes[0].set_ylabel("hypervolume, % of the full grid's")
    axes[0].legend()
    fig.suptitle(
        "Early stopping replayed on the MNIST-1D pruning grid (mean over shuffled orders; * = end)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--grace", type=int, default=1)
    ap.add_argument("--rf", type=float, default=3.0)
    ap.add_argument("--level", type=float, default=0.9, help="pareto: one-sided level")
    ap.add_argument("--noise-floor", type=float, default=0.01, help="pareto: least seed sd")
    ap.add_argument("--min-gain", type=float, default=0.0, help="pareto: least hypervolume share")
    ap.add_argument(
        "--select",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="replay only these trials (e.g. arch=mlp), judged against their own grid's front",
    )
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--tradeoff", action="store_true", help="also each rule under 9-18 settings")
    ap.add_argument(
        "--holdout",
        nargs=2,
        default=None,
        metavar=("CHOOSE_ON", "TEST_ON"),
        help="choose pareto's setting on one half (e.g. arch=mlp), report it on the other",
    )
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.holdout:
        choose_on, test_on = (parse_select([h], "--holdout") for h in args.holdout)
        print(holdout(args.data, choose_on, test_on, args))
        print(
            f"\n{args.repeats} shuffled orders, {args.workers} workers; "
            f"{time.perf_counter() - t0:.0f}s"
        )
        return
    trials = load(args.data, parse_select(args.select, "--select"))
    fronts = Fronts(trials)
    kw = {"level": args.level, "noise_floor": args.noise_floor, "min_gain": args.min_gain}
    df = run(trials, fronts, args.rules, args.repeats, args.workers, args.grace, args.rf, **kw)
    print(table(df))
    print(
        f"\n{len(trials)} trials, {args.repeats} shuffled orders, {args.workers} workers, grace "
        f"{args.grace}, reduction factor {args.rf:g}, pareto level {args.level:g}, noise floor "
        f"{args.noise_floor:g}, min gain {args.min_gain:g}"
        + (f", trials with {' '.join(args.select)}" if args.select else "")
        + f"; {time.perf_counter() - t0:.0f}s"
    )
    trade = None
    if args.tradeoff:
        trade = tradeoff(trials, fronts, args)
        print("\n| rule | setting | trial-epochs spent | HV log10 params | HV latency |")
        print("|---|---|---|---|---|")
        for r in trade.itertuples():
            print(
                f"| {r.rule} | {r.setting} | {r.budget:.1%} | {r.log_params:.1%} | {r.latency:.1%} |"
            )
    if args.png:
        plot(df, trade, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
