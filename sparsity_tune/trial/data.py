"""Datasets as normalised tensors held in memory on the trial's device, batched by index.

Following airbench/nanoGPT, there is no ``Dataset``/``DataLoader`` and no per-sample Python in the
hot loop: :func:`load_dataset` converts a dataset to tensors once, and :func:`iterate_batches`
slices them with a ``torch.randperm`` permutation.

Sources (``dataset.name``):

* ``mnist1d`` (embedded default): generated locally by the ``mnist1d`` package's own generator
  (``mnist1d.data.make_dataset`` with ``get_dataset_args()``: 5000 signals of length 40, split
  4000 train / 1000 test), cached under ``<root>/mnist1d/<args-hash>.pt`` so later trials load it
  in milliseconds (through ``mnist1d-<version>.json``, which names that file for the installed
  package, so a cache hit does not import it); regenerated when the file is absent or torn. No
  internet needed.
* ``mnist``, ``fashion_mnist``: ``torchvision.datasets.MNIST`` / ``FashionMNIST`` (raw IDX files
  under ``<root>/MNIST/raw`` or ``<root>/FashionMNIST/raw``; ``*.gz`` files as published are
  decompressed there first, at most :data:`MAX_IDX_BYTES` each, so a gzip bomb cannot fill the
  disk); their ``.data``/``.targets`` arrays are used directly. IDX is a plain binary format
  (torchvision parses it with ``numpy.frombuffer``), not a pickle; torchvision's legacy
  ``processed/*.pt`` files are read with ``torch.load(weights_only=True)``.
* ``cifar10``: torchvision downloads and md5-verifies ``cifar-10-batches-py`` when
  ``dataset.download`` is true. The batches are Python pickles, and unpickling runs code, so
  :func:`read_cifar10` first checks each file's md5 against torchvision's published list
  (:data:`CIFAR10_MD5`; anything else is refused, subsets included: use ``dataset.train_limit``),
  then unpickles it with :class:`_ArrayUnpickler`, which builds only numpy arrays and plain
  containers (defence in depth), and checks shapes and labels.

Normalisation uses the per-channel mean/std of the training part (after the validation split),
so no statistic leaks from validation or test data.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import pickle
import random
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sparsity_tune import layout
from sparsity_tune.keys import ConfigError
from sparsity_tune.trial.config import IMAGE_DATASETS, DatasetConfig

_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_KINDS = (("images", 3), ("labels", 1))
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
#: torchvision.datasets.CIFAR10.train_list + test_list (a unit test keeps them equal).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
#: The largest published IDX file (train images) is 47,040,016 bytes.
MAX_IDX_BYTES = 64 << 20
MAX_CIFAR_BYTES = 64 << 20  # a published batch is 31,035,704 bytes (data_batch_*)


@dataclass(frozen=True)
class DatasetShape:
    """What a dataset holds, known without reading it (for the memory estimate)."""

    input: tuple[int, ...]  # one sample, channels first
    train: int
    test: int
    classes: int


SHAPES = {
    "mnist1d": DatasetShape((1, 40), 4000, 1000, 10),
    "mnist": DatasetShape((1, 28, 28), 60000, 10000, 10),
    "fashion_mnist": DatasetShape((1, 28, 28), 60000, 10000, 10),
    "cifar10": DatasetShape((3, 32, 32), 50000, 10000, 10),
}


def dataset_shape(cfg: DatasetConfig) -> DatasetShape:
    return SHAPES[cfg.name]


class DatasetError(ConfigError):
    """The dataset's files are missing or unreadable; the message says where and how to fix it."""


@dataclass
class DataSplits:
    """Train/validation/test tensors of one dataset, normalised, on one device."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]  # per sample, channels first
    name: str

    def __repr__(self) -> str:
        return (
            f"DataSplits({self.name}: train={len(self.train_y)}, val={len(self.val_y)}, "
            f"test={len(self.test_y)}, input_shape={self.input_shape}, "
            f"classes={self.num_classes}, device={self.train_x.device})"
        )


def load_dataset(cfg: DatasetConfig, device: torch.device | str = "cpu") -> DataSplits:
    """Load ``cfg.name`` as normalised float32 tensors (labels int64) on ``device``.

    The validation set is carved from the training set by a permutation drawn from a generator
    seeded with ``cfg.split_seed``, so every trial with the same dataset settings sees the same
    split. ``cfg.train_limit`` keeps the first N training samples of that permutation (before the
    validation split); ``cfg.test_limit`` keeps the first N test samples.
    """
    if cfg.name == "mnist1d":
        train_x, train_y, test_x, test_y = _load_mnist1d(Path(cfg.root))
    elif cfg.name in _TORCHVISION_FOLDER:
        train_x, train_y, test_x, test_y = _load_idx(cfg)
    elif cfg.name == "cifar10":
        train_x, train_y, test_x, test_y = _load_cifar10(cfg)
    else:  # the config's Literal makes this unreachable for validated configs
        raise DatasetError(
            f"dataset.name={cfg.name!r} is not known; allowed: mnist1d, {IMAGE_DATASETS}"
        )

    gen = torch.Generator().manual_seed(cfg.split_seed)
    order = torch.randperm(len(train_y), generator=gen)
    if cfg.train_limit is not None:
        order = order[: cfg.train_limit]
    n_val = round(len(order) * cfg.val_fraction)
    if cfg.val_fraction > 0 and n_val == 0 and len(order) > 1:
        n_val = 1
    val_idx, train_idx = order[:n_val], order[n_val:]
    if cfg.test_limit is not None:
        test_x, test_y = test_x[: cfg.test_limit], test_y[: cfg.test_limit]

    train_x, val_x = train_x[train_idx], train_x[val_idx]
    train_y, val_y = train_y[train_idx], train_y[val_idx]
    mean, std = channel_stats(train_x)

    def norm(x: Tensor) -> Tensor:
        return ((x - mean) / std).to(device=device, dtype=torch.float32).contiguous()

    return DataSplits(
        train_x=norm(train_x),
        train_y=train_y.to(device=device, dtype=torch.int64),
        val_x=norm(val_x),
        val_y=val_y.to(device=device, dtype=torch.int64),
        test_x=norm(test_x),
        test_y=test_y.to(device=device, dtype=torch.int64),
        num_classes=SHAPES[cfg.name].classes,
        input_shape=tuple(train_x.shape[1:]),
        name=cfg.name,
    )


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of ``x`` (N, C, ...), shaped to broadcast over (N, C, ...)."""
    dims = [0, *range(2, x.dim())]
    x64 = x.to(torch.float64)
    mean = x64.mean(dim=dims, keepdim=True)
    std = x64.std(dim=dims, keepdim=True).clamp_min(1e-8)
    return mean.squeeze(0).to(torch.float32), std.squeeze(0).to(torch.float32)


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(xb, yb)`` mini-batches by index slicing; each index appears once per pass.

    With ``shuffle`` the order is a ``torch.randperm`` drawn from ``generator`` (on the
    generator's device, then moved to ``x.device``); without it, contiguous slices (views).
    """
    n = len(y)
    if shuffle:
        gen_device = generator.device if generator is not None else x.device
        perm = torch.randperm(n, generator=generator, device=gen_device).to(x.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if shuffle:
            idx = perm[start : start + batch_size]
            # index_select, not x[idx]: the same gather at a third of the cost on CPU
            # (19 vs 64 us for 128 MNIST images), paid once per training step.
            yield x.index_select(0, idx), y.index_select(0, idx)
        else:
            yield x[start : start + batch_size], y[start : start + batch_size]


# --- mnist1d ---------------------------------------------------------------------------------


def mnist1d_cache_path(root: Path, args: dict) -> Path:
    """Cache file named by a hash of the generator's arguments (other args, other file)."""
    blob = json.dumps(args, sort_keys=True, default=str).encode()
    return Path(root) / "mnist1d" / f"{hashlib.sha256(blob).hexdigest()[:12]}.pt"


_CACHE_NAME = re.compile(r"[0-9a-f]{12}\.pt")


def mnist1d_pointer_path(root: Path) -> Path | None:
    """``<root>/mnist1d/mnist1d-<version>.json``: the name of the cache file for the installed
    ``mnist1d`` (None when it has no version). Importing ``mnist1d`` to hash its arguments also
    imports scipy and matplotlib (0.8 s of every trial worker's and CLI run's start-up, measured);
    its default arguments are code of the package, so one version means one cache file."""
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(root) / "mnist1d" / f"mnist1d-{re.sub(r'[^A-Za-z0-9.+_-]', '_', version)}.json"


def _read_mnist1d(path: Path) -> dict[str, Tensor] | None:
    try:
        d = torch.load(path, weights_only=True)
        return {k: d[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    except Exception:  # absent, torn or foreign: the caller regenerates it
        return None


def _cached_mnist1d(root: Path) -> dict[str, Tensor] | None:
    """The cache file the version pointer names, read without importing ``mnist1d``."""
    pointer = mnist1d_pointer_path(root)
    if pointer is None:
        return None
    try:
        name = json.loads(pointer.read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or not _CACHE_NAME.fullmatch(name):
        return None  # a pointer names a file beside it, nothing else
    return _read_mnist1d(pointer.parent / name)


def _load_mnist1d(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    d = _cached_mnist1d(root)
    if d is None:
        d = _generate_mnist1d(root)
    return d["train_x"], d["train_y"], d["test_x"], d["test_y"]


def _generate_mnist1d(root: Path) -> dict[str, Tensor]:
    """The cache file of ``mnist1d``'s own arguments, generated when absent or torn, and the
    version pointer to it written."""
    from mnist1d.data import get_dataset_args, make_dataset

    path = mnist1d_cache_path(root, get_dataset_args(as_dict=True))
    d = _read_mnist1d(path)
    if d is None:
        # make_dataset reseeds the global numpy/random generators; keep the caller's streams.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            raw = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        d = {
            "train_x": torch.from_numpy(raw["x"]).float().unsqueeze(1),
            "train_y": torch.from_numpy(raw["y"]).long(),
            "test_x": torch.from_numpy(raw["x_test"]).float().unsqueeze(1),
            "test_y": torch.from_numpy(raw["y_test"]).long(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per-process: races are safe
            torch.save(d, tmp)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only root only costs regeneration next time
    pointer = mnist1d_pointer_path(root)
    if pointer is not None:
        with contextlib.suppress(OSError):  # as above: the slow path again next time
            layout.write_text(pointer, json.dumps({"file": path.name}))
    return d


# --- torchvision: MNIST, Fashion-MNIST -------------------------------------------------------


def _missing(
    cfg: DatasetConfig, where: Path, what: str, cause: Exception | None = None
) -> DatasetError:
    how = (
        "the download failed; check the internet connection or "
        if cfg.download
        else "set dataset.download: true (needs internet) or "
    )
    return DatasetError(
        f"dataset.name={cfg.name!r}: files not found under {where} "
        f"(dataset.download={cfg.download}); "
        f"{how}put the files under {where}: {what}" + (f" [{cause}]" if cause else "")
    )


def _gunzip(src: Path, dst: Path, limit: int = MAX_IDX_BYTES) -> None:
    """Decompress ``src`` to ``dst`` (atomically), refusing more than ``limit`` bytes."""
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            written = 0
            while chunk := fin.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise DatasetError(
                        f"{src}: decompresses to more than {limit:,} bytes; a published IDX file "
                        "is at most 47 MB: replace it with the published file"
                    )
                fout.write(chunk)
        os.replace(tmp, dst)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{src}: not a readable gzip file ({err}); replace it") from None
    finally:
        tmp.unlink(missing_ok=True)


def _load_idx(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from torchvision import datasets

    cls = datasets.MNIST if cfg.name == "mnist" else datasets.FashionMNIST
    raw = Path(cfg.root) / _TORCHVISION_FOLDER[cfg.name] / "raw"
    files = ", ".join(f"{s}-{k}-idx{n}-ubyte" for s in ("train", "t10k") for k, n in IDX_KINDS)
    for stem in files.split(", "):  # gzip'd files as published: decompress once, as torchvision
        if not (raw / stem).is_file() and (raw / f"{stem}.gz").is_file():
            _gunzip(raw / f"{stem}.gz", raw / stem)
    try:
        train = cls(cfg.root, train=True, download=cfg.download)
        test = cls(cfg.root, train=False, download=cfg.download)
    except (RuntimeError, OSError) as err:
        raise _missing(cfg, raw, files, err if cfg.download else None) from None
    except Exception as err:  # a damaged IDX header, a legacy .pt refused by weights_only...
        raise DatasetError(
            f"dataset.name={cfg.name!r}: files under {raw.parent} could not be read "
            f"({type(err).__name__}: {str(err)[:200]}); replace them with the published files"
        ) from None
    return (
        train.data.unsqueeze(1),
        train.targets.long(),
        test.data.unsqueeze(1),
        test.targets.long(),
    )


# --- CIFAR-10 --------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only; any other global is refused, so a
    planted pickle cannot call ``os.system`` even if its md5 were somehow accepted."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how protocol 2 stores bytes
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes (never a FIFO or device: no hang), at most ``limit``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        os.close(fd)
        raise DatasetError(f"{path}: not a regular file of at most {limit:,} bytes")
    with os.fdopen(fd, "rb") as f:
        return f.read(st.st_size + 1)


def read_cifar10(folder: Path, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Read CIFAR-10 pickle batches (``data``: N x 3072 uint8, ``labels``) as torchvision does,
    after checking each file against :data:`CIFAR10_MD5` (nothing is unpickled before)."""
    xs, ys = [], []
    for name in names:
        path = Path(folder) / name
        blob = _read_regular(path, MAX_CIFAR_BYTES)
        md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
        if md5 != CIFAR10_MD5.get(name):
            raise DatasetError(
                f"{path}: md5 {md5} is not the published CIFAR-10 {name} "
                f"({CIFAR10_MD5.get(name, 'no such batch')}); the file is damaged or foreign and "
                "is not read (it is a pickle). Delete the folder and set dataset.download: true, "
                "or copy the published files there"
            )
        try:
            entry = _ArrayUnpickler(io.BytesIO(blob), encoding="latin1").load()
            data = np.asarray(entry["data"], dtype=np.uint8)
            labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
        except Exception as err:  # refused global, truncated, wrong layout
            raise DatasetError(f"{path}: not a CIFAR-10 batch ({err})") from None
        lab = np.asarray(labels)
        if (
            data.ndim != 2
            or data.shape[1] != 3 * 32 * 32
            or lab.shape != (len(data),)
            or lab.dtype.kind not in "iu"
            or (lab.size and (lab.min() < 0 or lab.max() > 9))
        ):
            raise DatasetError(
                f"{path}: not a CIFAR-10 batch (data {data.shape}, labels {lab.shape} "
                f"{lab.dtype}; expected N x 3072 uint8 and N labels 0..9)"
            )
        xs.append(data)
        ys.extend(labels)
    x = torch.from_numpy(np.concatenate(xs).reshape(-1, 3, 32, 32))
    return x, torch.tensor(ys, dtype=torch.int64)


def _load_cifar10(cfg: DatasetConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    folder = Path(cfg.root) / CIFAR10_FOLDER
    names = (*CIFAR10_TRAIN, *CIFAR10_TEST)
    if cfg.download and not all((folder / n).is_file() for n in names):
        from torchvision import datasets

        try:  # downloads the archive, verifies its md5 and extracts it
            datasets.CIFAR10(cfg.root, train=True, download=True)
        except (RuntimeError, OSError) as err:
            raise _missing(cfg, folder, ", ".join(names), err) from None
    if not all((folder / n).is_file() for n in names):
        raise _missing(cfg, folder, ", ".join(names))
    train_x, train_y = read_cifar10(folder, CIFAR10_TRAIN)
    test_x, test_y = read_cifar10(folder, CIFAR10_TEST)
    return train_x, train_y, test_x, test_y
