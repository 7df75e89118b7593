"""Adaptive seeds against uniform seeds at equal budget, on comparisons whose truth is known.

Run: ``python benchmarks/bench_allocation.py [--sweeps 100] [--uniform 6] [--initial 3]
[--max 24] [--tolerance 1.0]``

Each simulated sweep is the family of comparisons a report makes: one dense baseline and eight
pruned points (two methods at four sparsities), so eight comparisons with the dense baseline
(line at ``-tolerance`` points) and four method-against-method comparisons at equal sparsity
(line 0). True differences with the dense baseline are set, a third each: 0 (within
tolerance), near the tolerance (``-tolerance`` +- half a tolerance) and far from it (2 to 4
points better or 2 to 4 points worse than the line); seed-to-seed spreads are 0.5 to 1.5
points and a seed costs 10 trial-epochs (dense) or 10 or 20 (pruned). Seed values come from
:func:`analysis.synthetic.seed_acc` (what ``write_experiment(truth=...)`` writes to disk), so
both strategies see the same value for the same seed.

- **uniform**: every configuration gets ``--uniform`` seeds, judged with today's fixed-seed
  Welch 95% interval (:func:`analysis.allocation.judge` with a one-look schedule);
- **adaptive**: ``--initial`` seeds each, then waves of :func:`analysis.allocation.plan_wave`
  (the sweep's allocator) up to ``--max`` seeds, with the same budget in trial-epochs as
  uniform, judged at the last look with the sequential interval
  (:data:`analysis.stats.SEQUENTIAL`);
- **adaptive, 95% at every look**: the same allocation judged with the fixed-seed 95% interval
  at every look, which optional stopping invalidates: shown for what the valid procedure costs.

A verdict is wrong when the truth contradicts it ("better": true difference <= 0; "within
tolerance": <= -tolerance; "worse": >= -tolerance). Goals: wrong verdicts <= 5% of all
comparisons for both, adaptive resolving >= 1.5x as many as uniform.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.allocation import Comparison, judge, plan_wave
from analysis.stats import BETTER, LEVEL, UNRESOLVED, WITHIN, WORSE, look_schedule
from analysis.synthetic import seed_acc

ARMS = ("uniform", "adaptive", "adaptive, 95% at every look")
DENSE_ACC = 0.80  #: true seed mean of every dense baseline (a fraction; points are x100)
METHODS, SPARSITIES = ("magnitude", "random"), (0.5, 0.8, 0.9, 0.95)


@dataclass
class Sweep:
    """One simulated sweep: configurations with true means (points), spreads and costs."""

    name: str
    truth: dict[str, float]  # points
    sd: dict[str, float]  # points
    cost: dict[str, float]  # trial-epochs per seed
    comparisons: list[Comparison]
    kind: dict[str, str]  # comparison -> truth category

    def values(self, cfg: str, n: int) -> list[float]:
        """The first ``n`` seeds of ``cfg``, in points."""
        mean, sd = self.truth[cfg] / 100, self.sd[cfg] / 100
        return [100 * seed_acc(f"{self.name}/{cfg}", mean, s, sd) for s in range(n)]

    def true_diff(self, c: Comparison) -> float:
        return self.truth[c.a] - self.truth[c.b]


def make_sweep(i: int, tol: float, rng: np.random.Generator) -> Sweep:
    truth, sd, cost, kind = {"dense": 100 * DENSE_ACC}, {"dense": 1.0}, {"dense": 10.0}, {}
    comparisons = []
    cats = rng.permutation(np.repeat(["zero", "near", "far"], 3))[: len(METHODS) * len(SPARSITIES)]
    for j, (m, s) in enumerate((m, s) for s in SPARSITIES for m in METHODS):
        cfg = f"{m}@{s}"
        cat = str(cats[j])
        diff = {
            "zero": 0.0,
            "near": -tol + rng.uniform(-0.5, 0.5) * tol,
            "far": -tol + rng.choice([-1, 1]) * rng.uniform(2, 4),
        }[cat]
        truth[cfg], sd[cfg], cost[cfg] = (
            truth["dense"] + diff,
            rng.uniform(0.5, 1.5),
            10.0 * (1 + j % 2),
        )
        comparisons.append(Comparison(f"{cfg} vs dense", cfg, "dense", -tol))
        kind[comparisons[-1].key] = f"vs dense, {cat}"
    sd["dense"] = float(rng.uniform(0.5, 1.5))
    for s in SPARSITIES:
        c = Comparison(
            f"{METHODS[0]} vs {METHODS[1]} @{s}", f"{METHODS[0]}@{s}", f"{METHODS[1]}@{s}"
        )
        comparisons.append(c)
        kind[c.key] = "method vs method"
    return Sweep(f"sweep{i}", truth, sd, cost, comparisons, kind)


def wrong(v: str, true_diff: float, line: float) -> bool:
    return (
        (v == BETTER and true_diff <= 0)
        or (v == WITHIN and true_diff <= line)
        or (v == WORSE and true_diff >= line)
    )


def uniform(sw: Sweep, seeds: int) -> tuple[pd.DataFrame, float]:
    values = {g: sw.values(g, seeds) for g in sw.truth}
    return judge(sw.comparisons, values, (seeds,)), seeds * sum(sw.cost.values())


def adaptive(
    sw: Sweep, initial: int, maximum: int, budget: float, level: float = LEVEL
) -> tuple[pd.DataFrame, float, int]:
    """Initial seeds everywhere, then the allocator's waves until it plans nothing."""
    schedule = look_schedule(initial, maximum)
    n = dict.fromkeys(sw.truth, initial)
    spent, waves = initial * sum(sw.cost.values()), 0
    while True:
        values = {g: sw.values(g, k) for g, k in n.items()}
        w = plan_wave(sw.comparisons, values, sw.cost, schedule, budget - spent, level=level)
        if not w.decisions:
            return w.table, spent, waves
        for d in w.decisions:
            n[d.config] = d.seeds
        spent += w.spent
        waves += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--uniform", type=int, default=6)
    ap.add_argument("--initial", type=int, default=3)
    ap.add_argument("--max", type=int, default=24)
    ap.add_argument("--tolerance", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    looks = len(look_schedule(args.initial, args.max))
    rows, spent, waves = [], dict.fromkeys(ARMS, 0.0), []
    for i in range(args.sweeps):
        sw = make_sweep(i, args.tolerance, rng)
        tu, bu = uniform(sw, args.uniform)
        ta, ba, nw = adaptive(sw, args.initial, args.max, bu)
        # the fixed-seed 95% interval reused at every look: overall level 1 - looks * 5%
        tn, bn, _ = adaptive(sw, args.initial, args.max, bu, 1 - looks * (1 - LEVEL))
        for arm, b in zip(ARMS, (bu, ba, bn), strict=True):
            spent[arm] += b
        waves.append(nw)
        for c in sw.comparisons:
            d, row = sw.true_diff(c), {"truth": sw.kind[c.key]}
            for arm, t in zip(ARMS, (tu, ta, tn), strict=True):
                v = t.loc[c.key, "verdict"]
                row[(arm, "resolved")] = v != UNRESOLVED
                row[(arm, "wrong")] = wrong(v, d, c.line)
            rows.append(row)
    df = pd.DataFrame(rows)
    table = df.groupby("truth").sum()
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.insert(0, ("", "comparisons"), df.groupby("truth").size())
    table.loc["all"] = table.sum()
    n = int(table.loc["all", ("", "comparisons")])
    print(
        f"{n} comparisons in {args.sweeps} sweeps; uniform: {args.uniform} seeds, Welch 95%; "
        f"adaptive: seeds {{initial: {args.initial}, max: {args.max}}}, looks "
        f"{look_schedule(args.initial, args.max)}, same budget; tolerance {args.tolerance} points"
    )
    print(table.to_string())
    print(f"\n{'':34} {'resolved':>9} {'wrong':>13} {'budget spent':>14}")
    for arm in ARMS:
        r, w = (int(table.loc["all", (arm, k)]) for k in ("resolved", "wrong"))
        print(f"{arm:34} {r:9d} {w:6d} ({w / n:4.1%}) {spent[arm] / spent[ARMS[0]]:13.1%}")
    ru, ra = (int(table.loc["all", (arm, "resolved")]) for arm in ARMS[:2])
    wu, wa = (int(table.loc["all", (arm, "wrong")]) for arm in ARMS[:2])
    print(
        f"\nwrong verdicts, uniform and adaptive: {max(wu, wa) / n:.1%} at most "
        f"(goal <= 5%: {'met' if max(wu, wa) <= 0.05 * n else 'NOT met'}); adaptive resolves "
        f"{ra / max(ru, 1):.2f}x uniform (goal >= 1.5x: {'met' if ra >= 1.5 * ru else 'NOT met'});"
        f" adaptive waves per sweep: median {np.median(waves):.0f}, max {max(waves)}; "
        f"{time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
