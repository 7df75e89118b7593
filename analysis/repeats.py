"""Paired, interleaved speedups: each run's interval from its own rounds, and seeds combined.

A run times the model it ships against the dense one in one process, in alternating rounds
(:func:`sparsity_tune.trial.measure.interleaved_times`), and keeps the rounds' paired
log-ratios as estimate, standard error and degrees of freedom (10%-trimmed mean, Yuen's error:
:func:`sparsity_tune.trial.measure.log_ratio_summary`). The load a round ran under multiplies
both of its times, so it cancels in the round's ratio: that is what the design buys, and what a
test over seed means of times taken at different loads throws away.

- **One run** (:func:`run_intervals`): the t interval ``est ± t_{df} se`` on the log scale,
  exponentiated. A t interval, not a median-based one: the trimmed mean is already robust to
  the odd stalled call, and a mean with a standard error is what the seeds can be combined
  from (a sign or median interval carries no variance to weigh a seed by, and with the 5 rounds
  a trial's time budget may leave, a sign test cannot reach 5% at all: 2 x 0.5^5 = 0.0625).
- **The verdict over seeds** (:func:`combine_seeds`, ``p_value``): an *intersection-union* test
  (Berger 1982): "faster in every seed" is claimed when each seed's own paired test says so;
  its p-value is the largest of the seeds' one-sided p-values (doubled: two-sided). It is a
  valid level-alpha test of "not faster in at least one seed" without any correction over the
  seeds, and it asks of each run only what its own rounds can show. So a speedup above 2.5x in
  every seed, each with tight rounds, is resolved however much the size of the gain varies with
  the load from seed to seed, while one seed whose rounds straddle 1.0 keeps the point unresolved.
  (A test on the mean over seeds cannot do that: with 3 seeds it has 2 degrees of freedom
  whatever the rounds show, so 4.47x, 5.60x and 2.80x give t = 6.9 and p = 0.02, which a
  correction over the 16-48 points of the demo's axes erases.)
- **How much, over seeds** (``ratio``, ``ratio_ci95_lo``/``_hi``): a random-effects combination
  on the log scale: each seed weighs ``1 / (se_i² + tau²)``, its own rounds' variance plus the
  between-seed variance ``tau²`` (DerSimonian-Laird's moment estimate), and the interval is
  ``mu ± t_{k-1} se(mu)``: with ``k`` seeds the spread between them is known to ``k - 1`` degrees
  of freedom, so this interval speaks for seeds not yet run; with one seed it is that run's own
  interval. A point can thus be faster in every seed measured while its interval for the mean
  of further seeds still reaches below 1: the two answer different questions, and the report
  says which is which.

A seed whose run shipped the dense model has the summary ``(0, 0, 0)``: a ratio of exactly 1.0
by rule, no test; such a point is never called faster.

>>> import numpy as np
>>> r = run_intervals(np.array([np.log(2.0)]), np.array([0.1]), np.array([9.0]))
>>> [round(float(np.exp(r[k][0])), 3) for k in ("lo", "hi")]
[1.595, 2.508]
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analysis.stats import LEVEL, _t

#: Floor on a seed's variance in the combination (a run whose rounds agree exactly).
MIN_VAR: Final = 1e-12
#: Columns of :func:`combine_seeds` (log scale; one row per group).
COMBINED_COLS: Final = (
    "k",
    "mu",
    "lo",
    "hi",
    "se",
    "df",
    "tau2",
    "seeds_lo",
    "seeds_hi",
    "p_value",
    "sign",
    "tested",
)


def _t_sf(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """``P(T_df >= t)``, elementwise (scipy's Student-t survival function)."""
    from scipy.special import stdtr

    return stdtr(df, -np.asarray(t, dtype=float))


def run_intervals(
    est: np.ndarray, se: np.ndarray, df: np.ndarray, level: float = LEVEL
) -> dict[str, np.ndarray]:
    """Each run's interval and one-sided p-values on the log scale: keys ``lo``, ``hi``,
    ``p_up`` (evidence of a speedup: ``P(T >= est / se)``), ``p_down`` (of a slowdown) and
    ``tested`` (the run measured a substitute: ``df > 0``). A run that shipped the dense model
    (``df`` 0) gets the point ``[est, est]`` and p-values of 1; a run whose kept rounds agree
    exactly (``se`` 0) the point and p-values 0 or 1 by the sign of ``est``."""
    est, se, df = (np.asarray(v, dtype=float) for v in (est, se, df))
    tested = df > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.where(tested & (se > 0), _t(0.5 + level / 2, np.where(tested, df, 1)) * se, 0.0)
        t = np.where(se > 0, est / se, np.sign(est) * np.inf)
        p_up = np.where(tested, _t_sf(t, np.where(tested, df, 1)), 1.0)
        p_down = np.where(tested, _t_sf(-t, np.where(tested, df, 1)), 1.0)
    bad = ~(np.isfinite(est) & np.isfinite(se) & (df >= 0))
    out = {"lo": est - half, "hi": est + half, "p_up": p_up, "p_down": p_down}
    for v in out.values():
        v[bad] = np.nan
    out["tested"] = tested & ~bad
    return out


def combine_seeds(
    est: np.ndarray,
    se: np.ndarray,
    df: np.ndarray,
    groups: np.ndarray,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Per group (an operating point's seeds), on the log scale: ``k`` seeds, the random-effects
    mean ``mu`` with its interval ``lo``/``hi``, the standard error ``se`` and degrees of freedom
    ``df`` it is made of (``se(mu)`` and ``k - 1``; one seed: its run's own) and ``tau2``;
    ``seeds_lo``/``seeds_hi``, the smallest lower and largest upper bound of the seeds' own
    intervals; ``p_value``, the intersection-union p-value of "faster in every seed" or
    "slower in every seed", whichever is smaller, doubled (NaN when no seed measured a
    substitute), and ``sign``, which of the two (+1 faster, -1 slower); ``tested``, seeds that
    did. See the module docstring. Rows with a NaN summary must be left out by the caller."""
    est, se, df = (np.asarray(v, dtype=float) for v in (est, se, df))
    r = run_intervals(est, se, df, level)
    d = pd.DataFrame(
        {
            "g": np.asarray(groups),
            "y": est,
            "v": np.where(r["tested"], se**2, 0.0),
            "lo": r["lo"],
            "hi": r["hi"],
            "p_up": r["p_up"],
            "p_down": r["p_down"],
            "tested": r["tested"].astype(int),
            "df": df,
        }
    )
    d["w"] = 1.0 / np.maximum(d["v"], MIN_VAR)
    d["wy"] = d["w"] * d["y"]
    d["w2"] = d["w"] ** 2
    g = d.groupby("g", sort=False)
    k = g.size().astype(float)
    sw, swy, sw2 = g["w"].sum(), g["wy"].sum(), g["w2"].sum()
    fixed = swy / sw
    d["q"] = d["w"] * (d["y"] - fixed.reindex(d["g"]).to_numpy()) ** 2
    q = d.groupby("g", sort=False)["q"].sum()
    c = sw - sw2 / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = np.where((k > 1) & (c > 0), np.maximum(0.0, (q - (k - 1)) / c), 0.0)
    tau2 = pd.Series(tau2, index=k.index)
    d["v_re"] = d["v"] + tau2.reindex(d["g"]).to_numpy()
    d["w_re"] = 1.0 / np.maximum(d["v_re"], MIN_VAR)
    d["wy_re"] = d["w_re"] * d["y"]
    g = d.groupby("g", sort=False)
    sw_re = g["w_re"].sum()
    mu = g["wy_re"].sum() / sw_re
    se_mu = np.sqrt(1.0 / sw_re).where(g["v_re"].max() > 0, 0.0)  # all exact: no spread at all
    half = _t(0.5 + level / 2, (k - 1).to_numpy()) * se_mu.to_numpy()
    one = (k == 1).to_numpy()
    first = g.first()
    lo = np.where(one, first["lo"], mu - np.where(se_mu > 0, half, 0.0))
    hi = np.where(one, first["hi"], mu + np.where(se_mu > 0, half, 0.0))
    # what the interval is made of (one seed: its run's own, 0 where it measured nothing)
    se_one = np.where(first["tested"] > 0, np.sqrt(first["v"]), 0.0)
    se = np.where(one, se_one, se_mu.to_numpy())
    dof = np.where(one, np.where(first["tested"] > 0, first["df"], np.inf), (k - 1).to_numpy())
    tested = g["tested"].sum()
    p_up, p_down = g["p_up"].max(), g["p_down"].max()
    p = np.minimum(1.0, 2 * np.minimum(p_up, p_down))
    return pd.DataFrame(
        {
            "k": k.astype(int),
            "mu": mu,
            "lo": lo,
            "hi": hi,
            "se": se,
            "df": dof,
            "tau2": tau2,
            "seeds_lo": g["lo"].min(),
            "seeds_hi": g["hi"].max(),
            "p_value": p.where(tested > 0),
            "sign": np.where(p_up <= p_down, 1, -1),
            "tested": tested.astype(int),
        }
    )[list(COMBINED_COLS)]
