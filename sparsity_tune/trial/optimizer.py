"""What one training step is: the optimizer and LR schedule of ``train.*``, and one masked step.

``torch.optim`` does the work. The factory lives apart from the trainer because four places
build an optimizer for a model: the run itself, IMP's rewind (a fresh optimizer each round), the
winning-ticket path of ``rewind: reinit`` and compaction (the smaller model's optimizer, which
then takes the old state). The masked step is shared by the run, that ticket path and the step
timing of compaction, so all three train exactly alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsity_tune.trial import pruning

if TYPE_CHECKING:
    from sparsity_tune.trial.config import TrainConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def make_optimizer(
    tc: TrainConfig, params: Iterable[nn.Parameter], epochs: int
) -> tuple[torch.optim.Optimizer, Scheduler]:
    """``train.optimizer`` over ``params`` and its ``train.lr_schedule``, stepped once an epoch:
    ``cosine`` anneals to zero over ``epochs`` (the run's, or an IMP round's), ``step`` decays
    by ``lr_gamma`` every ``lr_step_epochs``, ``constant`` keeps ``lr``."""
    if tc.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
        )
    elif tc.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    if tc.lr_schedule == "cosine":
        sched: Scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    elif tc.lr_schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, tc.lr_step_epochs, tc.lr_gamma)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    xb: Tensor,
    yb: Tensor,
    params: Mapping[str, Tensor] | None = None,
    masks: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One optimizer step on cross-entropy; with ``masks``, pruned weights and their optimizer
    state stay zero (momentum and Adam would revive them). Returns the loss and the logits."""
    out = model(xb)
    loss = F.cross_entropy(out, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if masks is not None:
        pruning.apply_masks_(params, masks)
        pruning.mask_optimizer_state_(optimizer, params, masks)
    return loss, out
