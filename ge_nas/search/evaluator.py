"""Genomes -> Evaluations: map through the grammar, reuse archived phenotypes, train the rest.

Two genomes with one phenotype train once; a phenotype already in the archive
at the same fidelity is not trained again, in this run or another that shares
the archive. New phenotypes go to the executor as plain-data tasks and are
recorded in the archive as each completes. With several workers, the tasks
go out largest FLOPs first (longest processing time first), so the slowest
trainings do not start last and leave the other workers idle at the end.

Runs that share an archive claim each phenotype before training it (see
ge_nas.archive): a phenotype another live run has claimed is not sent to the
executor here; its result is taken from the archive once it appears (polled
every `poll_s`), or the phenotype is trained here when the claim lapses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ge_nas.arch import parse_arch
from ge_nas.arch.spec import text_hash
from ge_nas.archive import Archive, Record
from ge_nas.config import RunConfig
from ge_nas.data import run_splits
from ge_nas.errors import ArchError
from ge_nas.executors import Executor
from ge_nas.fidelity import backbone_digest, fidelity_key, rung_epochs
from ge_nas.grammar import Grammar, explain_arch_error
from ge_nas.grammar.mapper import Derivation
from ge_nas.grammar.representation import Representation
from ge_nas.metrics import INVALID, Metrics
from ge_nas.network.build import measure
from ge_nas.worker import EvalTask, Outcome, derive_seed

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a run waiting for another run's training looks into the archive

# a genome's mapping: (genome, derivation, canonical phenotype, its hash, the metrics if invalid)
Mapped = tuple[tuple[int, ...], Derivation, str | None, str | None, Metrics | None]


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


@dataclass(frozen=True)
class _Batch:
    """One evaluate() call: its mapped genomes, the genomes that reached each new phenotype, the results."""

    mapped: list[Mapped]
    pending: dict[str, list[int]]  # phenotype hash -> indices of the genomes that reached it
    done: dict[int, Evaluation]  # genome index -> its evaluation, filled in as results arrive
    rung: int
    fidelity: str

    def phenotype(self, key: str) -> str:
        """Return the canonical text of the phenotype with this hash."""
        return self.mapped[self.pending[key][0]][2] or ""

    def finish(self, key: str, metrics: Metrics, *, trained: bool) -> Evaluation:
        """Give a phenotype's metrics to every genome that reached it; return the first's evaluation.

        Only the first genome's evaluation counts as trained, and only when this run trained it.
        """
        for n, i in enumerate(self.pending[key]):
            genome, derivation = self.mapped[i][:2]
            cached = n > 0 or not trained
            self.done[i] = Evaluation(
                genome, derivation, self.phenotype(key), key, metrics, cached=cached, rung=self.rung
            )
        return self.done[self.pending[key][0]]


@dataclass
class _Flight:
    """The phenotypes a steady-state search has sent to train, by rung, and the genomes waiting on each."""

    fidelity: Callable[[int], str]  # a rung's archive key
    waiting: dict[tuple[str, int], list[Mapped]] = field(default_factory=dict)  # first was sent
    order: list[tuple[str, int]] = field(default_factory=list)  # task index -> (hash, rung)

    def join(self, mapped: Mapped, rung: int) -> bool:
        """Add a genome to its phenotype's waiting list; True when it is the first (to be sent)."""
        job = (mapped[3] or "", rung)
        first = job not in self.waiting
        self.waiting.setdefault(job, []).append(mapped)
        if first:
            self.order.append(job)
        return first

    def drop(self, job: tuple[str, int]) -> None:
        """Forget a phenotype that will not be trained here."""
        del self.waiting[job]
        self.order.pop()

    def finish(self, job: tuple[str, int], metrics: Metrics) -> list[Evaluation]:
        """Return the evaluations of every genome that waited on a phenotype (the first trained it)."""
        key, rung = job
        return [
            Evaluation(genome, derivation, phenotype, key, metrics, cached=n > 0, rung=rung)
            for n, (genome, derivation, phenotype, _, _) in enumerate(self.waiting.pop(job))
        ]


@dataclass
class Evaluator:
    """Map genomes, reuse archived phenotypes, and train the rest on an executor."""

    grammar: Grammar
    config: RunConfig
    archive: Archive
    executor: Executor
    on_result: Callable[[Evaluation], None] = lambda e: None
    on_start: Callable[[int], None] = lambda n: None
    poll_s: float = POLL_S
    sleep: Callable[[float], None] = time.sleep

    def fidelity(self, rung: int = 0) -> str:
        """Return the archive key of a rung's training budget."""
        return fidelity_key(self.config, epochs=rung_epochs(self.config, rung))

    def evaluate(self, genomes: Sequence[Sequence[int]], rung: int = 0) -> list[Evaluation]:
        """Return one Evaluation per genome at a rung, training each new phenotype once."""
        pending: dict[str, list[int]] = {}
        done: dict[int, Evaluation] = {}
        mapped = [self._map(g) for g in genomes]
        for i, (genome, derivation, phenotype, key, _) in enumerate(mapped):
            if key is None:
                done[i] = self._invalid(mapped[i], rung)
            elif (
                hit := self.archive.lookup(key, self.fidelity(rung))
            ) is not None and key not in pending:
                done[i] = Evaluation(
                    genome, derivation, phenotype, key, hit, cached=True, rung=rung
                )
            else:
                pending.setdefault(key, []).append(i)
        self._train(_Batch(mapped, pending, done, rung, self.fidelity(rung)))
        return [done[i] for i in range(len(genomes))]

    def archived(self, rung: int = 0) -> list[Evaluation]:
        """Return the archive's trained phenotypes at a rung that this run derives, in archive order.

        A record counts when its genome maps, through this run's grammar and
        representation, to its phenotype: a shared archive (--archive) holds other
        runs' networks too, and only those this search space can produce are returned.
        """
        found = []
        for rec in self.archive.records(self.fidelity(rung)):
            if not rec.metrics.ok:
                continue
            genome, derivation, phenotype, key, _ = self._map(rec.genome)
            if key == rec.phenotype_hash:
                found.append(
                    Evaluation(
                        genome, derivation, phenotype, key, rec.metrics, cached=True, rung=rung
                    )
                )
        return found

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

    def stream(
        self,
        breed: Callable[[], tuple[Sequence[int], int] | None],
        admit: Callable[[Evaluation], None],
    ) -> None:
        """Steady state: keep every worker busy with the next (genome, rung) breed() gives, until it gives None.

        Each genome's Evaluation goes to admit() as soon as it is known: at once
        for an invalid or archived phenotype (then breed() is asked again), when
        its training ends otherwise. A genome whose phenotype is in training
        here at that rung waits for that result; one that another run has
        claimed is dropped (that run trains it; a later genome may find it
        archived). The rung sets the training budget (successive halving).
        """
        flight = _Flight(self.fidelity)

        def tasks() -> Iterator[EvalTask]:
            while (job := breed()) is not None:
                genome, rung = job
                mapped = self._map(genome)
                key = mapped[3] or ""
                if (known := self._known(mapped, rung, flight)) is not None:
                    admit(known)
                elif flight.join(mapped, rung) and self.archive.claim([(key, self.fidelity(rung))]):
                    yield self._task(mapped[2] or "", key, rung_epochs(self.config, rung))
                elif len(flight.waiting.get((key, rung), ())) == 1:
                    flight.drop((key, rung))  # another run's: it trains it

        for index, outcome in self.executor.run(tasks()):
            job = flight.order[index]
            self._record(flight, job, outcome)
            evaluations = flight.finish(job, outcome.metrics)
            for evaluation in evaluations:
                admit(evaluation)
            self.on_result(evaluations[0])

    def _known(self, mapped: Mapped, rung: int, flight: _Flight) -> Evaluation | None:
        """Return the evaluation of an invalid or archived phenotype; None when it needs training."""
        genome, derivation, phenotype, key, _ = mapped
        if key is None:
            return self._invalid(mapped, rung)
        if (key, rung) in flight.waiting:
            return None
        hit = self.archive.lookup(key, self.fidelity(rung))
        return (
            None
            if hit is None
            else Evaluation(genome, derivation, phenotype, key, hit, cached=True, rung=rung)
        )

    def _record(self, flight: _Flight, job: tuple[str, int], outcome: Outcome) -> None:
        genome, _, phenotype, _, _ = flight.waiting[job][0]
        key, rung = job
        record = Record(key, self.fidelity(rung), phenotype or "", genome, outcome.metrics,
                        outcome.worker, outcome.started, outcome.ended)  # fmt: skip
        self.archive.record(record)

    @property
    def representation(self) -> Representation:
        """Return the run's representation (how a genome maps)."""
        return representation_for(self.grammar, self.config)

    def _map(self, genome: Sequence[int]) -> Mapped:
        derivation = self.representation.map(genome)
        if derivation.phenotype is None:
            invalid = Metrics(INVALID, error=derivation.reason, reason=derivation.reason)
            return tuple(genome), derivation, None, None, invalid
        try:
            spec = parse_arch(derivation.phenotype)
        except ArchError as exc:
            return tuple(genome), derivation, None, None, self._unparsed(exc, derivation.phenotype)
        return tuple(genome), derivation, spec.canonical(), spec.hash(), None

    def _unparsed(self, exc: ArchError, phenotype: str) -> Metrics:
        """Return the metrics of a phenotype that did not parse: the grammar line to fix, then the detail."""
        explained = explain_arch_error(self.grammar, exc, phenotype)
        return Metrics(INVALID, error=f"{explained}\n{exc}", reason=exc.reason)

    def _invalid(self, mapped: Mapped, rung: int) -> Evaluation:
        """Return an invalid genome's Evaluation; log it, and archive its phenotype text if it has one."""
        genome, derivation, _, _, metrics = mapped
        e = Evaluation(genome, derivation, None, None, metrics or Metrics(INVALID), rung=rung)
        log.debug("invalid: %s", e.metrics.error.split("\n")[0])
        text = derivation.phenotype
        if text is not None:  # a mapping failure has no text to key it by
            self.archive.record(
                Record(text_hash(text), self.fidelity(rung), text, genome, e.metrics)
            )
        return e

    def _train(self, batch: _Batch) -> None:
        """Train the phenotypes this run can claim; wait for those another run is training."""
        self.on_start(len(batch.pending))
        waiting = list(batch.pending)
        while waiting:
            mine = {k for k, _ in self.archive.claim([(k, batch.fidelity) for k in waiting])}
            self._send([k for k in waiting if k in mine], batch)
            waiting = self._collect([k for k in waiting if k not in mine], batch)
            if waiting:
                self.sleep(self.poll_s)

    def _send(self, keys: list[str], batch: _Batch) -> None:
        """Train keys on the executor and archive each result as it arrives."""
        if not keys:
            return  # every phenotype is another run's: start no worker
        if (
            self.executor.workers > 1
            and len(keys) > self.executor.workers
            and (shape := self.data_shape()) is not None
        ):
            keys.sort(key=lambda k: -flops_hint(batch.phenotype(k), *shape))
        epochs = rung_epochs(self.config, batch.rung)
        tasks = [self._task(batch.phenotype(k), k, epochs) for k in keys]
        for index, outcome in self.executor.run(tasks):
            key = keys[index]
            genome = batch.mapped[batch.pending[key][0]][0]
            self.archive.record(
                Record(
                    key,
                    batch.fidelity,
                    batch.phenotype(key),
                    genome,
                    outcome.metrics,
                    outcome.worker,
                    outcome.started,
                    outcome.ended,
                )
            )
            self.on_result(batch.finish(key, outcome.metrics, trained=True))

    def _collect(self, keys: list[str], batch: _Batch) -> list[str]:
        """Take the results other runs have archived for keys; return the keys still missing."""
        missing = []
        for key in keys:
            hit = self.archive.lookup(key, batch.fidelity)
            if hit is None:
                missing.append(key)
            else:
                self.on_result(batch.finish(key, hit, trained=False))
        return missing

    def data_shape(self) -> tuple[tuple[int, int, int], int] | None:
        """Return (input shape, classes) of the run's data, or None when this process cannot load it."""
        c = self.config
        try:
            splits = run_splits(c)  # cached: loaded at start
        except Exception:  # the data may live on Dask workers only: no cost hint, the order stays
            return None
        return splits.input_shape, splits.num_classes

    def _task(self, phenotype: str, key: str, epochs: int) -> EvalTask:
        return task_for(self.config, phenotype, key, epochs=epochs, threads=self.executor.threads)


def representation_for(grammar: Grammar, config: RunConfig) -> Representation:
    """Return the run's representation: how its genomes map, start and vary."""
    return Representation(
        config.representation, grammar, config.max_depth, config.max_wraps,
        config.codon_size, config.mutation_prob, config.crossover,
    )  # fmt: skip


def task_for(
    config: RunConfig,
    phenotype: str,
    key: str,
    *,
    epochs: int,
    threads: int,
    save_dir: str | None = None,
    screen: bool = False,
) -> EvalTask:
    """Return the task that trains a phenotype under a run's settings.

    With save_dir it is a finalist's: trained on train + validation, scored on the test set, saved there,
    with no time limit or budget check and without the search's optional objectives (with --ood it
    reports the test images' OoD AUROC instead of the validation images'). With screen it is a
    finalist candidate's screening: trained as a finalist, saved nowhere, and scored on the
    held-out slice alone (no test images, no OoD images).
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
        classes=c.classes,
        shots=c.shots,
        val_shots=c.val_shots,
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
        ood=c.ood,
        ood_score=c.ood_score,
        score_test=c.test_in_search,
        backbone=c.backbone,
        backbone_digest=backbone_digest(c.backbone) if c.backbone else "",
        prune_base=c.prune_base,
        prune_base_sha=c.prune_base_sha,
        freeze_trunk=c.freeze_trunk,
    )
    if save_dir is None and not screen:
        return task
    final = replace(
        task,
        train_subset=None,
        timeout_s=None,
        max_params=0,
        max_flops=0,
        final=True,
        holdout=c.final_holdout,
        save_dir=save_dir,
        measure_latency=False,
        measure_robustness=False,
        score_test=not screen,
    )
    return replace(final, ood=None) if screen else final


def flops_hint(phenotype: str, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Return a phenotype's FLOPs per sample, counted on the meta device, as a cost hint; 0 when it cannot be built."""
    try:
        return measure(parse_arch(phenotype), input_shape, num_classes).flops
    except Exception:  # only a hint: whatever fails here fails (fast, as a status) on the worker
        return 0
