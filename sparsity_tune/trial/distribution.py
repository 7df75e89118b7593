"""Per-layer densities: ``pruning.distribution: erk`` (Erdős–Rényi-Kernel, Evci et al. 2020,
"Rigging the lottery", following Mocanu et al. 2018's Erdős–Rényi), pure Python.

A layer of shape ``(n_out, n_in, k...)`` gets density ``ε · (n_out + n_in + Σk) / (n_out · n_in
· Πk)`` (for a Linear layer ``ε · (n_in + n_out) / (n_in · n_out)``), one ``ε`` for the whole
network chosen so the kept weights total ``(1 - sparsity) · N``. A layer whose density would
exceed 1 is kept dense and ``ε`` is solved again for the others, the largest first, as in
RigL's ``sparse_utils.get_sparsities_erdos_renyi`` (google-research/rigl, ``erk_power_scale``
1). Each layer then prunes ``round((1 - density) · n_l)`` weights, so the total is within half
a weight per layer of the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def erk_densities(shapes: Mapping[str, Sequence[int]], sparsity: float) -> dict[str, float]:
    """Density of every layer for an overall ``sparsity`` (see the module docstring)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity={sparsity!r} must be a fraction in [0, 1]")
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] if sizes[n] else 0.0 for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        rhs = sum(
            -sizes[n] * sparsity if n in dense else sizes[n] * (1.0 - sparsity) for n in sizes
        )
        divisor = sum(raw[n] * sizes[n] for n in sizes if n not in dense)
        eps = rhs / divisor if divisor else 0.0
        free = [n for n in sizes if n not in dense]
        top = max((raw[n] for n in free), default=0.0)
        if free and eps * top > 1.0:
            dense.update(n for n in free if raw[n] == top)
            continue
        return {n: 1.0 if n in dense else eps * raw[n] for n in sizes}


def layer_targets(shapes: Mapping[str, Sequence[int]], sparsity: float) -> dict[str, float]:
    """Per-layer sparsity targets, ``1 - density``, clipped to [0, 1] (float rounding)."""
    return {n: min(1.0, max(0.0, 1.0 - d)) for n, d in erk_densities(shapes, sparsity).items()}
