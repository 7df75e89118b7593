"""Loaders on real on-disk formats the tests write (IDX, CIFAR-10 pickle batches), and mnist1d."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsity_tune.keys import ConfigError
from sparsity_tune.trial import data as data_module
from sparsity_tune.trial.config import DatasetConfig
from sparsity_tune.trial.data import (
    CIFAR10_FOLDER,
    DatasetError,
    iterate_batches,
    load_dataset,
    mnist1d_cache_path,
    mnist1d_pointer_path,
)

# --- writers of the real formats ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (LeCun's MNIST format): magic 0x0000 08 ndim, big-endian uint32 dims, uint8 data."""
    assert array.dtype == np.uint8
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())


def make_idx_dataset(root: Path, folder: str, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """Random images whose first pixels encode the sample index (see :func:`sample_ids`)."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = 0, 255
        images[:, 0, 2], images[:, 0, 3] = np.arange(n) % 256, np.arange(n) // 256
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte", images)
        write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte", labels)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images, labels
    return arrays


def sample_ids(x: torch.Tensor) -> list[int]:
    """Sample indices written by :func:`make_idx_dataset`, read back after normalisation.

    Pixels 0 and 1 are 0 and 255, so (v - v0) / (v1 - v0) * 255 undoes any affine normalisation.
    """
    v = x[:, 0, 0, :4].double()
    pix = ((v - v[:, :1]) / (v[:, 1:2] - v[:, :1]) * 255).round().long()
    return (pix[:, 2] + 256 * pix[:, 3]).tolist()


def make_cifar10(root: Path, per_batch: int, n_test: int) -> dict[str, np.ndarray]:
    """CIFAR-10 python batches: dicts with 'data' (N x 3072 uint8, channel planes) and 'labels'."""
    rng = np.random.default_rng(2)
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    out: dict[str, list] = {"train_x": [], "train_y": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        # channels get different offsets so a layout mix-up changes the per-channel statistics
        planes = rng.integers(0, 156, size=(n, 3, 1024)) + np.array([0, 50, 100])[None, :, None]
        data = planes.reshape(n, 3072).astype(np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        entry = {"batch_label": name, "labels": labels, "data": data, "filenames": [""] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        if name == "test_batch":
            out["test_x"], out["test_y"] = data.reshape(n, 3, 32, 32), np.array(labels)
        else:
            out["train_x"].append(data.reshape(n, 3, 32, 32))
            out["train_y"].extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}, f, protocol=2)
    out["train_x"] = np.concatenate(out["train_x"])
    out["train_y"] = np.array(out["train_y"])
    return out


def expected_normalised(raw_train: np.ndarray, raw: np.ndarray) -> torch.Tensor:
    """(raw - mean) / std with per-channel statistics of ``raw_train`` (N, C, ...)."""
    t = torch.from_numpy(raw_train).double()
    dims = [0, *range(2, t.dim())]
    mean, std = t.mean(dims, keepdim=True), t.std(dims, keepdim=True)
    return ((torch.from_numpy(raw).double() - mean) / std).float()


def channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, *range(2, x.dim())]
    return x.double().mean(dims), x.double().std(dims)


# --- torchvision IDX datasets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_idx_dataset_loads_normalised(tmp_path: Path, name: str, folder: str) -> None:
    raw = make_idx_dataset(tmp_path, folder, n_train=50, n_test=20)
    d = load_dataset(DatasetConfig(name=name, root=str(tmp_path), val_fraction=0.0))
    assert d.name == name and d.num_classes == 10 and d.input_shape == (1, 28, 28)
    assert d.train_x.shape == (50, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    mean, std = channel_moments(d.train_x)
    assert mean.abs().max() < 1e-5 and (std - 1).abs().max() < 1e-5
    # test set keeps file order and is normalised with the training statistics
    torch.testing.assert_close(d.test_y, torch.from_numpy(raw["t10k_y"]).long())
    torch.testing.assert_close(
        d.test_x, expected_normalised(raw["train_x"][:, None], raw["t10k_x"][:, None])
    )
    # training samples are a permutation of the file's samples, labels kept with their images
    ids = sample_ids(d.train_x)
    assert sorted(ids) == list(range(50))
    torch.testing.assert_close(d.train_y, torch.from_numpy(raw["train_y"][ids]).long())


def test_val_split_is_deterministic_disjoint_and_sized(tmp_path: Path) -> None:
    raw = make_idx_dataset(tmp_path, "MNIST", n_train=300, n_test=10)
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_fraction=0.25, split_seed=3)
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert len(a.val_y) == 75 and len(a.train_y) == 225
    torch.testing.assert_close(a.train_x, b.train_x)
    torch.testing.assert_close(a.val_x, b.val_x)
    train_ids, val_ids = sample_ids(a.train_x), sample_ids(a.val_x)
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == list(range(300))
    torch.testing.assert_close(a.val_y, torch.from_numpy(raw["train_y"][val_ids]).long())
    # statistics come from the training part only (not validation, not test)
    part = raw["train_x"][train_ids][:, None]
    torch.testing.assert_close(a.test_x, expected_normalised(part, raw["t10k_x"][:, None]))
    torch.testing.assert_close(a.val_x, expected_normalised(part, raw["train_x"][val_ids][:, None]))
    other = load_dataset(cfg.model_copy(update={"split_seed": 4}))
    assert set(sample_ids(other.val_x)) != set(val_ids)


def test_limits_take_the_first_samples(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, "MNIST", n_train=100, n_test=30)
    base = DatasetConfig(name="mnist", root=str(tmp_path), val_fraction=0.2)
    full = load_dataset(base)
    small = load_dataset(base.model_copy(update={"train_limit": 40, "test_limit": 7}))
    assert (len(small.train_y), len(small.val_y), len(small.test_y)) == (32, 8, 7)
    assert sample_ids(small.test_x) == list(range(7))
    # the limited set is the first 40 of the same seeded shuffle: its val ids are the first 8
    assert set(sample_ids(small.val_x)) == set(sample_ids(full.val_x)[:8])


def test_gzipped_idx_files_load_too(tmp_path: Path) -> None:
    """Only the .gz files, as published by the MNIST mirrors: decompressed, then loaded."""
    raw = make_idx_dataset(tmp_path, "MNIST", n_train=10, n_test=5)
    folder = tmp_path / "MNIST" / "raw"
    for f in list(folder.iterdir()):
        (folder / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    d = load_dataset(DatasetConfig(name="mnist", root=str(tmp_path), val_fraction=0.0))
    torch.testing.assert_close(d.test_y, torch.from_numpy(raw["t10k_y"]).long())
    assert sorted(sample_ids(d.train_x)) == list(range(10))


# --- CIFAR-10 -------------------------------------------------------------------------------


def trust(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the loader accept the synthetic batches: their md5s replace the published ones."""
    md5 = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data_module.CIFAR10_MD5}
    monkeypatch.setattr(data_module, "CIFAR10_MD5", md5)


def test_cifar10_md5_list_is_torchvisions() -> None:
    from torchvision.datasets import CIFAR10

    assert dict(CIFAR10.train_list + CIFAR10.test_list) == data_module.CIFAR10_MD5
    assert CIFAR10.base_folder == CIFAR10_FOLDER


def test_cifar10_pickle_batches_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = make_cifar10(tmp_path, per_batch=6, n_test=5)
    trust(tmp_path / CIFAR10_FOLDER, monkeypatch)
    d = load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path), val_fraction=0.0))
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10
    assert d.train_x.shape == (30, 3, 32, 32) and d.test_x.shape == (5, 3, 32, 32)
    mean, std = channel_moments(d.train_x)
    assert mean.abs().max() < 1e-5 and (std - 1).abs().max() < 1e-5
    torch.testing.assert_close(d.test_y, torch.from_numpy(raw["test_y"]).long())
    torch.testing.assert_close(d.test_x, expected_normalised(raw["train_x"], raw["test_x"]))
    assert sorted(d.train_y.tolist()) == sorted(raw["train_y"].tolist())


def test_cifar10_rejects_a_foreign_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_cifar10(tmp_path, per_batch=2, n_test=2)
    trust(tmp_path / CIFAR10_FOLDER, monkeypatch)
    with open(tmp_path / CIFAR10_FOLDER / "data_batch_3", "wb") as f:
        pickle.dump({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path)))


# --- missing files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sub"),
    [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"), ("cifar10", CIFAR10_FOLDER)],
)
def test_missing_files_name_path_and_download_flag(tmp_path: Path, name: str, sub: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(DatasetConfig(name=name, root=str(tmp_path / "nowhere")))
    msg = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert str(tmp_path / "nowhere" / sub) in msg
    assert "dataset.download: true" in msg and repr(name) in msg


# --- mnist1d --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d")


def test_mnist1d_generated_cached_and_split(mnist1d_root: Path) -> None:
    from mnist1d.data import get_dataset_args

    cfg = DatasetConfig(name="mnist1d", root=str(mnist1d_root), val_fraction=0.1)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    d = load_dataset(cfg)
    # the generator reseeds numpy/random globally; the loader must leave them as they were
    assert (np.random.get_state()[1] == np_state).all() and random.getstate() == py_state
    assert mnist1d_cache_path(mnist1d_root, get_dataset_args(as_dict=True)).is_file()
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (3600, 400, 1000)
    assert d.input_shape == (1, 40) and d.num_classes == 10 and d.name == "mnist1d"
    assert set(d.train_y.unique().tolist()) == set(range(10))
    mean, std = channel_moments(d.train_x)
    assert abs(mean.item()) < 1e-5 and abs(std.item() - 1) < 1e-5
    again = load_dataset(cfg)  # from the cache file
    torch.testing.assert_close(again.train_x, d.train_x)
    torch.testing.assert_close(again.test_y, d.test_y)


def test_mnist1d_regenerates_a_torn_cache(mnist1d_root: Path) -> None:
    from mnist1d.data import get_dataset_args

    cfg = DatasetConfig(name="mnist1d", root=str(mnist1d_root), test_limit=100)
    first = load_dataset(cfg)
    path = mnist1d_cache_path(mnist1d_root, get_dataset_args(as_dict=True))
    path.write_bytes(b"torn")
    again = load_dataset(cfg)
    torch.testing.assert_close(again.test_x, first.test_x)
    assert path.stat().st_size > 1000


def test_mnist1d_cache_hit_does_not_import_the_package(mnist1d_root: Path) -> None:
    """The version pointer is what spares every trial worker mnist1d's scipy/matplotlib imports;
    a fresh interpreter shows whether a load from the cache imports it."""
    load_dataset(DatasetConfig(name="mnist1d", root=str(mnist1d_root)))  # cache + pointer
    pointer = mnist1d_pointer_path(mnist1d_root)
    assert pointer is not None and pointer.parent == mnist1d_root / "mnist1d"
    assert (pointer.parent / json.loads(pointer.read_text())["file"]).is_file()
    code = (
        "import sys\n"
        "from sparsity_tune.trial.config import DatasetConfig\n"
        "from sparsity_tune.trial.data import load_dataset\n"
        f"d = load_dataset(DatasetConfig(name='mnist1d', root={str(mnist1d_root)!r}))\n"
        "print(len(d.test_y), 'mnist1d' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1000", "False", "False"]


@pytest.mark.parametrize("name", ["../elsewhere.pt", "/etc/passwd", 7, "0123456789ab.pt"])
def test_mnist1d_pointer_to_anything_but_a_good_file_beside_it_is_ignored(
    mnist1d_root: Path, tmp_path: Path, name: object
) -> None:
    load_dataset(DatasetConfig(name="mnist1d", root=str(mnist1d_root)))
    shutil.copytree(mnist1d_root / "mnist1d", tmp_path / "mnist1d")  # no generating it again
    cfg = DatasetConfig(name="mnist1d", root=str(tmp_path), test_limit=50)
    first = load_dataset(cfg)
    pointer = mnist1d_pointer_path(tmp_path)
    assert pointer is not None
    good = json.loads(pointer.read_text())["file"]
    real = torch.load(pointer.parent / good, weights_only=True)  # a well-formed file outside
    torch.save({k: torch.zeros_like(v) for k, v in real.items()}, tmp_path / "elsewhere.pt")
    pointer.write_text(json.dumps({"file": name}))
    again = load_dataset(cfg)  # falls back to mnist1d's own arguments
    torch.testing.assert_close(again.test_x, first.test_x)
    assert json.loads(pointer.read_text()) == {"file": good}  # and points right again


# --- batching -------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("n", "batch"), [(10, 3), (12, 4), (5, 8)])
def test_iterate_batches_covers_every_index_once(n: int, batch: int, shuffle: bool) -> None:
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 2)
    y = torch.arange(n)
    gen = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(x, y, batch, shuffle=shuffle, generator=gen))
    assert [len(b[1]) for b in batches] == [min(batch, n - i) for i in range(0, n, batch)]
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(n))
    for xb, yb in batches:  # features stay with their labels
        torch.testing.assert_close(xb[:, 0].long(), yb)
    if not shuffle:
        assert seen.tolist() == list(range(n))


def test_iterate_batches_order_follows_the_generator() -> None:
    x, y = torch.randn(100, 3), torch.arange(100)

    def order(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return torch.cat(
            [b for _, b in iterate_batches(x, y, 16, shuffle=True, generator=g)]
        ).tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != list(range(100))
    g = torch.Generator().manual_seed(1)
    epochs = [torch.cat([b for _, b in iterate_batches(x, y, 16, shuffle=True, generator=g)])]
    epochs.append(torch.cat([b for _, b in iterate_batches(x, y, 16, shuffle=True, generator=g)]))
    assert epochs[0].tolist() != epochs[1].tolist()  # a new permutation every epoch


def test_iterate_batches_drop_last() -> None:
    x, y = torch.zeros(10, 1), torch.arange(10)
    sizes = [len(b) for _, b in iterate_batches(x, y, 4, shuffle=True, drop_last=True)]
    assert sizes == [4, 4]
