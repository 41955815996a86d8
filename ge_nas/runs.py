"""The run directory: configuration, per-generation lines, checkpoint, front, models.

Every file is written atomically (a temporary file, then os.replace), so a run
killed at any moment leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ge_nas.config import RunConfig
from ge_nas.errors import ConfigError

CONFIG = "config.toml"
ARCHIVE = "archive.sqlite"
CHECKPOINT = "checkpoint.json"
GENERATIONS = "generations.jsonl"
PARETO = "pareto.csv"
GRAMMAR = "grammar.bnf"  # a copy of the run's grammar, so the run stays readable when the original changes
PARETO_COLUMNS = (
    "rank", "val_accuracy", "test_accuracy", "test_fidelity", "params", "flops", "train_seconds",
    "status", "phenotype_hash", "phenotype", "genome",
)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path so that readers see the old or the new file, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_run_dir(path: Path, config: RunConfig) -> Path:
    """Create the run directory, write config.toml and copy the grammar; refuse one that holds a run."""
    if (path / CONFIG).exists():
        raise ConfigError(f"{path}: already holds a run (config.toml exists); choose another --out or delete it")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the run directory: {exc.strerror}") from None
    write_atomic(path / GRAMMAR, Path(config.grammar).read_text(encoding="utf-8"))
    write_atomic(path / CONFIG, config.to_toml())
    return path


def append_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_checkpoint(path: Path, record: Mapping[str, Any]) -> None:
    """Write checkpoint.json: plain JSON, never a pickle (a run dir may come from someone else)."""
    write_atomic(path / CHECKPOINT, json.dumps(record))


def write_pareto(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write pareto.csv with the standard columns."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PARETO_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomic(path / PARETO, buffer.getvalue())


def read_pareto(path: Path) -> list[dict[str, str]]:
    """Read pareto.csv back as a list of rows."""
    with open(path / PARETO, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def jsonable(obj: Any) -> Any:
    """Return dataclasses and tuples as plain JSON values."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
