"""Arrays as read from a data set's files: the result every reader returns, and the checks they share."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ge_nas.errors import DatasetError


class Arrays(NamedTuple):
    """A data set's checked arrays: images (N, C, H, W) of any numeric dtype and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None  # None: one more than the largest label


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
    """Check that images and labels pair up and that labels are in range."""
    if len(x) != len(y):
        raise DatasetError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    if len(y) == 0:
        raise DatasetError(f"{images}: no samples")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        expected = f"0..{num_classes - 1}" if num_classes is not None else "non-negative"
        raise DatasetError(f"{labels}: labels span {low}..{high}, expected {expected}")


def check_alike(x_train: np.ndarray, x_test: np.ndarray, train: str, test: str) -> None:
    """Check that training and test images share shape and dtype (so they scale alike)."""
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise DatasetError(
            f"{train} holds {x_train.dtype} images of shape {x_train.shape[1:]} "
            f"but {test} holds {x_test.dtype} images of shape {x_test.shape[1:]}"
        )
