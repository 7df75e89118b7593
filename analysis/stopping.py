"""What early stopping saved and what it may have cost, read from the trial files alone.

A scheduler (``asha``, ``pareto_asha``) stops trials early; each keeps ``stopped.txt`` (status
``stopped``) and the records it trained. This module reads them back so the report can say:

- **saved**: the trial-epochs trained, against those every trial would have trained to its
  ``train.epochs`` (the grid without stopping); pending trials not counted either way;
- **may have cost**: stopped trials whose last record (the model they left) is not dominated by
  the front of the finished configurations: a stop that might have removed a front point. None is
  the rule working as meant; some say where a longer run could have moved the front.

The figures add the stopped trials' last records to each front chart, marked as such.

>>> t = pd.DataFrame({"status": ["finished", "stopped"], "epochs_done": [10, 2],
...                   "train.epochs": [10, 10]})
>>> b = budget(t)
>>> (b.trained, b.planned, b.stopped, round(b.saved, 2))
(12, 20, 1, 0.4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.charts import GREY, Chart, Series
from analysis.pareto import non_dominated
from sparsity_tune.layout import FINISHED, STOPPED_EARLY

EPOCHS = "train.epochs"


@dataclass(frozen=True)
class Budget:
    trained: int  #: trial-epochs trained by finished and stopped trials
    planned: int  #: what they would have trained without stopping
    stopped: int  #: trials stopped early

    @property
    def saved(self) -> float:
        """Share of the planned trial-epochs not trained (0 when nothing was planned)."""
        return 1.0 - self.trained / self.planned if self.planned else 0.0


def budget(trials: pd.DataFrame) -> Budget | None:
    """Trial-epochs of the finished and stopped trials; None when no trial was stopped early
    (or the columns are missing: trials from an older version)."""
    if not {"status", "epochs_done", EPOCHS} <= set(trials.columns):
        return None
    done = trials[trials["status"].isin([FINISHED, STOPPED_EARLY])]
    n_stopped = int((done["status"] == STOPPED_EARLY).sum())
    if n_stopped == 0:
        return None
    trained = pd.to_numeric(done["epochs_done"], errors="coerce").fillna(0)
    planned = pd.to_numeric(done[EPOCHS], errors="coerce").fillna(trained)
    return Budget(int(trained.sum()), int(np.maximum(planned, trained).sum()), n_stopped)


def stopped_points(trials: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The stopped trials' last records on (x, y), one row per trial."""
    if "status" not in trials or x not in trials or y not in trials:
        return trials.iloc[0:0]
    s = trials[trials["status"] == STOPPED_EARLY]
    ok = np.isfinite(pd.to_numeric(s[x], errors="coerce")) & np.isfinite(
        pd.to_numeric(s[y], errors="coerce")
    )
    return s[ok.to_numpy()]


def beyond_front(
    stopped: pd.DataFrame, front: pd.DataFrame, x: str, y: str, x_dir: str, y_dir: str
) -> pd.DataFrame:
    """The stopped trials whose last record no front point dominates.

    >>> f = pd.DataFrame({"c": [1.0, 10.0], "a": [0.5, 0.9]})
    >>> s = pd.DataFrame({"c": [5.0, 20.0, 0.5], "a": [0.6, 0.8, 0.1]})
    >>> beyond_front(s, f, "c", "a", "min", "max")["c"].tolist()   # 20 is dominated by (10, 0.9)
    [5.0, 0.5]
    """
    if stopped.empty:
        return stopped
    keep = []
    fx, fy = front[x].to_numpy(float), front[y].to_numpy(float)
    for px, py in zip(stopped[x].to_numpy(float), stopped[y].to_numpy(float), strict=True):
        pts = np.column_stack([np.r_[fx, px], np.r_[fy, py]])
        keep.append(bool(non_dominated(pts, (x_dir, y_dir))[-1]))
    return stopped[np.array(keep, dtype=bool)]


def sentence(b: Budget) -> str:
    """The report's sentence on what stopping saved."""
    return (
        f"Early stopping: {b.stopped} trial(s) stopped by the scheduler; the finished and "
        f"stopped trials trained {b.trained} of the {b.planned} trial-epochs they would have "
        f"trained to the end ({b.saved:.0%} saved)."
    )


def mark_on_chart(chart: Chart, stopped: pd.DataFrame, x: str, y: str) -> None:
    """Add the stopped trials' last records to a front chart's first panel, marked as such."""
    if stopped.empty or not chart.panels:
        return
    label = stopped["label"].tolist() if "label" in stopped else None
    chart.panels[0].series.append(
        Series(
            stopped[x].to_numpy(float),
            stopped[y].to_numpy(float),
            "stopped early (last epoch)",
            color=GREY,
            alpha=0.6,
            text=label,
            marker="triangle-up",
        )
    )
    chart.note += "; grey triangles: trials stopped early, at their last epoch"


def front_sentence(
    stopped: pd.DataFrame, front: pd.DataFrame, x: str, y: str, x_dir: str, y_dir: str
) -> str:
    """What the stops on one front may have cost."""
    if stopped.empty:
        return ""
    out = beyond_front(stopped, front, x, y, x_dir, y_dir)
    if out.empty:
        return (
            f"Each of the {len(stopped)} stopped trial(s) left a model that the front on {x} "
            "dominates: no stop there removed a front point as far as it had trained."
        )
    return (
        f"{len(out)} of the {len(stopped)} stopped trial(s) left a model the front on {x} does "
        "not dominate (a longer run might have added a point there): "
        + ", ".join(str(v) for v in list(out.get("label", out.index))[:5])
        + "."
    )
