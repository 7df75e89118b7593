"""Where the next seeds go: the comparisons a report makes, judged look by look, and the seeds
that would resolve the most of them per unit of cost.

An adaptive sweep starts every configuration with ``initial`` seeds and may add seeds up to
``max``, judging each comparison (a pruned point against its dense baseline, two methods at
equal sparsity) only at the seed counts of :func:`analysis.stats.look_schedule`, with the
interval of :func:`analysis.stats.sequential_samples` (:data:`analysis.stats.SEQUENTIAL`), so a
verdict read where the sweep stopped stays valid. :func:`judge` gives every comparison's verdict
at its current look; :func:`plan_wave` decides, after a wave of results, which configurations get
seeds for the next look, greedily by expected resolution per unit of cost:

- a comparison is *open* when unresolved at its look (or before the first), below the last look,
  its next look's seeds are not all launched yet, and its expected resolution (below) at the
  last look, ``max`` seeds, is at least :data:`REACH` (20%); otherwise it is resolved, waiting
  or out of reach. Not "the seeds needed for 80% power are within ``max``": from 3 seeds the
  observed gap is noisy, and that rule stopped the benchmark's sweeps at a third of an ample
  budget (``benchmarks/bench_allocation.py``); the ranking already takes long shots last;
- its *expected resolution* is the probability that the interval at the next look ``N`` clears
  the line, taking the observed difference and spreads (of every seed back, also those past the
  look: what decides *whether* to go on may use any data, only the verdict waits for a look)
  as the truth:
  ``Phi(|gap| / se_N - t_q(df_N))`` with ``se_N = sqrt((sd_a² + sd_b²) / N)``, Welch's ``df_N``
  (seed-matched sides: the per-seed differences' spread and ``N - 1``) and ``q`` the level of
  look ``N`` (:func:`analysis.stats.look_levels`);
- its *cost* is the seeds each of its configurations still lacks for ``N`` times that
  configuration's cost per seed, each share divided by the open comparisons that need seeds of
  the same configuration (a dense baseline serves many comparisons, so its seeds are cheap per
  comparison);
- the highest ratio is taken first (ties: the order of the comparisons given), its seeds are
  planned, the ratios of the rest are recomputed (seeds already planned are free), and a
  comparison whose marginal cost exceeds what is left of the budget is skipped. The wave ends
  when nothing open is left.

Everything is a pure function of the values seen, in the order the seeds were added, so a
resumed sweep that replays the same results makes the same decisions.

>>> cs = [Comparison("p1 vs dense", "p1", "dense")]
>>> values = {"p1": [0.3, 0.4, 0.5], "dense": [0.0, 0.1, 0.2]}  # diff 0.3, not resolved
>>> w = plan_wave(cs, values, {"p1": 1.0, "dense": 1.0}, (3, 6, 12), budget=10.0)
>>> [(d.config, d.first_seed, d.seeds) for d in w.decisions], w.spent
([('p1', 3, 6), ('dense', 3, 6)], 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from analysis.compare import sparsity_cells, variant_order
from analysis.convergence import open_flags
from analysis.equal_budget import matched_pairs
from analysis.points import DENSE_VARIANT, P, dense_samples
from analysis.stats import (
    LEVEL,
    NOT_CONVERGED,
    POWER,
    SPENDING,
    UNRESOLVED,
    look_levels,
    look_schedule,
    resolution_lines,
    seeds_needed,
    sequential_level,
    sequential_samples,
    tost_bounds,
    verdict,
)
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M

RESOLVED: Final = "resolved"
OPEN: Final = "open"  #: unresolved and worth seeds: a candidate of the next wave
WAITING: Final = "waiting"  #: the seeds of its next (or first) look are launched, not all back
OUT_OF_REACH: Final = "out of reach"  #: at the last look, or under REACH chance by it
OVER_BUDGET: Final = "over budget"  #: open, but its seeds cost more than the budget left
STATES: Final = (RESOLVED, OPEN, WAITING, OUT_OF_REACH, OVER_BUDGET)
#: The least probability of resolving by the last look that keeps a comparison open: the
#: complement of the power :func:`analysis.stats.seeds_needed` plans for.
REACH: Final = 1 - POWER


@dataclass(frozen=True)
class Comparison:
    """One difference the report judges: ``a - b`` (signed so that positive is better, in the
    report's points) against ``line`` (``-tolerance``; 0 for method against method). ``a`` and
    ``b`` name the value lists; ``config_a``/``config_b`` the configurations whose seeds produce
    them (default: the same names; an IMP round and its round-0 baseline share one).
    ``equivalence``: for two peers (``line`` 0), the margin within which they are resolved as
    equal (:data:`analysis.stats.EQUAL`); 0: better or worse only."""

    key: str
    a: str
    b: str
    line: float = 0.0
    config_a: str | None = None
    config_b: str | None = None
    equivalence: float = 0.0

    @property
    def peers(self) -> bool:
        """Two methods, neither the reference: a symmetric verdict."""
        return self.equivalence > 0

    @property
    def tolerance(self) -> float:
        """The tolerance :func:`analysis.stats.verdict` reads: the equivalence margin of peers,
        else the distance of the line below 0."""
        return self.equivalence if self.peers else -self.line

    @property
    def configs(self) -> tuple[str, ...]:
        ca, cb = self.config_a or self.a, self.config_b or self.b
        return (ca,) if ca == cb else (ca, cb)


@dataclass(frozen=True)
class Decision:
    """Seeds ``first_seed .. seeds - 1`` (0-based positions in the seed order) of ``config``,
    chosen for ``comparison`` whose next look is ``seeds``; ``cost`` in budget units."""

    config: str
    first_seed: int
    seeds: int
    cost: float
    comparison: str
    p_resolve: float
    score: float

    @property
    def why(self) -> str:
        return (
            f"{self.config}: seeds {self.first_seed + 1}-{self.seeds} for {self.comparison} "
            f"(P(resolved at {self.seeds} seeds) = {self.p_resolve:.2f}, cost {self.cost:g})"
        )


@dataclass
class Wave:
    """One allocation round: the decisions in the order taken, the budget they spend and every
    comparison's state and judgement (a :func:`judge` table plus ``state`` and ``p_resolve``)."""

    decisions: list[Decision]
    spent: float
    table: pd.DataFrame = field(repr=False)

    def as_records(self) -> list[dict[str, object]]:
        """The decisions as plain dicts (for the experiment's allocation log)."""
        return [asdict(d) for d in self.decisions]


def judge(
    comparisons: Sequence[Comparison],
    values: Mapping[str, Sequence[float]],
    schedule: tuple[int, ...],
    level: float = LEVEL,
    spending: str = SPENDING,
) -> pd.DataFrame:
    """Every comparison at its current look (:func:`analysis.stats.sequential_samples`), one
    row each indexed by ``key``: ``look``, ``diff``, ``lo``, ``hi``, ``sd_a``, ``sd_b`` (of the
    seeds the look uses), ``verdict`` against its line (peers' "equal": the two one-sided tests
    at the look's level, :func:`analysis.stats.tost_bounds`), and ``seeds_needed`` at the
    sequential level where unresolved (inf: beyond any count). With a one-look schedule this is today's
    fixed-seed interval. Sides given as Series indexed by seed whose looked-at seeds are the same
    (:func:`same_seeds`) are judged paired: ``sd_a`` is then the spread of the per-seed
    differences and ``sd_b`` 0, so the seeds needed follow the paired interval too."""
    levels = look_levels(schedule, level, spending)
    q = levels[-1]  # seeds needed: to resolve by the last look
    rows = []
    for c in comparisons:
        va, vb = values.get(c.a, ()), values.get(c.b, ())
        a, b = np.asarray(va, dtype=float), np.asarray(vb, dtype=float)
        pair = same_seeds(va, vb)
        d = sequential_samples(a, b, schedule, level, paired_seeds=pair, spending=spending)
        n = int(d["look"])
        sd_a, sd_b = _spreads(a[:n], b[:n], pair) if n >= 2 else (math.nan, math.nan)
        # peers' "equal": the two one-sided tests at the look's own level (its spent error)
        q_look = levels[schedule.index(n)] if n else level
        eq = tost_bounds([d["diff"]], [d["se"]], [d["df"]], q_look)
        v = str(verdict([d["lo"]], [d["hi"]], c.tolerance, c.peers, equivalence=eq)[0])
        need = math.nan
        if v == UNRESOLVED and n:
            needs = [
                seeds_needed(sd_a, sd_b, float(g[0]), level=lv)
                for g, lv in resolution_lines([d["diff"]], c.tolerance, c.peers, q)
            ]
            need = min((x for x in needs if not math.isnan(x)), default=math.nan)
        rows.append((c.key, n, d["diff"], d["lo"], d["hi"], sd_a, sd_b, v, need, pair))
    cols = ["key", "look", "diff", "lo", "hi", "sd_a", "sd_b", "verdict", "seeds_needed", "paired"]
    return pd.DataFrame(rows, columns=cols).set_index("key")


def same_seeds(a: object, b: object) -> bool:
    """Whether two sides' values are seed-matched: both Series indexed by seed, whose first
    ``min(len)`` seeds are the same seeds in the same order (at least 2). Plain sequences
    (simulations with independent sides) are not."""
    if not (isinstance(a, pd.Series) and isinstance(b, pd.Series)):
        return False
    ia, ib = a.index, b.index
    n = min(len(ia), len(ib))
    return n >= 2 and list(ia[:n]) == list(ib[:n])


def _spreads(a: np.ndarray, b: np.ndarray, pair: bool) -> tuple[float, float]:
    """(sd_a, sd_b) for the seeds-needed and resolution rules: both sides' spreads, or, paired,
    the per-seed differences' spread and 0 (paired t: ``n - 1`` degrees of freedom)."""
    n = min(len(a), len(b))
    if pair:
        return float(np.std(a[:n] - b[:n], ddof=1)), 0.0
    return float(np.std(a, ddof=1)), float(np.std(b, ddof=1))


def p_resolve(
    gap: float, sd_a: float, sd_b: float, n: int, looks: int, level: float = LEVEL
) -> float:
    """Probability that the sequential interval at ``n`` seeds per side clears a line ``gap``
    away, if the observed gap and spreads were the truth (normal approximation of the
    difference, Welch's degrees of freedom at ``n``); NaN for a line that cannot be cleared
    (a NaN gap: :func:`~analysis.stats.resolution_lines`)."""
    if math.isnan(gap):
        return math.nan
    s2 = sd_a**2 + sd_b**2
    if s2 == 0:
        return 1.0 if gap != 0 else 0.0
    from scipy.special import ndtr, stdtrit

    df = (n - 1) * s2**2 / (sd_a**4 + sd_b**4)
    t = float(stdtrit(df, 0.5 + sequential_level(looks, level) / 2))
    return float(ndtr(abs(gap) / math.sqrt(s2 / n) - t))


def _chance(c: Comparison, diff: float, sd_a: float, sd_b: float, n: int, q: float) -> float:
    """:func:`p_resolve` of the likelier of the lines ``c`` can clear at ``n`` seeds, judged at
    the two-sided level ``q`` (:func:`~analysis.stats.resolution_lines`)."""
    ps = [
        p_resolve(float(g[0]), sd_a, sd_b, n, 1, lv)
        for g, lv in resolution_lines([diff], c.tolerance, c.peers, q)
    ]
    return max((p for p in ps if not math.isnan(p)), default=0.0)


def plan_wave(
    comparisons: Sequence[Comparison],
    values: Mapping[str, Sequence[float]],
    costs: Mapping[str, float],
    schedule: tuple[int, ...],
    budget: float,
    launched: Mapping[str, int] | None = None,
    level: float = LEVEL,
    spending: str = SPENDING,
) -> Wave:
    """The next wave's seeds (see the module docstring for the rule). ``values``: each side's
    results in seed order; ``costs``: budget units per seed of each configuration (e.g. its
    trial-epochs); ``launched``: seeds per configuration already started, finished or not
    (default: as many as the shortest value list of its sides); ``budget``: what is left."""
    table = judge(comparisons, values, schedule, level, spending)
    levels = look_levels(schedule, level, spending)
    q = levels[-1]
    planned: dict[str, int] = {}
    for c in comparisons:
        for cfg, side in zip(c.configs, (c.a, c.b), strict=False):
            n = len(values.get(side, ()))
            planned[cfg] = min(planned.get(cfg, n), n)
    planned.update(launched or {})
    state, prob, nxt = {}, {}, {}
    for c in comparisons:
        r = table.loc[c.key]
        a, b = (np.asarray(values.get(k, ()), dtype=float) for k in (c.a, c.b))
        later = [n for n in schedule if n > r["look"]]
        if r["verdict"] != UNRESOLVED:
            state[c.key] = RESOLVED
            continue
        if min(len(a), len(b)) < 2:
            state[c.key] = WAITING
            continue
        # the estimate uses every seed back, also those past the look (allowed: the union bound
        # holds whatever decides the stopping; only the verdict must wait for a look)
        pair = bool(r["paired"])
        diff = float(np.mean(a[: min(len(a), len(b))] - b[: min(len(a), len(b))]))
        diff = diff if pair else float(a.mean() - b.mean())
        sd_a, sd_b = _spreads(a, b, pair)
        # out of reach: even the last look would leave it unresolved more often than POWER
        # (a noisy 3-seed estimate of the gap must not rule out what the ranking orders last)
        reach = _chance(c, diff, sd_a, sd_b, schedule[-1], q) >= REACH
        if not later or not reach:
            state[c.key] = OUT_OF_REACH
        elif all(planned.get(g, 0) >= later[0] for g in c.configs):
            state[c.key] = WAITING
        else:
            state[c.key] = OPEN
            nxt[c.key] = later[0]
            q_next = levels[schedule.index(later[0])]  # that look's own level: one look's worth
            prob[c.key] = _chance(c, diff, sd_a, sd_b, later[0], q_next)
    decisions: list[Decision] = []
    spent = 0.0
    todo = [c for c in comparisons if state[c.key] == OPEN]
    while todo:
        lack = [{g: max(0, nxt[c.key] - planned.get(g, 0)) for g in c.configs} for c in todo]
        share: dict[str, int] = {}
        for need in lack:
            for g, k in need.items():
                share[g] = share.get(g, 0) + (k > 0)
        best, best_score = -1, -math.inf
        for i, (c, need) in enumerate(zip(todo, lack, strict=True)):
            per = sum(k * costs[g] / share[g] for g, k in need.items() if k)
            score = math.inf if per == 0 else prob[c.key] / per
            if score > best_score:
                best, best_score = i, score
        c, need = todo.pop(best), lack[best]
        cost = sum(k * costs[g] for g, k in need.items())
        if spent + cost > budget + 1e-9:
            state[c.key] = OVER_BUDGET
            continue
        for g, k in need.items():
            if k:
                d = Decision(
                    g, planned.get(g, 0), nxt[c.key], k * costs[g], c.key, prob[c.key], best_score
                )
                decisions.append(d)
                planned[g] = nxt[c.key]
        spent += cost
    table["state"] = pd.Series(state)
    table["p_resolve"] = pd.Series(prob)
    return Wave(decisions, spent, table)


def spent_where(decisions: Sequence[Decision], initial_cost: Mapping[str, float]) -> pd.DataFrame:
    """What was spent where: per configuration, the initial seeds' cost, the seeds added and
    their cost, the comparisons they were added for; sorted by total cost (the end-of-sweep
    summary's table)."""
    rows = {
        g: {"initial": c, "added_seeds": 0, "added": 0.0, "for": []}
        for g, c in initial_cost.items()
    }
    for d in decisions:
        r = rows.setdefault(d.config, {"initial": 0.0, "added_seeds": 0, "added": 0.0, "for": []})
        r["added_seeds"] += d.seeds - d.first_seed
        r["added"] += d.cost
        r["for"].append(d.comparison)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["for"] = out["for"].map(lambda ks: ", ".join(dict.fromkeys(ks)))
    out["total"] = out["initial"] + out["added"]
    out.index.name = "config"
    return out.sort_values(["total", "added"], ascending=False, kind="stable")


def report_comparisons(
    samples: pd.DataFrame,
    points: pd.DataFrame,
    metric: str,
    scale: float,
    sign: float,
    tolerance: float,
) -> tuple[list[Comparison], dict[str, list[float]]]:
    """The comparisons the report makes, as the allocator's inputs: each pruned point against
    its dense baseline (line ``-tolerance``; :func:`~analysis.compare.versus_dense`), every pair
    of variants in a cell of equal sparsity (:func:`~analysis.compare.at_equal_sparsity`, same
    cells and order) and each large-sparse point against the small dense one with as many
    nonzero parameters (question 5's matched pairs, :func:`~analysis.equal_budget.matched_pairs`),
    with each side's values in points (``sign * scale * metric``), one per seed in ascending seed
    order (the order an adaptive sweep adds seeds), as plain lists: judged with Welch's
    interval, as the report's comparisons are (:mod:`analysis.compare` says why). Variants and
    matched pairs are peers, equal within ``tolerance`` as well as better or worse.
    Configurations: a point's ``config_id``; a plain point's dense baseline is the dense
    configuration with its other settings; an IMP round's is its own run (round 0 of the same
    trials), so both sides grow together. A comparison with a side still improving at its end
    (``points.still_improving``) is left out: it reads "not converged", and seeds do not
    settle that."""
    k = sign * scale
    s = samples[samples[metric].notna() & samples["seed"].notna()]
    values: dict[str, list[float]] = {}
    configs: dict[str, str] = {}
    unconverged = set(points.loc[open_flags(points).to_numpy(), P.point_id])

    def side(name: str, rows: pd.DataFrame, by: list[str]) -> None:
        per_seed = rows.groupby([*by, "seed"])[metric].mean().sort_index(level="seed")
        values[name] = [k * float(v) for v in per_seed.to_numpy()]  # Welch, as the report

    out: list[Comparison] = []
    pruned = s[s[M.sparsity] > DENSE_EPS]
    dense = s[s[M.sparsity] <= DENSE_EPS]
    dense_keys = set(dense_samples(samples, metric)[P.baseline_key])
    is_dense = points[M.sparsity] <= DENSE_EPS
    dense_open = set(points.loc[is_dense & points[P.point_id].isin(unconverged), P.baseline_key])
    for pid, g in pruned.groupby(P.point_id, sort=True):
        bk = g[P.baseline_key].iloc[0]
        if bk not in dense_keys or pid in unconverged or bk in dense_open:
            continue
        cfg = str(g["config_id"].iloc[0])
        d = dense[dense[P.baseline_key] == bk]
        imp = g[P.round].notna().any()
        base_cfg = cfg if imp else str(sorted(d["config_id"].dropna().astype(str))[0])
        side(f"point:{pid}", g, [])
        if f"dense:{bk}" not in values:
            side(f"dense:{bk}", d.groupby("seed", as_index=False)[metric].mean(), [])
        out.append(
            Comparison(f"{pid} vs dense", f"point:{pid}", f"dense:{bk}", -tolerance, cfg, base_cfg)
        )
    usable = points[points[metric].notna() & points[M.sparsity].notna()]
    cells = sparsity_cells(usable)
    p = usable.assign(_cell=cells)
    p = p[p["_cell"].notna() & (p[P.variant] != DENSE_VARIANT)]
    if len(p) and p[P.variant].nunique() > 1:
        rank = {v: i for i, v in enumerate(variant_order(p, metric, sign))}
        m = s.merge(p[[P.point_id, "_cell"]], on=P.point_id, how="inner")
        for cell, g in m.groupby("_cell", sort=True):
            if g[P.point_id].isin(unconverged).any():
                continue
            vs = sorted(g[P.variant].unique(), key=lambda v: rank.get(v, len(rank)))
            for v in vs:
                gv = g[g[P.variant] == v]
                side(f"cell:{cell}:{v}", gv, [])
                configs[f"{cell}:{v}"] = str(sorted(gv["config_id"].dropna().astype(str))[0])
            for i, va in enumerate(vs):
                for vb in vs[i + 1 :]:
                    out.append(
                        Comparison(
                            f"{cell}: {va} vs {vb}",
                            f"cell:{cell}:{va}",
                            f"cell:{cell}:{vb}",
                            0.0,
                            configs[f"{cell}:{va}"],
                            configs[f"{cell}:{vb}"],
                            equivalence=tolerance,
                        )
                    )
    pairs = matched_pairs(usable, metric) if len(usable) else pd.DataFrame()
    # an IMP round 0 has no config_id (each variant's run trains it): its trials' configurations
    trial_cfg = s.dropna(subset=["config_id"]).groupby("trial_id")["config_id"].first()
    for r in pairs.itertuples(index=False) if "sparse_point_id" in pairs else ():
        sp, dp = r.sparse_point_id, r.dense_point_id
        if sp in unconverged or dp in unconverged:
            continue
        rows = {pid: s[s[P.point_id] == pid] for pid in (sp, dp)}
        cfg = {
            pid: sorted(set(trial_cfg.reindex(g["trial_id"]).dropna().astype(str)))
            for pid, g in rows.items()
        }
        if not all(cfg.values()):
            continue
        for pid, g in rows.items():
            if f"point:{pid}" not in values:
                side(f"point:{pid}", g, [])
        cfg = {pid: names[0] for pid, names in cfg.items()}
        out.append(
            Comparison(
                matched_key(sp, dp),
                f"point:{sp}",
                f"point:{dp}",
                0.0,
                cfg[sp],
                cfg[dp],
                equivalence=tolerance,
            )
        )
    return out, values


def matched_key(sparse_point: str, dense_point: str) -> str:
    """The allocator's key of a matched pair (:func:`report_comparisons`)."""
    return f"matched: {sparse_point} vs {dense_point}"


def sequential_looks(spec: Mapping[str, object]) -> tuple[int, ...] | None:
    """The look schedule of an adaptive sweep from its spec.yaml (``search.seeds: {initial,
    max}``), or None for a fixed list of seeds (whose report keeps the fixed-seed intervals)."""
    search = spec.get("search") if isinstance(spec, Mapping) else None
    seeds = search.get("seeds") if isinstance(search, Mapping) else None
    if not isinstance(seeds, Mapping):
        return None
    try:
        return look_schedule(int(seeds["initial"]), int(seeds["max"]))
    except (KeyError, TypeError, ValueError):
        return None


def sequential_verdicts(
    samples: pd.DataFrame,
    points: pd.DataFrame,
    methods: pd.DataFrame,
    matched: pd.DataFrame,
    metric: str,
    scale: float,
    sign: float,
    tolerance: float,
    looks: tuple[int, ...],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``points``, ``methods`` and ``matched`` (the report's tables) with the difference,
    interval, verdict and seeds needed of :func:`judge` at each comparison's current look in
    place of the fixed-seed Welch columns: what an adaptive sweep's report must print, since the
    sweep chose when to stop adding seeds (:data:`analysis.stats.SEQUENTIAL`). A verdict
    :data:`~analysis.stats.NOT_CONVERGED` stays: no interval speaks for a point still improving.
    ``matched`` (:func:`~analysis.equal_budget.matched_pairs`) keeps its units of ``metric``."""
    cs, values = report_comparisons(samples, points, metric, scale, sign, tolerance)
    t = judge(cs, values, looks)
    cols = {"diff": "diff_pts", "lo": "diff_ci95_lo", "hi": "diff_ci95_hi"}
    cols |= {"verdict": "verdict", "seeds_needed": "seeds_needed"}
    points = _overwrite(points, points[P.point_id].astype(str) + " vs dense", t, cols)
    if len(methods):
        usable = points[points[metric].notna() & points[M.sparsity].notna()]
        cells = sparsity_cells(usable).dropna()
        info = (
            usable.assign(_cell=cells)
            .dropna(subset=["_cell"])
            .groupby("_cell")
            .agg(arch=("arch", "first"), base_label=("base_label", "first"), s=(M.sparsity, "mean"))
        )
        lookup = {(r.arch, r.base_label, round(r.s, 9)): c for c, r in info.iterrows()}
        keys = [
            f"{lookup.get((r['arch'], r['base_label'], round(r[M.sparsity], 9)))}: "
            f"{r['variant_a']} vs {r['variant_b']}"
            for _, r in methods.iterrows()
        ]
        methods = _overwrite(methods, pd.Series(keys, index=methods.index), t, cols)
    if len(matched) and "sparse_point_id" in matched:
        keys = [
            matched_key(sp, dp)
            for sp, dp in zip(matched["sparse_point_id"], matched["dense_point_id"], strict=True)
        ]
        units = t.assign(lo=t["lo"] / scale, hi=t["hi"] / scale)  # matched.csv: signed metric
        into = {"lo": "ci95_lo", "hi": "ci95_hi", "verdict": "verdict"}
        matched = _overwrite(matched, pd.Series(keys, index=matched.index), units, into)
    return points, methods, matched


def _overwrite(
    table: pd.DataFrame, keys: pd.Series, judged: pd.DataFrame, cols: Mapping[str, str]
) -> pd.DataFrame:
    """``table`` with ``judged``'s columns (``cols``: source to destination) on the rows whose
    ``keys`` it judged, except rows whose verdict is already :data:`NOT_CONVERGED`."""
    out = table.copy()
    kept = out["verdict"].eq(NOT_CONVERGED) if "verdict" in out else False
    hit = keys.isin(judged.index) & ~kept
    if not hit.any():
        return out
    for src, dst in cols.items():
        out.loc[hit, dst] = judged.loc[keys[hit], src].to_numpy()
    return out
