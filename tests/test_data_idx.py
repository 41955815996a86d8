"""IDX data sets (MNIST and relatives) on small files in the real format, and where files are looked for."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from data_files import PLAIN, assert_matches, make_parts, write_idx_set

from ge_nas.data import datasets as data
from ge_nas.data import load_dataset
from ge_nas.errors import DatasetError

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_idx_loads_gzip_and_raw(tmp_path: Path, name: str, gz: bool) -> None:
    parts = make_parts()
    write_idx_set(tmp_path, parts, gz=gz)
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.name == name and ds.num_classes == 10 and ds.input_shape == (1, 6, 4)
    assert_matches(ds, parts)


@pytest.mark.parametrize("subdir", ["MNIST/raw", "mnist"])
def test_idx_found_in_known_subdirectories(tmp_path: Path, subdir: str) -> None:
    parts = make_parts()
    write_idx_set(tmp_path / subdir, parts)
    assert_matches(load_dataset("mnist", data_dir=tmp_path), parts)


def test_idx_accepts_dotted_names(tmp_path: Path) -> None:
    parts = make_parts()
    write_idx_set(tmp_path, parts, names=tuple(n.replace("-idx", ".idx") for n in PLAIN), gz=False)
    assert_matches(load_dataset("mnist", data_dir=tmp_path), parts)


def test_fashion_mnist_defaults_to_the_system_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path)
    parts = make_parts()
    write_idx_set(tmp_path / "fashion-mnist", parts)
    assert_matches(load_dataset("fashion-mnist"), parts)


def test_emnist_letters_are_transposed_back_and_relabelled(tmp_path: Path) -> None:
    parts = make_parts(classes=26)
    parts["y_train"] += 1  # letters count from 1
    parts["y_test"] += 1
    stored = dict(
        parts,
        x_train=parts["x_train"].transpose(0, 2, 1),
        x_test=parts["x_test"].transpose(0, 2, 1),
    )
    names = tuple(f"emnist-letters-{n.replace('t10k', 'test')}" for n in PLAIN)
    write_idx_set(tmp_path, stored, names=names)
    ds = load_dataset("emnist-letters", data_dir=tmp_path)
    assert ds.num_classes == 26 and ds.input_shape == (1, 6, 4) and int(ds.y_train.min()) == 0
    assert_matches(ds, parts, label_offset=1)


def test_emnist_accepts_plain_names_in_its_gzip_folder(tmp_path: Path) -> None:
    parts = make_parts(n_train=94, classes=47)
    stored = dict(
        parts,
        x_train=parts["x_train"].transpose(0, 2, 1),
        x_test=parts["x_test"].transpose(0, 2, 1),
    )
    write_idx_set(tmp_path / "gzip", stored)
    ds = load_dataset("emnist-balanced", data_dir=tmp_path)
    assert ds.num_classes == 47
    assert_matches(ds, parts)


def test_emnist_prefers_its_own_files_to_mnist_style_ones_found_first(tmp_path: Path) -> None:
    write_idx_set(tmp_path, make_parts(n_train=30))  # MNIST at the top of the data directory
    parts = make_parts(n_train=50)
    stored = dict(
        parts,
        x_train=parts["x_train"].transpose(0, 2, 1),
        x_test=parts["x_test"].transpose(0, 2, 1),
    )
    names = tuple(f"emnist-digits-{n.replace('t10k', 'test')}" for n in PLAIN)
    write_idx_set(tmp_path / "emnist", stored, names=names)
    assert_matches(load_dataset("emnist-digits", data_dir=tmp_path), parts)


def test_idx_bad_magic_names_the_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts())
    paths[0].write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(100)))
    with pytest.raises(DatasetError, match="not an IDX file") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[0]) in str(err.value)


def test_idx_labels_file_in_place_of_images_is_refused(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts())
    paths[2].write_bytes(paths[3].read_bytes())
    with pytest.raises(DatasetError, match="rank 3") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[2]) in str(err.value)


def test_idx_truncated_file_names_the_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts(), gz=False)
    paths[0].write_bytes(paths[0].read_bytes()[:-7])
    with pytest.raises(DatasetError, match="promises shape") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[0]) in str(err.value)


def test_idx_header_with_huge_dims_is_refused(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts(), gz=False)
    paths[0].write_bytes(
        bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(64)
    )
    with pytest.raises(DatasetError, match="promises shape") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[0]) in str(err.value)


def test_idx_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts())
    paths[1].write_bytes(paths[1].read_bytes()[:20])
    with pytest.raises(DatasetError, match="cannot read") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[1]) in str(err.value)


def test_idx_count_mismatch_names_both_files(tmp_path: Path) -> None:
    parts = make_parts()
    parts["y_test"] = parts["y_test"][:-1]
    paths = write_idx_set(tmp_path, parts)
    with pytest.raises(DatasetError, match="12 images but .* 11 labels") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[2]) in str(err.value) and str(paths[3]) in str(err.value)


def test_idx_label_out_of_range_names_the_file(tmp_path: Path) -> None:
    parts = make_parts()
    parts["y_train"][3] = 10
    paths = write_idx_set(tmp_path, parts)
    with pytest.raises(DatasetError, match=r"0\.\.10, expected 0\.\.9") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[1]) in str(err.value)


def test_idx_train_and_test_shapes_must_agree(tmp_path: Path) -> None:
    parts = make_parts()
    parts["x_test"] = parts["x_test"][:, :5]
    write_idx_set(tmp_path, parts)
    with pytest.raises(DatasetError, match="shape"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_fashion_mnist_names_every_path_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    for folder in (
        tmp_path / "nowhere",
        tmp_path / "nowhere" / "fashion-mnist",
        tmp_path / "nowhere/FashionMNIST/raw",
    ):
        assert str(folder) in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "train-images-idx3-ubyte[.gz]" in message and "no such directory" in message


def test_missing_fashion_mnist_default_names_the_system_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist") as err:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "fashion-mnist") in str(err.value)


def test_missing_emnist_says_where_to_put_which_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="emnist-digits-train-images-idx3-ubyte") as err:
        load_dataset("emnist-digits", data_dir=tmp_path)
    assert str(tmp_path / "gzip") in str(err.value) and "gzip.zip" in str(err.value)


def test_partial_idx_set_names_the_missing_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts())
    paths[3].unlink()
    with pytest.raises(DatasetError, match=r"but not t10k-labels-idx1-ubyte\[\.gz\]") as err:
        load_dataset("kmnist", data_dir=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_idx_images_without_pixels_are_refused(tmp_path: Path) -> None:
    parts = make_parts()
    parts["x_train"], parts["x_test"] = parts["x_train"][:, :0], parts["x_test"][:, :0]
    paths = write_idx_set(tmp_path, parts)
    with pytest.raises(DatasetError, match=r"images of shape \(0, 4\) hold no pixels") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[0]) in str(err.value) and "expected at least one channel" in str(err.value)


def test_idx_float_images_with_nan_are_refused(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_parts(), gz=False)
    images = np.ones((40, 6, 4), ">f4")
    images[7, 0, 0] = np.nan
    header = bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", *images.shape)
    paths[0].write_bytes(header + images.tobytes())
    with pytest.raises(DatasetError, match="NaN or infinite values") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(paths[0]) in str(err.value) and "(the first: image 7)" in str(err.value)


def test_idx_standardisation_is_in_raw_pixel_units_and_says_so(tmp_path: Path) -> None:
    parts = make_parts()
    write_idx_set(tmp_path, parts)
    stats = load_dataset("mnist", data_dir=tmp_path).standardization
    assert stats.raw == "uint8 pixel values 0..255 as in the IDX files"
    assert stats.mean[0] == pytest.approx(float(parts["x_train"].mean()), rel=1e-5)
    assert stats.std[0] == pytest.approx(float(parts["x_train"].std()), rel=1e-4)
