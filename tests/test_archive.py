"""Tests for ge_nas.archive: the SQLite store of evaluations, its signature and its claims."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ge_nas.archive import Archive, Record, check_archive, default_lease_s, owner_alive
from ge_nas.errors import ConfigError
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


# --- the file is ge_nas's own ---

OLD_SCHEMA = """CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, phenotype_hash TEXT NOT NULL, fidelity TEXT NOT NULL,
    phenotype TEXT NOT NULL, genome TEXT NOT NULL, status TEXT NOT NULL, metrics TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '', worker TEXT NOT NULL DEFAULT '', started REAL, ended REAL,
    UNIQUE (phenotype_hash, fidelity))"""  # what ge_nas wrote before archives were signed


def sqlite_file(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return path


FOREIGN = {
    "users.db": (
        ["CREATE TABLE users (name TEXT)", "INSERT INTO users VALUES ('ada')"],
        "an SQLite database with tables users",
    ),
    "blank.db": (["PRAGMA user_version = 7"], "an SQLite database with no tables"),
    "mixed.db": ([OLD_SCHEMA, "CREATE TABLE notes (x)"], "tables evaluations, notes"),
}


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_sqlite_database_is_refused_unchanged(
    tmp_path: Path, name: str, read_only: bool
) -> None:
    statements, what = FOREIGN[name]
    path = sqlite_file(tmp_path / name, *statements)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=f"{what}, not a ge_nas archive; ge_nas will not write"):
        Archive(path, read_only=read_only)
    assert path.read_bytes() == before


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"name,score\nada,1\n", "a text file"),
        (b"", "an empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a file that is not an SQLite database"),
    ],
)
def test_file_that_is_not_a_database_is_refused_unchanged(
    tmp_path: Path, content: bytes, what: str, read_only: bool
) -> None:
    path = tmp_path / "archive.sqlite"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"archive.sqlite: {what}, not a ge_nas archive"):
        Archive(path, read_only=read_only)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.sqlite"]


def test_check_archive_refuses_without_writing_and_passes_a_new_path(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("mine\n")
    with pytest.raises(ConfigError, match="a text file"):
        check_archive(text)
    check_archive(tmp_path / "new.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_new_archive_is_signed_with_format_and_creation_time(tmp_path: Path) -> None:
    Archive(tmp_path / "a.sqlite", clock=lambda: 1234.5).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite"]  # no temporary file left
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        assert db.execute("SELECT format, created FROM ge_nas_archive").fetchall() == [(1, 1234.5)]


def test_archive_of_an_older_ge_nas_is_adopted(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path / "old.sqlite",
        OLD_SCHEMA,
        "INSERT INTO evaluations (phenotype_hash, fidelity, phenotype, genome, status, metrics)"
        f" VALUES ('h1', 'e8', 'conv(h1)', '[1, 2]', 'ok', '{GOOD.to_json()}')",
    )
    with Archive(path, read_only=True) as reader:
        assert reader.lookup("h1", "e8") == GOOD
    with sqlite3.connect(path) as db:  # a reader adopts nothing
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name = 'ge_nas_archive'").fetchall()
            == []
        )
    with Archive(path) as archive:
        assert [r.genome for r in archive.records()] == [(1, 2)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT format FROM ge_nas_archive").fetchall() == [(1,)]


def test_archive_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    Archive(tmp_path / "a.sqlite").close()
    sqlite_file(tmp_path / "a.sqlite", "UPDATE ge_nas_archive SET format = 9")
    with pytest.raises(
        ConfigError, match="a ge_nas archive of format 9; this ge_nas reads format 1"
    ):
        Archive(tmp_path / "a.sqlite")


def damage(path: Path, offset: int = 100) -> None:
    """Overwrite 2 KiB of a database file from offset (100: its schema page, past the header)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes(range(256)) * 8)


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("offset", [100, 3 * 4096 + 8])  # the schema page; a page of rows
def test_damaged_archive_is_a_one_line_config_error(
    tmp_path: Path, offset: int, read_only: bool
) -> None:
    path = tmp_path / "a.sqlite"
    with Archive(path) as archive:
        for i in range(200):
            archive.record(rec(f"h{i}", genome=tuple(range(40))))
    damage(path, offset)
    with pytest.raises(ConfigError, match="a.sqlite: a damaged SQLite database") as caught:
        Archive(path, read_only=read_only)
    assert "\n" not in str(caught.value)


# --- one bad row does not break readers ---


def write_raw(path: Path, h: str, genome: str, metrics: str) -> None:
    sqlite_file(
        path,
        "INSERT INTO evaluations (phenotype_hash, fidelity, phenotype, genome, status, metrics)"
        f" VALUES ('{h}', 'e8', 'relu', '{genome}', 'ok', '{metrics}')",
    )


def test_malformed_rows_are_skipped_and_counted(archive: Archive, tmp_path: Path) -> None:
    archive.record(rec("good"))
    write_raw(tmp_path / "a.sqlite", "cut", "[1, 2]", '{"status": "ok", "val_acc')
    write_raw(tmp_path / "a.sqlite", "list", "[1, 2]", "[1]")
    write_raw(tmp_path / "a.sqlite", "genome", "[1, oops", GOOD.to_json())
    assert [r.phenotype_hash for r in archive.records()] == ["good"]
    assert archive.skipped == 3
    assert archive.lookup("cut", "e8") is None and archive.lookup("list", "e8") is None


def test_a_result_replaces_a_malformed_row(archive: Archive, tmp_path: Path) -> None:
    write_raw(tmp_path / "a.sqlite", "h1", "[1]", "{not json")
    archive.record(rec("h1"))
    assert archive.lookup("h1", "e8") == GOOD
    assert list(archive.records()) == [rec("h1")] and archive.skipped == 0


# --- claims: concurrent runs train a phenotype once ---


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dead_owner() -> str:
    """Return the owner name of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:gone"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Archive, Archive, Clock]]:
    clock = Clock()
    with (
        Archive(tmp_path / "a.sqlite", clock=clock, lease_s=60) as a,
        Archive(tmp_path / "a.sqlite", clock=clock, lease_s=60) as b,
    ):
        yield a, b, clock


KEYS = [("h1", "e8"), ("h2", "e8")]


def test_a_live_owners_claim_is_not_granted(pair: tuple[Archive, Archive, Clock]) -> None:
    a, b, clock = pair
    assert a.claim(KEYS) == set(KEYS)
    clock.now += 59
    assert b.claim(KEYS) == set()
    assert a.claim(KEYS) == set(KEYS)  # its own claims stay its own


def test_an_expired_claim_is_taken_over(pair: tuple[Archive, Archive, Clock]) -> None:
    a, b, clock = pair
    a.claim(KEYS)
    clock.now += 60
    assert b.claim(KEYS) == set(KEYS)
    assert a.claim(KEYS) == set()


def test_a_dead_owners_claim_is_taken_over_at_once(pair: tuple[Archive, Archive, Clock]) -> None:
    a, b, _ = pair
    a.owner = dead_owner()
    a.claim(KEYS)
    assert b.claim(KEYS) == set(KEYS)


def test_an_owner_on_another_host_is_alive_until_its_lease_ends() -> None:
    assert owner_alive(f"not-{socket.gethostname()}:1:x")
    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}:x")
    assert not owner_alive(dead_owner())


def test_a_result_releases_its_claim_and_renews_the_owners_others(
    pair: tuple[Archive, Archive, Clock],
) -> None:
    a, b, clock = pair
    a.claim(KEYS)
    clock.now += 50
    a.record(rec("h1"))  # h2's lease now runs to 50 + 60
    clock.now += 50
    assert b.claim(KEYS) == set()  # h1 has its result, h2 is still a's
    clock.now += 10
    assert b.claim(KEYS) == {("h2", "e8")}


def test_closing_releases_the_claims(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.sqlite") as a:
        a.claim(KEYS)
    with Archive(tmp_path / "a.sqlite") as b:
        assert b.claim(KEYS) == set(KEYS)


def test_default_lease_outlasts_an_evaluation_the_executors_allow() -> None:
    assert default_lease_s(None) == 600
    assert all(default_lease_s(t) > 2 * t + 60 for t in (1, 60, 300, 3600))
