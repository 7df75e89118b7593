"""Each pruning method against its own sanity-check controls at equal sparsity (Frankle et al.
2021): ``pruning.control`` ``shuffle_layer`` (same layer densities, no positions), ``invert``
(the lowest-scored weights kept) and ``reinit`` (the mask with fresh weights).

It reads the pairs :func:`analysis.compare.at_equal_sparsity` already judged (``methods.csv``:
Welch 95% interval over seeds, verdict) and keeps those whose two variants differ only in
``control``, one of them ``none``, oriented as *method - control* (positive: the method's mask
does better than its control). The verdict is methods.csv's, the two sides being peers: better
and worse swap with the orientation; ``equal within tolerance`` (the 90% interval, the two
one-sided tests, inside plus or minus the tolerance: the mask does no better than its control,
e.g. two networks collapsed to chance), ``not resolved`` and ``not converged`` (a side was still improving at its end, so no
claim is made) stand. :func:`control_sentences` says per method and control, at the
highest sparsity both reached, whether the mask carries information beyond what the control
keeps, or that the interval does not resolve it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analysis.stats import BETTER, EQUAL, NOT_CONVERGED, UNRESOLVED, WORSE

NONE: Final = "none"
COLUMNS: Final = (
    "arch",
    "size",
    "base_label",
    "sparsity",
    "method",
    "control",
    "n_method",
    "n_control",
    "diff_pts",
    "diff_ci95_lo",
    "diff_ci95_hi",
    "verdict",
    "seeds_needed",
)
#: What a resolved win over each control shows.
MEANING: Final = {
    "shuffle_layer": "its mask carries information beyond its layer densities",
    "invert": "its ranking beats keeping the lowest-scored weights",
    "reinit": "its mask does better with its own weights than with fresh ones",
}


#: What a resolved equality with each control shows.
NOT_MEANING: Final = {
    "shuffle_layer": "its mask carries no more than its layer densities",
    "invert": "its ranking does no better than keeping the lowest-scored weights",
    "reinit": "its own weights do no better than fresh ones",
}


def split_variant(text: str) -> dict[str, str]:
    """``"control=none score=snip"`` -> ``{"control": "none", "score": "snip"}``."""
    return dict(part.split("=", 1) for part in str(text).split() if "=" in part)


def _method(settings: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items() if k != "control") or "pruned"


def versus_controls(methods: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``methods`` (:func:`~analysis.compare.at_equal_sparsity`) comparing a variant with
    ``control=none`` to the same variant under another control, as method - control."""
    rows = []
    for _, r in methods.iterrows():
        a, b = split_variant(r["variant_a"]), split_variant(r["variant_b"])
        if "control" not in a or "control" not in b or _method(a) != _method(b):
            continue
        if a["control"] == NONE and b["control"] != NONE:
            sign, control, n_m, n_c = 1.0, b["control"], r["n_a"], r["n_b"]
        elif b["control"] == NONE and a["control"] != NONE:
            sign, control, n_m, n_c = -1.0, a["control"], r["n_b"], r["n_a"]
        else:
            continue
        lo, hi = sign * r["diff_ci95_lo"], sign * r["diff_ci95_hi"]
        rows.append(
            {
                "arch": r["arch"],
                "size": r["size"],
                "base_label": r["base_label"],
                "sparsity": r["sparsity"],
                "method": _method(a),
                "control": control,
                "n_method": int(n_m),
                "n_control": int(n_c),
                "diff_pts": sign * r["diff_pts"],
                "diff_ci95_lo": min(lo, hi),
                "diff_ci95_hi": max(lo, hi),
                "verdict": _oriented(r.get("verdict", UNRESOLVED), sign),
                "seeds_needed": r["seeds_needed"],
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _oriented(word: object, sign: float) -> str:
    """A peers' verdict of a - b read as b - a when ``sign`` is -1 (better and worse swap)."""
    word = UNRESOLVED if pd.isna(word) else str(word)
    return {BETTER: WORSE, WORSE: BETTER}.get(word, word) if sign < 0 else word


def control_sentences(table: pd.DataFrame, metric: str) -> list[str]:
    """One sentence per method and control, at the highest sparsity of that pair (the worst
    cell there when several sizes share it)."""
    out = []
    for (method, control), g in table.groupby(["method", "control"], sort=True):
        top = g["sparsity"].max()
        r = g[np.isclose(g["sparsity"], top, atol=5e-4)].sort_values("diff_pts").iloc[0]
        head = (
            f"{method} vs its {control} control at {100 * top:.3g}% sparsity "
            f"({r['base_label']}): {r['diff_pts']:+.2f} points of {metric} (95% CI "
            f"[{r['diff_ci95_lo']:+.2f}, {r['diff_ci95_hi']:+.2f}], {r['n_method']} vs "
            f"{r['n_control']} seeds)"
        )
        if r["verdict"] == BETTER:
            tail = MEANING.get(control, f"it beats its {control} control")
        elif r["verdict"] == WORSE:
            tail = f"its {control} control does better"
        elif r["verdict"] == EQUAL:
            meaning = NOT_MEANING.get(control, f"it does no better than its {control} control")
            tail = f"equal to its {control} control within tolerance: {meaning}"
        elif r["verdict"] == NOT_CONVERGED:
            tail = "not judged: a side was still improving when its training ended"
        elif r["verdict"] == UNRESOLVED and np.isfinite(r["seeds_needed"]):
            tail = f"not resolved (about {int(r['seeds_needed'])} seeds per configuration needed)"
        else:
            tail = "not resolved"
        out.append(f"{head}: {tail}.")
    return out
