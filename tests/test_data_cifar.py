"""CIFAR batches on small pickles in the real formats, and the restricted unpickler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_files import cifar_batch, normalized, write_cifar10, write_pickle

from ge_nas.data import cifar as _cifar
from ge_nas.data import load_dataset
from ge_nas.errors import DatasetError

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


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
    assert torch.allclose(ds.x_train, x_train, atol=1e-5) and torch.allclose(
        ds.x_test, x_test, atol=1e-5
    )
    assert (
        ds.y_train.tolist() == parts["y_train"].tolist()
        and ds.y_test.tolist() == parts["y_test"].tolist()
    )


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    fine, coarse = np.arange(30) * 3 % 100, np.arange(30) % 20
    for part, rows in (("train", slice(0, 20)), ("test", slice(20, 30))):
        batch = cifar_batch(x[rows], fine[rows], b"fine_labels") | {
            b"coarse_labels": coarse[rows].tolist()
        }
        write_pickle(tmp_path / "cifar-100-python" / part, batch, py2=True)
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert (
        ds.num_classes == 100
        and ds.y_train.tolist() == fine[:20].tolist()
        and ds.y_test.tolist() == fine[20:].tolist()
    )


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
    batch = cifar_batch(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, int)) | {
        b"x": Exploit(marker)
    }
    write_pickle(folder / "data_batch_3", batch, py2=False)
    with pytest.raises(
        DatasetError, match=r"refusing to unpickle global (posix|os|nt)\.system"
    ) as err:
        load_dataset("cifar10", data_dir=folder)
    assert str(folder / "data_batch_3") in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name",
    [("builtins", "eval"), ("numpy", "load"), ("numpy.lib.npyio", "load"), ("subprocess", "Popen")],
)
def test_unpickler_refuses_every_other_global(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R.")
    with pytest.raises(DatasetError, match=f"refusing to unpickle global {module}.{name}") as err:
        _cifar.unpickle(path)
    assert str(path) in str(err.value)


def test_unpickler_refuses_codecs_beyond_latin1(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DatasetError, match="latin1") as err:
        _cifar.unpickle(path)
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
def test_malformed_cifar_batch_names_the_file(
    tmp_path: Path, payload: object, message: str
) -> None:
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
