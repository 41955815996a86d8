"""Data sets -> in-memory tensors and splits.

Every data set is read whole into float32 tensors shaped (N, C, H, W),
standardised per channel with the mean and standard deviation of its raw
training images (the `Standardization` it carries, which saved models apply
to raw input), with int64 labels in [0, num_classes). Nothing is ever
downloaded: files come from `data_dir` or from where Debian's dataset
packages put them.

Formats, each read by a private module into checked numpy arrays: IDX (MNIST
and its relatives, gzip or raw; `_idx`), the CIFAR python batches (pickles,
read with a restricted unpickler that builds nothing but numpy arrays;
`_cifar`) and `.npz` archives (read with allow_pickle=False; `_npz`).

The validation split is carved from the training data only; the test set is
passed through untouched so that it never takes part in selection.

Data views (`views`): `classes` keeps some classes, relabelled 0..n-1, in both
parts before standardisation (the view is standardised with its own training
images); `shots` trains on K images per class, validating on `val_shots` per
class or on `val_fraction` of the rest, and finalists then train on the K
shots alone (`final_splits`).
"""

from __future__ import annotations

import functools
import logging
import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ge_nas.config import RunConfig, check_data_view, classes_text, parse_classes
from ge_nas.data.arrays import Arrays
from ge_nas.data.cifar import CIFAR_SETS, load_cifar
from ge_nas.data.idx import IDX_SETS, load_idx
from ge_nas.data.npz import NPZ_PREFIX as NPZ_PREFIX
from ge_nas.data.npz import load_npz
from ge_nas.data.standardization import Standardization, measure_standardization
from ge_nas.data.views import pick_shots, select_classes
from ge_nas.errors import ConfigError, DatasetError, did_you_mean

log = logging.getLogger(__name__)

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DATASET_NAMES: tuple[str, ...] = ("digits", *IDX_SETS, *CIFAR_SETS)

_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 1797  # fixed and independent of any run seed: the test set never moves


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole data set in memory: standardised images, integer labels and how they were standardised.

    Loaded data sets are cached and shared: treat the tensors as read-only.
    """

    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32, standardised
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    standardization: Standardization  # raw -> x_train's units
    classes: tuple[int, ...] | None = None  # a class view: label i was classes[i]; None: all

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Return the shape of one image, (C, H, W)."""
        return _image_shape(self.x_train)

    def __repr__(self) -> str:
        view = "" if self.classes is None else f", classes={list(self.classes)}"
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}{view})"
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
    standardization: Standardization
    classes: tuple[int, ...] | None = None  # a class view: label i was classes[i]; None: all
    shots: int | None = None  # few-shot: training images per class (finalists train on no more)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Return the shape of one image, (C, H, W)."""
        return _image_shape(self.x_train)

    def __repr__(self) -> str:
        view = "" if self.classes is None else f", classes={list(self.classes)}"
        view += "" if self.shots is None else f", shots={self.shots}"
        return (
            f"Splits(train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}{view})"
        )


def _image_shape(x: torch.Tensor) -> tuple[int, int, int]:
    c, h, w = x.shape[1:]
    return (int(c), int(h), int(w))


# --- digits ---------------------------------------------------------------------


def _digits_arrays() -> Arrays:
    """Read scikit-learn's bundled 8x8 digits with a fixed stratified test split."""
    from sklearn.datasets import load_digits  # slow import; only this data set needs it

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8), values 0..16
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(_DIGITS_TEST_SEED)
    test = _stratified_pick(y, round(_DIGITS_TEST_FRACTION * len(y)), rng)
    train = np.setdiff1d(np.arange(len(y)), test)
    raw = "pixel values 0..16 as sklearn's load_digits gives them"
    return Arrays(x[train], y[train], x[test], y[test], num_classes=10, raw=raw)


# --- standardisation --------------------------------------------------------------


def _to_images(x: np.ndarray) -> torch.Tensor:
    """Return (N, C, H, W) float32 images holding the raw values."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _make_dataset(name: str, arrays: Arrays, classes: tuple[int, ...] | None = None) -> Dataset:
    """Convert checked arrays to tensors standardised with the training set's statistics."""
    train, test = _to_images(arrays.x_train), _to_images(arrays.x_test)
    standardization = measure_standardization(train, arrays.raw, name)
    standardization.apply_(train)
    standardization.apply_(test)
    y_train, y_test = torch.from_numpy(arrays.y_train), torch.from_numpy(arrays.y_test)
    dataset = Dataset(
        name, train, y_train, test, y_test, arrays.num_classes, standardization, classes
    )
    log.info("loaded %r", dataset)
    return dataset


# --- public entry points --------------------------------------------------------


_ALIASES = {
    "fmnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a data set name, or raise listing the valid ones."""
    if name[: len(NPZ_PREFIX)].lower() == NPZ_PREFIX:
        return NPZ_PREFIX + name[len(NPZ_PREFIX) :]
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise DatasetError(
            f"unknown data set {name!r}{did_you_mean(key, DATASET_NAMES)}; "
            f"choose one of {', '.join(DATASET_NAMES)} or {NPZ_PREFIX}PATH"
        )
    return key


def _read_arrays(name: str, data_dir: str | None) -> Arrays:
    """Return the checked arrays of a data set by canonical name."""
    if name.startswith(NPZ_PREFIX):
        return load_npz(name, data_dir)
    if name == "digits":
        return _digits_arrays()
    if name in CIFAR_SETS:
        return load_cifar(name, data_dir, SYSTEM_DATA_DIR)
    return load_idx(name, data_dir, SYSTEM_DATA_DIR)


def _view_arrays(
    name: str, data_dir: str | None, classes: str | None
) -> tuple[Arrays, tuple[int, ...] | None]:
    """Return the checked arrays of a data set by canonical name, in a class view if one is given."""
    arrays = _read_arrays(name, data_dir)
    if classes is None:
        return arrays, None
    return select_classes(arrays, classes, name)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: str | None, classes: str | None = None) -> Dataset:
    return _make_dataset(name, *_view_arrays(name, data_dir, classes))


def _root(data_dir: str | os.PathLike[str] | None) -> str | None:
    return None if data_dir is None else str(Path(data_dir).expanduser())


def _canonical_classes(classes: str | None) -> str | None:
    return None if classes is None else classes_text(parse_classes(classes))


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, classes: str | None = None
) -> Dataset:
    """Load a data set by name into standardised in-memory tensors (cached per process).

    Args:
        name: one of DATASET_NAMES, or 'npz:PATH' for an archive holding x_train,
            y_train, x_test and y_test.
        data_dir: the directory holding the files; default: Debian's /usr/share/datasets.
        classes: a class view, e.g. "5-9" or "0,2,4": only these classes, relabelled
            0..n-1 in ascending order and standardised with their own training images.

    Raises:
        DatasetError: the name is unknown, or the files are missing or malformed.
        ConfigError: classes is malformed or names a label the data set does not have.
    """
    return _load_cached(canonical_name(name), _root(data_dir), _canonical_classes(classes))


def load_raw(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, classes: str | None = None
) -> Arrays:
    """Return a data set's checked arrays before standardisation (not cached), in a class view if given.

    The images, as float32 (N, C, H, W) tensors, are the input a saved model
    (`ge_nas.load_model`) takes; `load_dataset` gives the same rows in the
    same order, standardised, with the same labels.

    Raises:
        DatasetError: the name is unknown, or the files are missing or malformed.
        ConfigError: classes is malformed or names a label the data set does not have.
    """
    return _view_arrays(canonical_name(name), _root(data_dir), _canonical_classes(classes))[0]


# --- splits -----------------------------------------------------------------------


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split total across classes in proportion to counts (largest remainder)."""
    exact = counts * (total / counts.sum())
    quota: np.ndarray = np.floor(exact).astype(np.int64)
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


def _check_val_fraction(val_fraction: float) -> None:
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not 0 < val_fraction < 1
    ):
        raise ConfigError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")


def _val_count(val_fraction: float, n: int) -> int:
    _check_val_fraction(val_fraction)
    count = round(float(val_fraction) * n)
    if not 0 < count < n:
        raise ConfigError(
            f"val_fraction={val_fraction} of {n} training samples leaves an empty split"
        )
    return count


MIN_PER_CLASS = 2  # fewer training samples per class than this is not a search anyone meant


def _check_enough(count: int, classes: int, what: str) -> None:
    if count < MIN_PER_CLASS * classes:
        raise ConfigError(
            f"{what} leaves {count} training samples for {classes} classes; "
            f"give at least {MIN_PER_CLASS * classes} ({MIN_PER_CLASS} per class)"
        )


def _subset_count(train_subset: float | int, n: int) -> int:
    if isinstance(train_subset, bool) or not isinstance(train_subset, numbers.Real):
        raise ConfigError(
            f"train_subset must be a fraction in (0, 1] or a count, got {train_subset!r}"
        )
    if isinstance(train_subset, numbers.Integral):
        if not 0 < train_subset <= n:
            raise ConfigError(
                f"train_subset={train_subset} samples, but the training split holds {n}"
            )
        return int(train_subset)
    if not 0 < train_subset <= 1:
        raise ConfigError(
            f"train_subset={train_subset!r}: a fraction must be in (0, 1]; give an int for a count"
        )
    return max(1, round(float(train_subset) * n))


def split_dataset(
    dataset: Dataset,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    train_subset: float | int | None = None,
    shots: int | None = None,
    val_shots: int | None = None,
) -> Splits:
    """Carve a stratified, seeded validation split (and optional training subset) from the training data.

    The test set is passed through untouched. train_subset is a fraction in (0, 1]
    or a sample count, taken (stratified) from what the validation split leaves.
    With shots, the training split is shots images per class (seeded), and the
    validation split is val_shots images per class, or val_fraction (stratified),
    of the images the shots leave.

    Raises:
        ConfigError: a fraction or count is out of range, or a class has too few images for the shots.
    """
    check_data_view(shots, val_shots, train_subset)
    y = dataset.y_train.numpy()
    rng = np.random.default_rng(seed)
    if shots is not None:
        train, val = _shot_indices(dataset, y, shots, val_shots, val_fraction, rng)
    else:
        val = _stratified_pick(y, _val_count(val_fraction, len(y)), rng)
        train = np.setdiff1d(np.arange(len(y)), val, assume_unique=True)
    if train_subset is not None:
        count = _subset_count(train_subset, len(train))
        _check_enough(count, dataset.num_classes, f"--train-subset {train_subset}")
        train = train[_stratified_pick(y[train], count, rng)]
    val_t, train_t = torch.from_numpy(val), torch.from_numpy(train)
    return Splits(
        x_train=dataset.x_train[train_t],
        y_train=dataset.y_train[train_t],
        x_val=dataset.x_train[val_t],
        y_val=dataset.y_train[val_t],
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        num_classes=dataset.num_classes,
        standardization=dataset.standardization,
        classes=dataset.classes,
        shots=shots,
    )


def _shot_indices(
    dataset: Dataset,
    y: np.ndarray,
    shots: int,
    val_shots: int | None,
    val_fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted training and validation indices of a shots view."""
    train, val = pick_shots(y, dataset.num_classes, shots, val_shots, rng, dataset.classes)
    if val is not None:
        return train, val
    _check_val_fraction(val_fraction)
    rest = np.setdiff1d(np.arange(len(y)), train, assume_unique=True)
    count = round(float(val_fraction) * len(rest))
    if count == 0:
        raise ConfigError(
            f"--shots {shots} leaves {len(rest)} training images, and --val-fraction "
            f"{val_fraction} of them is none; expected a validation split: give fewer --shots, "
            "a larger --val-fraction, or --val-shots V"
        )
    return train, rest[_stratified_pick(y[rest], count, rng)]


@functools.lru_cache(maxsize=4)
def load_splits(
    dataset: str,
    data_dir: str | None,
    val_fraction: float,
    split_seed: int,
    train_subset: float | None,
    classes: str | None = None,
    shots: int | None = None,
    val_shots: int | None = None,
) -> Splits:
    """Return a data set's splits in a data view, loaded once per process for each setting."""
    return split_dataset(
        load_dataset(dataset, data_dir, classes=classes),
        val_fraction=val_fraction,
        seed=split_seed,
        train_subset=train_subset,
        shots=shots,
        val_shots=val_shots,
    )


def run_splits(config: RunConfig) -> Splits:
    """Return the splits a run's search trains and validates on (cached, as load_splits)."""
    c = config
    return load_splits(
        c.dataset, c.data_dir, c.val_fraction, c.split_seed, c.train_subset,
        c.classes, c.shots, c.val_shots,
    )  # fmt: skip


def final_splits(splits: Splits, holdout: float, seed: int) -> Splits:
    """Return the splits a finalist trains on: train plus validation, less a held-out slice.

    The held-out slice (a stratified, seeded share of the validation split) becomes
    the validation split, which no finalist trains on, so it can choose among them.
    With holdout 0 the whole validation split is trained on and the validation split
    is left as it was (its accuracy then means nothing). In a shots view the splits
    are returned as they are: a finalist trains on the shots alone, and the whole
    validation split, never trained on, scores it.
    """
    if splits.shots is not None:
        return splits
    if holdout <= 0:
        x = torch.cat([splits.x_train, splits.x_val])
        return replace(splits, x_train=x, y_train=torch.cat([splits.y_train, splits.y_val]))
    y = splits.y_val.numpy()
    held = _stratified_pick(y, max(1, round(holdout * len(y))), np.random.default_rng(seed))
    rest = torch.from_numpy(np.setdiff1d(np.arange(len(y)), held, assume_unique=True))
    held_t = torch.from_numpy(held)
    return replace(
        splits,
        x_train=torch.cat([splits.x_train, splits.x_val[rest]]),
        y_train=torch.cat([splits.y_train, splits.y_val[rest]]),
        x_val=splits.x_val[held_t],
        y_val=splits.y_val[held_t],
    )
