"""Research question 1, training dynamics: epochs to 99% of a run's own best and of the dense
best, IMP early stopping by round, and epochs to plateau (``train.until``), each against
sparsity; the verdicts are :func:`analysis.compare.versus_dense`'s on the epoch counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.compare import variant_names
from analysis.convergence import IMPROVING_NOTE, open_flags
from analysis.points import DENSE_VARIANT, P
from analysis.sections.section import Section, compact, lines, no_data
from analysis.stats import BETTER, NOT_CONVERGED, UNRESOLVED, WORSE
from analysis.tables import DENSE_EPS
from sparsity_tune.metrics import M
from sparsity_tune.trial.registry import SCHEDULES

if TYPE_CHECKING:
    from analysis.questions import Analysis


def build(a: Analysis) -> Section:
    s = Section("dynamics", "1. Training dynamics and convergence")
    c = a.usable
    if c.empty:
        return no_data(s, a.why_unusable)
    for arch, adf in c.groupby("arch"):
        levels = np.unique(adf[M.sparsity].round(3))
        if len(levels) < 2:
            s.sentences.append(
                f"{arch}: every operating point has sparsity {w.sp(levels[0])}, so convergence "
                "cannot be compared across sparsity (the figures show each configuration)."
            )
            continue
        s.sentences.extend(_convergence(a, arch, adf))
    s.sentences.extend(_gradual_note(c))
    s.sentences.extend(_open_points(c))
    plateau = _plateau_table(a, c)
    if len(plateau):
        s.tables.append((f"{PLATEAU}: seed mean and 95% interval over seeds", plateau))
    s.answer, s.summary = _answer(a, c)
    ys = [m for m in (P.to99_own, P.to99_dense, P.early_stop_epoch) if m in c]
    if (c[P.round].isna() & (c[M.sparsity] > DENSE_EPS)).any():  # IMP rounds: (a) is the same
        ys.append(M.epochs_to_99pct)
    ys = [m for m in ys if m in c and c[m].notna().any()]
    if not ys:
        s.sentences.append("Not available: convergence (no val_acc in the records).")
    if M.converged in c and c[M.converged].notna().any():  # train.until: epochs to plateau
        ys.insert(len(ys) - (M.epochs_to_99pct in ys), M.epochs_trained)  # the note's "last"
    if ys:
        s.charts.append(
            charts.by_group_chart(
                lines(c),
                "convergence",
                "Convergence vs sparsity (epochs, counted from the run's or IMP round's start)",
                M.sparsity,
                ys,
                "arch",
                group="line",
                titles={
                    P.to99_own: "(a) to 99% of own best val_acc",
                    P.to99_dense: "(b) to 99% of dense best val_acc",
                    P.early_stop_epoch: "(c) early stop: min val_loss",
                    M.epochs_to_99pct: "final mask only: epochs_to_99pct",
                    M.epochs_trained: "(d) epochs to plateau (train.until)",
                },
                note="one line per model size (and variant); bars: ±1 std over seeds; (b) "
                "averages the runs that reach it; the last panel counts only epochs trained "
                "with the final mask (summary.json)",
            )
        )
    if (c[P.round].notna()).any() and c[P.early_stop_epoch].notna().any():
        s.charts.append(
            charts.imp_rounds_chart(
                c,
                "imp_early_stop",
                "IMP: early-stopping epoch (minimum val_loss) of each round vs weights remaining",
                P.early_stop_epoch,
                "early-stop epoch",
            )
        )
    if a.history.empty:
        s.sentences.append("Not available: per-epoch records (records.jsonl is empty).")
        return s
    s.charts.append(
        charts.curves_chart(
            a.history,
            a.configs,
            "learning_curves",
            "Learning curves (seed mean per epoch)",
            [M.val_loss, M.val_acc],
        )
    )
    s.charts.append(
        charts.curves_chart(
            a.history,
            a.configs,
            "sparsity_schedule",
            "Achieved sparsity per epoch (dashed: the schedule's target)",
            [M.sparsity],
            dashed={M.sparsity: M.target_sparsity},
        )
    )
    return s


_SPEED = {BETTER: "faster", WORSE: "slower", UNRESOLVED: "not resolved"}


def _answer(a: Analysis, c: pd.DataFrame) -> tuple[str, tuple[str, pd.DataFrame] | None]:
    """(a) against dense, in one sentence (the verdict counts of
    :func:`analysis.compare.versus_dense` on the epochs to 99% of the own best), and each
    pruned configuration's sparsest point as the compact table (fewer epochs: faster)."""
    vd = a.vs_dense.get(P.to99_own, pd.DataFrame())
    vd = vd[vd.index.isin(c[P.point_id])] if len(vd) else vd
    if vd.empty:
        return "", None
    v = vd["verdict"]
    k = int(v.isin([BETTER, WORSE]).sum())
    answer = (
        f"Pruning changed the epochs a run needs to reach 99% of its own best val_acc beyond "
        f"the seed noise at {k} of {len(v)} pruned points ({int((v == BETTER).sum())} faster, "
        f"{int((v == WORSE).sum())} slower than the dense run of the same settings, {w.WELCH})"
        + ("." if k else "; at the others the interval does not resolve it.")
    )
    pts = c.set_index(P.point_id).loc[vd.index]
    top = pts.sort_values(M.sparsity).groupby(["arch", "size", P.variant], sort=True).tail(1)
    rows = vd.loc[top.index].join(top[["label", M.sparsity, "n_seeds"]])
    rows = rows.assign(  # fewer epochs is better: say pruned - dense in epochs
        diff_pts=-rows["diff_pts"],
        diff_ci95_lo=-rows["diff_ci95_hi"],
        diff_ci95_hi=-rows["diff_ci95_lo"],
        verdict=rows["verdict"].map(lambda x: _SPEED.get(x, x)),
    ).sort_values("label", kind="stable")
    table = compact(rows).rename(columns={"difference (95% CI)": "pruned - dense, epochs (95% CI)"})
    return answer, (
        "Epochs to 99% of the own best val_acc at each pruned configuration's highest "
        f"sparsity, against its dense run ({w.WELCH})",
        table,
    )


def _convergence(a: Analysis, arch: str, adf: pd.DataFrame) -> list[str]:
    out = []
    dense = adf[adf[M.sparsity] <= DENSE_EPS]
    top = adf[M.sparsity].max()
    sparse = adf[np.isclose(adf[M.sparsity], top, atol=5e-4)]
    vd = a.vs_dense.get(P.to99_own, pd.DataFrame())
    vd = vd[vd.index.isin(adf[P.point_id])] if len(vd) else vd
    if adf[P.to99_own].notna().any():
        text = (
            f"{arch}, (a) epochs until a run first reaches 99% of its own best val_acc (over the "
            f"whole run; an IMP round: over the round): "
        )
        text += f"dense {w.fmt(dense[P.to99_own].mean())}, " if len(dense) else ""
        text += f"at the highest sparsity {w.sp(top)} {w.fmt(sparse[P.to99_own].mean())}"
        if len(vd):
            top_vd = vd[vd.index.isin(sparse[P.point_id])]
            text += (
                f"; against the dense run of the same settings ({w.WELCH}) pruned points "
                f"converge {w.counts(vd['verdict'], _SPEED)}"
            )
            if len(top_vd) == 1:
                r = top_vd.iloc[0]
                text += (
                    f"; at {w.sp(top)}: {w.signed(-r['diff_pts'])} epochs "
                    f"({w.interval(-r['diff_ci95_hi'], -r['diff_ci95_lo'])})"
                )
            elif len(top_vd) > 1:
                d = -top_vd["diff_pts"]
                text += f"; at {w.sp(top)}: {w.signed(d.min())} to {w.signed(d.max())} epochs"
        out.append(text + ".")
    if adf[P.reached_dense].notna().any():
        s = a.samples[a.samples[P.point_id].isin(adf[P.point_id])]
        sd = s[s[M.sparsity] <= DENSE_EPS]
        ss = s[s[P.point_id].isin(sparse[P.point_id])]
        parts = []
        for name, g in (("dense runs", sd), (f"at sparsity {w.sp(top)}", ss)):
            k, n = int(g[P.reached_dense].sum()), int(g[P.reached_dense].notna().sum())
            if n:
                when = f"after {w.fmt(g[P.to99_dense].mean())} epochs, " if k else ""
                parts.append(f"{name} {when}{k} of {n} runs reach it")
        out.append(
            f"{arch}, (b) epochs until a run reaches 99% of the dense baseline's best val_acc "
            f"(seed mean): " + "; ".join(parts) + "."
        )
    imp = adf[adf[P.round].notna()]
    if len(imp) and imp[P.early_stop_epoch].notna().any():
        out.append(_early_stop(a, arch, imp))
    plateau = _plateau_sentence(arch, _plateau_table(a, adf))
    if plateau:
        out.append(plateau)
    return out


def is_open(r: pd.Series) -> bool:
    """Whether a point (a row of ``a.points``) was still improving at its end (NaN: unjudged)."""
    v = r.get("still_improving")
    return bool(pd.notna(v) and v)


def _open_points(c: pd.DataFrame) -> list[str]:
    """How many operating points were still improving at their end (points.csv:
    ``still_improving``, ``improving_note``), with the first as an example."""
    flag = open_flags(c).to_numpy()
    if not flag.any():
        return []
    open_ = c[flag]
    r = open_.iloc[0]
    return [
        f"Still improving when training ended: {len(open_)} of {len(c)} operating points "
        f"(e.g. {r['label']} at sparsity {w.sp(r[M.sparsity])}: {r[IMPROVING_NOTE]}). Every "
        f"comparison with one is '{NOT_CONVERGED}', never better, worse or within; train "
        "longer or set train.until."
    ]


PLATEAU = "Epochs to plateau (train.until)"


def _plateau_table(a: Analysis, adf: pd.DataFrame) -> pd.DataFrame:
    """(d) Epochs to plateau (``train.until``) per point: seed mean with its 95% interval over
    seeds (points.csv: ``epochs_trained``) and whether every seed reached its plateau."""
    conv = adf[M.converged] if M.converged in adf else pd.Series(dtype=float)
    ruled = adf[conv.notna()] if len(conv) else adf.iloc[:0]
    if ruled.empty or M.epochs_trained not in ruled:
        return pd.DataFrame()
    names = variant_names(a.usable)
    ruled = ruled.sort_values([P.variant, M.sparsity, "size"], kind="stable")
    e = M.epochs_trained
    return pd.DataFrame(
        {
            "arch": ruled["arch"].to_numpy(),
            "size": ruled["size"].to_numpy(),
            "variant": [names.get(v, v) for v in ruled[P.variant]],
            M.sparsity: ruled[M.sparsity].to_numpy(float),
            e: ruled[e].to_numpy(float),
            f"{e}_ci95_lo": ruled[f"{e}_ci95_lo"].to_numpy(float),
            f"{e}_ci95_hi": ruled[f"{e}_ci95_hi"].to_numpy(float),
            "n_seeds": ruled["n_seeds"].to_numpy(),
            "every seed converged": (ruled[M.converged] >= 1.0).to_numpy(bool),
        }
    )


def _plateau_sentence(arch: str, table: pd.DataFrame) -> str:
    """(d) How many points reached their plateau in every seed (the epochs: :data:`PLATEAU`)."""
    if table.empty:
        return ""
    full, n = int(table["every seed converged"].sum()), len(table)
    e = table[M.epochs_trained]
    rest = (
        f"; the other {n - full} had a seed hit its epoch cap still improving and take no "
        "part in any verdict"
        if full < n
        else ""
    )
    return (
        f"{arch}, (d) epochs to plateau (train.until: the monitored metric stopped improving; "
        f"an IMP round counts from its rewind): {w.fmt(e.min())} to {w.fmt(e.max())} epochs "
        f"(seed means; each point with its 95% interval in the table '{PLATEAU}'). {full} of "
        f"{n} points converged in every seed{rest}."
    )


def _early_stop(a: Analysis, arch: str, imp: pd.DataFrame) -> str:
    dense = imp[imp[P.variant] == DENSE_VARIANT]
    names = variant_names(a.usable)
    vd = a.vs_dense.get(P.early_stop_epoch, pd.DataFrame())
    acc = P.test_acc_at_early_stop
    text = (
        f"{arch}, (c) IMP early stopping (the epoch of minimum val_loss within a round, as "
        f"Frankle & Carbin): round 0 (dense) {w.fmt(dense[P.early_stop_epoch].mean())} epochs, "
        f"{acc} {w.fmt(dense[acc].mean())}"
    )
    for v, g in imp[imp[P.variant] != DENSE_VARIANT].groupby(P.variant, sort=True):
        last = g[g[P.remaining] == g[P.remaining].min()]
        text += (
            f"; {names.get(v, v)} at {w.sp(100 * last[P.remaining].mean())}% of weights "
            f"remaining: {w.fmt(last[P.early_stop_epoch].mean())} epochs, {acc} "
            f"{w.fmt(last[acc].mean())}"
        )
        mine = vd[vd.index.isin(g[P.point_id])] if len(vd) else vd
        if len(mine):
            words = {BETTER: "earlier", WORSE: "later", UNRESOLVED: "not resolved"}
            text += f" (vs dense: {w.counts(mine['verdict'], words)} rounds)"
    return text + "."


def _gradual_note(c: pd.DataFrame) -> list[str]:
    """Where a schedule reaches its final mask only at ``pruning.end_epoch``
    (:attr:`~sparsity_tune.trial.schedule.Schedule.final_at_end_epoch`): what the figures of the
    final mask count from."""
    if "pruning.method" not in c:
        return []
    late = c["pruning.method"].map(
        lambda m: bool(getattr(SCHEDULES.get(str(m)), "final_at_end_epoch", False))
    )
    if not late.any():
        return []
    g = c[late.to_numpy(bool)]
    ends = g["pruning.end_epoch"].dropna().unique() if "pruning.end_epoch" in g else []
    end = ", ".join(w.fmt(float(e)) for e in sorted(ends)) or "train.epochs"
    names = ", ".join(sorted(g["pruning.method"].astype(str).unique()))
    return [
        f"{names.capitalize()} pruning reaches its final mask at end_epoch ({end}); "
        "epochs_to_99pct in summary.json (the 'final mask only' figure) counts only epochs "
        "trained with that mask, so it cannot come before end_epoch. (a) and (b) count from "
        "epoch 1 of the run."
    ]
