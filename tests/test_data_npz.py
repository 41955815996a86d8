""".npz archives: layouts, label forms, and every malformed archive named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_files import normalized

from ge_nas.data import load_dataset
from ge_nas.errors import DatasetError

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


def write_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize(
    "shape,to_nchw",
    [
        ((6, 4), lambda x: x[:, None]),
        ((6, 4, 1), lambda x: x.transpose(0, 3, 1, 2)),
        ((6, 5, 3), lambda x: x.transpose(0, 3, 1, 2)),
        ((3, 6, 5), lambda x: x),
        ((1, 6, 5), lambda x: x),
    ],
    ids=["NHW", "NHW1", "NHWC", "NCHW", "N1HW"],
)
def test_npz_layouts(tmp_path: Path, shape: tuple[int, ...], to_nchw: Any) -> None:
    rng = np.random.default_rng(3)
    x_train, x_test = (
        rng.integers(0, 256, (20, *shape), dtype=np.uint8),
        rng.integers(0, 256, (8, *shape), dtype=np.uint8),
    )
    name = write_npz(
        tmp_path / "d.npz",
        x_train=x_train,
        y_train=np.arange(20) % 4,
        x_test=x_test,
        y_test=np.arange(8) % 3,
    )
    ds = load_dataset(name)
    expected_train, expected_test = normalized(to_nchw(x_train), to_nchw(x_test))
    assert (
        ds.name == name
        and ds.num_classes == 4
        and ds.input_shape == tuple(expected_train.shape[1:])
    )
    assert torch.allclose(ds.x_train, expected_train, atol=1e-5) and torch.allclose(
        ds.x_test, expected_test, atol=1e-5
    )


def test_npz_float_images_and_keras_labels(tmp_path: Path) -> None:
    x = np.random.default_rng(4).random((10, 5, 5)).astype(np.float32)
    name = write_npz(
        tmp_path / "d.npz",
        x_train=x,
        y_train=(np.arange(10) % 2)[:, None].astype(np.float64),
        x_test=x[:4],
        y_test=np.array([0, 1, 2, 1]),
    )
    ds = load_dataset(name)
    expected_train, _ = normalized(x[:, None], x[:4, None], scale=1.0)
    assert torch.allclose(ds.x_train, expected_train, atol=1e-5)
    assert (
        ds.num_classes == 3
        and ds.y_train.dtype == torch.int64
        and ds.y_train.tolist()[:3] == [0, 1, 0]
    )


def test_npz_relative_path_is_found_in_data_dir(tmp_path: Path) -> None:
    x = np.zeros((4, 3, 3), np.uint8)
    write_npz(tmp_path / "d.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    assert load_dataset("npz:d.npz", data_dir=tmp_path).num_classes == 4


def good_npz_arrays() -> dict[str, np.ndarray]:
    x = np.zeros((4, 3, 3), np.uint8)
    return {"x_train": x, "y_train": np.arange(4), "x_test": x, "y_test": np.arange(4)}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"x_train": None}, "missing arrays x_train"),
        ({"y_train": np.arange(5)}, "4 images but"),
        ({"y_train": np.eye(4, dtype=np.int64)}, "one-hot"),
        ({"y_test": np.array([0, -1, 2, 3])}, r"labels \[-1, 0, 1, 2, 3\]; expected .* 0\.\.4"),
        ({"y_test": np.array([0.5, 1, 2, 3])}, "integer labels"),
        ({"y_test": np.array([0, 1, np.inf, 3])}, "integer labels"),
        ({"x_test": np.zeros((4, 3, 4), np.uint8)}, "shape"),
        ({"x_test": np.zeros((4, 3, 3), np.float32)}, "float32 images"),
        ({"x_train": np.zeros((4, 9), np.uint8)}, r"expected images shaped"),
        ({"x_train": np.array([["a"] * 4] * 4)}, "numeric images"),
    ],
)
def test_malformed_npz_names_the_file(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    arrays = {k: v for k, v in (good_npz_arrays() | change).items() if v is not None}
    name = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(name)
    assert str(tmp_path / "bad.npz") in str(err.value)


def test_npz_with_object_arrays_is_refused(tmp_path: Path) -> None:
    arrays = good_npz_arrays() | {"y_test": np.array([0, 1, "x", None], dtype=object)}
    name = write_npz(tmp_path / "obj.npz", **arrays)
    with pytest.raises(DatasetError, match="not a readable .npz") as err:
        load_dataset(name)
    assert str(tmp_path / "obj.npz") in str(err.value)


@pytest.mark.parametrize("content", [b"just text", b""], ids=["text", "empty"])
def test_npz_that_is_not_an_archive_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        load_dataset(f"npz:{path}")
    assert str(path) in str(err.value)


def test_npy_single_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(DatasetError, match="single array") as err:
        load_dataset(f"npz:{path}")
    assert str(path) in str(err.value)


def test_missing_npz_names_every_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file") as err:
        load_dataset("npz:missing.npz", data_dir=tmp_path)
    assert "missing.npz" in str(err.value) and str(tmp_path / "missing.npz") in str(err.value)
    with pytest.raises(DatasetError, match="give the archive's path"):
        load_dataset("npz:")


# --- values a data set must not hold -------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("part", ["x_train", "x_test"])
def test_npz_images_with_nan_or_inf_are_refused_at_load(
    tmp_path: Path, part: str, bad: float
) -> None:
    arrays = good_npz_arrays() | {"x_train": np.ones((4, 3, 3), np.float32)}
    arrays["x_test"] = arrays["x_train"].copy()
    arrays[part][2, 1, 0] = bad
    name = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError, match="1 of 4 images hold NaN or infinite values") as err:
        load_dataset(name)
    assert f"{tmp_path / 'd.npz'}:{part}" in str(err.value)
    assert "(the first: image 2); expected finite numbers" in str(err.value)


@pytest.mark.parametrize(
    "y_train,found,expected",
    [
        ([0, 1, 0, 10**9], r"3 distinct labels \[0, 1, 1000000000\]", r"0\.\.2"),
        ([0, 1, 0, 10**8], r"3 distinct labels \[0, 1, 100000000\]", r"0\.\.2"),
        ([1, 2, 1, 2], r"2 distinct labels \[1, 2\]", r"0\.\.1"),
        ([0, 2, 0, 2], r"2 distinct labels \[0, 2\]", r"0\.\.1"),
    ],
    ids=["1e9", "1e8", "from-1", "gap"],
)
def test_npz_labels_must_be_0_to_n_minus_1_for_n_distinct_labels(
    tmp_path: Path, y_train: list[int], found: str, expected: str
) -> None:
    arrays = good_npz_arrays() | {"y_train": np.array(y_train), "y_test": np.array(y_train)}
    name = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError, match=f"{found}; expected the integers {expected}") as err:
        load_dataset(name)
    assert f"{tmp_path / 'd.npz'}:y_train, y_test" in str(err.value)


def test_npz_long_list_of_bad_labels_is_clipped(tmp_path: Path) -> None:
    labels = np.array([v for v in range(40) if v != 20])
    x = np.zeros((len(labels), 3, 3), np.uint8)
    name = write_npz(tmp_path / "d.npz", x_train=x, y_train=labels, x_test=x, y_test=labels)
    with pytest.raises(DatasetError, match=r"39 distinct labels \[0, 1, 2, 3, 4, 5, \.\.\., 34"):
        load_dataset(name)


@pytest.mark.parametrize(
    "shape,found",
    [((4, 0, 3), r"\(1, 0, 3\)"), ((4, 3, 0), r"\(1, 3, 0\)"), ((4, 0, 3, 3), r"\(0, 3, 3\)")],
    ids=["no-rows", "no-columns", "no-channels"],
)
def test_npz_images_without_pixels_or_channels_are_refused(
    tmp_path: Path, shape: tuple[int, ...], found: str
) -> None:
    x = np.zeros(shape, np.float32)
    arrays = good_npz_arrays() | {"x_train": x, "x_test": x}
    name = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError, match=rf"images of shape {found} hold no pixels") as err:
        load_dataset(name)
    assert f"{tmp_path / 'd.npz'}:x_train" in str(err.value)
    assert "expected at least one channel, one row and one column" in str(err.value)


def test_constant_channel_is_standardised_with_std_1_to_zeros(tmp_path: Path) -> None:
    x = np.random.default_rng(5).random((6, 3, 4, 4)).astype(np.float32)
    x[:, 1] = 0.1  # a channel that never changes
    arrays = {"x_train": x, "y_train": np.arange(6) % 2, "x_test": x[:2], "y_test": np.arange(2)}
    ds = load_dataset(write_npz(tmp_path / "d.npz", **arrays))
    stats = ds.standardization
    assert stats.std[1] == 1.0 and stats.mean[1] == float(np.float32(0.1))
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()
    assert (ds.x_train[:, 1] == 0).all() and (ds.x_test[:, 1] == 0).all()
    assert stats.raw == "float32 values as stored in the npz"


def test_npz_standardisation_is_in_raw_units(tmp_path: Path) -> None:
    x = np.random.default_rng(6).integers(0, 256, (8, 4, 4), dtype=np.uint8)
    arrays = {"x_train": x, "y_train": np.arange(8) % 2, "x_test": x[:2], "y_test": np.arange(2)}
    ds = load_dataset(write_npz(tmp_path / "d.npz", **arrays))
    mean, std = ds.standardization.tensors()
    raw = torch.from_numpy(x[:2, None].astype(np.float32))
    assert torch.equal((raw - mean) / std, ds.x_test)
    assert ds.standardization.mean[0] == pytest.approx(float(x.mean()), rel=1e-5)
    assert ds.standardization.raw == "uint8 values as stored in the npz"
