"""Data views: a subset of a data set's classes, and few-shot training images per class.

A class view (`--classes`) keeps the rows of some classes in both the training
and the test part, relabelled 0..n-1 in ascending order of their original
labels. It is applied to the raw arrays, before standardisation, so a view is
a data set in its own right: standardised with its own training images, and
`load_raw` gives its raw rows. A shots view (`--shots`, `--val-shots`) picks K
training (and V validation) images per class with a seeded generator; it is
applied where the validation split is carved (`split_dataset`).
"""

from __future__ import annotations

import numpy as np

from ge_nas.config import parse_classes
from ge_nas.data.arrays import Arrays
from ge_nas.errors import ConfigError

_SHOWN_CLASSES = 5  # short classes listed in an error message


def class_labels(spec: str, num_classes: int, source: str) -> tuple[int, ...]:
    """Return the original labels a --classes SPEC keeps, ascending.

    Raises:
        ConfigError: SPEC is malformed, or names a label the data set does not have.
    """
    ranges = parse_classes(spec)
    unknown = [max(low, num_classes) for low, high in ranges if high >= num_classes]
    if unknown:
        raise ConfigError(
            f"--classes {spec!r}: {source} has no label {unknown[0]}; "
            f"the data set has labels 0-{num_classes - 1}"
        )
    return tuple(label for low, high in ranges for label in range(low, high + 1))


def select_classes(arrays: Arrays, spec: str, source: str) -> tuple[Arrays, tuple[int, ...]]:
    """Return the rows of the classes SPEC keeps, relabelled 0..n-1, and their original labels.

    The rows keep their order; label labels[i] becomes i.

    Raises:
        ConfigError: SPEC is malformed or names a label the data set does not have, or the
            classes have no training or no test images.
    """
    labels = class_labels(spec, arrays.num_classes, source)
    keep = np.asarray(labels, dtype=np.int64)

    def part(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.isin(y, keep)
        if not rows.any():
            raise ConfigError(
                f"--classes {spec!r}: {source} has no {name} images of these classes; "
                "expected classes with images in both the training and the test part"
            )
        return x[rows], np.searchsorted(keep, y[rows]).astype(np.int64)

    x_train, y_train = part(arrays.x_train, arrays.y_train, "training")
    x_test, y_test = part(arrays.x_test, arrays.y_test, "test")
    return Arrays(x_train, y_train, x_test, y_test, len(labels), arrays.raw), labels


def pick_shots(
    y: np.ndarray,
    num_classes: int,
    shots: int,
    val_shots: int | None,
    rng: np.random.Generator,
    names: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the sorted indices of shots images per class, and of val_shots more (None without).

    Within each class the images are shuffled by rng; the first shots train, the
    next val_shots validate. names are the classes' original labels (for messages).

    Raises:
        ConfigError: a class has fewer than shots (+ val_shots) images.
    """
    counts = np.bincount(y, minlength=num_classes)
    need = shots + (val_shots or 0)
    short = np.flatnonzero(counts < need)
    if len(short):
        raise ConfigError(_too_few(counts, short, shots, val_shots, names))
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, shuffled within
    rank = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    train = np.sort(order[rank < shots])
    if val_shots is None:
        return train, None
    return train, np.sort(order[(rank >= shots) & (rank < need)])


def _too_few(
    counts: np.ndarray,
    short: np.ndarray,
    shots: int,
    val_shots: int | None,
    names: tuple[int, ...] | None,
) -> str:
    """Return the message naming the classes with too few images for the shots."""
    flags = f"--shots {shots}" + (f" --val-shots {val_shots}" if val_shots else "")
    listed = [f"class {names[c] if names else c} has {counts[c]}" for c in short[:_SHOWN_CLASSES]]
    more = (
        f" (and {len(short) - _SHOWN_CLASSES} more classes)" if len(short) > _SHOWN_CLASSES else ""
    )
    per_class = f"{shots} to train on" + (f" + {val_shots} to validate on" if val_shots else "")
    return (
        f"{flags}: too few training images: {', '.join(listed)}{more}; "
        f"expected at least {shots + (val_shots or 0)} per class ({per_class})"
    )
