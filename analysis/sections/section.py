"""What a report section is made of, and what several sections share: the :class:`Section`, the
"Not available" sentence, and the by-size lines of the figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import charts
from analysis.points import DENSE_VARIANT, P


@dataclass
class Section:
    key: str
    title: str
    sentences: list[str] = field(default_factory=list)
    charts: list[charts.Chart] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


def no_data(s: Section, why: str) -> Section:
    s.sentences.append(f"Not available: {why}.")
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
