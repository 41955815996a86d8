"""Tests for ge_nas.data: every loader on small files in the real formats, splits, errors."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ge_nas import data
from ge_nas.data import DATASET_NAMES, Dataset, Splits, load_dataset, split_dataset
from ge_nas.errors import ConfigError, DatasetError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
PLAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Keep the per-process cache from carrying data sets across tests."""
    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


# --- writers for the real formats ----------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write array as an IDX file of unsigned bytes, gzipped when path ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
    return path


def write_idx_set(
    folder: Path, parts: dict[str, np.ndarray], *, names: tuple[str, ...] = PLAIN, gz: bool = True
) -> list[Path]:
    """Write train/test images/labels under the four given names."""
    suffix = ".gz" if gz else ""
    keys = ("x_train", "y_train", "x_test", "y_test")
    return [write_idx(folder / f"{name}{suffix}", parts[key]) for name, key in zip(names, keys)]


def make_parts(n_train: int = 40, n_test: int = 12, classes: int = 10, h: int = 6, w: int = 4) -> dict[str, np.ndarray]:
    """Return random uint8 images (N, H, W) and cycling labels: H != W catches transposition."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        "y_train": (np.arange(n_train) % classes).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        "y_test": (np.arange(n_test) % classes).astype(np.uint8),
    }


def normalized(x_train: np.ndarray, x_test: np.ndarray, scale: float = 255.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the expected (N, C, H, W) tensors: scaled, then normalized with train statistics."""
    train, test = x_train / scale, x_test / scale
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    return torch.from_numpy((train - mean) / std).float(), torch.from_numpy((test - mean) / std).float()


def assert_matches(ds: Dataset, parts: dict[str, np.ndarray], label_offset: int = 0) -> None:
    """Assert that ds holds parts' images (as one channel) and labels."""
    x_train, x_test = normalized(parts["x_train"][:, None], parts["x_test"][:, None])
    assert torch.allclose(ds.x_train, x_train, atol=1e-5)
    assert torch.allclose(ds.x_test, x_test, atol=1e-5)
    assert ds.y_train.tolist() == (parts["y_train"].astype(int) - label_offset).tolist()
    assert ds.y_test.tolist() == (parts["y_test"].astype(int) - label_offset).tolist()
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickle the way Python 2's cPickle wrote the CIFAR batches: strings as BINSTRING, numpy.core."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        head = pickle.SHORT_BINSTRING + bytes([len(raw)]) if len(raw) < 256 else pickle.BINSTRING + struct.pack("<i", len(raw))
        self.write(head + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode())
        self.memoize(obj)


def write_pickle(path: Path, obj: object, *, py2: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        (Py2Pickler(f, protocol=2) if py2 else pickle.Pickler(f, protocol=2)).dump(obj)


def cifar_batch(x: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> dict[bytes, object]:
    """Return a batch dict shaped like the real ones: bytes keys, (N, 3072) uint8, label list."""
    return {
        b"batch_label": b"testing batch 1 of 1",
        label_key: labels.tolist(),
        b"data": x.reshape(len(x), 3072),
        b"filenames": [b"img_%d.png" % i for i in range(len(x))],
    }


def write_cifar10(folder: Path, *, py2: bool, per_batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (6 * per_batch, 3, 32, 32), dtype=np.uint8)
    y = np.arange(6 * per_batch) % 10
    for i in range(5):
        chunk = slice(i * per_batch, (i + 1) * per_batch)
        write_pickle(folder / f"data_batch_{i + 1}", cifar_batch(x[chunk], y[chunk]), py2=py2)
    write_pickle(folder / "test_batch", cifar_batch(x[5 * per_batch:], y[5 * per_batch:]), py2=py2)
    cut = 5 * per_batch
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


# --- digits --------------------------------------------------------------------


def test_digits_loads_as_one_channel_8x8_with_fixed_test_split() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.x_train.shape == (1438, 1, 8, 8) and ds.x_test.shape == (359, 1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.y_test.bincount().tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]  # stratified, pinned
    data._load_cached.cache_clear()
    again = load_dataset("digits")
    assert again is not ds and torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_test, ds.y_test)


def test_digits_is_normalized_with_train_statistics() -> None:
    ds = load_dataset("digits")
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std(unbiased=False)) - 1) < 1e-4
    assert abs(float(ds.x_test.mean())) > 1e-4  # test statistics were not used


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
    return Dataset("toy", x, y, -x[:5] - 1, y[:5], int(y.max()) + 1)


def indices(x: torch.Tensor) -> list[int]:
    return [int(v) for v in x.flatten()]


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    ds = toy_dataset([0] * 50 + [1] * 30 + [2] * 20)
    splits = split_dataset(ds, val_fraction=0.2, seed=3)
    assert isinstance(splits, Splits) and splits.num_classes == 3 and splits.input_shape == (1, 1, 1)
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
        {"val_fraction": 0.0}, {"val_fraction": 1.0}, {"val_fraction": -0.1}, {"val_fraction": float("nan")},
        {"val_fraction": True}, {"val_fraction": "0.2"}, {"val_fraction": 0.001},
        {"train_subset": 0}, {"train_subset": 0.0}, {"train_subset": 1.5}, {"train_subset": -3},
        {"train_subset": 81}, {"train_subset": True}, {"train_subset": "half"},
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


# --- IDX -----------------------------------------------------------------------


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


def test_fashion_mnist_defaults_to_the_system_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path)
    parts = make_parts()
    write_idx_set(tmp_path / "fashion-mnist", parts)
    assert_matches(load_dataset("fashion-mnist"), parts)


def test_emnist_letters_are_transposed_back_and_relabelled(tmp_path: Path) -> None:
    parts = make_parts(classes=26)
    parts["y_train"] += 1  # letters count from 1
    parts["y_test"] += 1
    stored = dict(parts, x_train=parts["x_train"].transpose(0, 2, 1), x_test=parts["x_test"].transpose(0, 2, 1))
    names = tuple(f"emnist-letters-{n.replace('t10k', 'test')}" for n in PLAIN)
    write_idx_set(tmp_path, stored, names=names)
    ds = load_dataset("emnist-letters", data_dir=tmp_path)
    assert ds.num_classes == 26 and ds.input_shape == (1, 6, 4) and int(ds.y_train.min()) == 0
    assert_matches(ds, parts, label_offset=1)


def test_emnist_accepts_plain_names_in_its_gzip_folder(tmp_path: Path) -> None:
    parts = make_parts(n_train=94, classes=47)
    stored = dict(parts, x_train=parts["x_train"].transpose(0, 2, 1), x_test=parts["x_test"].transpose(0, 2, 1))
    write_idx_set(tmp_path / "gzip", stored)
    ds = load_dataset("emnist-balanced", data_dir=tmp_path)
    assert ds.num_classes == 47
    assert_matches(ds, parts)


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
    paths[0].write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(64))
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
    for folder in (tmp_path / "nowhere", tmp_path / "nowhere" / "fashion-mnist", tmp_path / "nowhere/FashionMNIST/raw"):
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


# --- CIFAR ---------------------------------------------------------------------


def cifar_expected(parts: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return normalized(parts["x_train"], parts["x_test"])


@pytest.mark.parametrize("py2", [True, False], ids=["py2-cpickle", "py3-protocol2"])
@pytest.mark.parametrize("point_at_batches", [True, False])
def test_cifar10_batches(tmp_path: Path, py2: bool, point_at_batches: bool) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    parts = write_cifar10(folder, py2=py2)
    ds = load_dataset("cifar10", data_dir=folder if point_at_batches else tmp_path)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10 and len(ds.y_train) == 20
    x_train, x_test = cifar_expected(parts)
    assert torch.allclose(ds.x_train, x_train, atol=1e-5) and torch.allclose(ds.x_test, x_test, atol=1e-5)
    assert ds.y_train.tolist() == parts["y_train"].tolist() and ds.y_test.tolist() == parts["y_test"].tolist()


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    fine, coarse = np.arange(30) * 3 % 100, np.arange(30) % 20
    for part, rows in (("train", slice(0, 20)), ("test", slice(20, 30))):
        batch = cifar_batch(x[rows], fine[rows], b"fine_labels") | {b"coarse_labels": coarse[rows].tolist()}
        write_pickle(tmp_path / "cifar-100-python" / part, batch, py2=True)
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert ds.num_classes == 100 and ds.y_train.tolist() == fine[:20].tolist() and ds.y_test.tolist() == fine[20:].tolist()


class Exploit:
    """Run a shell command when unpickled, if the unpickler lets it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cifar_malicious_pickle_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, py2=False)
    marker = tmp_path / "pwned"
    batch = cifar_batch(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, int)) | {b"x": Exploit(marker)}
    write_pickle(folder / "data_batch_3", batch, py2=False)
    with pytest.raises(DatasetError, match=r"refusing to unpickle global (posix|os|nt)\.system") as err:
        load_dataset("cifar10", data_dir=folder)
    assert str(folder / "data_batch_3") in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name", [("builtins", "eval"), ("numpy", "load"), ("numpy.lib.npyio", "load"), ("subprocess", "Popen")]
)
def test_unpickler_refuses_every_other_global(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R.")
    with pytest.raises(DatasetError, match=f"refusing to unpickle global {module}.{name}") as err:
        data._unpickle(path)
    assert str(path) in str(err.value)


def test_unpickler_refuses_codecs_beyond_latin1(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DatasetError, match="latin1") as err:
        data._unpickle(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "payload,message",
    [
        ([1, 2, 3], "expected a dict"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, "2 images but"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"expected 0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}, "integer labels"),
    ],
)
def test_malformed_cifar_batch_names_the_file(tmp_path: Path, payload: object, message: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, py2=True)
    write_pickle(folder / "data_batch_2", payload, py2=True)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(folder / "data_batch_2") in str(err.value)


def test_truncated_cifar_batch_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, py2=True)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:300])
    with pytest.raises(DatasetError, match="not a readable CIFAR batch") as err:
        load_dataset("cifar10", data_dir=folder)
    assert str(folder / "test_batch") in str(err.value)


def test_missing_cifar_names_paths_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar100", data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and str(tmp_path / "cifar-100-python") in message
    assert "cifar-100-python.tar.gz" in message and "train" in message


# --- npz -----------------------------------------------------------------------


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
    x_train, x_test = rng.integers(0, 256, (20, *shape), dtype=np.uint8), rng.integers(0, 256, (8, *shape), dtype=np.uint8)
    name = write_npz(tmp_path / "d.npz", x_train=x_train, y_train=np.arange(20) % 4, x_test=x_test, y_test=np.arange(8) % 3)
    ds = load_dataset(name)
    expected_train, expected_test = normalized(to_nchw(x_train), to_nchw(x_test))
    assert ds.name == name and ds.num_classes == 4 and ds.input_shape == tuple(expected_train.shape[1:])
    assert torch.allclose(ds.x_train, expected_train, atol=1e-5) and torch.allclose(ds.x_test, expected_test, atol=1e-5)


def test_npz_float_images_and_keras_labels(tmp_path: Path) -> None:
    x = np.random.default_rng(4).random((10, 5, 5)).astype(np.float32)
    name = write_npz(tmp_path / "d.npz", x_train=x, y_train=(np.arange(10) % 2)[:, None].astype(np.float64),
                     x_test=x[:4], y_test=np.array([0, 1, 2, 1]))
    ds = load_dataset(name)
    expected_train, _ = normalized(x[:, None], x[:4, None], scale=1.0)
    assert torch.allclose(ds.x_train, expected_train, atol=1e-5)
    assert ds.num_classes == 3 and ds.y_train.dtype == torch.int64 and ds.y_train.tolist()[:3] == [0, 1, 0]


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


# --- names, cache, repr --------------------------------------------------------


def test_dataset_names_cover_every_loader() -> None:
    assert DATASET_NAMES == (
        "digits", "fashion-mnist", "mnist", "kmnist", "emnist-balanced", "emnist-byclass", "emnist-bymerge",
        "emnist-digits", "emnist-letters", "cifar10", "cifar100",
    )


@pytest.mark.parametrize("name,suggestion", [("cifar1", "cifar10"), ("fashion-minst", "fashion-mnist")])
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
    assert repr(ds) == "Dataset('digits', train=1438, test=359, input_shape=(1, 8, 8), num_classes=10)"
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
