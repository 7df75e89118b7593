"""What a trial needs (memory, a device) before anything is allocated, and whether this machine has it.

A typo such as ``width: 65536`` or ``hidden: [1000000000]`` asks for tens of GiB; allocating it
first takes a shared node into swap or the OOM killer. So the need is *estimated* from the config:

    parameters + gradients + optimizer state (adam/adamw 2x, sgd with momentum 1x) + masks
    (1 byte per prunable weight) + IMP's rewind copy + the winning ticket that IMP with
    ``rewind: reinit`` trains beside its re-initialised network (a second model, its gradients
    and optimizer state: :class:`~sparsity_tune.trial.rewind.Ticket`) + pruning scores + what
    the score holds
    while it scores + activations of one training batch (every module's output, plus the
    largest twice for backward) or of one evaluation batch, whichever is larger + the dataset
    held as float32 tensors on the device.

What a score holds while it scores (SNIP, GraSP and SynFlow score a masked copy of the model,
with gradient buffers and a scoring batch's autograd graph) is declared by the registered score
(:meth:`Score.scoring_memory <sparsity_tune.trial.scores.Score.scoring_memory>`); scoring
happens between training steps, so its activations count only where they exceed a training
batch's. Against the peak RSS a score adds on the CPU (a fresh process, glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed) the declared figures come within 4% for a 40-2048-2048-10 MLP;
for a CNN they miss about half, as the activations here do for any run (workspaces not counted).

The network is built on PyTorch's ``meta`` device (shapes, no storage), so the figure comes from
the same code that builds the real model; activations are read by forward hooks on meta tensors.
It is an estimate (allocator overhead and torch's workspace are not counted), so it can only
refuse what clearly cannot fit.

Two checks use it: :func:`check_fits` (the trial is about to run *here*: the device must exist and
the need must fit the memory available now) and :func:`check_could_fit` (a spec is being
validated, maybe on a login node: the need must fit this machine's total memory, a node like it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from sparsity_tune.keys import ConfigError
from sparsity_tune.trial.config import DatasetConfig, ModelConfig, TrialConfig
from sparsity_tune.trial.registry import SCHEDULES, SCORES
from sparsity_tune.trial.scores import NO_SCORING_MEMORY, ScoringMemory

GiB = 1 << 30
_FLOAT = 4  # bytes of a float32


@dataclass(frozen=True)
class Need:
    """Estimated bytes by part; ``total`` is their sum."""

    parts: tuple[tuple[str, int], ...]
    batch: int

    @property
    def total(self) -> int:
        return sum(b for _, b in self.parts)

    def describe(self) -> str:
        shown = ", ".join(f"{name} {fmt_bytes(b)}" for name, b in self.parts if b)
        return f"about {fmt_bytes(self.total)} ({shown})"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def estimate(cfg: TrialConfig) -> Need:
    """The memory one trial of ``cfg`` needs (see the module docstring for what is counted)."""
    prunes = bool(SCHEDULES[cfg.pruning.method].prunes)
    scoring = SCORES[cfg.pruning.score].scoring_memory(cfg.pruning) if prunes else None
    key = {
        "model": cfg.model.model_dump(mode="json"),
        "dataset": cfg.dataset.model_dump(mode="json", exclude={"root", "download"}),
        "train": cfg.train.model_dump(
            mode="json", include={"batch_size", "eval_batch_size", "optimizer", "momentum"}
        ),
        "pruning": {
            "prune_output": cfg.pruning.prune_output,
            "pruned": prunes,
            "scoring": dataclasses.asdict(scoring or NO_SCORING_MEMORY),
            # IMP keeps the weights it rewinds to (and reinit the ticket's) unless rewind: none
            "rewind_copy": SCHEDULES[cfg.pruning.method].rewinds
            and (cfg.pruning.rewind != "none" or cfg.pruning.control == "reinit"),
            "ticket": SCHEDULES[cfg.pruning.method].rewinds
            and (cfg.pruning.rewind == "reinit" or cfg.pruning.control == "reinit"),
        },
    }
    return _estimate(json.dumps(key, sort_keys=True))


@functools.lru_cache(maxsize=256)  # grid checks ask for the same model many times
def _estimate(key: str) -> Need:
    import torch

    from sparsity_tune.trial.data import dataset_shape
    from sparsity_tune.trial.models import build_model, prunable_parameters

    k = json.loads(key)
    d, m = DatasetConfig.model_validate(k["dataset"]), ModelConfig.model_validate(k["model"])
    t, p = k["train"], k["pruning"]
    shape = dataset_shape(d)
    n_train = min(shape.train, d.train_limit or shape.train)
    n_test = min(shape.test, d.test_limit or shape.test)
    per_sample = math.prod(shape.input) * _FLOAT + 8  # float32 inputs + an int64 label
    data = (n_train + n_test) * per_sample

    with torch.device("meta"):
        model = build_model(m, shape.input, shape.classes)
        n_params = sum(q.numel() for q in model.parameters())
        prunable = prunable_parameters(model, p["prune_output"]).values()
        n_prunable = sum(q.numel() for q in prunable)
        largest = max((q.numel() for q in prunable), default=0)
        sizes: list[int] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
            for m in model.modules()
            if not list(m.children())
        ]
        with torch.no_grad():
            model(torch.empty(1, *shape.input))
        for h in hooks:
            h.remove()
    batch = max(1, min(t["batch_size"], n_train))
    per_sample_act = sum(sizes) + 2 * max(sizes, default=0)
    train_act = batch * per_sample_act * _FLOAT
    eval_batch = min(t["eval_batch_size"], max(n_train, n_test))
    eval_act = eval_batch * 2 * max(sizes, default=0) * _FLOAT
    optimizer = {"adam": 2, "adamw": 2}.get(t["optimizer"], 1 if t["momentum"] > 0 else 0)
    pruned, imp_copy = p["pruned"], p["rewind_copy"]
    s = ScoringMemory(**p["scoring"])
    score_act = s.graph_samples * per_sample_act * _FLOAT
    scoring = (
        (s.model_copies * n_params + s.weight_buffers * n_prunable + s.layer_temporaries * largest)
        * _FLOAT
        + s.held_samples * per_sample
        + max(0, score_act - max(train_act, eval_act))
    )
    parts = (
        ("parameters", n_params * _FLOAT),
        ("gradients", n_params * _FLOAT),
        (f"optimizer state ({t['optimizer']})", optimizer * n_params * _FLOAT),
        ("masks", n_prunable),
        ("rewind copy", n_params * _FLOAT if imp_copy else 0),
        ("reinit ticket", (2 + optimizer) * n_params * _FLOAT if p["ticket"] else 0),
        ("pruning scores", n_prunable * _FLOAT if pruned else 0),
        ("scoring", math.ceil(scoring)),
        (f"activations (batch {batch})", max(train_act, eval_act)),
        ("data", data),
    )
    return Need(parts=parts, batch=batch)


def _model_keys(cfg: TrialConfig) -> str:
    m = cfg.model
    if m.preset:
        what = f"model.preset={m.preset!r}"
    elif m.hidden is not None:
        what = f"model.hidden={m.hidden if len(m.hidden) <= 8 else '[...]'}"
    else:
        what = f"model.arch={m.arch!r}, model.depth={m.depth}, model.width={m.width}"
    return f"{what}, train.batch_size={cfg.train.batch_size} on dataset.name={cfg.dataset.name!r}"


def _refuse(cfg: TrialConfig, need: Need, have: str) -> ConfigError:
    scoring = dict(need.parts).get("scoring", 0)
    also = (
        f"; or a lighter pruning.score (pruning.score={cfg.pruning.score!r} holds "
        f"{fmt_bytes(scoring)} while it scores; pruning.score_batch_size and score_batches "
        "size its batches)"
        if scoring
        else ""
    )
    return ConfigError(
        f"{_model_keys(cfg)} needs {need.describe()}, but {have}. "
        f"Allowed: a model that fits: lower model.width/depth/hidden or train.batch_size{also}"
    )


#: Dotted config keys (or section prefixes) the estimate depends on.
AFFECTS = (
    "dataset.",
    "model.",
    "train.batch_size",
    "train.eval_batch_size",
    "train.optimizer",
    "train.momentum",
    "pruning.method",
    "pruning.score",
    "pruning.score_batch_size",
    "pruning.score_batches",
    "pruning.rewind",
    "pruning.control",
    "pruning.prune_output",
)


def affects(key: str) -> bool:
    """Whether a dotted config key can change :func:`estimate`."""
    return any(key == a or (a.endswith(".") and key.startswith(a)) for a in AFFECTS)


# ---------------------------------------------------------------------- this machine


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cgroup_limit() -> tuple[int | None, int | None]:
    """(limit, usage) of this process's memory cgroup (v2 or v1), None where there is none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if controllers == "":  # v2
            for base in (root / rel, root):
                if (base / "memory.max").exists():
                    return _read_int(base / "memory.max"), _read_int(base / "memory.current")
        if "memory" in controllers.split(","):  # v1
            for base in (root / "memory" / rel, root / "memory"):
                if (base / "memory.limit_in_bytes").exists():
                    limit = _read_int(base / "memory.limit_in_bytes")
                    usage = _read_int(base / "memory.usage_in_bytes")
                    return (limit if limit and limit < 1 << 60 else None), usage
    return None, None


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def ram(total: bool = False) -> int:
    """Bytes of RAM available now (``total``: installed), capped by this process's cgroup."""
    if total:
        have = _meminfo("MemTotal") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    else:
        have = _meminfo("MemAvailable") or (
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        )
    limit, usage = _cgroup_limit()
    if limit:
        have = min(have, limit if total else max(0, limit - (usage or 0)))
    return have


def check_device(device: str) -> None:
    """Refuse a device this machine does not have (``cuda`` without CUDA, ``cuda:3`` of 2)."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                "train.device='mps': this machine has no Apple GPU (MPS); allowed here: auto, cpu"
            )
        return
    if not torch.cuda.is_available():
        raise ConfigError(
            f"train.device={device!r}: this machine has no CUDA device (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "allowed here: auto, cpu"
        )
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"train.device={device!r}: this machine has {count} CUDA device(s); "
            f"allowed: cuda:0..cuda:{count - 1}"
        )


def check_fits(cfg: TrialConfig) -> Need:
    """The trial runs here, now: its device must exist and its need fit the free memory."""
    check_device(cfg.train.device)
    need = estimate(cfg)
    device = cfg.train.device
    if device.startswith("cuda") or device == "auto":
        import torch

        if torch.cuda.is_available():
            index = int(device.partition(":")[2] or 0)
            free, _ = torch.cuda.mem_get_info(index)
            if need.total > free:
                raise _refuse(cfg, need, f"CUDA device {index} has {fmt_bytes(free)} free")
            return need
    have = ram()
    if need.total > have:
        raise _refuse(cfg, need, f"this machine has {fmt_bytes(have)} available")
    return need


def check_could_fit(cfg: TrialConfig) -> Need:
    """A spec check (maybe on a login node): the need must fit this machine's total memory."""
    need = estimate(cfg)
    have = ram(total=True)
    if need.total > have:
        raise _refuse(cfg, need, f"this machine has {fmt_bytes(have)} in all")
    return need
