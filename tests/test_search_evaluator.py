"""Evaluator dispatch: with several workers the costliest trainings go out first."""

from __future__ import annotations

import random
from pathlib import Path

from test_search_evolution import GRAMMAR, SyntheticExecutor

from ge_nas.arch import parse_arch
from ge_nas.archive import Archive
from ge_nas.config import RunConfig
from ge_nas.grammar import load_grammar
from ge_nas.grammar.initialise import random_population
from ge_nas.metrics import INVALID
from ge_nas.network.build import measure
from ge_nas.search.evaluator import Evaluator


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
