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
