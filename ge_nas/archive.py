"""SQLite store of evaluations: one row per (phenotype, fidelity), committed as it completes.

A phenotype already evaluated at the same fidelity is never trained again, in
this run or in any run that shares the archive file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ge_nas.errors import ConfigError
from ge_nas.metrics import Metrics

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
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
);
"""


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
    """An open archive file; use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = str(path)
        if read_only:
            # A reader of a live run: never creates the file, never writes (may leave empty -wal/-shm files).
            if not os.path.exists(self.path):
                raise ConfigError(f"{self.path}: no archive here")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
            return
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def lookup(self, phenotype_hash: str, fidelity: str) -> Metrics | None:
        """Return the stored metrics for this phenotype and fidelity, if any."""
        row = self._db.execute(
            "SELECT metrics FROM evaluations WHERE phenotype_hash = ? AND fidelity = ?",
            (phenotype_hash, fidelity),
        ).fetchone()
        return Metrics.from_json(row[0]) if row else None

    def record(self, rec: Record) -> None:
        """Store one evaluation and commit at once (first result for a key wins)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (phenotype_hash, fidelity, phenotype, genome, status, metrics, error,"
                " worker, started, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.phenotype_hash,
                    rec.fidelity,
                    rec.phenotype,
                    json.dumps(list(rec.genome)),
                    rec.metrics.status,
                    rec.metrics.to_json(),
                    rec.metrics.error,
                    rec.worker,
                    rec.started,
                    rec.ended,
                ),
            )

    def records(self, fidelity: str | None = None) -> Iterator[Record]:
        """Yield every stored evaluation in insertion order."""
        query = "SELECT phenotype_hash, fidelity, phenotype, genome, metrics, worker, started, ended FROM evaluations"
        params: Sequence[str] = ()
        if fidelity is not None:
            query, params = query + " WHERE fidelity = ?", (fidelity,)
        for row in self._db.execute(query + " ORDER BY id", params):
            yield Record(
                row[0],
                row[1],
                row[2],
                tuple(json.loads(row[3])),
                Metrics.from_json(row[4]),
                *row[5:],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
