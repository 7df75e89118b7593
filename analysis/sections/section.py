"""What a report section is made of, and what several sections share: the :class:`Section`, the
"Not available" sentence, and the by-size lines of the figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import charts
from analysis import wording as w
from analysis.points import DENSE_VARIANT, P
from sparsity_tune.metrics import M


@dataclass
class Section:
    """One research question of the report: its answer in one sentence a researcher can quote,
    a compact table of the comparisons behind it, the figures, and the details (the statements
    of numbers and the long tables, folded away in report.html)."""

    key: str
    title: str
    sentences: list[str] = field(default_factory=list)  # the details, in words
    charts: list[charts.Chart] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # the long tables
    answer: str = ""  # one sentence, phrased from the comparison tables' verdicts
    summary: tuple[str, pd.DataFrame] | None = None  # the compact table under the answer

    @property
    def lead(self) -> str:
        """The sentence the section opens with: its answer, else its first statement."""
        return self.answer or (self.sentences[0] if self.sentences else "")

    @property
    def details(self) -> list[str]:
        """The statements behind the answer (every sentence but :attr:`lead`)."""
        return [t for t in self.sentences if t != self.lead]


#: The compact table's columns (:func:`compact`).
COMPACT_COLS = ("configuration", "sparsity", "difference (95% CI)", "verdict", "seeds")


def compact(
    rows: pd.DataFrame, n: tuple[str, str] = ("n_seeds", "dense_n"), label: str = "label"
) -> pd.DataFrame:
    """Comparison rows (``diff_pts``, its interval, ``verdict``) as the compact table: the
    configuration, its sparsity, the difference with its interval in one cell, the verdict and
    the seeds of both sides (``n``)."""
    seeds = [
        f"{int(a)} vs {int(b)}" if pd.notna(a) and pd.notna(b) else ""
        for a, b in zip(rows[n[0]], rows[n[1]], strict=True)
    ]
    cells = [
        w.diff_cell(d, lo, hi)
        for d, lo, hi in zip(
            rows["diff_pts"], rows["diff_ci95_lo"], rows["diff_ci95_hi"], strict=True
        )
    ]
    return pd.DataFrame(
        {
            "configuration": rows[label].astype(str).to_numpy(),
            "sparsity": rows[M.sparsity].to_numpy(float),
            "difference (95% CI)": cells,
            "verdict": rows["verdict"].astype(str).to_numpy(),
            "seeds": seeds,
        },
        columns=list(COMPACT_COLS),
    )


def no_data(s: Section, why: str) -> Section:
    """``s`` answering that its data is missing, and why."""
    s.answer = f"Not available: {why}."
    s.sentences.append(s.answer)
    return s


def lines(points: pd.DataFrame) -> pd.DataFrame:
    """Points with a ``line`` column for the by-size figures: the model size, and the variant
    when several are swept (each variant's line starts at its dense baseline's points). Other
    settings share a line (a random search's learning rates: the figure bins large groups)."""
    pruned = points[points[P.variant] != DENSE_VARIANT]
    if pruned[P.variant].nunique() <= 1:
        return points.assign(line=points["size"].astype(str))
    parts = [pruned.assign(line=pruned["size"].astype(str) + " · " + pruned[P.variant])]
    dense = points[points[P.variant] == DENSE_VARIANT]
    for v, g in pruned.groupby(P.variant, sort=True):
        d = dense[dense[P.baseline_key].isin(g[P.baseline_key])]
        parts.append(d.assign(line=d["size"].astype(str) + " · " + str(v)))
    return pd.concat(parts, ignore_index=True)
