"""CIFAR-10 and CIFAR-100 python batches, read with an unpickler that builds nothing but numpy arrays.

The batches are pickles written by Python 2 (some copies re-saved by Python 3
at protocol 2). Unpickling runs whatever globals a file names, so only numpy's
array rebuilders (and a latin1-only bytes rebuilder) are allowed.
"""

from __future__ import annotations

import importlib
import pickle
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ge_nas.data.arrays import Arrays, as_labels, check_part
from ge_nas.data.files import find_files, search_dirs
from ge_nas.errors import DatasetError


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR data set lives and which batch files make it up."""

    subdir: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: str
    num_classes: int
    hint: str


_HINT = "unpack {archive} and pass --data-dir DIR pointing at {subdir}/ or at its parent"
CIFAR_SETS: Mapping[str, CifarSpec] = types.MappingProxyType(
    {
        "cifar10": CifarSpec(
            "cifar-10-batches-py",
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            ("test_batch",),
            "labels",
            10,
            _HINT.format(archive="cifar-10-python.tar.gz", subdir="cifar-10-batches-py"),
        ),
        "cifar100": CifarSpec(
            "cifar-100-python",
            ("train",),
            ("test",),
            "fine_labels",
            100,
            _HINT.format(archive="cifar-100-python.tar.gz", subdir="cifar-100-python"),
        ),
    }
)


def load_cifar(name: str, data_dir: str | None, system_dir: Path) -> Arrays:
    """Find and read the batches of data set name (a key of CIFAR_SETS)."""
    spec = CIFAR_SETS[name]
    wanted = {f: (f,) for f in spec.train + spec.test}
    paths = find_files(
        name,
        search_dirs(name, (spec.subdir,), data_dir, system_dir, nested=True),
        wanted,
        spec.hint,
    )
    train = _part(spec, [paths[f] for f in spec.train])
    test = _part(spec, [paths[f] for f in spec.test])
    raw = "uint8 pixel values 0..255 as in the CIFAR batches"
    return Arrays(*train, *test, num_classes=spec.num_classes, raw=raw)


def _part(spec: CifarSpec, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    batches = [_read_batch(p, spec.label_key) for p in paths]
    for p, (x, y) in zip(paths, batches):
        check_part(x, y, str(p), f"{p}:{spec.label_key}", spec.num_classes)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch as (N, 3, 32, 32) uint8 images and labels."""
    batch = unpickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(
            f"{path}: expected a dict with 'data' and {label_key!r}, found {type(batch).__name__}"
        )
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise DatasetError(
            f"{path}: no {' or '.join(map(repr, missing))} entry (found keys {sorted(map(str, batch))})"
        )
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        found = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DatasetError(
            f"{path}: expected 'data' as a uint8 array of shape (N, 3072), found {found}"
        )
    return data.reshape(-1, 3, 32, 32), as_labels(
        np.asarray(batch[label_key]), f"{path}:{label_key}"
    )


# --- the restricted unpickler ---------------------------------------------------


def _latin1_encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
    """Rebuild bytes the way Python 3 pickles them at protocol 2, and nothing else."""
    if isinstance(text, str) and encoding in ("latin1", "latin-1") and errors == "strict":
        return text.encode("latin1")
    raise pickle.UnpicklingError("_codecs.encode is allowed only to rebuild latin1 bytes")


def _numpy_reconstruct() -> Callable[..., Any]:
    try:
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        module = importlib.import_module("numpy.core.multiarray")
    reconstruct: Callable[..., Any] = module._reconstruct
    return reconstruct


# The only globals a CIFAR batch needs: numpy's array rebuilders, plus the bytes
# rebuilder Python 3 uses at protocol 2 (re-saved batches). Nothing else is built.
_RECONSTRUCT = _numpy_reconstruct()
_PICKLE_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType(
    {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickle a CIFAR batch, refusing every global but numpy's array rebuilders."""

    def __init__(self, file: BinaryIO, *, source: Path) -> None:
        super().__init__(file, encoding="bytes")  # the batches were written by Python 2
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global or refuse the file."""
        allowed = _PICKLE_GLOBALS.get((module, name))
        if allowed is None:
            raise DatasetError(
                f"{self.source}: refusing to unpickle global {module}.{name}: "
                "a CIFAR batch holds only dicts, lists, strings and numpy arrays"
            )
        return allowed


def unpickle(path: Path) -> object:
    """Read a pickle with the restricted unpickler; any failure is a DatasetError."""
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, source=path).load()
    except DatasetError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways; all mean the same
        raise DatasetError(
            f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc})"
        ) from exc
