"""benchmarks/seeds.py: seed 000's matrix on tiny fake IDX files, rows with and without data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_files import PLAIN, make_parts, write_idx_set

from ge_nas import rundir

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--minutes", "0.02", "--population", "2", "--epochs", "1", "--train-subset", "60",
        "--finalists", "1", "--final-epochs", "1", "--workers", "1",
        "--grammar", str(ROOT / "tests" / "grammars" / "tiny_cnn.bnf")]  # fmt: skip


@pytest.fixture
def seeds(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import seeds

    return seeds


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """MNIST in mnist/, EMNIST digits in emnist/; MNIST-style files at the top and in gzip/ too."""
    data, parts = tmp_path / "data", make_parts(n_train=200, n_test=40, h=8, w=8)
    for folder in (data, data / "mnist", data / "gzip"):
        write_idx_set(folder, parts)
    emnist = tuple(f"emnist-digits-{name.replace('t10k', 'test')}" for name in PLAIN)
    write_idx_set(data / "emnist", parts, names=emnist)
    return data


def test_rows_with_data_run_and_the_others_say_no_data(
    seeds, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    rows = "mnist,emnist-digits,emnist-letters,fashion-mnist"
    out = tmp_path / "out"
    argv = [*TINY, "--rows", rows, "--data-dir", str(data_dir), "--out", str(out)]
    assert seeds.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    by_name = {row["dataset"]: row for row in summary["rows"]}
    assert list(by_name) == rows.split(",")
    # EMNIST letters: MNIST-style files in gzip/ do not stand in for its emnist-letters-* files;
    # Fashion-MNIST: files at the top of a --data-dir could be any set's; --data-dir replaces
    # the Debian path, where it is installed on some machines.
    assert [by_name[n]["status"] for n in rows.split(",")] == ["ran", "ran", "no data", "no data"]
    for name, limit in (("mnist", 48_000), ("emnist-digits", 50_000)):
        row = by_name[name]
        assert row["limit"] == limit and 0.0 <= row["test_accuracy"] <= 1.0
        assert row["params"] <= limit and row["holdout_accuracy"] is not None
        assert row["evaluations"] >= 2 and row["minutes"] > 0
        assert rundir.read_pareto(out / name)
    assert by_name["mnist"]["data_dir"] == str(data_dir / "mnist")
    assert by_name["emnist-digits"]["data_dir"] == str(data_dir / "emnist")
    table = capsys.readouterr().out
    assert "| EMNIST letters | ≥ 93 % | 130k | no data |  |  |" in table
    assert "| MNIST | ≈ 100 % | 48k | " in table


def test_an_unknown_row_is_refused_with_a_suggestion(seeds) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        seeds.main(["--rows", "mnst"])
