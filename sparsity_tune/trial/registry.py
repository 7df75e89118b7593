"""The pruning strategies by name: ``pruning.method``, ``pruning.score``,
``pruning.granularity`` (OpenLTH's ``pruning/registry.py``, jaxpruner's ``ALGORITHM_REGISTRY``).

Adding one is a class in its own module (it declares its own ``pruning.*`` keys in
``config_keys`` and validates them in ``check``) and one line here;
:mod:`sparsity_tune.trial.config` accepts exactly these names and keys, and the trainer looks
them up here, never branching on a name. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any, Final

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


def piece_keys() -> dict[str, tuple[Any, Any]]:
    """The ``pruning.*`` keys the registered pieces declare (their ``config_keys`` pydantic
    model), as ``name -> (annotation, FieldInfo)`` for :func:`pydantic.create_model`: scores,
    schedules, granularities, each in registry order. Pieces may share one declaration (``snip``
    and ``grasp`` do, ``set`` and ``rigl`` too); two different declarations of one key are a
    programming error."""
    keys: dict[str, tuple[Any, Any]] = {}
    owner: dict[str, type] = {}
    for piece in (*SCORES.values(), *SCHEDULES.values(), *GRANULARITIES.values()):
        declared = piece.config_keys
        if declared is None:
            continue
        for name, field in declared.model_fields.items():
            if name in owner and owner[name] is not declared:
                raise TypeError(
                    f"pruning.{name} is declared by both {owner[name].__name__} and "
                    f"{declared.__name__}; declare it once and share the declaration"
                )
            owner[name] = declared
            keys[name] = (field.annotation, field)
    return keys
