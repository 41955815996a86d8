"""Genomes -> Evaluations: map through the grammar, reuse archived phenotypes, train the rest.

Two genomes with one phenotype train once; a phenotype already in the archive
at the same fidelity is not trained again, in this run or another that shares
the archive. New phenotypes go to the executor as plain-data tasks and are
recorded in the archive as each completes. With several workers, the tasks
go out largest FLOPs first (longest processing time first), so the slowest
trainings do not start last and leave the other workers idle at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ge_nas.arch import parse_arch
from ge_nas.arch.spec import text_hash
from ge_nas.archive import Archive, Record
from ge_nas.config import RunConfig
from ge_nas.data import load_splits
from ge_nas.errors import ArchError
from ge_nas.executors import Executor
from ge_nas.fidelity import fidelity_key, rung_epochs
from ge_nas.grammar import Grammar, explain_arch_error
from ge_nas.grammar.mapper import Derivation, map_genome
from ge_nas.metrics import INVALID, Metrics
from ge_nas.network.build import measure
from ge_nas.worker import EvalTask, derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """One genome's mapping and the metrics of its phenotype."""

    genome: tuple[int, ...]
    derivation: Derivation
    phenotype: str | None  # canonical text; None when the genome or phenotype is invalid
    phenotype_hash: str | None
    metrics: Metrics
    cached: bool = False
    rung: int = 0  # fidelity rung of the metrics (successive halving); 0 without it

    def with_genome(self, genome: tuple[int, ...], derivation: Derivation) -> Evaluation:
        """Return this phenotype's evaluation as reached by another genome."""
        return replace(self, genome=genome, derivation=derivation)


@dataclass
class Evaluator:
    """Map genomes, reuse archived phenotypes, and train the rest on an executor."""

    grammar: Grammar
    config: RunConfig
    archive: Archive
    executor: Executor
    on_result: Callable[[Evaluation], None] = lambda e: None
    on_start: Callable[[int], None] = lambda n: None

    def fidelity(self, rung: int = 0) -> str:
        """Return the archive key of a rung's training budget."""
        return fidelity_key(self.config, epochs=rung_epochs(self.config, rung))

    def evaluate(self, genomes: Sequence[Sequence[int]], rung: int = 0) -> list[Evaluation]:
        """Return one Evaluation per genome at a rung, training each new phenotype once."""
        pending: dict[str, list[int]] = {}
        done: dict[int, Evaluation] = {}
        mapped = [self._map(g, rung) for g in genomes]
        for i, item in enumerate(mapped):
            if isinstance(item, Evaluation):
                done[i] = item
                self._record_invalid(item)
                continue
            genome, derivation, phenotype, key = item
            hit = None if key in pending else self.archive.lookup(key, self.fidelity(rung))
            if hit is not None:
                done[i] = Evaluation(
                    genome, derivation, phenotype, key, hit, cached=True, rung=rung
                )
            else:
                pending.setdefault(key, []).append(i)
        self._train(pending, mapped, done, rung)
        return [done[i] for i in range(len(genomes))]

    def upgrade(self, evaluations: Sequence[Evaluation], rung: int) -> list[Evaluation]:
        """Return evaluations with those archived at a higher rung replaced (for resume)."""
        result = list(evaluations)
        for i, e in enumerate(result):
            hit = (
                self.archive.lookup(e.phenotype_hash, self.fidelity(rung))
                if e.phenotype_hash
                else None
            )
            if hit is not None:
                result[i] = replace(e, metrics=hit, cached=True, rung=rung)
        return result

    def _map(
        self, genome: Sequence[int], rung: int
    ) -> tuple[tuple[int, ...], Derivation, str, str] | Evaluation:
        """Return genome, derivation, canonical phenotype and its hash; or the invalid Evaluation."""
        derivation = map_genome(
            self.grammar, genome, max_wraps=self.config.max_wraps, max_depth=self.config.max_depth
        )
        if derivation.phenotype is None:
            invalid = Metrics(INVALID, error=derivation.reason, reason=derivation.reason)
            return Evaluation(tuple(genome), derivation, None, None, invalid, rung=rung)
        try:
            spec = parse_arch(derivation.phenotype)
        except ArchError as exc:
            invalid = self._unparsed(exc, derivation.phenotype)
            return Evaluation(tuple(genome), derivation, None, None, invalid, rung=rung)
        return tuple(genome), derivation, spec.canonical(), spec.hash()

    def _unparsed(self, exc: ArchError, phenotype: str) -> Metrics:
        """Return the metrics of a phenotype that did not parse: the grammar line to fix, then the detail."""
        explained = explain_arch_error(self.grammar, exc, phenotype)
        return Metrics(INVALID, error=f"{explained}\n{exc}", reason=exc.reason)

    def _record_invalid(self, e: Evaluation) -> None:
        """Log an invalid individual; archive its phenotype, keyed by its text (a mapping failure has none)."""
        log.debug("invalid: %s", e.metrics.error.split("\n")[0])
        text = e.derivation.phenotype
        if text is not None:
            fidelity = self.fidelity(e.rung)
            self.archive.record(Record(text_hash(text), fidelity, text, e.genome, e.metrics))

    def _train(
        self,
        pending: dict[str, list[int]],
        mapped: list[Any],
        done: dict[int, Evaluation],
        rung: int,
    ) -> None:
        keys = list(pending)
        if (
            self.executor.workers > 1
            and len(keys) > self.executor.workers
            and (shape := self._data_shape()) is not None
        ):
            keys.sort(key=lambda k: -flops_hint(mapped[pending[k][0]][2], *shape))
        tasks = [
            self._task(mapped[pending[k][0]][2], k, rung_epochs(self.config, rung)) for k in keys
        ]
        self.on_start(len(tasks))
        for index, outcome in self.executor.run(tasks):
            key = keys[index]
            first = pending[key][0]
            genome, derivation, phenotype = mapped[first][:3]
            record = Record(
                key,
                self.fidelity(rung),
                phenotype,
                genome,
                outcome.metrics,
                outcome.worker,
                outcome.started,
                outcome.ended,
            )
            self.archive.record(record)
            for n, i in enumerate(pending[key]):
                g, d = mapped[i][:2]
                done[i] = Evaluation(g, d, phenotype, key, outcome.metrics, cached=n > 0, rung=rung)
            self.on_result(done[first])

    def _data_shape(self) -> tuple[tuple[int, int, int], int] | None:
        """Return (input shape, classes) of the run's data, or None when this process cannot load it."""
        c = self.config
        try:
            splits = load_splits(
                c.dataset, c.data_dir, c.val_fraction, c.split_seed, c.train_subset
            )  # cached: loaded at start
        except Exception:  # the data may live on Dask workers only: no cost hint, the order stays
            return None
        return splits.input_shape, splits.num_classes

    def _task(self, phenotype: str, key: str, epochs: int) -> EvalTask:
        return task_for(self.config, phenotype, key, epochs=epochs, threads=self.executor.threads)


def task_for(
    config: RunConfig,
    phenotype: str,
    key: str,
    *,
    epochs: int,
    threads: int,
    save_dir: str | None = None,
) -> EvalTask:
    """Return the task that trains a phenotype under a run's settings.

    With save_dir it is a finalist's: trained on train + validation, scored on the test set, saved there,
    with no time limit or budget check and without the search's optional objectives.
    """
    c = config
    task = EvalTask(
        phenotype,
        derive_seed(c.seed, key),
        dataset=c.dataset,
        data_dir=c.data_dir,
        val_fraction=c.val_fraction,
        split_seed=c.split_seed,
        train_subset=c.train_subset,
        epochs=epochs,
        timeout_s=c.eval_timeout_s,
        max_params=c.max_params,
        max_flops=c.max_flops,
        threads=threads,
        device=c.device,
        bf16=c.bf16,
        measure_latency="latency" in c.objectives,
        measure_robustness="robustness" in c.objectives,
        noise_sigma=c.noise_sigma,
        score_test=c.test_in_search,
    )
    if save_dir is None:
        return task
    return replace(
        task,
        train_subset=None,
        timeout_s=None,
        max_params=None,
        max_flops=None,
        final=True,
        save_dir=save_dir,
        measure_latency=False,
        measure_robustness=False,
        score_test=True,
    )


def flops_hint(phenotype: str, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Return a phenotype's FLOPs per sample, counted on the meta device, as a cost hint; 0 when it cannot be built."""
    try:
        return measure(parse_arch(phenotype), input_shape, num_classes).flops
    except Exception:  # only a hint: whatever fails here fails (fast, as a status) on the worker
        return 0
