"""IDX files (MNIST and its relatives, gzip or raw): which data sets, where they live, how they are read.

The format is Yann LeCun's: a magic of two zero bytes, a dtype code and the
rank, then the dimensions as big-endian uint32, then the values.
"""

from __future__ import annotations

import gzip
import math
import types
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ge_nas.data.arrays import Arrays, as_labels, check_alike, check_part
from ge_nas.data.files import find_files, search_dirs
from ge_nas.errors import DatasetError

_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class IdxSpec:
    """Where an IDX data set lives and how its files are read."""

    subdirs: tuple[
        str, ...
    ]  # tried under data_dir (after data_dir itself) and under the system directory
    hint: str
    prefix: str = ""  # EMNIST names its files 'emnist-<split>-train-images-idx3-ubyte'
    num_classes: int = 10
    transposed: bool = False  # EMNIST stores each image transposed
    first_label: int = 0  # EMNIST letters counts from 1


_HINT = (
    "put the four IDX files ({files}; .gz or unpacked) in a directory DIR and pass --data-dir DIR"
)
_EMNIST_HINT = (
    "unpack EMNIST's gzip.zip (the release in the original MNIST format) and pass --data-dir DIR"
    " holding the emnist-<split>-*-ubyte.gz files (or the gzip/ folder)"
)


def _emnist(split: str, num_classes: int, first_label: int = 0) -> IdxSpec:
    return IdxSpec(
        subdirs=("gzip", "emnist", "emnist/gzip", "EMNIST/raw"),
        hint=_EMNIST_HINT,
        prefix=f"emnist-{split}-",
        num_classes=num_classes,
        transposed=True,
        first_label=first_label,
    )


IDX_SETS: Mapping[str, IdxSpec] = types.MappingProxyType(
    {
        "fashion-mnist": IdxSpec(
            ("fashion-mnist", "FashionMNIST/raw"),
            "install Debian's package with `apt-get install dataset-fashion-mnist`, or " + _HINT,
        ),
        "mnist": IdxSpec(("mnist", "MNIST/raw"), _HINT),
        "kmnist": IdxSpec(("kmnist", "KMNIST/raw"), _HINT),
        "emnist-balanced": _emnist("balanced", 47),
        "emnist-byclass": _emnist("byclass", 62),
        "emnist-bymerge": _emnist("bymerge", 47),
        "emnist-digits": _emnist("digits", 10),
        "emnist-letters": _emnist("letters", 26, first_label=1),
    }
)


def load_idx(name: str, data_dir: str | None, system_dir: Path) -> Arrays:
    """Find and read the four IDX files of data set name (a key of IDX_SETS)."""
    spec = IDX_SETS[name]
    paths = find_idx(name, data_dir, system_dir)
    parts = [
        _part(spec, paths[f"{part} images"], paths[f"{part} labels"]) for part in ("train", "test")
    ]
    check_alike(parts[0][0], parts[1][0], str(paths["train images"]), str(paths["test images"]))
    raw = _describe(spec, parts[0][0].dtype)
    return Arrays(*parts[0], *parts[1], num_classes=spec.num_classes, raw=raw)


def find_idx(name: str, data_dir: str | None, system_dir: Path) -> dict[str, Path]:
    """Return the paths of data set name's four IDX files ('train images', ...) without reading them.

    Raises:
        DatasetError: a file is missing; the message says where ge_nas looked and how to get them.
    """
    spec = IDX_SETS[name]
    dirs = search_dirs(name, spec.subdirs, data_dir, system_dir)
    if spec.prefix:  # a directory of the set's own files wins over one of MNIST-style names
        try:
            return find_files(name, dirs, _wanted(spec, own_only=True), spec.hint)
        except DatasetError:
            pass
    return find_files(name, dirs, _wanted(spec), spec.hint)


def _wanted(spec: IdxSpec, *, own_only: bool = False) -> dict[str, tuple[str, ...]]:
    """Return role ('train images', ...) -> the file names tried for it."""
    roles = [(p, k) for p in ("train", "test") for k in ("images", "labels")]
    return {f"{p} {k}": _names(spec, p, k, own_only=own_only) for p, k in roles}


def _describe(spec: IdxSpec, dtype: np.dtype) -> str:
    """Return what an IDX data set's images hold, as a loaded model takes them."""
    values = "uint8 pixel values 0..255" if dtype == np.uint8 else f"{dtype.name} values"
    upright = ", each image transposed (upright)" if spec.transposed else ""
    return f"{values} as in the IDX files{upright}"


def _names(spec: IdxSpec, part: str, kind: str, *, own_only: bool = False) -> tuple[str, ...]:
    """Return the file names tried for one part ('train'/'test') and kind ('images'/'labels').

    own_only: only the set's prefixed names (EMNIST's emnist-<split>-...), none MNIST-style.
    """
    rank = 3 if kind == "images" else 1
    plain = "train" if part == "train" else "t10k"
    stems = (
        [] if own_only else [f"{plain}-{kind}-idx{rank}-ubyte", f"{plain}-{kind}.idx{rank}-ubyte"]
    )
    if spec.prefix:
        stems.insert(0, f"{spec.prefix}{part}-{kind}-idx{rank}-ubyte")
    return tuple(name for stem in stems for name in (f"{stem}.gz", stem))


def _part(spec: IdxSpec, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair as (N, 1, H, W) images and 0-based labels."""
    x, y = read_idx(images, 3), read_idx(labels, 1)
    x = x.transpose(0, 2, 1) if spec.transposed else x  # (N, H, W)
    y = as_labels(y, str(labels)) - spec.first_label
    check_part(x, y, str(images), str(labels), spec.num_classes)
    return x[:, None], y


def read_idx(path: Path, rank: int) -> np.ndarray:
    """Read an IDX file (gzip or raw) of the given rank into an array."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _DTYPES or data[3] != rank:
        raise DatasetError(
            f"{path}: not an IDX file of rank {rank} (expected magic 00 00 08 {rank:02x}, found {data[:4].hex(' ')})"
        )
    header = 4 + 4 * rank
    if len(data) < header:
        raise DatasetError(f"{path}: IDX header is cut short ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", rank, 4))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + dtype.itemsize * math.prod(dims)  # Python ints: no overflow
    if len(data) != expected:
        raise DatasetError(
            f"{path}: IDX header promises shape {dims} ({expected} bytes), file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def _read_bytes(path: Path) -> bytes:
    """Return the contents of path, gunzipped when it starts with the gzip magic."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
