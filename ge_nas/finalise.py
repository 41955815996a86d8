"""A finished search's finalists: chosen, retrained on train + validation, saved in the run directory.

Without screening the finalists are structurally different front members, most
accurate first (ge_nas.search.finalists). With `--screen M` (more than
`--finalists`), the M most accurate networks archived at the front's fidelity
that this run's grammar derives, one per structure and on the front or not,
first get one epoch of the final training; the `--finalists` best of them on
the held-out slice are retrained (front members fill in when fewer screenings
succeed). A finalist screened in from off the front gets a row after the
front's in pareto.csv (on_front 0) and a directory front/<rank> like the others.

The held-out slice then chooses best/ among the finalists. Every training is
archived under its own fidelity key, so a resumed run trains nothing twice: a
finalist is skipped when its result is archived and its weights are saved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ge_nas import rundir
from ge_nas.arch import ArchSpec
from ge_nas.archive import Record
from ge_nas.errors import ArchError
from ge_nas.fidelity import fidelity_key, rung_epochs
from ge_nas.metrics import Metrics
from ge_nas.search.evaluator import Evaluation, Evaluator, task_for
from ge_nas.search.finalists import choose_best, pick_finalists, screened, screening_candidates
from ge_nas.worker import PRUNED_FROM

SCREEN_EPOCHS = 1  # epochs of the final training that screening gives each candidate


@dataclass(frozen=True)
class Steps:
    """How finalising reports progress: a stage begins ('screening', 'finalists') with n trainings; one is done."""

    start: Callable[[str, int], None] = lambda stage, n: None
    tick: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Finalised:
    """The run's pareto.csv rows (the front, then finalists from off it) and best/'s rank."""

    rows: list[dict[str, Any]]
    best: int | None  # the finalist the held-out slice chose; None: no finalist trained
    set_aside: list[Path] = field(
        default_factory=list
    )  # front/<rank> of networks no longer at that rank


def finalise(
    front: Sequence[Evaluation],
    evaluator: Evaluator,
    out: Path,
    steps: Steps = Steps(),
) -> Finalised:
    """Choose and retrain the finalists, write pareto.csv, and copy the chosen one to best/."""
    config = evaluator.config
    finalists = choose_finalists(front, evaluator, steps)
    on_front = {e.phenotype_hash for e in front}
    ranked = list(front) + [e for e in finalists if e.phenotype_hash not in on_front]
    chosen = {e.phenotype_hash for e in finalists}
    set_aside = set_aside_stale(out / "front", [e.phenotype or "" for e in ranked])
    jobs = [(rank, e) for rank, e in enumerate(ranked, start=1) if e.phenotype_hash in chosen]
    steps.start("finalists", len(jobs))
    finals = retrain(
        [e for _, e in jobs], evaluator, config.final_epochs,
        save_dirs=[out / "front" / str(rank) for rank, _ in jobs], tick=steps.tick,
    )  # fmt: skip
    rows = [
        rundir.pareto_row(
            rank,
            e,
            finals.get(e.phenotype_hash or ""),
            rung_epochs(config, e.rung),
            on_front=e.phenotype_hash in on_front,
        )  # fmt: skip
        for rank, e in enumerate(ranked, start=1)
    ]
    rundir.write_pareto(out, rows)
    best = choose_best(
        [
            (r["rank"], finals[e.phenotype_hash or ""])
            for r, e in zip(rows, ranked)
            if e.phenotype_hash in finals
        ]
    )
    if best is not None and (out / "front" / str(best)).exists():
        shutil.copytree(out / "front" / str(best), out / "best", dirs_exist_ok=True)
    return Finalised(rows, best, set_aside)


def choose_finalists(
    front: Sequence[Evaluation], evaluator: Evaluator, steps: Steps = Steps()
) -> list[Evaluation]:
    """Return the finalists: the front's, or (with --screen) the best screened networks."""
    config = evaluator.config
    if config.screen <= config.finalists or config.finalists == 0:
        return pick_finalists(front, config.finalists)
    rung = max((e.rung for e in front if e.metrics.ok), default=0)  # the front's fidelity
    candidates = screening_candidates(evaluator.archived(rung), config.screen)
    steps.start("screening", len(candidates))
    held_out = retrain(candidates, evaluator, SCREEN_EPOCHS, tick=steps.tick)
    best = screened(candidates, held_out, config.finalists)
    return pick_finalists(
        [*best, *front], config.finalists
    )  # too few screened: the front's fill in


def retrain(
    networks: Sequence[Evaluation],
    evaluator: Evaluator,
    epochs: int,
    *,
    save_dirs: Sequence[Path] | None = None,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, Metrics]:
    """Train each network for epochs on train + validation less the held-out slice; return metrics by hash.

    With save_dirs (one per network) they are finalists, scored on the test set
    too and saved there; without, a screening: scored on the held-out slice alone
    and saved nowhere. A result already archived is reused, a finalist's only
    when its weights are saved too (a run stopped and resumed).
    """
    config, archive, executor = evaluator.config, evaluator.archive, evaluator.executor
    screen = save_dirs is None
    dirs: list[Path | None] = [None] * len(networks) if save_dirs is None else list(save_dirs)
    fidelity = fidelity_key(config, epochs=epochs, final=True, screen=screen)
    results: dict[str, Metrics] = {}
    todo = []
    for e, directory in zip(networks, dirs):
        done = archive.lookup(e.phenotype_hash or "", fidelity)
        if done is not None and (directory is None or _saved_phenotype(directory) == e.phenotype):
            results[e.phenotype_hash or ""] = done
            tick()
        else:
            todo.append((e, directory))
    tasks = [
        task_for(
            config,
            e.phenotype or "",
            e.phenotype_hash or "",
            epochs=epochs,
            threads=executor.threads,
            save_dir=None if directory is None else str(directory),
            screen=screen,
        )  # fmt: skip
        for e, directory in todo
    ]
    for index, outcome in executor.run(tasks):
        e = todo[index][0]
        archive.record(
            Record(
                e.phenotype_hash or "",
                fidelity,
                e.phenotype or "",
                e.genome,
                outcome.metrics,
                outcome.worker,
                outcome.started,
                outcome.ended,
            )  # fmt: skip
        )
        # The archive keeps the first result for a key (another run's, sharing --archive): use what
        # a resume would read.
        results[e.phenotype_hash or ""] = (
            archive.lookup(e.phenotype_hash or "", fidelity) or outcome.metrics
        )
        tick()
    return results


def set_aside_stale(front_dir: Path, phenotypes: Sequence[str]) -> list[Path]:
    """Rename front/<rank> directories whose model is not the network now at that rank; return the new names.

    A resumed run that searched further has a new front, so its ranks name other
    networks: front/3 from before would pass for the new rank 3. It becomes
    front/3.previous (or .previous-2, ...), kept, not deleted; `ensemble` and
    `export --rank` read only the digit-named directories.
    """
    moved = []
    for directory in sorted(front_dir.iterdir()) if front_dir.is_dir() else []:
        if not directory.name.isdigit():
            continue
        rank = int(directory.name)
        now = phenotypes[rank - 1] if 1 <= rank <= len(phenotypes) else None
        saved = _saved_phenotype(directory)
        if saved is not None and saved != now:
            target = directory.with_name(f"{rank}.previous")
            n = 1
            while target.exists():
                n += 1
                target = directory.with_name(f"{rank}.previous-{n}")
            moved.append(directory.rename(target))
    return moved


def _saved_phenotype(directory: Path) -> str | None:
    """Return the canonical phenotype of the model saved in directory, if there is one.

    A pruned network's is in pruned_from.json (its spec.json is the plain pruned spec).
    """
    try:
        if (directory / PRUNED_FROM).is_file():
            origin = json.loads((directory / PRUNED_FROM).read_text(encoding="utf-8"))
            phenotype = origin.get("phenotype") if isinstance(origin, dict) else None
            return str(phenotype) if phenotype and (directory / "model.pt").exists() else None
        spec = ArchSpec.from_json((directory / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, ArchError):
        return None
    return spec.canonical() if (directory / "model.pt").exists() else None
