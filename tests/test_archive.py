"""Tests for ge_nas.archive: the SQLite store of evaluations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ge_nas.archive import Archive, Record
from ge_nas.metrics import FAILED, OK, Metrics

GOOD = Metrics(OK, 0.9, 0.85, params=1234, flops=5678, train_seconds=1.5, epochs=3)
BAD = Metrics(FAILED, error="loss became nan at epoch 1 step 1")


def rec(
    h: str = "h1",
    fidelity: str = "e8",
    metrics: Metrics = GOOD,
    genome: tuple[int, ...] = (1, 2, 3),
) -> Record:
    return Record(
        h, fidelity, f"conv({h})", genome, metrics, worker="host:1", started=10.0, ended=12.5
    )


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive(tmp_path / "a.sqlite") as a:
        yield a


def test_record_then_lookup(archive: Archive) -> None:
    archive.record(rec())
    assert archive.lookup("h1", "e8") == GOOD
    assert len(archive) == 1


def test_lookup_of_missing_is_none(archive: Archive) -> None:
    assert archive.lookup("nope", "e8") is None
    archive.record(rec())
    assert archive.lookup("h1", "e9") is None
    assert archive.lookup("h2", "e8") is None


def test_fidelities_are_kept_apart(archive: Archive) -> None:
    archive.record(rec(fidelity="e8", metrics=GOOD))
    archive.record(rec(fidelity="final", metrics=BAD))
    assert archive.lookup("h1", "e8") == GOOD
    assert archive.lookup("h1", "final") == BAD
    assert len(archive) == 2


def test_first_write_wins(archive: Archive) -> None:
    archive.record(rec(metrics=GOOD, genome=(1,)))
    archive.record(rec(metrics=BAD, genome=(2,)))
    assert archive.lookup("h1", "e8") == GOOD
    assert [r.genome for r in archive.records()] == [(1,)]
    assert len(archive) == 1


def test_records_round_trip_every_field(archive: Archive) -> None:
    original = rec(genome=(0, 99999, 7))
    archive.record(original)
    assert list(archive.records()) == [original]


def test_records_default_fields(archive: Archive) -> None:
    minimal = Record("h", "f", "relu", (), BAD)
    archive.record(minimal)
    assert list(archive.records()) == [minimal]


def test_records_in_insertion_order_and_by_fidelity(archive: Archive) -> None:
    keys = [("b", "e8"), ("a", "e8"), ("c", "final"), ("a", "final"), ("d", "e8")]
    for h, fid in keys:
        archive.record(rec(h, fid))
    assert [(r.phenotype_hash, r.fidelity) for r in archive.records()] == keys
    assert [r.phenotype_hash for r in archive.records("e8")] == ["b", "a", "d"]
    assert [r.phenotype_hash for r in archive.records("final")] == ["c", "a"]
    assert list(archive.records("other")) == []


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with Archive(path) as a:
        a.record(rec("h1"))
        a.record(rec("h2", metrics=BAD))
    with Archive(path) as b:
        assert b.lookup("h1", "e8") == GOOD
        assert b.lookup("h2", "e8") == BAD
        assert len(b) == 2
        b.record(rec("h1", metrics=BAD))  # still first write wins after reopening
        assert b.lookup("h1", "e8") == GOOD


def test_two_connections_share_results(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with Archive(path) as a, Archive(path) as b:
        a.record(rec("h1"))
        assert b.lookup("h1", "e8") == GOOD


def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    Archive(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_status_and_error_columns(archive: Archive, tmp_path: Path) -> None:
    archive.record(rec(metrics=BAD))
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        status, error, genome = db.execute(
            "SELECT status, error, genome FROM evaluations"
        ).fetchone()
    assert (status, error, genome) == (FAILED, BAD.error, "[1, 2, 3]")
