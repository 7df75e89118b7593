"""Pruning variants (methods, scores, rewinds, granularities) compared at equal sparsity, and
each method against its own controls (:mod:`analysis.controls`); the verdicts are methods.csv's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.compare import variant_names
from analysis.controls import control_sentences, versus_controls
from analysis.points import DENSE_VARIANT, P
from analysis.sections.section import Section, compact, no_data
from analysis.stats import BETTER, EQUAL, NOT_CONVERGED, UNRESOLVED, WORSE
from sparsity_tune.metrics import M

if TYPE_CHECKING:
    from analysis.questions import Analysis

MAX_PAIR_SENTENCES = 8  # method comparisons spelled out (all are in methods.csv)


def build(a: Analysis) -> Section:
    s = Section("methods", "Pruning methods compared at equal sparsity")
    y = a.y
    if a.usable.empty:
        return no_data(s, a.why_unusable)
    pruned = a.usable[a.usable[P.variant] != DENSE_VARIANT]
    n_var = pruned[P.variant].nunique()
    if n_var < 2:
        return no_data(
            s,
            "the sweep varies no pruning method, score, rewind or granularity (one pruning "
            "variant), so there is nothing to compare at equal sparsity",
        )
    m = a.methods
    names = variant_names(a.usable)
    if m.empty:
        return no_data(
            s,
            f"the {n_var} pruning variants never reach an equal sparsity (within "
            "0.01) with the same other settings",
        )
    s.answer, s.summary = _answer(a, m, names)
    words = {BETTER: "better", WORSE: "worse", EQUAL: "equal within tolerance"}
    words[UNRESOLVED] = "not resolved"
    pairs = list(m.groupby(["variant_a", "variant_b"], sort=False))
    for (va, vb), g in pairs[:MAX_PAIR_SENTENCES]:
        top = g[M.sparsity].max()
        at = g[np.isclose(g[M.sparsity], top, atol=5e-4)].sort_values("diff_pts")
        text = (
            f"{names.get(va, va)} vs {names.get(vb, vb)}, {y} at equal sparsity ({w.how_judged(a)}): "
            f"{w.counts(g['verdict'], words)} (size × sparsity) cells"
        )
        lo, hi = at.iloc[0], at.iloc[-1]
        text += f"; at {w.sp(top)}: {w.diff(lo)} ({_where(lo)})"
        if len(at) > 1:
            text += f" to {w.diff(hi)} ({_where(hi)})"
        unresolved = g[g["verdict"] == UNRESOLVED]
        if len(unresolved):
            text += (
                "; the unresolved cells would need "
                f"{w.seeds_phrase(unresolved['seeds_needed'].median())} (median)"
            )
        s.sentences.append(text + ".")
    if len(pairs) > MAX_PAIR_SENTENCES:
        s.sentences.append(
            f"{len(pairs) - MAX_PAIR_SENTENCES} more pairs of variants are in methods.csv."
        )
    s.sentences.extend(control_sentences(versus_controls(m), y))  # pruning.control
    roles = {n.split(" (")[0] for n in names.values()}
    if {"winning ticket", "random re-init", "random pruning"} <= roles:
        s.sentences.append(
            "The sweep has Frankle & Carbin's three: the winning ticket (IMP mask, rewound to "
            "its initial values), random re-initialisation (the same mask, fresh weights) and "
            "random pruning (a random mask); a winning ticket is a good mask *and* its "
            "initialisation only where it beats both controls."
        )
    s.tables.append(
        (
            f"Variants at equal sparsity: a - b in points of {y} with the {w.how_judged(a)} "
            "(all in methods.csv)",
            m,
        )
    )
    if a.usable[P.round].notna().any():
        s.charts.append(
            charts.imp_rounds_chart(
                a.usable,
                "imp_rounds",
                f"IMP: {M.test_acc_at_best_val} of each round vs weights remaining "
                "(Frankle & Carbin's figure)",
                M.test_acc_at_best_val,
            )
        )
    return s


MAX_PAIR_SENTENCES = 8  # method comparisons spelled out (all are in methods.csv)


def _answer(
    a: Analysis, m: pd.DataFrame, names: dict[str, str]
) -> tuple[str, tuple[str, pd.DataFrame]]:
    """The pair of variants compared in the most cells, with its verdict counts (methods.csv),
    in one sentence; per pair, architecture and size the highest sparsity compared, as the
    compact table."""
    pairs = m.groupby(["variant_a", "variant_b"], sort=False)
    (va, vb), g = max(pairs, key=lambda kv: len(kv[1]))
    v = g["verdict"]
    answer = (
        f"At equal sparsity, {names.get(va, va)} is better than {names.get(vb, vb)} in "
        f"{int((v == BETTER).sum())}, worse in {int((v == WORSE).sum())} and not resolved in "
        f"{int((v == UNRESOLVED).sum())} of {len(g)} (size × sparsity) cells"
        + (
            f", {int((v == NOT_CONVERGED).sum())} {NOT_CONVERGED}"
            if (v == NOT_CONVERGED).any()
            else ""
        )
        + f" ({a.y}, {w.how_judged(a)})"
        + (f"; {pairs.ngroups - 1} more pairs in the table." if pairs.ngroups > 1 else ".")
    )
    top = m.sort_values(M.sparsity, kind="stable")
    top = top.groupby(["variant_a", "variant_b", "arch", "size"], sort=False).tail(1)
    top = top.assign(
        label=[
            f"{names.get(x, x)} vs {names.get(y, y)}, {r} {z}"
            for x, y, r, z in zip(
                top["variant_a"], top["variant_b"], top["arch"], top["size"], strict=True
            )
        ]
    ).sort_values(["variant_a", "variant_b", "arch", "size"], kind="stable")
    caption = f"a - b in points of {a.y} at the highest sparsity each pair reaches, per size"
    return answer, (caption, compact(top, n=("n_a", "n_b")))


def _where(r: pd.Series) -> str:
    return f"{r['arch']} {r['size']}, {int(r['n_a'])} vs {int(r['n_b'])} seeds"
