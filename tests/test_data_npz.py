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
        ({"y_test": np.array([0, -1, 2, 3])}, "non-negative"),
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
