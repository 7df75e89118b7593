"""What to prune first: one score class per ``pruning.score``, registered in
:mod:`sparsity_tune.trial.registry`.

A score ranks weights (:meth:`Score.elements`, for unstructured and N:M pruning) and whole units
(:meth:`Score.units`, for structured pruning); lower scores are pruned first. The default unit
score is the mean element score over the unit's kept weights, so a new element score (SNIP,
GraSP, SynFlow, ...) ranks units without more code. The tensor math is in
:mod:`sparsity_tune.trial.pruning` and :mod:`sparsity_tune.trial.units`, imported when a score
is first used: this module stays importable without torch, so configs validate fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch
    from pydantic import BaseModel
    from torch import Tensor

    from sparsity_tune.trial.config import PruningConfig, TrialConfig
    from sparsity_tune.trial.method import PruneContext
    from sparsity_tune.trial.units import UnitGroup


@dataclass(frozen=True)
class ScoringMemory:
    """What a score holds while it scores, beside the run's own tensors: read by the memory
    estimate (:mod:`sparsity_tune.trial.budget`), so a score that copies the model is counted
    without the estimate knowing its name. In the estimate's float32 units:

    - ``model_copies``: copies of all the model's parameters (a float64 copy counts 2);
    - ``weight_buffers``: tensors shaped like the prunable weights beside the scores the
      estimate already counts (gradient accumulators, gradients, float64 scores count 2);
    - ``graph_samples``: samples whose activations an autograd graph holds at once (a double
      backward holds two graphs; float64 counts 2);
    - ``held_samples``: input samples held at once (scoring batches gathered up front);
    - ``layer_temporaries``: temporaries shaped like the largest prunable weight, made one layer
      at a time (a mask cast to float, a product before its absolute value); in a net with one
      dominant layer they are as large as a model copy.
    """

    model_copies: float = 0.0
    weight_buffers: float = 0.0
    graph_samples: int = 0
    held_samples: int = 0
    layer_temporaries: float = 0.0


#: A score that ranks the weights it is given and holds nothing more.
NO_SCORING_MEMORY = ScoringMemory()


class Score:
    """A pruning score. Subclasses set :attr:`name` and implement :meth:`elements`.

    A score that needs more than the weights (a batch, gradients, the model: SNIP, GraSP,
    SynFlow) sets :attr:`data_driven` and reads what it needs from the
    :class:`~sparsity_tune.trial.method.PruneContext` the trainer passes at a pruning event.
    """

    name: ClassVar[str]
    #: Needs the event's :class:`~sparsity_tune.trial.method.PruneContext` (model, batches, loss).
    data_driven: ClassVar[bool] = False
    #: Ranks by chance, not by the network: the random-pruning control every method is read
    #: against (Blalock et al. 2020). The analysis names and orders its comparisons by this.
    random_control: ClassVar[bool] = False
    #: Ranks by the magnitude of the trained weights: with a rewinding schedule, Frankle &
    #: Carbin's winning-ticket procedure (the analysis names it so).
    weight_magnitude: ClassVar[bool] = False
    #: The ``pruning.*`` keys this piece owns, declared as a pydantic model in its module (fields
    #: only), added to the pruning section by :func:`~sparsity_tune.trial.registry.piece_keys`.
    config_keys: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def check(cls, cfg: TrialConfig) -> None:
        """Raise ``ValueError`` naming the key, the value and what is allowed. Default: no keys."""

    @classmethod
    def iterations(cls, cfg: PruningConfig) -> int:
        """Score-and-prune passes one pruning event takes (SynFlow's iterative form: many, each
        on the masks of the previous one, the density decaying geometrically); default 1."""
        return 1

    @classmethod
    def scoring_memory(cls, cfg: PruningConfig) -> ScoringMemory:
        """What one scoring pass holds beyond the weights' own scores; default nothing."""
        return NO_SCORING_MEMORY

    def elements(
        self,
        weights: Mapping[str, Tensor],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        """One score per weight entry, shaped like the weight."""
        raise NotImplementedError

    def units(
        self,
        weights: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        groups: list[UnitGroup],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        """One score per unit of each group (keyed by producer name): by default the mean of
        :meth:`elements` over the unit's kept weights (:func:`~sparsity_tune.trial.units.mean_unit_scores`)."""
        from sparsity_tune.trial.units import mean_unit_scores

        return mean_unit_scores(self.elements(weights, generator, ctx), masks, groups)


class Magnitude(Score):
    """``magnitude``: ``|w|``, smallest first (Han et al. 2015); a unit: its mean ``|w|``, i.e.
    its L1 norm per weight (Li et al. 2017)."""

    name: ClassVar[str] = "magnitude"
    weight_magnitude: ClassVar[bool] = True

    def elements(
        self,
        weights: Mapping[str, Tensor],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.pruning import magnitude_scores

        return magnitude_scores(weights)


class Random(Score):
    """``random``: uniform draws, the control every pruning result needs (same seed, same
    masks); a unit gets one draw of its own, whatever its size."""

    name: ClassVar[str] = "random"
    random_control: ClassVar[bool] = True

    def elements(
        self,
        weights: Mapping[str, Tensor],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.pruning import random_scores

        return random_scores(weights, generator)

    def units(
        self,
        weights: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        groups: list[UnitGroup],
        generator: torch.Generator,
        ctx: PruneContext | None = None,
    ) -> dict[str, Tensor]:
        from sparsity_tune.trial.units import random_unit_scores

        return random_unit_scores(groups, generator)
