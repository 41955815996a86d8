"""Evaluator dispatch: the costliest trainings go out first; runs sharing an archive train a phenotype once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_archive import dead_owner
from test_search_evolution import GRAMMAR, SyntheticExecutor, synthetic_metrics

from ge_nas.arch import parse_arch
from ge_nas.archive import Archive
from ge_nas.config import RunConfig
from ge_nas.grammar import load_grammar
from ge_nas.grammar.initialise import random_population
from ge_nas.metrics import INVALID
from ge_nas.network.build import measure
from ge_nas.search.evaluator import Evaluation, Evaluator
from ge_nas.worker import EvalTask, Outcome


def dispatch(
    tmp_path: Path, workers: int, config: RunConfig | None = None
) -> tuple[list[str], list[str]]:
    """Return the phenotypes in the order the executor got them, and in the population's order."""
    grammar = load_grammar(GRAMMAR)
    executor = SyntheticExecutor()
    executor.workers = workers
    genomes = random_population(grammar, random.Random(4), 12, codon_size=1000)
    with Archive(tmp_path / "a.sqlite") as archive:
        evaluations = Evaluator(grammar, config or RunConfig(GRAMMAR), archive, executor).evaluate(
            genomes
        )
    population = list(dict.fromkeys(e.phenotype for e in evaluations if e.phenotype))
    return [t.phenotype for t in executor.tasks], population


def flops(phenotype: str) -> int:
    return measure(parse_arch(phenotype), (1, 8, 8), 10).flops


def test_several_workers_get_the_largest_flops_first(tmp_path: Path) -> None:
    sent, population = dispatch(tmp_path, workers=2)
    costs = [flops(p) for p in sent]
    assert (
        sorted(sent) == sorted(population) and len(set(costs)) > 3
    )  # the costs differ, so the order means something
    assert costs == sorted(costs, reverse=True)


def test_one_worker_takes_tasks_in_population_order(tmp_path: Path) -> None:
    sent, population = dispatch(tmp_path, workers=1)
    assert sent == population
    assert [flops(p) for p in sent] != sorted(
        map(flops, sent), reverse=True
    )  # so the test above sees a real reordering


def test_no_cost_estimate_leaves_the_order_and_sends_every_task(tmp_path: Path) -> None:
    # the data is not on this machine (it may live on Dask workers only): the hint is skipped, nothing fails here
    sent, population = dispatch(
        tmp_path, workers=2, config=RunConfig(GRAMMAR, dataset=f"npz:{tmp_path / 'absent.npz'}")
    )
    assert sent == population


# --- runs sharing one archive train each phenotype once ---


class SlowExecutor(SyntheticExecutor):
    """A synthetic executor that takes a while over each task."""

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        for index, outcome in super().run(tasks):
            time.sleep(0.05)
            yield index, outcome


def shared_run(
    path: Path, genomes: list[list[int]], executor: SyntheticExecutor, start: threading.Barrier
) -> list[Evaluation]:
    """Evaluate genomes on the archive at path once every run is ready (the body of a thread)."""
    grammar = load_grammar(GRAMMAR)
    with Archive(path) as archive:
        evaluator = Evaluator(grammar, RunConfig(GRAMMAR), archive, executor, poll_s=0.01)
        start.wait()
        return evaluator.evaluate(genomes)


def test_two_runs_on_one_archive_train_each_phenotype_once(tmp_path: Path) -> None:
    genomes = random_population(load_grammar(GRAMMAR), random.Random(4), 16, codon_size=1000)
    slow, fast = SlowExecutor(), SyntheticExecutor()
    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(shared_run, tmp_path / "a.sqlite", genomes[:12], slow, start)
        b = pool.submit(shared_run, tmp_path / "a.sqlite", genomes[4:], fast, start)
        evaluations = a.result() + b.result()
    trained = [t.phenotype for t in slow.tasks + fast.tasks]
    wanted = {e.phenotype for e in evaluations if e.phenotype}
    assert sorted(trained) == sorted(wanted) and len(wanted) > 8
    assert all(e.metrics == synthetic_metrics(e.phenotype) for e in evaluations if e.phenotype)


class Clock:
    """A wall clock that moves only when the evaluator sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


def claimed_elsewhere(
    tmp_path: Path, clock: Clock, owner: str | None = None
) -> tuple[Archive, list[list[int]]]:
    """Return another run's archive holding claims on every phenotype of some genomes."""
    grammar, config = load_grammar(GRAMMAR), RunConfig(GRAMMAR)
    genomes = random_population(grammar, random.Random(4), 6, codon_size=1000)
    with Archive(tmp_path / "probe.sqlite") as probe_archive:  # learn the phenotypes' keys
        probe = Evaluator(grammar, config, probe_archive, SyntheticExecutor())
        keys = {(e.phenotype_hash, probe.fidelity()) for e in probe.evaluate(genomes)}
    other = Archive(tmp_path / "a.sqlite", clock=clock, lease_s=30)
    other.owner = owner or other.owner
    assert len(other.claim([(h, f) for h, f in keys if h])) > 2
    return other, genomes


def evaluate_beside(
    tmp_path: Path, clock: Clock, genomes: list[list[int]], sleep: Callable[[float], None]
) -> tuple[list[Evaluation], SyntheticExecutor]:
    executor = SyntheticExecutor()
    with Archive(tmp_path / "a.sqlite", clock=clock, lease_s=30) as mine:
        evaluator = Evaluator(
            load_grammar(GRAMMAR), RunConfig(GRAMMAR), mine, executor, poll_s=1.0, sleep=sleep
        )
        return evaluator.evaluate(genomes), executor


def test_an_expired_claim_is_trained_here(tmp_path: Path) -> None:
    clock = Clock()
    other, genomes = claimed_elsewhere(tmp_path, clock)
    evaluations, executor = evaluate_beside(tmp_path, clock, genomes, clock.sleep)
    other.close()
    assert executor.tasks and clock.sleeps == 30  # the lease ran out, then the phenotypes went out
    assert {t.phenotype for t in executor.tasks} == {
        e.phenotype for e in evaluations if e.phenotype
    }


def test_a_dead_owners_claim_is_trained_here_at_once(tmp_path: Path) -> None:
    clock = Clock()
    other, genomes = claimed_elsewhere(tmp_path, clock, owner=dead_owner())
    evaluations, executor = evaluate_beside(tmp_path, clock, genomes, clock.sleep)
    other.close()
    assert executor.tasks and clock.sleeps == 0
    assert {t.phenotype for t in executor.tasks} == {
        e.phenotype for e in evaluations if e.phenotype
    }


def test_a_phenotype_another_run_is_training_is_waited_for(tmp_path: Path) -> None:
    clock = Clock()
    other, genomes = claimed_elsewhere(tmp_path, clock)

    def other_finishes(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.sleeps == 3:
            Evaluator(
                load_grammar(GRAMMAR), RunConfig(GRAMMAR), other, SyntheticExecutor()
            ).evaluate(genomes)

    evaluations, executor = evaluate_beside(tmp_path, clock, genomes, other_finishes)
    other.close()
    assert executor.tasks == [] and clock.sleeps == 3
    assert all(e.cached and e.metrics.ok for e in evaluations if e.phenotype)


def test_unparsable_phenotype_is_archived_with_the_grammar_line_that_wrote_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bogus.bnf"
    path.write_text('<net> ::= <layer> "| opt=adam"\n<layer> ::= conv(8,3) relu | bogus(8)\n')
    grammar = load_grammar(path)
    with Archive(tmp_path / "a.sqlite") as archive:
        evaluator = Evaluator(grammar, RunConfig(str(path)), archive, SyntheticExecutor())
        evaluations = evaluator.evaluate([[0, 1], [0, 0]])
        invalid = [r for r in archive.records() if r.metrics.status == INVALID]
    assert [r.phenotype for r in invalid] == ["bogus(8) | opt=adam"]
    assert invalid[0].metrics.error.splitlines()[0] == (
        f"unknown layer 'bogus' ({path}:2: <layer> ::= bogus(8))"
    )
    assert invalid[0].metrics == evaluations[0].metrics and evaluations[1].metrics.ok
