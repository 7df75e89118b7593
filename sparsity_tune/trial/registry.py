"""The pruning strategies by name: ``pruning.method``, ``pruning.score``,
``pruning.granularity`` (OpenLTH's ``pruning/registry.py``, jaxpruner's ``ALGORITHM_REGISTRY``).

Adding one is a class in its own module (it validates its own keys in ``check``) and one line
here; :mod:`sparsity_tune.trial.config` accepts exactly these names and the trainer looks them up
here, never branching on a name. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Final

from sparsity_tune.trial.dst import SET, RigL
from sparsity_tune.trial.granularity import Granularity, Unstructured
from sparsity_tune.trial.nm import NM
from sparsity_tune.trial.saliency import Grasp, Snip, SynFlow
from sparsity_tune.trial.schedule import Gradual, Iterative, NoPruning, OneShot, Schedule
from sparsity_tune.trial.scores import Magnitude, Random, Score
from sparsity_tune.trial.structured import Structured

#: ``pruning.method``: when to prune and to what target.
SCHEDULES: Final[dict[str, type[Schedule]]] = {
    s.name: s for s in (NoPruning, OneShot, Gradual, Iterative, SET, RigL)
}
#: ``pruning.score``: what goes first.
SCORES: Final[dict[str, type[Score]]] = {
    s.name: s for s in (Magnitude, Random, Snip, Grasp, SynFlow)
}
#: ``pruning.granularity``: what a pruned thing is.
GRANULARITIES: Final[dict[str, type[Granularity]]] = {
    g.name: g for g in (Unstructured, NM, Structured)
}
