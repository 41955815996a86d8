"""Tests for ge_nas.rundir: atomic writes, the run directory, pareto.csv, JSON lines."""

from __future__ import annotations

import importlib.metadata
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from ge_nas import rundir
from ge_nas.config import RunConfig, load_toml, make_config
from ge_nas.errors import ConfigError
from ge_nas.rundir import (
    CHECKPOINT,
    CONFIG,
    GRAMMAR,
    PARETO,
    PARETO_COLUMNS,
    Checkpoint,
    append_line,
    checked_grammar_copy,
    create_run_dir,
    jsonable,
    read_checkpoint,
    read_pareto,
    read_written_by,
    sha256,
    write_atomic,
    write_checkpoint,
    write_pareto,
)

CONFIG_VALUE = RunConfig(grammar="grammars/cnn_small.bnf", population=4, max_params=5000)


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    write_atomic(path, "one\n")
    write_atomic(path, "two\r\nlines ü\n")
    assert path.read_bytes() == "two\r\nlines ü\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_write_atomic_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.txt"
    write_atomic(path, "old")

    def boom(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(rundir.os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old"


GRAMMAR_TEXT = Path("grammars/cnn_small.bnf").read_text()


def test_create_run_dir_writes_loadable_config(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a" / "b"
    assert create_run_dir(out, CONFIG_VALUE, GRAMMAR_TEXT) == out
    assert sorted(p.name for p in out.iterdir()) == [CONFIG, GRAMMAR]
    assert (out / GRAMMAR).read_text() == GRAMMAR_TEXT
    assert make_config(load_toml(out / CONFIG), {}) == CONFIG_VALUE
    written_by = read_written_by(out)
    assert written_by["grammar_sha256"] == sha256(GRAMMAR_TEXT)
    assert written_by["torch"] == importlib.metadata.version("torch")


def test_an_out_dir_with_a_users_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "front").mkdir()
    with pytest.raises(
        ConfigError, match=r"not empty and is not a ge_nas run \(it holds front/, notes.txt\)"
    ):
        create_run_dir(tmp_path, CONFIG_VALUE, GRAMMAR_TEXT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front", "notes.txt"]


def test_resume_refuses_a_missing_or_changed_grammar_copy(tmp_path: Path) -> None:
    create_run_dir(tmp_path, CONFIG_VALUE, GRAMMAR_TEXT)
    assert checked_grammar_copy(tmp_path) == GRAMMAR_TEXT
    (tmp_path / GRAMMAR).write_text(GRAMMAR_TEXT + "\n<extra> ::= relu\n")
    with pytest.raises(ConfigError, match="has changed since the run started"):
        checked_grammar_copy(tmp_path)
    (tmp_path / GRAMMAR).unlink()
    with pytest.raises(ConfigError, match="is missing"):
        checked_grammar_copy(tmp_path)


def test_create_run_dir_accepts_an_empty_existing_dir(tmp_path: Path) -> None:
    create_run_dir(tmp_path, CONFIG_VALUE, GRAMMAR_TEXT)
    assert (tmp_path / CONFIG).exists()


def test_create_run_dir_refuses_a_run(tmp_path: Path) -> None:
    create_run_dir(tmp_path / "r", CONFIG_VALUE, GRAMMAR_TEXT)
    before = (tmp_path / "r" / CONFIG).read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        create_run_dir(tmp_path / "r", RunConfig(grammar="other.bnf"), "<a> ::= b")
    assert (tmp_path / "r" / CONFIG).read_text() == before


def test_create_run_dir_where_a_file_is(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        create_run_dir(tmp_path / "file", CONFIG_VALUE, GRAMMAR_TEXT)


def test_append_line(tmp_path: Path) -> None:
    path = tmp_path / "generations.jsonl"
    append_line(path, {"generation": 0, "hv": 1.5})
    append_line(path, {"generation": 1, "text": "a\nb"})
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"generation": 0, "hv": 1.5},
        {"generation": 1, "text": "a\nb"},
    ]


def test_checkpoint_round_trip_restores_the_search_rng(tmp_path: Path) -> None:
    rng = random.Random(7)
    rng.random()
    checkpoint = Checkpoint(3, [[1, 2], [3]], [math.inf, 0.5], rng.getstate(), [0, 2])
    write_checkpoint(tmp_path, checkpoint)
    back = read_checkpoint(tmp_path)
    assert back == checkpoint
    restored = random.Random()
    restored.setstate(back.rng_state)
    assert restored.random() == rng.random()
    assert not list(tmp_path.glob("*.tmp"))
    json.loads(
        (tmp_path / CHECKPOINT).read_text(),
        parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"),
    )


def test_missing_checkpoint_is_none_and_a_bad_one_is_a_clear_error(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) is None
    (tmp_path / CHECKPOINT).write_text('{"generation": 1}')
    with pytest.raises(ConfigError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path)


def test_pareto_csv_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            "rank": 1,
            "val_accuracy": 0.95,
            "epochs": 8,
            "test_accuracy": 0.93,
            "test_fidelity": "final",
            "holdout_accuracy": 0.91,
            "params": 1200,
            "flops": 3400,
            "latency_ms": 2.5,
            "robustness": 0.8,
            "train_seconds": 1.5,
            "status": "ok",
            "phenotype_hash": "abc",
            "phenotype": "conv(8,3,1) | opt=adam lr=0.001",
            "genome": "[1, 2, 3]",
            "extra": "ignored",
        },
        {
            "rank": 2,
            "val_accuracy": 0.9,
            "epochs": 24,
            "test_accuracy": None,
            "test_fidelity": "",
            "holdout_accuracy": None,
            "params": 300,
            "flops": 700,
            "latency_ms": None,
            "robustness": None,
            "train_seconds": 0.5,
            "status": "ok",
            "phenotype_hash": "def",
            "phenotype": 'dense(4) "quoted", comma',
            "genome": "[]",
        },
    ]
    write_pareto(tmp_path, rows)
    back = read_pareto(tmp_path)
    assert list(back[0]) == list(PARETO_COLUMNS)
    assert back == [
        {k: "" if row.get(k) is None else str(row[k]) for k in PARETO_COLUMNS} for row in rows
    ]
    assert (tmp_path / PARETO).read_text().splitlines()[0] == ",".join(PARETO_COLUMNS)


def test_pareto_csv_empty(tmp_path: Path) -> None:
    write_pareto(tmp_path, [])
    assert read_pareto(tmp_path) == []


@dataclass(frozen=True)
class _Point:
    name: str
    xs: tuple[int, ...]


def test_jsonable() -> None:
    assert jsonable(_Point("a", (1, (2, 3)))) == {"name": "a", "xs": [1, [2, 3]]}
    assert jsonable([(1, 2), "s", None]) == [[1, 2], "s", None]
    assert json.loads(json.dumps(jsonable(CONFIG_VALUE)))["objectives"] == [
        "val_accuracy",
        "params",
    ]
