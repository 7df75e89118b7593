"""Pareto-aware successive halving, the pure part: which configurations may still reach the front.

A pruning sweep is multi-objective (accuracy up, nonzero parameters or bytes or latency down), but
only accuracy improves with training: a trial's costs are fixed from the start (the schedule's
target sparsity fixes its nonzero parameters and bytes) or from compaction on (latency). So,
unlike MOASHA (Syne Tune), which ranks trials at a rung by non-dominated sorting of *all* their
objectives as if each were a fidelity, the rule here compares only accuracy, and only between
trials that could matter at each other's cost:

- **At its own cost.** A configuration continues past a rung while its *optimistic* accuracy,
  placed at its fixed cost, is not dominated by the rung's points of the other configurations
  (seed means at the same rung and phase). It is the hypervolume view, not cost strata: a point
  adds hypervolume exactly when nothing cheaper-or-equal is at least as accurate, so "could add
  hypervolume at its cost" is "not dominated", with no stratum boundaries to choose (a trial at
  the edge of a stratum is compared with its neighbour across the edge; a stratum of one is never
  judged), and coverage along the whole cost axis survives: the cheapest configuration can never
  be stopped, and a costly one is stopped only by something no costlier that already beats its
  optimistic bound. ``min_gain > 0`` (one cost axis only) also stops a configuration whose
  optimistic point could add less than that fraction of the rung front's hypervolume (on
  ``log10`` costs: costs span orders of magnitude, and a front should be covered on each).
- **At the same phase of the pruning schedule** (:class:`PhaseClock`): rungs of iterative
  magnitude pruning move to the ends of its rounds; gradual and one-shot trials are compared only
  with trials at the same progress of a schedule of the same timing (never a trial just after a
  pruning event with one that has had epochs to recover). A trial with no pruning behind it
  (dense, or one-shot before its event) is judged against every trial at its epoch: the others
  carry pruning damage it does not, so one no costlier that beats its bound anyway beats it
  fairly (the converse, a dense trial judging a pruned one, is never done).
- **Seeds pooled.** A configuration's seeds at a rung give one mean; its optimistic bound is the
  one-sided upper confidence bound of that mean with the seed spread pooled over all
  configurations at the rung (:func:`analysis.stats.upper_bound`; pooled because two seeds alone
  give a t quantile of 12.7 at one degree of freedom, and seed noise is much the same across
  configurations of one sweep). With no spread observed yet, ``noise_floor`` stands in. One
  unlucky seed only lowers the mean by its share; the bound stays wide while few seeds are in.

Everything here is plain data in, a decision out: no Ray, so the replay benchmark
(``benchmarks/bench_mo_stopping.py``) and the Ray Tune scheduler
(:mod:`sparsity_tune.sweep.pareto_stop`) run the same rule.

>>> rung_epochs(grace=2, reduction_factor=3, max_t=20)
(2, 6, 18)
>>> obs = [Observation("cheap", 0, (100.0,), 0.80), Observation("costly", 0, (1000.0,), 0.70)]
>>> decide(obs, "costly", level=0.9, noise_floor=0.05).stop   # 0.70 + 1.28 * 0.05 < 0.80
True
>>> decide(obs, "cheap", level=0.9, noise_floor=0.05).stop    # nothing cheaper
False
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.pareto import hypervolume_2d
from analysis.stats import upper_bound

STOP: str = "stop"
CONTINUE: str = "continue"
#: The phase of a trial with no pruning behind it (:meth:`PhaseClock.phase`).
DENSE: tuple[str] = ("dense",)


def rung_epochs(grace: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """Successive-halving milestones below ``max_t``: ``grace * rf**k`` (ASHA's rungs).

    >>> rung_epochs(1, 2, 9)
    (1, 2, 4, 8)
    """
    if grace < 1 or reduction_factor <= 1 or max_t < 1:
        raise ValueError(
            f"grace={grace}, reduction_factor={reduction_factor}, max_t={max_t}: "
            "allowed: grace >= 1, reduction_factor > 1, max_t >= 1"
        )
    out, k = [], 0
    while (m := math.floor(grace * reduction_factor**k + 1e-9)) < max_t:
        if not out or m > out[-1]:
            out.append(m)
        k += 1
    return tuple(out)


@dataclass(frozen=True)
class PhaseClock:
    """Where a trial stands in its pruning schedule, so rungs compare like with like.

    ``kind``: ``none`` (no pruning), ``one_shot`` (one event after ``start`` epochs, so the
    record of epoch ``start`` is the first pruned one), ``gradual`` (events from ``start`` to ``end`` every ``period`` epochs) or
    ``imp`` (rounds of ``period`` epochs, pruned and rewound at each round's end).
    """

    kind: Literal["none", "one_shot", "gradual", "imp"]
    start: int = 0
    end: int = 0
    period: int = 1

    def rung_epoch(self, milestone: int) -> int:
        """The epoch a rung at ``milestone`` is taken: IMP's next round end, else the milestone.

        >>> PhaseClock("imp", period=8).rung_epoch(6), PhaseClock("gradual", 0, 10).rung_epoch(6)
        (8, 6)
        """
        if self.kind == "imp":
            return -(-milestone // self.period) * self.period
        return milestone

    def settled(self, epoch: int) -> bool:
        """No pruning event comes after ``epoch`` (so a record's counted costs are final);
        False for IMP, whose rounds prune again after every round's record.

        >>> c = PhaseClock("gradual", 0, 6)
        >>> c.settled(5), c.settled(6), PhaseClock("imp", period=4).settled(40)
        (False, True, False)
        """
        if self.kind == "none":
            return True
        if self.kind == "one_shot":
            return epoch >= self.start
        return self.kind == "gradual" and epoch >= self.end

    def phase(self, epoch: int) -> Hashable:
        """A key equal for two trials exactly when their accuracies at ``epoch`` are comparable.

        Gradual: before ``end`` the progress through the schedule (with its timing, since two
        schedules at equal progress but different frequency have pruned differently); from
        ``end`` on, the epochs of recovery since the last event. One-shot: dense before the
        event, then epochs since it. IMP: the round whose end this is, and the round length.

        >>> c = PhaseClock("gradual", 0, 6)
        >>> c.phase(3), c.phase(6), c.phase(8)
        (('pruning', 0.5, 1), ('recovering', 0), ('recovering', 2))
        """
        if self.kind == "none":
            return DENSE
        if self.kind == "imp":
            return ("round", epoch // self.period, self.period)
        if self.kind == "one_shot":
            return DENSE if epoch < self.start else ("recovering", epoch - self.start)
        if epoch < self.end:
            span = max(1, self.end - self.start)
            return ("pruning", round(max(0, epoch - self.start) / span, 6), self.period)
        return ("recovering", epoch - self.end)


@dataclass(frozen=True)
class Observation:
    """One seed of one configuration at one rung: its fixed costs (minimised) and accuracy."""

    config: str
    seed: Hashable
    costs: tuple[float, ...]
    accuracy: float


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` concluded for one configuration, with its reasons (saved as is)."""

    config: str
    stop: bool
    mean: float
    n: int
    bound: float
    by: str | None = None  #: the configuration whose mean dominates the bound, if any
    gain: float | None = None  #: the optimistic point's hypervolume share (``min_gain`` rule)

    @property
    def action(self) -> str:
        return STOP if self.stop else CONTINUE


class RungGroup:
    """The configurations seen at one rung and phase, as running sums per configuration (seeds
    count once each), so a decision costs a few numpy passes over the configurations and no
    Python loop over them (3,000 configurations at one rung: 2 s for all 3,000 decisions under
    a load of 13 on 2 cores; the per-observation version it replaced took 11.5 s for 1,000)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.n: list[int] = []
        self.sum: list[float] = []
        self.sumsq: list[float] = []
        self.costs: list[tuple[float, ...]] = []
        self.seen: set[tuple[str, Hashable]] = set()
        self.pool_ss = 0.0  # sum over configurations of their squared deviations
        self.pool_df = 0  # sum over configurations of (seeds - 1)

    def add(self, o: Observation) -> None:
        """One seed's accuracy; a seed seen before (a restored trial) is ignored."""
        if (o.config, o.seed) in self.seen:
            return
        if self.costs and len(o.costs) != len(self.costs[0]):
            raise ValueError(
                f"configs {o.config!r} and {self.names[0]!r} have different numbers of costs"
            )
        self.seen.add((o.config, o.seed))
        i = self.index.get(o.config)
        if i is None:
            i = self.index[o.config] = len(self.names)
            self.names.append(o.config)
            self.n.append(0)
            self.sum.append(0.0)
            self.sumsq.append(0.0)
            self.costs.append(())
        self.pool_ss -= self._ss(i)
        self.n[i] += 1
        self.sum[i] += o.accuracy
        self.sumsq[i] += o.accuracy * o.accuracy
        self.costs[i] = tuple(float(c) for c in o.costs)  # the latest record's (settled) costs
        self.pool_ss += self._ss(i)
        self.pool_df += 1 if self.n[i] >= 2 else 0

    def _ss(self, i: int) -> float:
        n = self.n[i]
        return max(0.0, self.sumsq[i] - self.sum[i] ** 2 / n) if n >= 2 else 0.0

    def spread(self) -> tuple[float, float]:
        """:func:`pooled_spread` of the group."""
        if not self.pool_df:
            return math.nan, 0.0
        return math.sqrt(max(0.0, self.pool_ss) / self.pool_df), float(self.pool_df)

    def decide(
        self, config: str, level: float = 0.9, noise_floor: float = 0.01, min_gain: float = 0.0
    ) -> Decision:
        """:func:`decide` for ``config`` against the rest of the group."""
        if not 0.5 <= level < 1:
            raise ValueError(f"level={level}: allowed: 0.5 <= level < 1 (one-sided)")
        i = self.index.get(config)
        if i is None:
            raise ValueError(f"config {config!r} has no observation at this rung")
        sd, df = self.spread()
        sd = max(sd, noise_floor) if df else noise_floor
        n = self.n[i]
        mean = self.sum[i] / n
        bound = float(upper_bound(mean, sd, n, df if df else math.inf, level))
        means = np.asarray(self.sum) / np.asarray(self.n)
        costs = np.asarray(self.costs, dtype=float)
        c0 = costs[i]
        dom = (
            (costs <= c0).all(axis=1)
            & (means >= bound)
            & ((costs < c0).any(axis=1) | (means > bound))
        )
        dom[i] = False
        by = None
        if dom.any():
            k = np.flatnonzero(dom)
            by = self.names[int(k[np.argmax(means[k])])]  # the most accurate of them
        gain = None
        if min_gain > 0 and by is None:
            if costs.shape[1] != 1:
                raise ValueError(
                    f"min_gain={min_gain} needs exactly one cost, got {costs.shape[1]}"
                )
            others = np.arange(len(self.names)) != i
            gain = _hv_share(costs[others, 0], means[others], float(c0[0]), bound)
        stop = by is not None or (gain is not None and gain < min_gain)
        return Decision(config, stop, mean, n, bound, by, gain)


def _group(obs: Sequence[Observation]) -> RungGroup:
    g = RungGroup()
    for o in obs:
        g.add(o)
    return g


def pooled_spread(obs: Sequence[Observation]) -> tuple[float, float]:
    """Seed standard deviation pooled over configurations, with its degrees of freedom.

    ``sqrt(sum((n_i - 1) s_i²) / sum(n_i - 1))`` over configurations with two or more seeds;
    ``(nan, 0)`` when none has.

    >>> sd, df = pooled_spread([Observation("a", 0, (1.0,), 0.5), Observation("a", 1, (1.0,), 0.7),
    ...                         Observation("b", 0, (2.0,), 0.4), Observation("b", 1, (2.0,), 0.4)])
    >>> round(sd, 6), df
    (0.1, 2.0)
    """
    return _group(obs).spread()


def decide(
    obs: Sequence[Observation],
    config: str,
    level: float = 0.9,
    noise_floor: float = 0.01,
    min_gain: float = 0.0,
) -> Decision:
    """Stop ``config`` at this rung when its optimistic accuracy at its own cost is dominated.

    ``obs``: every seed of every configuration seen at this rung and phase (``config``'s
    included). The bound is :func:`analysis.stats.upper_bound` of ``config``'s seed mean with the
    pooled spread (at least ``noise_floor``; the normal quantile when nothing is pooled yet), at
    one-sided ``level``. Another configuration dominates when its costs are all no larger and its
    mean is at least the bound, one of them strictly. ``min_gain`` (one cost only): also stop
    when the hypervolume the optimistic point would add to the others' front (log10 cost against
    accuracy, reference: the worst cost seen x 1.1 and accuracy 0) is below ``min_gain`` times
    the front's hypervolume.
    """
    return _group(obs).decide(config, level, noise_floor, min_gain)


def _hv_share(cost: np.ndarray, acc: np.ndarray, c0: float, bound: float) -> float:
    """Hypervolume the optimistic point ``(c0, bound)`` adds to the others' front (``cost``,
    ``acc``), as a share of it."""
    if cost.size == 0:
        return math.inf
    x = np.log10(np.maximum(cost, 1e-12))
    x0 = math.log10(max(c0, 1e-12))
    hi, lo = max(float(x.max()), x0), min(float(x.min()), x0)
    ref = (hi + 0.1 * ((hi - lo) or 1), 0.0)
    base = hypervolume_2d(x, acc, ref)
    more = hypervolume_2d(np.r_[x, x0], np.r_[acc, bound], ref)
    return (more - base) / base if base > 0 else math.inf


class ParetoRungs:
    """The rule's bookkeeping over a whole sweep: observations per rung and phase, the stopped
    configurations, and every decision in order (:attr:`log`, plain JSON-able dicts).

    :meth:`from_log` rebuilds the state from a saved log *without recomputing*: a decision once
    taken is taken again as saved (a configuration stopped before an interruption stays stopped;
    a trial restored from a checkpoint that reaches a rung it already passed gets the saved
    answer), and later decisions see exactly the observations the uninterrupted run saw.
    """

    def __init__(
        self,
        milestones: Sequence[int],
        level: float = 0.9,
        noise_floor: float = 0.01,
        min_gain: float = 0.0,
    ) -> None:
        self.milestones = tuple(sorted(set(int(m) for m in milestones)))
        self.level, self.noise_floor, self.min_gain = level, noise_floor, min_gain
        self.log: list[dict] = []
        self.stopped: dict[str, dict] = {}
        self._groups: dict[tuple[int, Hashable], RungGroup] = {}
        self._epochs: dict[int, RungGroup] = {}  # every phase at one epoch: judges dense trials
        self._done: dict[tuple[str, str, int], str] = {}

    def _observe(self, epoch: int, phase: Hashable, o: Observation) -> RungGroup:
        """Add ``o`` to its rung's groups; the group that judges it (:data:`DENSE`: all phases)."""
        group = self._groups.setdefault((epoch, phase), RungGroup())
        group.add(o)
        every = self._epochs.setdefault(epoch, RungGroup())
        every.add(o)
        return every if phase == DENSE else group

    def rung_at(self, epoch: int, clock: PhaseClock) -> bool:
        """Whether ``epoch`` is a rung for a trial on ``clock`` (a milestone, moved by it)."""
        return any(clock.rung_epoch(m) == epoch for m in self.milestones)

    def on_epoch(
        self,
        config: str,
        seed: Hashable,
        epoch: int,
        costs: Sequence[float],
        accuracy: float,
        clock: PhaseClock,
    ) -> str:
        """:data:`STOP` or :data:`CONTINUE` for one trial's record of ``epoch``."""
        if config in self.stopped:
            return STOP
        if not self.rung_at(epoch, clock) or not math.isfinite(accuracy):
            return CONTINUE
        done = self._done.get((config, str(seed), epoch))
        if done is not None:
            return done
        phase = clock.phase(epoch)
        o = Observation(config, str(seed), tuple(float(c) for c in costs), accuracy)
        d = self._observe(epoch, phase, o).decide(
            config, self.level, self.noise_floor, self.min_gain
        )
        entry = {
            "config": config,
            "seed": str(seed),
            "epoch": epoch,
            "phase": list(phase),
            "costs": [float(c) for c in costs],
            "accuracy": float(accuracy),
            "action": d.action,
            "mean": d.mean,
            "n": d.n,
            "bound": d.bound,
            "by": d.by,
        }
        self._apply(entry)
        return d.action

    def _apply(self, entry: dict) -> None:
        self.log.append(entry)
        key = (entry["config"], entry["seed"], int(entry["epoch"]))
        self._done[key] = entry["action"]
        if entry["action"] == STOP:
            self.stopped.setdefault(entry["config"], entry)

    @classmethod
    def from_log(
        cls,
        entries: Sequence[dict],
        milestones: Sequence[int],
        level: float = 0.9,
        noise_floor: float = 0.01,
        min_gain: float = 0.0,
    ) -> ParetoRungs:
        """The state after ``entries`` (a saved :attr:`log`), replayed in order."""
        self = cls(milestones, level, noise_floor, min_gain)
        for e in entries:
            o = Observation(e["config"], e["seed"], tuple(e["costs"]), float(e["accuracy"]))
            self._observe(int(e["epoch"]), tuple(e["phase"]), o)
            self._apply(dict(e))
        return self
