"""Data sets -> in-memory tensors and splits.

Every data set is read whole into float32 tensors shaped (N, C, H, W),
normalized per channel with the mean and standard deviation of its training
set, with int64 labels in [0, num_classes). Nothing is ever downloaded: files
come from `data_dir` or from where Debian's dataset packages put them.

Formats: IDX (MNIST and its relatives, gzip or raw), the CIFAR python batches
(pickles, read with a restricted unpickler that builds nothing but numpy
arrays) and `.npz` archives (read with allow_pickle=False).

The validation split is carved from the training data only; the test set is
passed through untouched so that it never takes part in selection.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import logging
import math
import numbers
import os
import pickle
import types
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ge_nas.errors import ConfigError, DatasetError, did_you_mean

log = logging.getLogger(__name__)

NPZ_PREFIX = "npz:"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")

_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 1797  # fixed and independent of any run seed: the test set never moves
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole data set in memory: normalized images and integer labels.

    Loaded data sets are cached and shared: treat the tensors as read-only.
    """

    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Return the shape of one image, (C, H, W)."""
        return _image_shape(self.x_train)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class Splits:
    """Training, validation and test tensors ready for one run."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Return the shape of one image, (C, H, W)."""
        return _image_shape(self.x_train)

    def __repr__(self) -> str:
        return (
            f"Splits(train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def _image_shape(x: torch.Tensor) -> tuple[int, int, int]:
    c, h, w = x.shape[1:]
    return (int(c), int(h), int(w))


# --- where the files live ---------------------------------------------------------


@dataclass(frozen=True)
class _IdxSpec:
    """Where an IDX data set lives and how its files are read."""

    subdirs: tuple[str, ...]  # tried under data_dir (after data_dir itself) and under SYSTEM_DATA_DIR
    hint: str
    prefix: str = ""  # EMNIST names its files 'emnist-<split>-train-images-idx3-ubyte'
    num_classes: int = 10
    transposed: bool = False  # EMNIST stores each image transposed
    first_label: int = 0  # EMNIST letters counts from 1


@dataclass(frozen=True)
class _CifarSpec:
    """Where a CIFAR data set lives and which batch files make it up."""

    subdir: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: str
    num_classes: int
    hint: str


_IDX_HINT = "put the four IDX files ({files}; .gz or unpacked) in a directory DIR and pass --data-dir DIR"
_EMNIST_HINT = (
    "unpack EMNIST's gzip.zip (the release in the original MNIST format) and pass --data-dir DIR"
    " holding the emnist-<split>-*-ubyte.gz files (or the gzip/ folder)"
)


def _emnist(split: str, num_classes: int, first_label: int = 0) -> _IdxSpec:
    return _IdxSpec(
        subdirs=("gzip", "emnist", "emnist/gzip", "EMNIST/raw"), hint=_EMNIST_HINT,
        prefix=f"emnist-{split}-", num_classes=num_classes, transposed=True, first_label=first_label,
    )


_IDX_SETS: Mapping[str, _IdxSpec] = types.MappingProxyType({
    "fashion-mnist": _IdxSpec(
        ("fashion-mnist", "FashionMNIST/raw"),
        "install Debian's package with `apt-get install dataset-fashion-mnist`, or " + _IDX_HINT,
    ),
    "mnist": _IdxSpec(("mnist", "MNIST/raw"), _IDX_HINT),
    "kmnist": _IdxSpec(("kmnist", "KMNIST/raw"), _IDX_HINT),
    "emnist-balanced": _emnist("balanced", 47),
    "emnist-byclass": _emnist("byclass", 62),
    "emnist-bymerge": _emnist("bymerge", 47),
    "emnist-digits": _emnist("digits", 10),
    "emnist-letters": _emnist("letters", 26, first_label=1),
})

_CIFAR_HINT = "unpack {archive} and pass --data-dir DIR pointing at {subdir}/ or at its parent"
_CIFAR_SETS: Mapping[str, _CifarSpec] = types.MappingProxyType({
    "cifar10": _CifarSpec(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", 10,
        _CIFAR_HINT.format(archive="cifar-10-python.tar.gz", subdir="cifar-10-batches-py"),
    ),
    "cifar100": _CifarSpec(
        "cifar-100-python", ("train",), ("test",), "fine_labels", 100,
        _CIFAR_HINT.format(archive="cifar-100-python.tar.gz", subdir="cifar-100-python"),
    ),
})

DATASET_NAMES: tuple[str, ...] = ("digits", *_IDX_SETS, *_CIFAR_SETS)


def _search_dirs(name: str, subdirs: Sequence[str], data_dir: str | None, *, nested: bool = False) -> list[Path]:
    """Return the directories that may hold data set `name`, in the order they are tried.

    Without data_dir, only SYSTEM_DATA_DIR/name (and, when nested, its subdirs) is tried.
    """
    if data_dir is None:
        root = SYSTEM_DATA_DIR / name
        return [root, *(root / s for s in subdirs)] if nested else [root]
    root = Path(data_dir)
    return [root, *(root / s for s in subdirs)]


def _find_files(name: str, dirs: Sequence[Path], wanted: Mapping[str, Sequence[str]], hint: str) -> dict[str, Path]:
    """Return role -> path from the first directory holding every wanted file."""
    hint = hint.format(files=", ".join(_show(names) for names in wanted.values()))
    partial: tuple[Path, dict[str, Path]] | None = None
    for folder in dirs:
        found = {role: p for role, names in wanted.items() if (p := _first_file(folder, names))}
        if len(found) == len(wanted):
            log.debug("%s: reading from %s", name, folder)
            return found
        partial = partial or ((folder, found) if found else None)
    if partial is None:
        raise DatasetError(_not_found_message(name, dirs, wanted, hint))
    folder, found = partial
    missing = ", ".join(_show(wanted[r]) for r in wanted if r not in found)
    raise DatasetError(f"{name}: {folder} has {', '.join(p.name for p in found.values())} but not {missing}; {hint}")


def _show(names: Sequence[str]) -> str:
    """Return 'x[.gz]' for the names ('x.gz', 'x', ...), else the first name."""
    first = names[0]
    return f"{first[:-3]}[.gz]" if first.endswith(".gz") and first[:-3] in names else first


def _first_file(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _not_found_message(name: str, dirs: Sequence[Path], wanted: Mapping[str, Sequence[str]], hint: str) -> str:
    looked = "\n".join(f"  {d}" + ("" if d.is_dir() else " (no such directory)") for d in dirs)
    files = ", ".join(_show(names) for names in wanted.values())
    return f"{name}: data set not found; looked for {files} in:\n{looked}\nTo get it: {hint}"


# --- IDX ------------------------------------------------------------------------


def _idx_names(spec: _IdxSpec, part: str, kind: str) -> tuple[str, ...]:
    """Return the file names tried for one part ('train'/'test') and kind ('images'/'labels')."""
    rank = 3 if kind == "images" else 1
    plain = "train" if part == "train" else "t10k"
    stems = [f"{plain}-{kind}-idx{rank}-ubyte", f"{plain}-{kind}.idx{rank}-ubyte"]
    if spec.prefix:
        stems.insert(0, f"{spec.prefix}{part}-{kind}-idx{rank}-ubyte")
    return tuple(name for stem in stems for name in (f"{stem}.gz", stem))


def _read_bytes(path: Path) -> bytes:
    """Return the contents of path, gunzipped when it starts with the gzip magic."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def _read_idx(path: Path, rank: int) -> np.ndarray:
    """Read an IDX file (gzip or raw) of the given rank into an array."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES or data[3] != rank:
        raise DatasetError(
            f"{path}: not an IDX file of rank {rank} (expected magic 00 00 08 {rank:02x}, found {data[:4].hex(' ')})"
        )
    header = 4 + 4 * rank
    if len(data) < header:
        raise DatasetError(f"{path}: IDX header is cut short ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", rank, 4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + dtype.itemsize * math.prod(dims)  # Python ints: no overflow
    if len(data) != expected:
        raise DatasetError(f"{path}: IDX header promises shape {dims} ({expected} bytes), file holds {len(data)} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def _load_idx(name: str, data_dir: str | None) -> Dataset:
    spec = _IDX_SETS[name]
    wanted = {f"{p} {k}": _idx_names(spec, p, k) for p in ("train", "test") for k in ("images", "labels")}
    paths = _find_files(name, _search_dirs(name, spec.subdirs, data_dir), wanted, spec.hint)
    parts = [_idx_part(spec, paths[f"{part} images"], paths[f"{part} labels"]) for part in ("train", "test")]
    _check_alike(parts[0][0], parts[1][0], str(paths["train images"]), str(paths["test images"]))
    return _make_dataset(name, *parts[0], *parts[1], num_classes=spec.num_classes)


def _idx_part(spec: _IdxSpec, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair as (N, 1, H, W) images and 0-based labels."""
    x, y = _read_idx(images, 3), _read_idx(labels, 1)
    x = x.transpose(0, 2, 1) if spec.transposed else x  # (N, H, W)
    y = _as_labels(y, str(labels)) - spec.first_label
    _check_part(x, y, str(images), str(labels), spec.num_classes)
    return x[:, None], y


# --- CIFAR ----------------------------------------------------------------------


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
_PICKLE_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType({
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
})


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


def _unpickle(path: Path) -> object:
    """Read a pickle with the restricted unpickler; any failure is a DatasetError."""
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, source=path).load()
    except DatasetError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways; all mean the same
        raise DatasetError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") from exc


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch as (N, 3, 32, 32) uint8 images and labels."""
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict with 'data' and {label_key!r}, found {type(batch).__name__}")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise DatasetError(f"{path}: no {' or '.join(map(repr, missing))} entry (found keys {sorted(map(str, batch))})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072), found {found}")
    return data.reshape(-1, 3, 32, 32), _as_labels(np.asarray(batch[label_key]), f"{path}:{label_key}")


def _load_cifar(name: str, data_dir: str | None) -> Dataset:
    spec = _CIFAR_SETS[name]
    wanted = {f: (f,) for f in spec.train + spec.test}
    paths = _find_files(name, _search_dirs(name, (spec.subdir,), data_dir, nested=True), wanted, spec.hint)
    train = _cifar_part(spec, [paths[f] for f in spec.train])
    test = _cifar_part(spec, [paths[f] for f in spec.test])
    return _make_dataset(name, *train, *test, num_classes=spec.num_classes)


def _cifar_part(spec: _CifarSpec, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    batches = [_read_cifar_batch(p, spec.label_key) for p in paths]
    for p, (x, y) in zip(paths, batches):
        _check_part(x, y, str(p), f"{p}:{spec.label_key}", spec.num_classes)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


# --- npz ------------------------------------------------------------------------


def _find_npz(spec: str, data_dir: str | None) -> Path:
    raw = spec[len(NPZ_PREFIX):]
    if not raw:
        raise DatasetError(f"{spec!r}: give the archive's path, as in npz:data/mine.npz")
    path = Path(raw).expanduser()
    tried = [path] + ([Path(data_dir) / path] if data_dir is not None and not path.is_absolute() else [])
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        looked = ", ".join(map(str, tried))
        expected = ", ".join(_NPZ_KEYS)
        raise DatasetError(f"{spec}: no such file (looked at {looked}); expected an .npz with arrays {expected}")
    return found


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Return the four arrays of an npz archive, never unpickling anything."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path}: a single array; expected an .npz archive with arrays {', '.join(_NPZ_KEYS)}")
        with loaded:
            missing = [k for k in _NPZ_KEYS if k not in loaded.files]
            if missing:
                raise DatasetError(f"{path}: missing arrays {', '.join(missing)} (expected {', '.join(_NPZ_KEYS)}; "
                                   f"found {', '.join(loaded.files) or 'none'})")
            return {k: loaded[k] for k in _NPZ_KEYS}
    except DatasetError:
        raise
    except Exception as exc:  # zip, format and pickle errors: all mean a file we cannot use
        raise DatasetError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from exc


def _to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    """Return images as (N, C, H, W), taking a small last axis below larger H, W as channels."""
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: expected numeric images, found dtype {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[3] in (1, 3) and min(x.shape[1:3]) > x.shape[3]:
        return x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if x.ndim == 4:
        return x
    raise DatasetError(f"{source}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W), found {x.shape}")


def _npz_labels(y: np.ndarray, source: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras-style (N, 1)
    if y.ndim != 1:
        hint = " (one-hot? store the class indices, e.g. y.argmax(1))" if y.ndim == 2 else ""
        raise DatasetError(f"{source}: expected labels shaped (N,), found {y.shape}{hint}")
    if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)
    return _as_labels(y, source)


def _load_npz(spec: str, data_dir: str | None) -> Dataset:
    path = _find_npz(spec, data_dir)
    arrays = _read_npz(path)
    x_train, x_test = (_to_nchw(arrays[k], f"{path}:{k}") for k in ("x_train", "x_test"))
    y_train, y_test = (_npz_labels(arrays[k], f"{path}:{k}") for k in ("y_train", "y_test"))
    _check_alike(x_train, x_test, f"{path}:x_train", f"{path}:x_test")
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _check_part(x, y, f"{path}:x_{part}", f"{path}:y_{part}", None)
    return _make_dataset(spec, x_train, y_train, x_test, y_test, num_classes=None)


# --- digits ---------------------------------------------------------------------


def _load_digits() -> Dataset:
    """Load scikit-learn's bundled 8x8 digits with a fixed stratified test split."""
    from sklearn.datasets import load_digits  # slow import; only this data set needs it

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8), values 0..16 -> 0..1
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(_DIGITS_TEST_SEED)
    test = _stratified_pick(y, round(_DIGITS_TEST_FRACTION * len(y)), rng)
    train = np.setdiff1d(np.arange(len(y)), test)
    return _make_dataset("digits", x[train], y[train], x[test], y[test], num_classes=10)


# --- shared checks and conversion -----------------------------------------------


def _as_labels(y: np.ndarray, source: str) -> np.ndarray:
    """Return y as int64 class indices, or raise if it cannot be one."""
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DatasetError(f"{source}: expected integer labels shaped (N,), found {y.dtype} array of shape {y.shape}")
    return y.astype(np.int64)


def _check_part(x: np.ndarray, y: np.ndarray, images: str, labels: str, num_classes: int | None) -> None:
    """Check that images and labels pair up and that labels are in range."""
    if len(x) != len(y):
        raise DatasetError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    if len(y) == 0:
        raise DatasetError(f"{images}: no samples")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        expected = f"0..{num_classes - 1}" if num_classes is not None else "non-negative"
        raise DatasetError(f"{labels}: labels span {low}..{high}, expected {expected}")


def _check_alike(x_train: np.ndarray, x_test: np.ndarray, train: str, test: str) -> None:
    """Check that training and test images share shape and dtype (so they scale alike)."""
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise DatasetError(
            f"{train} holds {x_train.dtype} images of shape {x_train.shape[1:]} "
            f"but {test} holds {x_test.dtype} images of shape {x_test.shape[1:]}"
        )


def _to_images(x: np.ndarray) -> torch.Tensor:
    """Return (N, C, H, W) float32 images, uint8 scaled to [0, 1]."""
    images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return images.div_(255.0) if x.dtype == np.uint8 else images


def _make_dataset(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    *, num_classes: int | None,
) -> Dataset:
    """Convert checked arrays to tensors normalized with the training set's statistics."""
    train, test = _to_images(x_train), _to_images(x_test)
    std, mean = torch.std_mean(train, dim=(0, 2, 3), keepdim=True, correction=0)  # (1, C, 1, 1)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays constant
    train.sub_(mean).div_(std)
    test.sub_(mean).div_(std)
    k = num_classes if num_classes is not None else int(max(y_train.max(), y_test.max())) + 1
    dataset = Dataset(name, train, torch.from_numpy(y_train), test, torch.from_numpy(y_test), k)
    log.info("loaded %r", dataset)
    return dataset


# --- public entry points --------------------------------------------------------


_ALIASES = {"fmnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}


def _canonical_name(name: str) -> str:
    """Return the canonical spelling of a data set name, or raise listing the valid ones."""
    if name[:len(NPZ_PREFIX)].lower() == NPZ_PREFIX:
        return NPZ_PREFIX + name[len(NPZ_PREFIX):]
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise DatasetError(
            f"unknown data set {name!r}{did_you_mean(key, DATASET_NAMES)}; "
            f"choose one of {', '.join(DATASET_NAMES)} or {NPZ_PREFIX}PATH"
        )
    return key


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: str | None) -> Dataset:
    if name.startswith(NPZ_PREFIX):
        return _load_npz(name, data_dir)
    if name == "digits":
        return _load_digits()
    if name in _CIFAR_SETS:
        return _load_cifar(name, data_dir)
    return _load_idx(name, data_dir)


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a data set by name into normalized in-memory tensors (cached per process).

    Args:
        name: one of DATASET_NAMES, or 'npz:PATH' for an archive holding x_train,
            y_train, x_test and y_test.
        data_dir: the directory holding the files; default: Debian's /usr/share/datasets.

    Raises:
        DatasetError: the name is unknown, or the files are missing or malformed.
    """
    root = None if data_dir is None else str(Path(data_dir).expanduser())
    return _load_cached(_canonical_name(name), root)


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split total across classes in proportion to counts (largest remainder)."""
    exact = counts * (total / counts.sum())
    quota = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - quota), kind="stable")
    quota[remainder_order[: total - int(quota.sum())]] += 1
    return quota


def _stratified_pick(y: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Return the sorted indices of a random subset of size total with y's class proportions."""
    counts = np.bincount(y)
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, shuffled within
    rank = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.sort(order[rank < np.repeat(_allocate(counts, total), counts)])


def _val_count(val_fraction: float, n: int) -> int:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    count = round(float(val_fraction) * n)
    if not 0 < count < n:
        raise ConfigError(f"val_fraction={val_fraction} of {n} training samples leaves an empty split")
    return count


def _subset_count(train_subset: float | int, n: int) -> int:
    if isinstance(train_subset, bool) or not isinstance(train_subset, numbers.Real):
        raise ConfigError(f"train_subset must be a fraction in (0, 1] or a count, got {train_subset!r}")
    if isinstance(train_subset, numbers.Integral):
        if not 0 < train_subset <= n:
            raise ConfigError(f"train_subset={train_subset} samples, but the training split holds {n}")
        return int(train_subset)
    if not 0 < train_subset <= 1:
        raise ConfigError(f"train_subset={train_subset!r}: a fraction must be in (0, 1]; give an int for a count")
    return max(1, round(float(train_subset) * n))


def split_dataset(
    dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0, train_subset: float | int | None = None,
) -> Splits:
    """Carve a stratified, seeded validation split (and optional training subset) from the training data.

    The test set is passed through untouched. train_subset is a fraction in (0, 1]
    or a sample count, taken (stratified) from what the validation split leaves.

    Raises:
        ConfigError: a fraction or count is out of range.
    """
    y = dataset.y_train.numpy()
    rng = np.random.default_rng(seed)
    val = _stratified_pick(y, _val_count(val_fraction, len(y)), rng)
    train = np.setdiff1d(np.arange(len(y)), val, assume_unique=True)
    if train_subset is not None:
        train = train[_stratified_pick(y[train], _subset_count(train_subset, len(train)), rng)]
    val_t, train_t = torch.from_numpy(val), torch.from_numpy(train)
    return Splits(
        x_train=dataset.x_train[train_t], y_train=dataset.y_train[train_t],
        x_val=dataset.x_train[val_t], y_val=dataset.y_train[val_t],
        x_test=dataset.x_test, y_test=dataset.y_test, num_classes=dataset.num_classes,
    )
