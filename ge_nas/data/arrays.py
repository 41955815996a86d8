"""Arrays as read from a data set's files: the result every reader returns, and the checks they share."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ge_nas.errors import DatasetError

_SHOWN_LABELS = 12  # labels listed in an error message, half from each end


class Arrays(NamedTuple):
    """A data set's checked arrays: images (N, C, H, W) of any numeric dtype and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    raw: str  # what the images hold, e.g. "uint8 pixel values 0..255 as in the IDX files"


def as_labels(y: np.ndarray, source: str) -> np.ndarray:
    """Return y as int64 class indices, or raise if it cannot be one."""
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DatasetError(
            f"{source}: expected integer labels shaped (N,), found {y.dtype} array of shape {y.shape}"
        )
    return y.astype(np.int64)


def check_part(
    x: np.ndarray, y: np.ndarray, images: str, labels: str, num_classes: int | None
) -> None:
    """Check that images and labels pair up, that images hold finite pixels, and labels' range.

    num_classes None leaves the labels to `count_classes`.
    """
    if len(x) != len(y):
        raise DatasetError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    if len(y) == 0:
        raise DatasetError(f"{images}: no samples")
    _check_pixels(x, images)
    if num_classes is None:
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise DatasetError(f"{labels}: labels span {low}..{high}, expected 0..{num_classes - 1}")


def _check_pixels(x: np.ndarray, images: str) -> None:
    """Refuse images without pixels or channels, and NaN or infinite values."""
    if 0 in x.shape[1:]:
        raise DatasetError(
            f"{images}: images of shape {x.shape[1:]} hold no pixels; "
            "expected at least one channel, one row and one column"
        )
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        raise DatasetError(
            f"{images}: {int(bad.sum())} of {len(x)} images hold NaN or infinite values "
            f"(the first: image {int(bad.argmax())}); expected finite numbers"
        )


def count_classes(y_train: np.ndarray, y_test: np.ndarray, source: str) -> int:
    """Return n, checking that the labels of both parts together are exactly 0..n-1.

    Nothing here is sized by a label's value, so a huge label costs no memory.
    """
    found = np.unique(np.concatenate([y_train, y_test]))
    n = len(found)
    if found[0] != 0 or found[-1] != n - 1:
        raise DatasetError(
            f"{source}: found {n} distinct labels {_clipped(found)}; expected the integers "
            f"0..{n - 1}, one per class (renumber the classes from 0)"
        )
    return n


def _clipped(labels: np.ndarray) -> str:
    """Return the sorted distinct labels, eliding the middle of a long list."""
    if len(labels) <= _SHOWN_LABELS:
        return "[" + ", ".join(map(str, labels.tolist())) + "]"
    half = _SHOWN_LABELS // 2
    head, tail = labels[:half].tolist(), labels[-half:].tolist()
    return "[" + ", ".join(map(str, head)) + ", ..., " + ", ".join(map(str, tail)) + "]"


def check_alike(x_train: np.ndarray, x_test: np.ndarray, train: str, test: str) -> None:
    """Check that training and test images share shape and dtype (so they scale alike)."""
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise DatasetError(
            f"{train} holds {x_train.dtype} images of shape {x_train.shape[1:]} "
            f"but {test} holds {x_test.dtype} images of shape {x_test.shape[1:]}"
        )
