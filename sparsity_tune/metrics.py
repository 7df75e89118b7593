"""The one list of metric names: trainer records, W&B columns, Ray results and analysis tables.

Every consumer imports these names instead of spelling strings, so a metric has one name
everywhere (see DESIGN.md).
"""

from __future__ import annotations

from typing import Final

#: Keys of one per-epoch record, in this order. ``layer_sparsity/<name>`` keys come after them.
RECORD_KEYS: Final[tuple[str, ...]] = (
    "epoch",  # 1-based count of epochs completed
    "train_loss",  # mean cross-entropy over this epoch's training batches
    "train_acc",  # accuracy over this epoch's training batches (as trained, masks applied)
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "sparsity",  # achieved: zeros in the masks / all prunable weights (computed from masks)
    "target_sparsity",  # what the schedule asked for after this epoch
    "total_params",  # all parameters, weights and biases, prunable or not
    "nonzero_params",  # total_params minus pruned weights
    "dense_bytes",  # bytes of all parameters stored dense (float32: 4 per parameter)
    "sparse_bytes",  # bytes with prunable weights in CSR (values + int32 col idx + int32 row ptr)
    "flops_dense",  # multiply-accumulates of one forward pass of one sample, dense
    "flops_sparse",  # the same counting only unpruned weights
    "epoch_time_s",  # wall seconds of the whole epoch: train + prune + eval
    "eval_time_s",  # wall seconds of this epoch's val + test evaluation
    "train_time_s",  # wall seconds of this epoch's training steps (incl. mask upkeep)
    "peak_mem_bytes",  # measured peak of the epoch above the pre-model baseline: CUDA allocator or RSS
    "samples_per_s",  # training samples / train_time_s
    "lr",  # learning rate at the end of the epoch
)

LAYER_SPARSITY_PREFIX: Final = "layer_sparsity/"

#: Keys of the final summary (``summary.json``), added once at the end of a run.
SUMMARY_KEYS: Final[tuple[str, ...]] = (
    "best_val_acc",  # over the epochs trained with the final mask
    "best_epoch",  # epoch of best_val_acc
    "test_acc_at_best_val",
    "final_test_acc",
    "final_sparsity",
    "epochs_to_99pct",  # first epoch of the final mask whose val_acc >= 0.99 * best_val_acc
    "infer_ms_dense",  # ms for one forward of a fixed batch, dense weights
    "infer_ms_sparse",  # same batch, pruned linear layers through torch.sparse (CSR) kernels
    "total_time_s",  # wall seconds of the whole run
    "total_train_time_s",  # sum of train_time_s
    "peak_mem_bytes_max",  # max of peak_mem_bytes over epochs
    "peak_mem_kind",  # "cuda_allocator" or "cpu_rss": how peak_mem_bytes was measured
    "device",
    "epochs",  # records written
)

#: Metrics where more is better (used for default objective directions).
MAXIMIZE: Final = frozenset(
    {
        "train_acc",
        "val_acc",
        "test_acc",
        "best_val_acc",
        "test_acc_at_best_val",
        "final_test_acc",
        "samples_per_s",
        "sparsity",
        "final_sparsity",
    }
)


def direction(metric: str) -> str:
    """``"max"`` for accuracies and throughput, ``"min"`` for losses, costs and times."""
    return "max" if metric in MAXIMIZE else "min"


def is_metric(name: str) -> bool:
    return name in RECORD_KEYS or name in SUMMARY_KEYS or name.startswith(LAYER_SPARSITY_PREFIX)
