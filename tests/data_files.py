"""Writers for the real data file formats (IDX, CIFAR pickles) and checks of loaded data sets, for the data tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ge_nas.data import Dataset

PLAIN = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write array as an IDX file of unsigned bytes, gzipped when path ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
    return path


def write_idx_set(
    folder: Path, parts: dict[str, np.ndarray], *, names: tuple[str, ...] = PLAIN, gz: bool = True
) -> list[Path]:
    """Write train/test images/labels under the four given names."""
    suffix = ".gz" if gz else ""
    keys = ("x_train", "y_train", "x_test", "y_test")
    return [write_idx(folder / f"{name}{suffix}", parts[key]) for name, key in zip(names, keys)]


def make_parts(
    n_train: int = 40, n_test: int = 12, classes: int = 10, h: int = 6, w: int = 4
) -> dict[str, np.ndarray]:
    """Return random uint8 images (N, H, W) and cycling labels: H != W catches transposition."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        "y_train": (np.arange(n_train) % classes).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        "y_test": (np.arange(n_test) % classes).astype(np.uint8),
    }


def normalized(
    x_train: np.ndarray, x_test: np.ndarray, scale: float = 255.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the expected (N, C, H, W) tensors: scaled, then normalized with train statistics."""
    train, test = x_train / scale, x_test / scale
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    return torch.from_numpy((train - mean) / std).float(), torch.from_numpy(
        (test - mean) / std
    ).float()


def assert_matches(ds: Dataset, parts: dict[str, np.ndarray], label_offset: int = 0) -> None:
    """Assert that ds holds parts' images (as one channel) and labels."""
    x_train, x_test = normalized(parts["x_train"][:, None], parts["x_test"][:, None])
    assert torch.allclose(ds.x_train, x_train, atol=1e-5)
    assert torch.allclose(ds.x_test, x_test, atol=1e-5)
    assert ds.y_train.tolist() == (parts["y_train"].astype(int) - label_offset).tolist()
    assert ds.y_test.tolist() == (parts["y_test"].astype(int) - label_offset).tolist()
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickle the way Python 2's cPickle wrote the CIFAR batches: strings as BINSTRING, numpy.core."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        head = (
            pickle.SHORT_BINSTRING + bytes([len(raw)])
            if len(raw) < 256
            else pickle.BINSTRING + struct.pack("<i", len(raw))
        )
        self.write(head + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode())
        self.memoize(obj)


def write_pickle(path: Path, obj: object, *, py2: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        (Py2Pickler(f, protocol=2) if py2 else pickle.Pickler(f, protocol=2)).dump(obj)


def cifar_batch(
    x: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels"
) -> dict[bytes, object]:
    """Return a batch dict shaped like the real ones: bytes keys, (N, 3072) uint8, label list."""
    return {
        b"batch_label": b"testing batch 1 of 1",
        label_key: labels.tolist(),
        b"data": x.reshape(len(x), 3072),
        b"filenames": [b"img_%d.png" % i for i in range(len(x))],
    }


def write_cifar10(folder: Path, *, py2: bool, per_batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (6 * per_batch, 3, 32, 32), dtype=np.uint8)
    y = np.arange(6 * per_batch) % 10
    for i in range(5):
        chunk = slice(i * per_batch, (i + 1) * per_batch)
        write_pickle(folder / f"data_batch_{i + 1}", cifar_batch(x[chunk], y[chunk]), py2=py2)
    write_pickle(
        folder / "test_batch", cifar_batch(x[5 * per_batch :], y[5 * per_batch :]), py2=py2
    )
    cut = 5 * per_batch
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}
