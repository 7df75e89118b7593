"""The metric registry: one typed entry per metric, used by the trainer, W&B, Ray and analysis.

A metric is a :class:`Metric`: its name (what records, ``summary.json``, W&B columns, Ray results
and analysis tables call it), its scope (a per-epoch record key or a once-per-run summary key),
its direction (:class:`Direction`: more is better, less is better, or neither), its unit and a
one-line description. Code refers to metrics through the constants of :class:`M`
(``record[M.test_acc]``), never by spelling the string: a typo is then an ``AttributeError``, not
a silent "not available". :class:`Metric` is a ``str``, so a constant is also the plain key::

    >>> M.test_acc == "test_acc", M.test_acc.direction is Direction.MAX
    (True, True)
    >>> direction("peak_mem_bytes")
    <Direction.MIN: 'min'>

The metric tables of docs/metrics.md, the analysis's numeric columns and the ``--x``/``--y``
choices come from :data:`REGISTRY` (tests check docs/metrics.md against it).
"""

from __future__ import annotations

import enum
from typing import Final


class Scope(enum.Enum):
    RECORD = "record"  #: one value per epoch (records.jsonl, W&B history)
    SUMMARY = "summary"  #: one value per run (summary.json, W&B summary)


class Direction(str, enum.Enum):
    """Which way is better; a ``str`` so ``Direction.MAX == "max"`` (Optuna/Ray mode strings)."""

    MAX = "max"
    MIN = "min"


class Metric(str):
    """A metric name with its registry entry; equal to (and hashed as) the plain name."""

    scope: Scope
    direction: Direction | None
    unit: str
    doc: str
    numeric: bool

    def __new__(
        cls,
        name: str,
        scope: Scope,
        direction: Direction | None,
        unit: str,
        doc: str,
        *,
        numeric: bool = True,
    ) -> Metric:
        obj = super().__new__(cls, name)
        obj.scope, obj.direction, obj.unit, obj.doc, obj.numeric = (
            scope,
            direction,
            unit,
            doc,
            numeric,
        )
        return obj

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        """Pickled (Ray results, deep copies) as the plain name: a record key stays a string."""
        return (str, (self.name,))


_R, _S = Scope.RECORD, Scope.SUMMARY
_MAX, _MIN = Direction.MAX, Direction.MIN


class M:
    """Every metric, in record order, then summary order (the order of records' keys)."""

    # ------------------------------------------------------------------ per-epoch records
    epoch = Metric("epoch", _R, None, "epochs", "epochs completed (1-based)")
    train_loss = Metric(
        "train_loss", _R, _MIN, "nats", "mean cross-entropy over this epoch's training batches"
    )
    train_acc = Metric(
        "train_acc", _R, _MAX, "fraction", "accuracy over this epoch's training batches"
    )
    val_loss = Metric("val_loss", _R, _MIN, "nats", "validation loss after the epoch")
    val_acc = Metric("val_acc", _R, _MAX, "fraction", "validation accuracy after the epoch")
    test_loss = Metric("test_loss", _R, _MIN, "nats", "test loss after the epoch")
    test_acc = Metric("test_acc", _R, _MAX, "fraction", "test accuracy after the epoch")
    sparsity = Metric(
        "sparsity", _R, _MAX, "fraction", "achieved: pruned / prunable weights, from the masks"
    )
    target_sparsity = Metric(
        "target_sparsity", _R, None, "fraction", "what the schedule asked for after this epoch"
    )
    total_params = Metric(
        "total_params", _R, _MIN, "count", "all parameters, weights and biases, of the dense model"
    )
    nonzero_params = Metric(
        "nonzero_params", _R, _MIN, "count", "total_params minus pruned weights"
    )
    dense_bytes = Metric(
        "dense_bytes", _R, _MIN, "bytes", "all parameters stored dense (float32: 4 per parameter)"
    )
    sparse_bytes = Metric(
        "sparse_bytes",
        _R,
        _MIN,
        "bytes",
        "prunable weights in CSR (values + int32 column indices + int32 row pointers), rest dense",
    )
    flops_dense = Metric(
        "flops_dense", _R, _MIN, "FLOPs", "2 x multiply-accumulates of one forward of one sample"
    )
    flops_sparse = Metric(
        "flops_sparse", _R, _MIN, "FLOPs", "the same, counting only unpruned weights"
    )
    epoch_time_s = Metric(
        "epoch_time_s", _R, _MIN, "s", "wall seconds of the epoch: train + prune + eval"
    )
    eval_time_s = Metric(
        "eval_time_s", _R, _MIN, "s", "wall seconds of this epoch's val + test evaluation"
    )
    train_time_s = Metric(
        "train_time_s",
        _R,
        _MIN,
        "s",
        "wall seconds of this epoch's training steps (mask upkeep too)",
    )
    peak_mem_bytes = Metric(
        "peak_mem_bytes", _R, _MIN, "bytes", "measured peak memory of training in this epoch"
    )
    samples_per_s = Metric(
        "samples_per_s", _R, _MAX, "samples/s", "training samples / train_time_s"
    )
    lr = Metric("lr", _R, None, "", "learning rate used in this epoch")
    effective_sparsity = Metric(
        "effective_sparsity",
        _R,
        _MAX,
        "fraction",
        "prunable weights pruned or cut off from input or output by pruned neighbours",
    )
    epochs_trained = Metric(
        "epochs_trained",
        _R,
        None,
        "epochs",
        "epochs of the current segment (the run; an IMP round) up to this one",
    )
    converged = Metric(
        "converged",
        _R,
        None,
        "",
        "train.until's plateau ended the segment here (true); false before, and at a cap hit "
        "while still improving; null without train.until",
    )

    # ------------------------------------------------------------------ once per run
    best_val_acc = Metric(
        "best_val_acc", _S, _MAX, "fraction", "best val_acc over the epochs of the final mask"
    )
    best_epoch = Metric("best_epoch", _S, None, "epochs", "epoch of best_val_acc")
    test_acc_at_best_val = Metric(
        "test_acc_at_best_val", _S, _MAX, "fraction", "test_acc at best_epoch"
    )
    final_test_acc = Metric("final_test_acc", _S, _MAX, "fraction", "test_acc of the last record")
    final_sparsity = Metric("final_sparsity", _S, _MAX, "fraction", "sparsity of the last record")
    epochs_to_99pct = Metric(
        "epochs_to_99pct",
        _S,
        _MIN,
        "epochs",
        "first epoch of the final mask whose val_acc >= 0.99 x best_val_acc",
    )
    deploy_format = Metric(
        "deploy_format",
        _S,
        None,
        "",
        "the model a user would ship: compact, csr, semi_structured or dense",
        numeric=False,
    )
    deploy_bytes = Metric(
        "deploy_bytes", _S, _MIN, "bytes", "torch.save of the deployable model's state"
    )
    deploy_bytes_dense = Metric(
        "deploy_bytes_dense", _S, _MIN, "bytes", "the same for the dense model it is timed against"
    )
    infer_ms_b1 = Metric(
        "infer_ms_b1", _S, _MIN, "ms", "measured forward of 1 test sample, deployable model"
    )
    infer_ms_b256 = Metric(
        "infer_ms_b256", _S, _MIN, "ms", "measured forward of 256 test samples, deployable model"
    )
    infer_ms_dense_b1 = Metric(
        "infer_ms_dense_b1", _S, _MIN, "ms", "the same for the dense model, interleaved with it"
    )
    infer_ms_dense_b256 = Metric(
        "infer_ms_dense_b256", _S, _MIN, "ms", "the same for the dense model, interleaved with it"
    )
    infer_speedup_b1 = Metric(
        "infer_speedup_b1", _S, _MAX, "x", "infer_ms_dense_b1 / infer_ms_b1 (1.0 when dense)"
    )
    infer_speedup_b256 = Metric(
        "infer_speedup_b256", _S, _MAX, "x", "infer_ms_dense_b256 / infer_ms_b256 (1.0 when dense)"
    )
    train_time_speedup = Metric(
        "train_time_speedup",
        _S,
        _MAX,
        "x",
        "training step time without compaction / with it, measured at compaction (else 1.0)",
    )
    infer_log_speedup_b1 = Metric(
        "infer_log_speedup_b1",
        _S,
        _MAX,
        "log x",
        "10%-trimmed mean over interleaved rounds of log(dense ms / deployable ms) at batch 1",
    )
    infer_log_speedup_b1_se = Metric(
        "infer_log_speedup_b1_se", _S, None, "log x", "its standard error (Yuen's)"
    )
    infer_log_speedup_b1_df = Metric(
        "infer_log_speedup_b1_df", _S, None, "", "its degrees of freedom (0: ships dense)"
    )
    infer_log_speedup_b256 = Metric(
        "infer_log_speedup_b256", _S, _MAX, "log x", "the same at batch 256"
    )
    infer_log_speedup_b256_se = Metric(
        "infer_log_speedup_b256_se", _S, None, "log x", "its standard error (Yuen's)"
    )
    infer_log_speedup_b256_df = Metric(
        "infer_log_speedup_b256_df", _S, None, "", "its degrees of freedom (0: ships dense)"
    )
    train_log_speedup = Metric(
        "train_log_speedup",
        _S,
        _MAX,
        "log x",
        "the same for the interleaved training steps of train_time_speedup",
    )
    train_log_speedup_se = Metric(
        "train_log_speedup_se", _S, None, "log x", "its standard error (Yuen's)"
    )
    train_log_speedup_df = Metric(
        "train_log_speedup_df", _S, None, "", "its degrees of freedom (0: not compacted)"
    )
    total_time_s = Metric("total_time_s", _S, _MIN, "s", "wall seconds of the whole run")
    total_train_time_s = Metric("total_train_time_s", _S, _MIN, "s", "sum of train_time_s")
    peak_mem_bytes_max = Metric(
        "peak_mem_bytes_max", _S, _MIN, "bytes", "largest peak_mem_bytes over the epochs"
    )
    peak_mem_kind = Metric(
        "peak_mem_kind", _S, None, "", "how peak_mem_bytes was measured", numeric=False
    )
    device = Metric("device", _S, None, "", "where the run trained", numeric=False)
    epochs = Metric("epochs", _S, None, "epochs", "records written")
    all_converged = Metric(
        "all_converged",
        _S,
        None,
        "",
        "every segment (the run; each IMP round) ended on its plateau, none at its cap; null "
        "without train.until",
    )


#: Every metric by name, in the order of :class:`M`.
REGISTRY: Final[dict[str, Metric]] = {v.name: v for v in vars(M).values() if isinstance(v, Metric)}

#: Keys of one per-epoch record, in this order. ``layer_sparsity/<name>`` keys come after them.
RECORD_KEYS: Final[tuple[Metric, ...]] = tuple(
    m for m in REGISTRY.values() if m.scope is Scope.RECORD
)
#: Keys of the final summary (``summary.json``), added once at the end of a run.
SUMMARY_KEYS: Final[tuple[Metric, ...]] = tuple(
    m for m in REGISTRY.values() if m.scope is Scope.SUMMARY
)
#: Metrics with a number for a value (the analysis's numeric columns).
NUMERIC: Final[tuple[Metric, ...]] = tuple(m for m in REGISTRY.values() if m.numeric)

#: Costs counted from the masks and the shapes: the same masks give the same figure, so they carry
#: no noise and say nothing about speed by themselves (DESIGN: counted and measured costs).
COUNTED: Final[frozenset[Metric]] = frozenset(
    {M.total_params, M.nonzero_params, M.dense_bytes, M.sparse_bytes, M.flops_dense, M.flops_sparse}
)
#: Costs measured on the machine that ran the trial (wall time, memory, the bytes of the model as
#: shipped): they depend on kernels and load, so the analysis reads them against seed noise.
#: Costs fixed before training (the pruning schedule's target decides them): a multi-objective
#: stopping rule may compare them from the first epoch, while accuracy is still a fidelity
#: (``search.scheduler: pareto_asha``).
FIXED_COSTS: Final[tuple[Metric, ...]] = (
    M.nonzero_params,
    M.sparsity,
    M.target_sparsity,
    M.final_sparsity,
)
MEASURED: Final[frozenset[Metric]] = frozenset(
    {
        M.epoch_time_s,
        M.train_time_s,
        M.eval_time_s,
        M.peak_mem_bytes,
        M.samples_per_s,
        M.deploy_bytes,
        M.deploy_bytes_dense,
        M.infer_ms_b1,
        M.infer_ms_b256,
        M.infer_ms_dense_b1,
        M.infer_ms_dense_b256,
        M.infer_speedup_b1,
        M.infer_speedup_b256,
        M.train_time_speedup,
        M.infer_log_speedup_b1,
        M.infer_log_speedup_b256,
        M.train_log_speedup,
        M.total_time_s,
        M.total_train_time_s,
        M.peak_mem_bytes_max,
    }
)

LAYER_SPARSITY_PREFIX: Final = "layer_sparsity/"


def direction(metric: str) -> Direction:
    """Which way is better for ``metric``: from the registry; ``min`` for metrics that have none
    (an objective on ``epoch`` or ``lr`` is taken as a cost) and for per-layer sparsities."""
    m = REGISTRY.get(metric)
    return m.direction if m is not None and m.direction is not None else Direction.MIN


def is_metric(name: str) -> bool:
    return name in REGISTRY or name.startswith(LAYER_SPARSITY_PREFIX)


#: Accuracy points a pruned model may lose against dense (and two peers may differ by) and still
#: be called within tolerance: the default of a spec's ``search.tolerance``, the line its
#: adaptive seeds chase and its report judges by (``python -m analysis --tolerance`` overrides).
DEFAULT_TOLERANCE: Final = 1.0
