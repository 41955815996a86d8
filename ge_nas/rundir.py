"""The run directory: configuration, per-generation lines, checkpoint, front, models.

Every file is written atomically (a temporary file, then os.replace), so a run
killed at any moment leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import random
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ge_nas.config import RunConfig, load_toml, make_config
from ge_nas.errors import ConfigError
from ge_nas.metrics import Metrics, Scored

CONFIG = "config.toml"
ARCHIVE = "archive.sqlite"
CHECKPOINT = "checkpoint.json"
GENERATIONS = "generations.jsonl"
PARETO = "pareto.csv"
LOCK = "run.lock"
WRITTEN_BY = "written_by"  # the table in config.toml that records versions and the grammar hash
GRAMMAR = "grammar.bnf"  # a copy of the run's grammar, so the run stays readable when the original changes
PARETO_COLUMNS = (
    "rank",
    "val_accuracy",
    "val_loss",
    "epochs",
    "test_accuracy",
    "test_fidelity",
    "holdout_accuracy",
    "params",
    "flops",
    "latency_ms",
    "robustness",
    "ood_auroc",
    "test_ood_auroc",
    "train_seconds",
    "status",
    "on_front",
    "phenotype_hash",
    "phenotype",
    "genome",
)


def pareto_row(
    rank: int, item: Scored, final: Metrics | None, epochs: int | None, *, on_front: bool = True
) -> dict[str, Any]:
    """Return one front member as a pareto.csv row; the test accuracy is the final training's when it succeeded.

    A finalist that screening (--screen) took from off the front has on_front 0; it follows the front.
    """
    m = item.metrics
    test, fidelity = (
        (final.test_accuracy, "final")
        if final is not None and final.ok
        else (m.test_accuracy, "search")
    )
    return {
        "rank": rank,
        "val_accuracy": round(m.val_accuracy, 6),
        "val_loss": _rounded(m.val_loss, 6),
        "epochs": epochs,
        "test_accuracy": _rounded(test, 6),
        "test_fidelity": fidelity,
        # the finalist's accuracy on the held-out slice none of them trained on (it chooses best/)
        "holdout_accuracy": _rounded(final.val_accuracy, 6)
        if final is not None and final.ok
        else None,
        "params": m.params,
        "flops": m.flops,
        "latency_ms": _rounded(m.latency_ms, 4),
        "robustness": _rounded(m.robustness, 6),
        "ood_auroc": _rounded(m.ood_auroc, 6),
        # the finalist's test images against the OoD source's test part
        "test_ood_auroc": _rounded(final.test_ood_auroc, 6)
        if final is not None and final.ok
        else None,
        "train_seconds": round(m.train_seconds, 3),
        "status": m.status,
        "on_front": int(on_front),
        "phenotype_hash": item.phenotype_hash,
        "phenotype": item.phenotype,
        "genome": " ".join(map(str, item.genome)),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path so that readers see the old or the new file, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make_dir(path: Path) -> Path:
    """Create a directory (and parents), or raise ConfigError saying why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the run directory: {exc.strerror}") from None
    return path


def check_new_run_dir(path: Path) -> None:
    """Raise ConfigError unless path is free for a new run: absent, or an empty directory."""
    if (path / CONFIG).exists():
        raise ConfigError(
            f"{path}: already holds a run (config.toml exists); resume it with "
            f"`python -m ge_nas resume {path}`, or choose another --out"
        )
    check_empty_dir(path, what="is not a ge_nas run")


def check_empty_dir(path: Path, *, what: str = "", allowed: Iterable[str] = ()) -> None:
    """Raise ConfigError unless path is absent or a directory holding only allowed names.

    A directory with other files in it is someone's: ge_nas never writes into it,
    and the message says what is there.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: is a file, not a directory; choose a new directory")
    names = (
        sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
        if path.is_dir()
        else []
    )
    foreign = [n for n in names if n not in {LOCK, *allowed}]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise ConfigError(
            f"--out {path}: the directory is not empty{' and ' + what if what else ''} (it holds {shown}); "
            "ge_nas writes only into a new or empty directory: choose another --out"
        )


def create_run_dir(path: Path, config: RunConfig, grammar_text: str) -> Path:
    """Create the run directory, copy the grammar and write config.toml with what wrote it."""
    check_new_run_dir(path)
    make_dir(path)
    write_atomic(path / GRAMMAR, grammar_text)
    write_atomic(path / CONFIG, config_text(config, provenance(grammar_text)))
    return path


def provenance(grammar_text: str) -> dict[str, str]:
    """Return the versions that wrote a run and the hash of its grammar copy."""
    versions = {name: _version(name) for name in ("ge_nas", "torch", "numpy", "deap", "lark")}
    return {**versions, "python": platform.python_version(), "grammar_sha256": sha256(grammar_text)}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def sha256(text: str) -> str:
    """Return the hex SHA-256 of text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_text(config: RunConfig, written_by: Mapping[str, str]) -> str:
    """Return config.toml: every setting, then a [written_by] table (versions, grammar hash)."""
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in written_by.items())
    return config.to_toml() + f"\n[{WRITTEN_BY}]\n" + table


def read_written_by(path: Path) -> dict[str, str]:
    """Return the [written_by] table of a run's config.toml ({} for runs that predate it)."""
    table = load_toml(path / CONFIG, keep=WRITTEN_BY).get(WRITTEN_BY, {})
    return {str(k): str(v) for k, v in table.items()} if isinstance(table, dict) else {}


def checked_grammar_copy(path: Path) -> str:
    """Return the text of the run's grammar copy, or raise ConfigError when it is missing or changed."""
    copy = path / GRAMMAR
    if not copy.is_file():
        raise ConfigError(
            f"{copy} is missing: a run maps its genomes through its own copy of the grammar, "
            "so it cannot resume without it; restore the file (nothing was changed)"
        )
    text = copy.read_text(encoding="utf-8")
    recorded = read_written_by(path).get("grammar_sha256")
    if recorded and recorded != sha256(text):
        raise ConfigError(
            f"{copy} has changed since the run started (its SHA-256 differs from config.toml's "
            "[written_by] grammar_sha256); resuming would map the genomes to other networks. "
            "Restore the original, or start a new run with the new grammar (nothing was changed)"
        )
    return text


def append_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the run directory's lock; refuse if a live process holds it.

    The lock is an flock on run.lock, so the operating system releases it when
    its owner dies, even by SIGKILL: a lock left by a dead process is taken over.
    """
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(
            f"{path}: in use by {owner} (it holds {LOCK}); wait for it to finish or stop it, then resume"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass(frozen=True)
class Checkpoint:
    """The search state after a finished generation, as plain data."""

    generation: int
    genomes: list[list[int]]
    crowding: list[float]  # NSGA-II crowding distances, which parent selection reads
    rng_state: Any  # Python's random.Random state of the search
    rungs: list[int]  # fidelity rung of each individual's metrics (successive halving)
    pending: list[list[int]] = field(default_factory=list)  # steady state: bred, not yet evaluated
    elites: list[list[int]] = field(
        default_factory=list
    )  # steady state: the front of every arrival
    # steady state with successive halving (ASHA): each rung's results, and the (hash, rung) promoted
    rung_results: list[list[list[int]]] = field(default_factory=list)
    elite_rungs: list[int] = field(default_factory=list)  # the elites' rungs (none: all 0)
    promoted: list[tuple[str, int]] = field(default_factory=list)


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write checkpoint.json atomically: plain JSON, never a pickle (a run dir may come from someone else).

    Only the search's own random.Random state is kept: every evaluation seeds
    torch itself from the run seed and the phenotype, so no global RNG matters.
    """
    version, internal, gauss = checkpoint.rng_state
    record = {
        "generation": checkpoint.generation,
        # Boundary points have infinite crowding distance; strict JSON has no infinity, so null stands for it.
        "population": [
            {"genome": g, "crowding": c if math.isfinite(c) else None, "rung": r}
            for g, c, r in zip(checkpoint.genomes, checkpoint.crowding, checkpoint.rungs)
        ],
        "rng": {"python": [version, list(internal), gauss]},
        "pending": checkpoint.pending,
        "elites": checkpoint.elites,
        "rung_results": checkpoint.rung_results,
        "elite_rungs": checkpoint.elite_rungs,
        "promoted": [list(p) for p in checkpoint.promoted],
    }
    write_atomic(path / CHECKPOINT, json.dumps(record, allow_nan=False))


def read_checkpoint(path: Path) -> Checkpoint | None:
    """Read and check checkpoint.json; None if absent.

    Raises:
        ConfigError: the file is not a checkpoint ge_nas wrote (one line saying what is wrong).
    """
    if not (path / CHECKPOINT).exists():
        return None
    try:
        return _checked_checkpoint(json.loads((path / CHECKPOINT).read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path / CHECKPOINT}: unreadable checkpoint ({type(exc).__name__}: {exc}); nothing was changed"
        ) from None


def _checked_checkpoint(doc: dict[str, Any]) -> Checkpoint:
    version, internal, gauss = doc["rng"]["python"]
    population = doc["population"]
    generation = doc["generation"]
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"generation must be an integer >= 0, got {generation!r}")
    if not isinstance(population, list) or not population:
        raise ValueError("the population is empty")
    genomes = [_codons(ind["genome"]) for ind in population]
    random.Random().setstate((version, tuple(internal), gauss))  # raises on a malformed state
    return Checkpoint(
        generation,
        genomes,
        [math.inf if ind["crowding"] is None else float(ind["crowding"]) for ind in population],
        (version, tuple(internal), gauss),
        [int(ind.get("rung", 0)) for ind in population],
        pending=[_codons(g) for g in doc.get("pending", [])],
        elites=[_codons(g) for g in doc.get("elites", [])],
        rung_results=[[_codons(g) for g in rung] for rung in doc.get("rung_results", [])],
        elite_rungs=[_rung(r) for r in doc.get("elite_rungs", [])],
        promoted=[_promoted(p) for p in doc.get("promoted", [])],
    )


def _promoted(pair: Any) -> tuple[str, int]:
    key, rung = pair
    if not isinstance(key, str):
        raise ValueError(f"a promotion must be [phenotype hash, rung], got {str(pair)[:60]}")
    return key, _rung(rung)


def _rung(rung: Any) -> int:
    if type(rung) is not int or rung < 0:
        raise ValueError(f"a rung must be an integer >= 0, got {rung!r}")
    return rung


def _codons(genome: Any) -> list[int]:
    if (
        not isinstance(genome, list)
        or not genome
        or not all(type(c) is int and c >= 0 for c in genome)
    ):
        raise ValueError(
            f"a genome must be a non-empty list of integers >= 0, got {str(genome)[:60]}"
        )
    return genome


def trim_generations(path: Path, last: int) -> None:
    """Keep only generations.jsonl lines up to generation `last` (a resumed run rewrites the rest)."""
    file = path / GENERATIONS
    if not file.exists():
        return
    kept = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["generation"] <= last:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            break  # a line cut short by a kill: nothing after it is complete
    write_atomic(file, "".join(kept))


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


def front_row(run_dir: Path, rank: int) -> dict[str, str]:
    """Return the row of pareto.csv with this rank, or raise ConfigError naming the ranks there are."""
    if not (run_dir / PARETO).is_file():
        raise ConfigError(f"{run_dir}: no {PARETO} yet (the run has not finished)")
    rows = read_pareto(run_dir)
    for row in rows:
        if row.get("rank") == str(rank):
            return row
    ranks = [row.get("rank") or "?" for row in rows]
    raise ConfigError(
        f"{run_dir}: no rank {rank} on the front; ranks are {', '.join(ranks) or 'none (the front is empty)'}"
    )


def archive_path(run_dir: Path, config: RunConfig) -> Path:
    """Return the archive a run records into: --archive when given, else the run directory's own."""
    return Path(config.archive) if config.archive else run_dir / ARCHIVE


def load_run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """Return the configuration of the run in run_dir.

    Raises:
        ConfigError: run_dir is not a directory written by `ge_nas run`.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise _not_run_dir(path, "no such directory" if not path.exists() else "not a directory")
    if not (path / CONFIG).is_file():
        raise _not_run_dir(path, f"no {CONFIG}")
    return make_config(load_toml(path / CONFIG), {})


def _not_run_dir(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{path}: not a run directory ({why}); give a directory written by `ge_nas run`, e.g. runs/<grammar>-<dataset>-<time>"
    )


def read_generations(path: Path, notes: list[str]) -> list[Mapping[str, Any]]:
    """Return the lines of path's generations.jsonl, one per generation; problems become notes."""
    file = path / GENERATIONS
    if not file.is_file():
        notes.append(f"{GENERATIONS} is missing: no generation has finished")
        return []
    by_generation: dict[int, Mapping[str, Any]] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            doc = json.loads(line)
            by_generation[int(doc["generation"])] = (
                doc  # a resumed run may repeat a generation: the last wins
            )
        except (ValueError, KeyError, TypeError):
            if line.strip():
                notes.append(f"{GENERATIONS}: line {number} is unreadable (skipped)")
    return [by_generation[g] for g in sorted(by_generation)]
