"""Differences of seed means, their Welch intervals, and what a report may claim from them.

"Within tolerance", "better" and "worse" are claims about a *difference* of two seed means (a
pruned configuration and its dense baseline, or two methods at equal sparsity), so each comes
with the 95% Welch interval of that difference: unequal variances, Welch-Satterthwaite degrees of
freedom, the interval ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval()``
gives. Where the two sides share what makes them vary (a pruned round's times and its dense round's,
timed in the same process), :func:`paired` gives Student's t interval on the per-seed
differences (``scipy.stats.ttest_rel``); :mod:`analysis.compare` says why accuracy keeps Welch's.
The verdict reads where the *whole* interval lies (a non-inferiority test: a two-sided 95%
interval above ``-tolerance`` is the one-sided 2.5% test of "worse by more than the tolerance"):

- ``better``: above 0;
- ``within tolerance``: above ``-tolerance`` (with tolerance 0 this cannot happen);
- ``worse``: below ``-tolerance``;
- ``equal within tolerance``: two methods compared with each other (no side is the reference)
  that pass Schuirmann's two one-sided tests (TOST, 1987; the FDA's bioequivalence rule):
  "difference <= -tolerance" and "difference >= tolerance" are each rejected by a one-sided t
  test at ``alpha = 1 - level`` (5%), i.e. the ``1 - 2 alpha`` two-sided interval (90%) lies
  inside ``(-tolerance, tolerance)`` (:func:`tost_bounds`). Its error rate, claiming "equal"
  when ``|true difference| >= tolerance``, is at most alpha, the same nominal 5% as every
  other verdict here; read from the 95% interval it would be 2.5%, resolving fewer. Better
  and worse take precedence (a resolved nonzero difference inside the margin is reported as
  what it is);
- ``not resolved``: it straddles the line, or a side has one seed (no spread, no interval);
- ``not converged``: a side was still improving when its training ended
  (:func:`analysis.convergence.still_improving`), so the difference describes networks that had
  not finished training and no claim is read from it, whatever its interval.

For an unresolved difference, :func:`seeds_needed` says how many seeds per configuration the
observed noise would need: the smallest ``n`` with ``(t_0.975 + t_0.8) * se(n) <= gap``, the
usual sample-size rule for 80% power, taking the observed mean difference and seed standard
deviations as the truth. For two peers it is the fewer of the seeds that would clear 0 and
those that would clear the nearer equivalence bound, the latter with the one-sided quantile the
two one-sided tests read (:func:`resolution_lines`, which the allocator's chance of resolution,
:func:`analysis.allocation.p_resolve`, reads too: one rule).
Everything works on arrays of summary statistics (mean, std, n), so a 20,000-configuration
sweep is compared in one vectorised pass.

>>> d = welch([0.82], [0.02], [3], [0.80], [0.02], [3])   # se 0.0163, df 4
>>> [round(float(d[k][0]), 4) for k in ("diff", "lo", "hi", "df")]
[0.02, -0.0253, 0.0653, 4.0]
>>> verdict(d["lo"], d["hi"], 0.03).tolist()
['within tolerance']
"""

from __future__ import annotations

import itertools
import math
from typing import Final

import numpy as np

LEVEL: Final = 0.95  #: two-sided level of every interval
POWER: Final = 0.8  #: power assumed by seeds_needed
MAX_SEEDS: Final = 1000  #: seeds_needed gives up (returns inf) beyond this

BETTER: Final = "better"
WITHIN: Final = "within tolerance"
WORSE: Final = "worse"
UNRESOLVED: Final = "not resolved"
EQUAL: Final = "equal within tolerance"
NOT_CONVERGED: Final = "not converged"
VERDICTS: Final = (BETTER, WITHIN, EQUAL, WORSE, UNRESOLVED, NOT_CONVERGED)
#: Verdicts that answer the comparison (the rest: no claim yet).
RESOLVED_VERDICTS: Final = frozenset({BETTER, WITHIN, EQUAL, WORSE})


def _t(q: float, df: np.ndarray) -> np.ndarray:
    """Student-t quantile ``q`` for ``df`` degrees of freedom (inf: the normal quantile)."""
    from scipy.special import ndtri, stdtrit  # scipy arrives with mnist1d

    df = np.asarray(df, dtype=float)
    out = np.full(df.shape, np.nan)
    fin = np.isfinite(df) & (df > 0)
    out[fin] = stdtrit(df[fin], q)
    out[np.isposinf(df)] = ndtri(q)
    return out


def welch(
    mean_a: np.ndarray,
    sd_a: np.ndarray,
    n_a: np.ndarray,
    mean_b: np.ndarray,
    sd_b: np.ndarray,
    n_b: np.ndarray,
    level: float = LEVEL,
) -> dict[str, np.ndarray]:
    """``a - b`` with its Welch interval, elementwise: keys ``diff``, ``se``, ``df``, ``lo``,
    ``hi``. Where a side has fewer than 2 seeds the interval is NaN; where both spreads are 0
    (deterministic runs) it is the point itself."""
    ma, sa, na = (np.asarray(v, dtype=float) for v in (mean_a, sd_a, n_a))
    mb, sb, nb = (np.asarray(v, dtype=float) for v in (mean_b, sd_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = sa**2 / na, sb**2 / nb
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    ok = (na >= 2) & (nb >= 2) & np.isfinite(se)
    df = np.where(ok & (se == 0), np.inf, np.where(ok, df, np.nan))
    half = np.where(se == 0, 0.0, _t(0.5 + level / 2, df) * se)
    diff = ma - mb
    lo = np.where(ok, diff - half, np.nan)
    hi = np.where(ok, diff + half, np.nan)
    return {"diff": diff, "se": np.where(ok, se, np.nan), "df": df, "lo": lo, "hi": hi}


def welch_samples(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """:func:`welch` on two samples (seed values); the notebook form."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sd = [np.std(x, ddof=1) if len(x) > 1 else np.nan for x in (a, b)]
    d = welch([a.mean()], [sd[0]], [len(a)], [b.mean()], [sd[1]], [len(b)], level)
    return {k: float(v[0]) for k, v in d.items()}


def tost_bounds(
    diff: np.ndarray, se: np.ndarray, df: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """The bounds Schuirmann's two one-sided tests read, elementwise: ``diff -/+ t_level(df) *
    se``, the one-sided ``level`` quantile, so the two-sided ``2 level - 1`` interval (90% for
    the 95% level). "Equal within a margin" is claimed at error rate ``1 - level`` when both
    lie inside it. ``diff``, ``se``, ``df`` are :func:`welch`'s keys (also :func:`paired`'s and
    :func:`sequential_samples`'); ``level`` is the two-sided level of the look the verdict is
    read at (:func:`look_levels` in an adaptive sweep), so the error an equivalence claim spends
    per look is the schedule's. ``se`` 0: the point itself; NaN (no interval): NaN.

    >>> [round(float(v[0]), 4) for v in tost_bounds([0.02], [0.0163], [4.0])]   # t_0.95(4) 2.1318
    [-0.0147, 0.0547]
    """
    d, e = np.asarray(diff, dtype=float), np.asarray(se, dtype=float)
    half = np.where(e == 0, 0.0, _t(level, np.asarray(df, dtype=float)) * e)
    return d - half, d + half


def verdict(
    lo: np.ndarray,
    hi: np.ndarray,
    tolerance: float = 0.0,
    symmetric: bool = False,
    equivalence: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Where the interval ``[lo, hi]`` of a difference (positive = better) lies against
    ``-tolerance`` and 0: one of :data:`VERDICTS` per element (NaN interval: not resolved).
    ``symmetric``: a comparison of two peers (method against method), read against 0 (better,
    worse) and, failing that, against ``(-tolerance, tolerance)`` (:data:`EQUAL`), from
    ``equivalence``, the :func:`tost_bounds` of the same difference (the two one-sided tests),
    where given; else from ``[lo, hi]`` itself (stricter: half their error rate).

    >>> verdict([-0.4, 0.2, -2.0], [0.5, 0.9, -1.5], 1.0, symmetric=True).tolist()
    ['equal within tolerance', 'better', 'worse']
    >>> verdict([-1.1], [0.5], 1.0, True, equivalence=([-0.9], [0.3])).tolist()
    ['equal within tolerance']
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    out = np.full(lo.shape, UNRESOLVED, dtype=object)
    if symmetric:
        if tolerance > 0:
            eq_lo, eq_hi = (
                (lo, hi)
                if equivalence is None
                else (np.asarray(v, dtype=float) for v in equivalence)
            )
            out[(eq_lo > -tolerance) & (eq_hi < tolerance)] = EQUAL
        out[hi < 0] = WORSE
        out[lo > 0] = BETTER
        return out
    out[hi < -tolerance] = WORSE
    out[lo > -tolerance] = WITHIN
    out[lo > 0] = BETTER
    return out


def resolution_lines(
    diff: np.ndarray, tolerance: float, symmetric: bool = False, level: float = LEVEL
) -> list[tuple[np.ndarray, float]]:
    """The lines whose clearing would resolve a difference, each as (gap, two-sided level of
    the interval that must clear it), as :func:`verdict` reads them: what :func:`seeds_needed`
    and the allocator's chance of resolution (:func:`analysis.allocation.p_resolve`) work on,
    taking whichever line resolves more easily. With a reference, one line: ``-tolerance``
    (gap ``diff + tolerance``) at ``level``. Two peers: 0 (gap ``|diff|``: better or worse) at
    ``level`` and, with a tolerance, the nearer equivalence bound (gap ``tolerance - |diff|``,
    NaN where not positive) at ``2 level - 1``, whose two-sided quantile is the one-sided
    ``level`` one the two one-sided tests read (:func:`tost_bounds`).

    >>> [(g.round(2).tolist(), round(q, 2)) for g, q in resolution_lines([-0.3, -1.2], 1.0, True)]
    [([0.3, 1.2], 0.95), ([0.7, nan], 0.9)]
    """
    d = np.asarray(diff, dtype=float)
    if not symmetric:
        return [(d + tolerance, level)]
    lines = [(np.abs(d), level)]
    if tolerance > 0:
        inside = tolerance - np.abs(d)
        lines.append((np.where(inside > 0, inside, np.nan), 2 * level - 1))
    return lines


def paired(mean_d: np.ndarray, sd_d: np.ndarray, n: np.ndarray, level: float = LEVEL) -> dict:
    """The paired interval of a mean per-seed difference (``mean_d``, its seeds' standard
    deviation ``sd_d``, ``n`` seeds): Student's t with ``n - 1`` degrees of freedom, in
    :func:`welch`'s keys (Welch's formula with a spread-free second side is exactly that)."""
    n = np.asarray(n, dtype=float)
    zero = np.zeros(n.shape)
    return welch(mean_d, sd_d, n, zero, zero, n, level)


def seeds_needed(
    sd_a: float, sd_b: float, gap: float, level: float = LEVEL, power: float = POWER
) -> float:
    """Seeds per configuration (equal on both sides) for the interval of a difference whose
    observed distance to the line is ``gap`` to exclude that line with probability ``power``,
    if the observed difference and standard deviations were the truth: the smallest ``n`` with
    ``(t_{(1+level)/2} + t_power) * sqrt((sd_a² + sd_b²) / n) <= gap``, degrees of freedom from
    Welch's formula at that ``n``. NaN when a spread is unknown; inf beyond :data:`MAX_SEEDS`."""
    if not all(math.isfinite(v) for v in (sd_a, sd_b, gap)):
        return math.nan
    s2 = sd_a**2 + sd_b**2
    gap = abs(gap)
    if s2 == 0:
        return 2.0
    if gap == 0:
        return math.inf
    # t quantiles exceed the normal ones, so the answer is at least the normal-theory n: scan up
    # from there, 64 candidates at a time.
    z = float(_t(0.5 + level / 2, np.array([np.inf]))[0] + _t(power, np.array([np.inf]))[0])
    start = max(2, min(MAX_SEEDS + 1, math.ceil(z * z * s2 / (gap * gap))))
    for lo in range(start, MAX_SEEDS + 1, 64):
        n = np.arange(lo, min(lo + 64, MAX_SEEDS + 1), dtype=float)
        df = (n - 1) * s2**2 / (sd_a**4 + sd_b**4)
        need = (_t(0.5 + level / 2, df) + _t(power, df)) * np.sqrt(s2 / n)
        ok = np.flatnonzero(need <= gap)
        if ok.size:
            return float(n[ok[0]])
    return math.inf


def seeds_needed_many(
    sd_a: np.ndarray, sd_b: np.ndarray, gap: np.ndarray, level: float = LEVEL, power: float = POWER
) -> np.ndarray:
    """:func:`seeds_needed` elementwise, vectorised: the 16 candidates above the normal-theory
    ``n`` are tried for every element at once (enough for nearly all), the rest one by one."""
    sa, sb, g = (np.abs(np.asarray(v, dtype=float)) for v in (sd_a, sd_b, gap))
    out = np.full(sa.shape, np.nan)
    ok = np.isfinite(sa) & np.isfinite(sb) & np.isfinite(g) & (g > 0) & (sa**2 + sb**2 > 0)
    s2 = sa[ok] ** 2 + sb[ok] ** 2
    z = float(_t(0.5 + level / 2, np.array([np.inf]))[0] + _t(power, np.array([np.inf]))[0])
    start = np.clip(np.ceil(z * z * s2 / g[ok] ** 2), 2, MAX_SEEDS + 1)
    n = start[:, None] + np.arange(16)[None, :]
    df = (n - 1) * (s2**2 / (sa[ok] ** 4 + sb[ok] ** 4))[:, None]
    need = (_t(0.5 + level / 2, df) + _t(power, df)) * np.sqrt(s2[:, None] / n)
    hit = (need <= g[ok][:, None]) & (n <= MAX_SEEDS)
    first = np.where(hit.any(axis=1), n[np.arange(len(n)), hit.argmax(axis=1)], np.nan)
    idx = np.flatnonzero(ok)
    out[idx] = first
    for i in idx[np.isnan(first)]:  # beyond 16 steps, or beyond MAX_SEEDS
        out[i] = seeds_needed(float(sa[i]), float(sb[i]), float(g[i]), level, power)
    both = np.isfinite(sa) & np.isfinite(sb) & np.isfinite(g)
    out[both & (sa**2 + sb**2 == 0)] = 2.0
    out[both & (sa**2 + sb**2 > 0) & (g == 0)] = np.inf
    return out


#: The procedure an adaptive sweep's intervals use (named in the report).
SEQUENTIAL: Final = "Welch intervals with Bonferroni alpha spending over a fixed set of looks"


def look_schedule(initial: int, maximum: int) -> tuple[int, ...]:
    """Seeds per configuration at which an adaptive sweep may judge a comparison: ``initial``,
    then doubling, then ``maximum`` (``(3, 12)`` -> ``(3, 6, 12)``; ``(3, 10)`` -> ``(3, 6,
    10)``; ``(3, 3)`` -> ``(3,)``, one look: today's fixed-seed interval). Fixed before any
    result is seen, which is what makes :func:`sequential_level` valid. Few looks keep the
    per-look level close to the nominal one; doubling is the usual group-sequential spacing."""
    if initial < 2 or maximum < initial:
        raise ValueError(
            f"seeds: need 2 <= initial <= max, got initial={initial}, max={maximum} "
            "(an interval needs two seeds per side)"
        )
    looks, n = [initial], initial
    while 2 * n < maximum:
        n *= 2
        looks.append(n)
    if looks[-1] != maximum:
        looks.append(maximum)
    return tuple(looks)


def sequential_level(looks: int, level: float = LEVEL) -> float:
    """The level of each look's interval when a comparison may be judged at up to ``looks``
    fixed seed counts: ``1 - (1 - level) / looks`` (Bonferroni spending of ``1 - level`` evenly
    over the looks). Each look's interval misses the truth with probability at most
    ``(1 - level) / looks``, so all of them cover it at once with probability at least
    ``level`` (the union bound), whatever rule decides when to stop adding seeds: the verdict
    read at the look where the sweep stopped is as valid as a fixed-seed one."""
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    return 1 - (1 - level) / looks


#: How an adaptive sweep may spend ``1 - level`` over its looks (:func:`look_levels`). Even is
#: the default: on ``benchmarks/bench_allocation.py`` the budget rarely carries a comparison past
#: its second look, where linear spending is stricter, so it resolved fewer (docs/benchmarks.md).
SPENDINGS: Final = ("even", "linear")
SPENDING: Final = "even"


def look_levels(
    schedule: tuple[int, ...], level: float = LEVEL, spending: str = SPENDING
) -> tuple[float, ...]:
    """The level of each look's interval, in schedule order; the misses ``1 - level_j`` sum to
    ``1 - level``, so by the union bound all looks cover the truth at once with probability at
    least ``level`` whatever decides when to stop (any split is a valid Bonferroni spending).
    ``even``: :func:`sequential_level` at every look. ``linear``: each look spends in proportion
    to the seeds added since the previous one, ``(n_j - n_{j-1}) / n_max`` of the error (the
    linear alpha-spending function of Lan and DeMets, 1983, here with the plain union bound):
    a comparison judged at 3 seeds is either decided by a large effect or not at all, so little
    is spent there and most at the last look, where the close comparisons are decided.

    >>> [round(1 - q, 5) for q in look_levels((3, 6, 12, 24), spending="linear")]
    [0.00625, 0.00625, 0.0125, 0.025]
    """
    if spending not in SPENDINGS:
        raise ValueError(f"spending: one of {SPENDINGS}, got {spending!r}")
    if not schedule or any(b <= a for a, b in itertools.pairwise(schedule)):
        raise ValueError(f"schedule: increasing seed counts, got {schedule}")
    if spending == "even":
        return (sequential_level(len(schedule), level),) * len(schedule)
    steps = np.diff(np.asarray((0, *schedule), dtype=float)) / schedule[-1]
    return tuple(float(1 - (1 - level) * w) for w in steps)


def look_of(n: np.ndarray, schedule: tuple[int, ...]) -> np.ndarray:
    """The seed count of the last look reached with ``n`` seeds (the largest schedule entry
    ``<= n``), elementwise; 0 before the first look."""
    s = np.asarray(schedule)
    idx = np.searchsorted(s, np.asarray(n), side="right")
    return np.where(idx > 0, s[np.maximum(idx - 1, 0)], 0)


def sequential_samples(
    a: np.ndarray,
    b: np.ndarray,
    schedule: tuple[int, ...],
    level: float = LEVEL,
    paired_seeds: bool = False,
    spending: str = SPENDING,
) -> dict[str, float]:
    """The valid-under-optional-stopping interval of ``mean(a) - mean(b)`` (:data:`SEQUENTIAL`):
    both sides cut to their first ``L`` seeds, ``L`` the last look both have reached (seeds in
    the order the sweep added them), and the Welch interval at that look's level
    (:func:`look_levels` with ``spending``); ``paired_seeds`` (the ``i``-th value of both sides comes from the same
    seed): the paired interval of the ``L`` differences instead. Keys of :func:`welch` plus
    ``look`` (``L``; 0 and a NaN interval before the first look). Using only the first ``L``
    makes every look a fixed-``n`` statistic, which the union bound needs; seeds past the look
    wait for the next one."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    look = int(look_of(np.array(min(len(a), len(b))), schedule))
    if look == 0:
        nan = math.nan
        return {"diff": nan, "se": nan, "df": nan, "lo": nan, "hi": nan, "look": 0.0}
    q = look_levels(schedule, level, spending)[list(schedule).index(look)]
    if paired_seeds:
        d = a[:look] - b[:look]
        p = paired([d.mean()], [np.std(d, ddof=1)], [look], q)
        return {**{k: float(v[0]) for k, v in p.items()}, "look": float(look)}
    d = welch_samples(a[:look], b[:look], q)
    return {**d, "look": float(look)}


def upper_bound(
    mean: np.ndarray, sd: np.ndarray, n: np.ndarray, df: np.ndarray, level: float = 0.9
) -> np.ndarray:
    """One-sided upper confidence bound of a seed mean: ``mean + t_level(df) * sd / sqrt(n)``.

    ``df`` is given, not ``n - 1``, so a spread pooled over configurations passes its pooled
    degrees of freedom (inf: the normal quantile). The optimistic accuracy of a configuration
    for early stopping (:mod:`sparsity_tune.sweep.pareto_rungs`).

    >>> round(float(upper_bound(0.8, 0.02, 4, 3, 0.95)), 4)   # t_0.95(3) = 2.3534
    0.8235
    """
    m, s, k = (np.asarray(v, dtype=float) for v in (mean, sd, n))
    return m + _t(level, np.asarray(df, dtype=float)) * s / np.sqrt(k)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), elementwise; NaN stays NaN and is not
    counted among the ``m`` hypotheses. The multiplicity correction of the measured-cost
    comparisons (:mod:`analysis.measured`).

    The ``i``-th smallest of ``m`` p-values becomes ``min_{j >= i} min(1, m p_(j) / j)``;
    calling the points whose adjusted value is below ``q`` keeps the expected share of false
    calls among them (the false discovery rate) at or below ``q``, for independent tests and
    positively dependent ones (Benjamini & Yekutieli 2001). Why not a family-wise correction: a
    report reads many points at once, and Bonferroni (or Holm) holds the first of them to
    ``alpha / m``, which erases real gains as ``m`` grows; BH holds the ``i``-th to
    ``i alpha / m``, so clear gains stay called while the share of false ones stays bounded.
    With no true effect at all it rejects anything with probability at most ``q`` (the Simes
    test), so "the axis moves" keeps its 5% meaning.

    >>> fdr_bh(np.array([0.01, 0.04, 0.03, np.nan])).round(4).tolist()
    [0.03, 0.04, 0.04, nan]
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    steps = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    out[order] = np.minimum.accumulate(steps[::-1])[::-1]
    return out
