"""Tests for ge_nas.data: the digits set, splits, names, the cache; one real data set when installed."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_files import make_parts, write_cifar10, write_idx_set
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ge_nas.data import (
    DATASET_NAMES,
    Dataset,
    Splits,
    Standardization,
    load_dataset,
    load_raw,
    load_splits,
    split_dataset,
)
from ge_nas.data import datasets as data
from ge_nas.errors import ConfigError, DatasetError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


# --- digits --------------------------------------------------------------------


def test_digits_loads_as_one_channel_8x8_with_fixed_test_split() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.x_train.shape == (1438, 1, 8, 8) and ds.x_test.shape == (359, 1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.y_test.bincount().tolist() == [
        36,
        36,
        35,
        37,
        36,
        36,
        36,
        36,
        35,
        36,
    ]  # stratified, pinned
    data._load_cached.cache_clear()
    again = load_dataset("digits")
    assert (
        again is not ds
        and torch.equal(again.x_test, ds.x_test)
        and torch.equal(again.y_test, ds.y_test)
    )


def test_digits_is_normalized_with_train_statistics() -> None:
    ds = load_dataset("digits")
    assert (
        abs(float(ds.x_train.mean())) < 1e-5
        and abs(float(ds.x_train.std(unbiased=False)) - 1) < 1e-4
    )
    assert abs(float(ds.x_test.mean())) > 1e-4  # test statistics were not used


def test_load_raw_gives_the_rows_load_dataset_standardises_and_splits_carry_how() -> None:
    ds, raw = load_dataset("digits"), load_raw("digits")
    mean, std = ds.standardization.tensors()
    for x_raw, x in ((raw.x_train, ds.x_train), (raw.x_test, ds.x_test)):
        assert torch.equal((torch.from_numpy(x_raw.astype(np.float32)) - mean) / std, x)
    assert raw.x_train.max() == 16 and raw.x_train.min() == 0 and raw.num_classes == 10
    assert torch.equal(torch.from_numpy(raw.y_test), ds.y_test)
    assert (
        ds.standardization.raw
        == raw.raw
        == "pixel values 0..16 as sklearn's load_digits gives them"
    )
    assert split_dataset(ds, seed=3).standardization is ds.standardization


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_digits_splits_never_leak_test_rows(seed: int) -> None:
    ds = load_dataset("digits")
    splits = split_dataset(ds, seed=seed, train_subset=0.5)
    test_rows = {row.numpy().tobytes() for row in ds.x_test}
    used = torch.cat([splits.x_train, splits.x_val])
    assert not test_rows & {row.numpy().tobytes() for row in used}
    assert torch.equal(splits.x_test, ds.x_test) and torch.equal(splits.y_test, ds.y_test)


def test_digits_train_val_test_partition_all_samples() -> None:
    ds = load_dataset("digits")
    splits = split_dataset(ds)
    rows = torch.cat([splits.x_train, splits.x_val, splits.x_test])
    assert len(rows) == 1797 and len({row.numpy().tobytes() for row in rows}) == 1797


# --- split_dataset -------------------------------------------------------------


def toy_dataset(labels: list[int] | np.ndarray) -> Dataset:
    """Return a data set whose image i holds the value i, so rows name their index."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    x = torch.arange(len(y), dtype=torch.float32).reshape(-1, 1, 1, 1)
    unit = Standardization((0.0,), (1.0,), "toy values")
    return Dataset("toy", x, y, -x[:5] - 1, y[:5], int(y.max()) + 1, unit)


def indices(x: torch.Tensor) -> list[int]:
    return [int(v) for v in x.flatten()]


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    ds = toy_dataset([0] * 50 + [1] * 30 + [2] * 20)
    splits = split_dataset(ds, val_fraction=0.2, seed=3)
    assert (
        isinstance(splits, Splits) and splits.num_classes == 3 and splits.input_shape == (1, 1, 1)
    )
    assert splits.y_val.bincount().tolist() == [10, 6, 4]
    assert splits.y_train.bincount().tolist() == [40, 24, 16]
    train, val = indices(splits.x_train), indices(splits.x_val)
    assert not set(train) & set(val) and sorted(train + val) == list(range(100))
    assert (ds.y_train[splits.x_train.long().flatten()] == splits.y_train).all()
    again = split_dataset(ds, val_fraction=0.2, seed=3)
    assert indices(again.x_val) == val and indices(again.x_train) == train


def test_split_depends_on_seed_and_leaves_test_untouched() -> None:
    ds = toy_dataset(np.arange(200) % 4)
    a, b = split_dataset(ds, seed=0), split_dataset(ds, seed=1)
    assert indices(a.x_val) != indices(b.x_val)
    assert a.x_test is ds.x_test and b.y_test is ds.y_test


def test_train_subset_fraction_is_stratified_and_keeps_validation() -> None:
    ds = toy_dataset([0] * 60 + [1] * 40)
    full = split_dataset(ds, seed=5)
    part = split_dataset(ds, seed=5, train_subset=0.5)
    assert indices(part.x_val) == indices(full.x_val)  # the subset never moves validation
    assert part.y_train.bincount().tolist() == [24, 16]
    assert set(indices(part.x_train)) <= set(indices(full.x_train))


def test_train_subset_count() -> None:
    ds = toy_dataset(np.arange(100) % 5)
    splits = split_dataset(ds, train_subset=25)
    assert len(splits.y_train) == 25 and splits.y_train.bincount().tolist() == [5] * 5
    assert len(split_dataset(ds, train_subset=1.0).y_train) == 80


@pytest.mark.parametrize(
    "kwargs",
    [
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"val_fraction": -0.1},
        {"val_fraction": float("nan")},
        {"val_fraction": True},
        {"val_fraction": "0.2"},
        {"val_fraction": 0.001},
        {"train_subset": 0},
        {"train_subset": 0.0},
        {"train_subset": 1.5},
        {"train_subset": -3},
        {"train_subset": 81},
        {"train_subset": True},
        {"train_subset": "half"},
    ],
)
def test_bad_fractions_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        split_dataset(toy_dataset(np.arange(100) % 2), **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=2, max_size=300),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_properties(labels: list[int], fraction: float, seed: int) -> None:
    n = len(labels)
    count = round(fraction * n)
    assume(0 < count < n)
    splits = split_dataset(toy_dataset(labels), val_fraction=fraction, seed=seed)
    train, val = indices(splits.x_train), indices(splits.x_val)
    assert len(val) == count and sorted(train + val) == list(range(n))
    per_class = np.bincount(labels, minlength=6)
    val_class = np.bincount(splits.y_val.numpy(), minlength=6)
    assert (np.abs(val_class - per_class * count / n) < 1 + 1e-9).all()


# --- names, cache, repr --------------------------------------------------------


def test_dataset_names_cover_every_loader() -> None:
    assert DATASET_NAMES == (
        "digits",
        "fashion-mnist",
        "mnist",
        "kmnist",
        "emnist-balanced",
        "emnist-byclass",
        "emnist-bymerge",
        "emnist-digits",
        "emnist-letters",
        "cifar10",
        "cifar100",
    )


@pytest.mark.parametrize(
    "name,suggestion", [("cifar1", "cifar10"), ("fashion-minst", "fashion-mnist")]
)
def test_unknown_name_suggests_and_lists(name: str, suggestion: str) -> None:
    with pytest.raises(DatasetError, match=f"did you mean '{suggestion}'") as err:
        load_dataset(name)
    assert all(n in str(err.value) for n in DATASET_NAMES) and "npz:PATH" in str(err.value)


def test_names_are_case_and_underscore_insensitive(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="^fashion-mnist: data set not found"):
        load_dataset("Fashion_MNIST", data_dir=tmp_path)


def test_loads_are_cached_per_name_and_directory(tmp_path: Path) -> None:
    write_idx_set(tmp_path, make_parts())
    first = load_dataset("mnist", data_dir=tmp_path)
    assert load_dataset("mnist", data_dir=str(tmp_path)) is first
    assert load_dataset("MNIST", data_dir=tmp_path) is first


def test_repr_is_short() -> None:
    ds = load_dataset("digits")
    assert (
        repr(ds) == "Dataset('digits', train=1438, test=359, input_shape=(1, 8, 8), num_classes=10)"
    )
    assert repr(split_dataset(ds)).startswith("Splits(train=1150, val=288, test=359")


def test_splits_and_datasets_pickle() -> None:
    ds = toy_dataset(np.arange(20) % 2)
    splits = pickle.loads(pickle.dumps(split_dataset(ds)))
    assert isinstance(splits, Splits) and len(splits.y_val) == 4


# --- real data -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist() -> None:
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.bincount().tolist() == [6000] * 10 and ds.num_classes == 10
    assert abs(float(ds.x_train.mean())) < 1e-4


def test_a_train_subset_too_small_for_the_classes_is_refused() -> None:
    digits = load_dataset("digits")
    with pytest.raises(
        ConfigError,
        match=r"--train-subset 3 leaves 3 training samples for 10 classes; give at least 20",
    ):
        split_dataset(digits, train_subset=3)
    assert len(split_dataset(digits, train_subset=20).y_train) == 20


# --- data views: --classes, --shots, --val-shots ------------------------------


def test_class_view_keeps_each_image_and_relabels_by_ascending_original_label() -> None:
    raw, view = load_raw("digits"), load_raw("digits", classes="7,2-4")
    assert view.num_classes == 4 and view.raw == raw.raw
    for part in ("train", "test"):
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        vx, vy = getattr(view, f"x_{part}"), getattr(view, f"y_{part}")
        kept = np.isin(y, [2, 3, 4, 7])
        assert np.array_equal(vx, x[kept])  # the rows, in their order
        relabel = np.full(10, -1)
        relabel[[2, 3, 4, 7]] = [0, 1, 2, 3]
        assert np.array_equal(vy, relabel[y[kept]])
    first_seven = int(np.flatnonzero(raw.y_train == 7)[0])  # a known sample
    at = int(np.isin(raw.y_train[:first_seven], [2, 3, 4, 7]).sum())
    assert np.array_equal(view.x_train[at], raw.x_train[first_seven]) and view.y_train[at] == 3


def test_class_view_is_a_data_set_standardised_with_its_own_training_images() -> None:
    ds, raw = load_dataset("digits", classes="5-9"), load_raw("digits", classes="5-9")
    assert ds.num_classes == 5 and ds.classes == (5, 6, 7, 8, 9)
    assert "classes=[5, 6, 7, 8, 9]" in repr(ds)
    assert ds.standardization != load_dataset("digits").standardization
    assert abs(float(ds.x_train.mean())) < 1e-5
    mean, std = ds.standardization.tensors()
    for x_raw, x in ((raw.x_train, ds.x_train), (raw.x_test, ds.x_test)):
        assert torch.equal((torch.from_numpy(x_raw.astype(np.float32)) - mean) / std, x)
    assert torch.equal(torch.from_numpy(raw.y_test), ds.y_test)
    # one view under any spelling, loaded once
    assert load_dataset("digits", classes="9,8,7,6,5") is ds
    splits = split_dataset(ds, seed=1)
    assert splits.classes == (5, 6, 7, 8, 9) and splits.standardization is ds.standardization


def test_load_splits_applies_classes_and_shots_to_a_named_data_set() -> None:
    splits = load_splits("digits", None, 0.2, 0, None, "0-4", 20)
    assert splits.num_classes == 5 and splits.classes == (0, 1, 2, 3, 4) and splits.shots == 20
    assert splits.y_train.bincount().tolist() == [20] * 5
    view = load_raw("digits", classes="0-4")
    assert torch.equal(splits.y_test, torch.from_numpy(view.y_test))  # the test set: filtered only
    assert len(splits.y_test) == int(np.isin(load_raw("digits").y_test, range(5)).sum())


def shots_dataset() -> Dataset:
    """Return a toy data set with 30, 20 and 12 training images of classes 0, 1 and 2."""
    return toy_dataset([0] * 30 + [1] * 20 + [2] * 12)


@pytest.mark.parametrize("shots", [1, 5, 12])
def test_shots_gives_exactly_k_training_images_per_class(shots: int) -> None:
    splits = split_dataset(shots_dataset(), shots=shots, seed=4)
    assert splits.y_train.bincount().tolist() == [shots] * 3 and splits.shots == shots
    ds = shots_dataset()
    assert (ds.y_train[splits.x_train.long().flatten()] == splits.y_train).all()


def test_shots_are_seeded_and_reproducible() -> None:
    a = split_dataset(shots_dataset(), shots=5, seed=4)
    again = split_dataset(shots_dataset(), shots=5, seed=4)
    other = split_dataset(shots_dataset(), shots=5, seed=5)
    assert indices(a.x_train) == indices(again.x_train) and indices(a.x_val) == indices(again.x_val)
    assert indices(a.x_train) != indices(other.x_train)


def test_shots_validate_on_val_fraction_of_what_is_left_disjoint_from_train_and_test() -> None:
    ds = shots_dataset()
    splits = split_dataset(ds, shots=5, val_fraction=0.5, seed=2)
    train, val = indices(splits.x_train), indices(splits.x_val)
    assert not set(train) & set(val)
    assert len(val) == round(0.5 * (62 - 15)) == 24  # from the 47 images the shots leave
    assert splits.y_val.bincount().tolist() == [13, 8, 3]  # stratified: 25, 15 and 7 were left
    test = {int(v) for v in ds.x_test.flatten()}  # toy test values are negative
    assert not test & (set(train) | set(val)) and splits.x_test is ds.x_test


def test_val_shots_gives_exactly_v_validation_images_per_class_from_what_is_left() -> None:
    splits = split_dataset(shots_dataset(), shots=4, val_shots=3, seed=2)
    assert splits.y_train.bincount().tolist() == [4] * 3
    assert splits.y_val.bincount().tolist() == [3] * 3
    assert not set(indices(splits.x_train)) & set(indices(splits.x_val))
    fraction = split_dataset(shots_dataset(), shots=4, seed=2)
    assert indices(fraction.x_train) == indices(splits.x_train)  # V never moves the shots


def test_finalists_keep_to_the_shots() -> None:
    shots = split_dataset(shots_dataset(), shots=4, val_shots=3)
    assert data.final_splits(shots, 0.5, 0) is shots
    full = split_dataset(shots_dataset())
    assert len(data.final_splits(full, 0.0, 0).y_train) == 62  # without shots: train + val


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"shots": 13},
            "--shots 13: too few training images: class 2 has 12; expected at least 13 per "
            "class (13 to train on)",
        ),
        (
            {"shots": 10, "val_shots": 11},
            "--shots 10 --val-shots 11: too few training images: class 1 has 20, class 2 has "
            "12; expected at least 21 per class (10 to train on + 11 to validate on)",
        ),
        ({"shots": 12}, "--shots 12 leaves 26 training images, and --val-fraction"),
        ({"shots": 2, "train_subset": 0.5}, "--train-subset 0.5 and --shots 2 conflict"),
        ({"val_shots": 2}, "--val-shots 2 goes with --shots K"),
        ({"shots": 0}, "--shots must be a positive integer, got 0"),
    ],
)
def test_shots_a_data_set_cannot_give_are_refused_naming_classes_and_counts(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        split_dataset(shots_dataset(), val_fraction=0.01, **kwargs)
    assert str(info.value).startswith(message)


def test_too_few_shots_names_the_original_labels_of_a_class_view() -> None:
    with pytest.raises(ConfigError, match=r"^--shots 200: too few training images: class 5 has"):
        load_splits("digits", None, 0.2, 0, None, "5-9", 200)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ("3,12", "--classes '3,12': digits has no label 12; the data set has labels 0-9"),
        ("8-11", "--classes '8-11': digits has no label 10; the data set has labels 0-9"),
        ("", "--classes '': no classes given; expected a comma list of labels and ranges"),
        ("2", "--classes '2' keeps 1 class; expected at least 2"),
        ("1,x", "--classes '1,x': 'x' is neither a label nor a range LOW-HIGH"),
        ("0-3,3", "--classes '0-3,3': label 3 is given twice"),
    ],
)
def test_bad_classes_are_one_clear_error(classes: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("digits", classes=classes)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        load_raw("digits", classes=classes)


def write_format(fmt: str, folder: Path) -> tuple[str, str]:
    """Write a tiny data set of 10 classes in a file format; return its name and data_dir."""
    if fmt == "idx":
        write_idx_set(folder, make_parts())
        return "mnist", str(folder)
    if fmt == "cifar":
        write_cifar10(folder / "cifar-10-batches-py", py2=False)
        return "cifar10", str(folder)
    parts = make_parts()
    np.savez(folder / "d.npz", **parts)
    return "npz:d.npz", str(folder)


@pytest.mark.parametrize("fmt", ["idx", "cifar", "npz"])
def test_views_work_with_every_file_format(fmt: str, tmp_path: Path) -> None:
    name, folder = write_format(fmt, tmp_path)
    raw, view = load_raw(name, folder), load_raw(name, folder, classes="1-3")
    kept = np.isin(raw.y_train, [1, 2, 3])
    assert np.array_equal(view.x_train, raw.x_train[kept])
    assert np.array_equal(view.y_train, raw.y_train[kept] - 1) and view.num_classes == 3
    assert np.array_equal(view.y_test, raw.y_test[np.isin(raw.y_test, [1, 2, 3])] - 1)
    splits = load_splits(name, folder, 0.2, 0, None, "1-3", 1, 1)
    assert sorted(splits.y_train.tolist()) == sorted(splits.y_val.tolist()) == [0, 1, 2]
    assert splits.classes == (1, 2, 3)
    with pytest.raises(ConfigError, match="the data set has labels 0-9"):
        load_dataset(name, folder, classes="8-10")
