"""SQLite store of evaluations: one row per (phenotype, fidelity), committed as it completes.

A phenotype already evaluated at the same fidelity is never trained again, in
this run or in any run that shares the archive file.

The file is ge_nas's own. A `ge_nas_archive` table holds its format version and
creation time. A file that is not an archive (another program's SQLite
database, a text file, an empty file) is refused with a ConfigError before
anything is written to it; an archive written before the signature existed (an
`evaluations` table alone) is adopted; a damaged file is a one-line
ConfigError. A new archive is written beside its path and linked into place, so
the path never holds half an archive. A row whose JSON does not parse is left
out by `records()` (and counted in `skipped`) and is missing to `lookup()`.

Runs that share one file (`--archive PATH`) claim a (phenotype, fidelity)
before training it: a row of `claims` with its owner (host:pid:random token)
and the expiry of its lease, written in one transaction. A key another live
owner holds is not trained here: the evaluator waits for its result. A claim is
taken over once its lease has expired, or at once when its owner is a process
of this host that no longer exists. Writing a result releases its claim and
renews the writer's other claims; closing the archive releases them all.

The lease is max(600 s, 3 x --eval-timeout), 600 s without a timeout: longer
than the wait for any evaluation the executors let run (2 x timeout + 60 s), so
a live run that keeps finishing evaluations keeps its claims. Without
--eval-timeout, an evaluation longer than 600 s with no other result in between
may be trained a second time by a waiting run (first result wins).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ge_nas.errors import ConfigError
from ge_nas.metrics import Metrics

FORMAT = 1  # the archive layout this ge_nas writes and the newest it reads
LEASE_S = 600.0
SQLITE_HEADER = b"SQLite format 3\x00"
UNUSABLE = "ge_nas cannot use it (restore a copy, or give a path that does not exist yet)"
REFUSED = "ge_nas will not write into it (give a path that does not exist yet, or a ge_nas archive)"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phenotype_hash TEXT NOT NULL,
    fidelity TEXT NOT NULL,
    phenotype TEXT NOT NULL,
    genome TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    worker TEXT NOT NULL DEFAULT '',
    started REAL,
    ended REAL,
    UNIQUE (phenotype_hash, fidelity)
)""",
    """CREATE TABLE IF NOT EXISTS claims (
    phenotype_hash TEXT NOT NULL,
    fidelity TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (phenotype_hash, fidelity)
)""",
    "CREATE TABLE IF NOT EXISTS ge_nas_archive (format INTEGER NOT NULL, created REAL NOT NULL)",
)
EVALUATION_COLUMNS = frozenset(
    "id phenotype_hash fidelity phenotype genome status metrics error worker started ended".split()
)
COLUMNS = (
    "phenotype_hash, fidelity, phenotype, genome, status, metrics, error, worker, started, ended"
)

Key = tuple[str, str]  # (phenotype_hash, fidelity)


@dataclass(frozen=True)
class Record:
    """One archived evaluation."""

    phenotype_hash: str
    fidelity: str
    phenotype: str
    genome: tuple[int, ...]
    metrics: Metrics
    worker: str = ""
    started: float | None = None
    ended: float | None = None


class Archive:
    """An open archive file; use as a context manager or call close().

    Args:
        path: the archive file; created when it does not exist (unless read_only).
        read_only: never create, adopt or write (a reader of a live run).
        lease_s: how long a claim holds without a result of its owner.
        clock: wall-clock seconds, shared by every run on the file (time.time).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.lease_s = lease_s
        self.owner = new_owner()
        self.skipped = 0  # malformed rows the last records() left out
        self._clock = clock
        self._db = _open_reader(self.path) if read_only else _open_writer(self.path, clock)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this archive's claims, so no run waits out their lease, and close the file."""
        if not self.read_only:
            with contextlib.suppress(sqlite3.Error):  # damaged or locked: the lease frees them
                self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
        self._db.close()

    def lookup(self, phenotype_hash: str, fidelity: str) -> Metrics | None:
        """Return the stored metrics for this phenotype and fidelity; None if absent or malformed."""
        with _errors(self.path):
            row = self._db.execute(
                "SELECT metrics FROM evaluations WHERE phenotype_hash = ? AND fidelity = ?",
                (phenotype_hash, fidelity),
            ).fetchone()
        return _metrics(row[0]) if row else None

    def record(self, rec: Record) -> None:
        """Store one evaluation, release its claim and renew this archive's other claims.

        The first well-formed result for a key wins; a malformed row is replaced.
        """
        key = (rec.phenotype_hash, rec.fidelity)
        with self._transaction() as db:
            if not _has_result(db, key):
                db.execute(
                    f"INSERT OR REPLACE INTO evaluations ({COLUMNS}) VALUES ({', '.join('?' * 10)})",
                    _row_of(rec),
                )
            db.execute("DELETE FROM claims WHERE phenotype_hash = ? AND fidelity = ?", key)
            db.execute(
                "UPDATE claims SET expires = ? WHERE owner = ?",
                (self._clock() + self.lease_s, self.owner),
            )

    def claim(self, keys: Sequence[Key]) -> set[Key]:
        """Claim (phenotype_hash, fidelity) keys for training here, in one transaction.

        Returns the keys this archive now holds: those with no well-formed result and no
        live claim of another owner (unexpired, and not of a dead process of this host).
        """
        now = self._clock()
        with self._transaction() as db:
            mine = {k for k in keys if self._claimable(db, k, now)}
            db.executemany(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                [(*k, self.owner, now + self.lease_s) for k in mine],
            )
        return mine

    def _claimable(self, db: sqlite3.Connection, key: Key, now: float) -> bool:
        if _has_result(db, key):
            return False
        row = db.execute(
            "SELECT owner, expires FROM claims WHERE phenotype_hash = ? AND fidelity = ?", key
        ).fetchone()
        return row is None or row[0] == self.owner or row[1] <= now or not owner_alive(row[0])

    def records(self, fidelity: str | None = None) -> list[Record]:
        """Return every well-formed stored evaluation in insertion order; count the rest in `skipped`."""
        query = f"SELECT {COLUMNS} FROM evaluations"
        params: Sequence[str] = ()
        if fidelity is not None:
            query, params = query + " WHERE fidelity = ?", (fidelity,)
        with _errors(self.path):
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        found = [r for r in map(_record_of, rows) if r is not None]
        self.skipped = len(rows) - len(found)
        return found

    def __len__(self) -> int:
        with _errors(self.path):
            return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold SQLite's write lock for the block (BEGIN IMMEDIATE), so runs sharing the file take turns."""
        with _errors(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def default_lease_s(eval_timeout_s: float | None) -> float:
    """Return the claim lease for evaluations limited to eval_timeout_s (see the module docstring)."""
    return max(LEASE_S, 3 * eval_timeout_s) if eval_timeout_s else LEASE_S


def new_owner() -> str:
    """Return a claim owner of its own: host:pid:random token."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def owner_alive(owner: str) -> bool:
    """Return False only for an owner that is a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == 0:
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def check_archive(path: str | os.PathLike[str]) -> None:
    """Raise ConfigError unless path does not exist or holds a ge_nas archive; write nothing."""
    if os.path.lexists(path):
        _inspect(str(path))


def _open_reader(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no archive here")
    _inspect(path)
    # Never creates the file, never writes (may leave empty -wal and -shm files).
    return _connect(path, _read_only_uri(path))


def _open_writer(path: str, clock: Callable[[], float]) -> sqlite3.Connection:
    if not os.path.lexists(path):
        _create(path, clock)
    _inspect(path)  # before the first write: a file that is not an archive stays as it was
    db = _connect(path, path)
    try:
        with _errors(path):
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            _sign(db, clock())  # adopts an archive of an older ge_nas; no change to a signed one
            db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def _read_only_uri(path: str) -> str:
    # as_uri escapes the '?', '#' and '%' a path may hold
    return Path(path).absolute().as_uri() + "?mode=ro"


def _connect(path: str, target: str, what: str = "cannot open the archive") -> sqlite3.Connection:
    """Open target (a path or a file: URI) in autocommit mode: transactions are explicit."""
    with _errors(path, what):
        return sqlite3.connect(
            target, uri=target.startswith("file:"), timeout=30.0, isolation_level=None
        )


def _sign(db: sqlite3.Connection, created: float) -> None:
    for statement in SCHEMA:
        db.execute(statement)
    db.execute(
        "INSERT INTO ge_nas_archive SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM ge_nas_archive)",
        (FORMAT, created),
    )


def _create(path: str, clock: Callable[[], float]) -> None:
    """Write a new archive beside path and link it into place: path never holds half an archive."""
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    try:
        with contextlib.closing(_connect(path, tmp, "cannot create the archive")) as db:
            with _errors(path, "cannot create the archive"):
                _sign(db, clock())
        _place(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _place(tmp: str, path: str) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another run made it first: it is checked and opened like any existing file
    except OSError:  # no hard links on this file system: a rename, unless the path appeared
        if not os.path.lexists(path):
            os.replace(tmp, path)


def _inspect(path: str) -> None:
    """Raise ConfigError unless path holds a ge_nas archive this version reads (or an older one's)."""
    _check_header(path)
    db = _connect(path, _read_only_uri(path))
    try:
        with _errors(path, "cannot read the archive"):
            _check_tables(db, path)
    finally:
        db.close()


def _check_header(path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the archive: {exc.strerror}") from None
    if not head.startswith(SQLITE_HEADER):
        raise ConfigError(f"{path}: {_file_kind(head)}, not a ge_nas archive; {REFUSED}")


def _file_kind(head: bytes) -> str:
    if not head:
        return "an empty file"
    return "a text file" if b"\0" not in head else "a file that is not an SQLite database"


def _check_tables(db: sqlite3.Connection, path: str) -> None:
    tables = {
        name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    } - {"sqlite_sequence"}
    if "ge_nas_archive" in tables:
        _check_format(db, path)
    elif tables != {"evaluations"} or not EVALUATION_COLUMNS <= _columns(db, "evaluations"):
        raise ConfigError(f"{path}: {_database_kind(db, tables)}, not a ge_nas archive; {REFUSED}")
    problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        raise ConfigError(_damaged(path, problem))


def _check_format(db: sqlite3.Connection, path: str) -> None:
    row = db.execute("SELECT format FROM ge_nas_archive").fetchone()
    if row is not None and not (isinstance(row[0], int) and row[0] <= FORMAT):
        raise ConfigError(
            f"{path}: a ge_nas archive of format {row[0]}; this ge_nas reads format {FORMAT} and"
            " older (upgrade ge_nas)"
        )


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _database_kind(db: sqlite3.Connection, tables: set[str]) -> str:
    if not tables:
        return "an SQLite database with no tables"
    if tables == {"evaluations"}:
        columns = ", ".join(sorted(_columns(db, "evaluations")))
        return f"an SQLite database whose evaluations table has columns {columns}"
    names = sorted(tables)
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"an SQLite database with tables {', '.join(names[:5])}{more}"


@contextlib.contextmanager
def _errors(path: str, what: str = "cannot use the archive") -> Iterator[None]:
    """Turn SQLite's errors into a one-line ConfigError that names the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if type(exc) is sqlite3.DatabaseError:  # not a database, or a malformed one
            raise ConfigError(_damaged(path, str(exc))) from None
        raise ConfigError(f"{path}: {what} ({' '.join(str(exc).split())})") from None


def _damaged(path: str, detail: str) -> str:
    detail = " ".join(detail.replace("*** in database main ***", "").split())
    return f"{path}: a damaged SQLite database ({detail}); {UNUSABLE}"


def _has_result(db: sqlite3.Connection, key: Key) -> bool:
    row = db.execute(
        "SELECT metrics, genome FROM evaluations WHERE phenotype_hash = ? AND fidelity = ?", key
    ).fetchone()
    return row is not None and _metrics(row[0]) is not None and _genome(row[1]) is not None


def _metrics(text: Any) -> Metrics | None:
    """Return the metrics a row holds, or None when they are not a JSON object."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):  # TypeError: a BLOB or a number where the text should be
        return None
    return Metrics.from_json(text) if isinstance(doc, dict) and "status" in doc else None


def _genome(text: Any) -> tuple[int, ...] | None:
    """Return the genome a row holds, or None when it is not a JSON list of integers."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return None
    ok = isinstance(doc, list) and all(isinstance(c, int) for c in doc)
    return tuple(doc) if ok else None


def _record_of(row: Sequence[Any]) -> Record | None:
    metrics, genome = _metrics(row[5]), _genome(row[3])
    if metrics is None or genome is None:
        return None
    return Record(row[0], row[1], row[2], genome, metrics, *row[7:])


def _row_of(rec: Record) -> tuple[Any, ...]:
    m, genome = rec.metrics, json.dumps(list(rec.genome))
    head = (rec.phenotype_hash, rec.fidelity, rec.phenotype, genome, m.status, m.to_json())
    return (*head, m.error, rec.worker, rec.started, rec.ended)
