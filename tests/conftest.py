"""Shared fixtures: one real tiny search per test session, and damaged copies of its run directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY_RUN = [
    "run",
    "--grammar",
    "grammars/cnn_small.bnf",
    "--population",
    "4",
    "--generations",
    "1",
    "--epochs",
    "1",
    "--final-epochs",
    "1",
    "--finalists",
    "2",
    "--workers",
    "1",
    "--train-subset",
    "0.3",
]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the directory of a finished real search (read it, don't change it)."""
    from ge_nas.cli import main

    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main([*TINY_RUN, "--out", str(out)]) == 0
    return out


# A few-shot search on a class view: digits 0-4, 20 training images per class.
VIEW_RUN = [
    *[a for a in TINY_RUN if a not in ("--train-subset", "0.3")],
    "--classes",
    "0-4",
    "--shots",
    "20",
]


@pytest.fixture(scope="session")
def view_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the directory of a finished real search on a few-shot class view (read it only)."""
    from ge_nas.cli import main

    out = tmp_path_factory.mktemp("view") / "run"
    assert main([*VIEW_RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy_run(run_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """Return a function that copies the run directory, leaving out the named files."""

    def copy(*missing: str) -> Path:
        target = tmp_path / "run-copy"
        shutil.copytree(run_dir, target)
        for name in missing:
            path = target / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return target

    return copy


@pytest.fixture
def fresh_data_cache() -> Iterator[None]:
    """Keep ge_nas.data's per-process cache from carrying data sets across tests."""
    from ge_nas.data import datasets as data

    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread so results are bit-for-bit repeatable; restore the count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# A backbone with six blocks: conv+bn, conv+pool, sepconv, res, conv, dense+dropout.
BACKBONE = (
    "conv(8,3) bn relu conv(8,3) relu pool(max,2) sepconv(16,3) relu res(16,3) conv(16,3) relu "
    "dense(32) relu dropout(0.1) | lr=0.003 batch=32"
)


def save_network(directory: Path, phenotype: str, *, epochs: int = 0) -> Path:
    """Save a network of phenotype for digits (trained epochs on a third of it) as a model directory."""
    import torch

    from ge_nas.arch import parse_arch
    from ge_nas.data import load_splits
    from ge_nas.export import Meta, save_model
    from ge_nas.metrics import OK, Metrics
    from ge_nas.network import build_model
    from ge_nas.train import train_model

    spec = parse_arch(phenotype)
    splits = load_splits("digits", None, 0.2, 0, 0.3)
    torch.manual_seed(0)
    model = build_model(spec, splits.input_shape, splits.num_classes)
    if epochs:
        train_model(model, spec.hparam_map(), splits.x_train, splits.y_train, epochs=epochs, seed=0)
    meta = Meta(splits.input_shape, splits.num_classes, splits.standardization)
    save_model(directory, model, spec, Metrics(OK), meta)
    return directory


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a model directory of a six-block network trained one epoch on digits (read it, don't change it)."""
    return save_network(tmp_path_factory.mktemp("backbone") / "model", BACKBONE, epochs=1)
