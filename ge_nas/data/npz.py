"""`.npz` archives holding x_train, y_train, x_test and y_test, read with allow_pickle=False."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ge_nas.data.arrays import Arrays, as_labels, check_alike, check_part, count_classes
from ge_nas.errors import DatasetError

NPZ_PREFIX = "npz:"
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(spec: str, data_dir: str | None) -> Arrays:
    """Read the archive named by spec ('npz:PATH'; a relative PATH is also tried under data_dir)."""
    path = _find(spec, data_dir)
    arrays = _read(path)
    x_train, x_test = (to_nchw(arrays[k], f"{path}:{k}") for k in ("x_train", "x_test"))
    y_train, y_test = (_labels(arrays[k], f"{path}:{k}") for k in ("y_train", "y_test"))
    check_alike(x_train, x_test, f"{path}:x_train", f"{path}:x_test")
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        check_part(x, y, f"{path}:x_{part}", f"{path}:y_{part}", None)
    num_classes = count_classes(y_train, y_test, f"{path}:y_train, y_test")
    raw = f"{x_train.dtype} values as stored in the npz"
    return Arrays(x_train, y_train, x_test, y_test, num_classes=num_classes, raw=raw)


def _find(spec: str, data_dir: str | None) -> Path:
    raw = spec[len(NPZ_PREFIX) :]
    if not raw:
        raise DatasetError(f"{spec!r}: give the archive's path, as in npz:data/mine.npz")
    path = Path(raw).expanduser()
    tried = [path] + (
        [Path(data_dir) / path] if data_dir is not None and not path.is_absolute() else []
    )
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        looked = ", ".join(map(str, tried))
        expected = ", ".join(_KEYS)
        raise DatasetError(
            f"{spec}: no such file (looked at {looked}); expected an .npz with arrays {expected}"
        )
    return found


def _read(path: Path) -> dict[str, np.ndarray]:
    """Return the four arrays of an npz archive, never unpickling anything."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(
                f"{path}: a single array; expected an .npz archive with arrays {', '.join(_KEYS)}"
            )
        with loaded:
            missing = [k for k in _KEYS if k not in loaded.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing arrays {', '.join(missing)} (expected {', '.join(_KEYS)}; "
                    f"found {', '.join(loaded.files) or 'none'})"
                )
            return {k: loaded[k] for k in _KEYS}
    except DatasetError:
        raise
    except Exception as exc:  # zip, format and pickle errors: all mean a file we cannot use
        raise DatasetError(
            f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})"
        ) from exc


def to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    """Return images as (N, C, H, W), taking a small last axis below larger H, W as channels."""
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: expected numeric images, found dtype {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[3] in (1, 3) and min(x.shape[1:3]) > x.shape[3]:
        return x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if x.ndim == 4:
        return x
    raise DatasetError(
        f"{source}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W), found {x.shape}"
    )


def _labels(y: np.ndarray, source: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras-style (N, 1)
    if y.ndim != 1:
        hint = " (one-hot? store the class indices, e.g. y.argmax(1))" if y.ndim == 2 else ""
        raise DatasetError(f"{source}: expected labels shaped (N,), found {y.shape}{hint}")
    if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)
    return as_labels(y, source)
