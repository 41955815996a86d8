"""Asynchronous steady-state search: a worker that finishes gets the next child at once.

There is no generational barrier. Each arrival joins the population and, once
it holds μ, NSGA-II survival [Deb2002] over the μ + 1 (or accuracy, for a single
objective) drops one: a (μ + 1) steady-state NSGA-II. Parents are drawn by
crowded binary tournaments on NSGA-II rank and crowding over the population
(or by tournaments on accuracy), two at a time, and their two children wait in
a queue for free workers. The non-dominated networks of every arrival are kept
apart (the elites), so a front wider than μ is not lost.

Aging survival (the population is the last μ arrivals, as in regularized
evolution [Real2019]) was measured on the synthetic objective of
tests/test_search_evolution.py: hypervolume 3.12 against 3.85 for NSGA-II
survival (GE, 5 seeds; random search 2.9), so survival is NSGA-II's.

A run breeds μ × (generations + 1) genomes, as a generational run of the same
settings does; every μ arrivals make one line of generations.jsonl and one
checkpoint (the population in arrival order, the elites, the genomes bred but
not yet back, and the RNG state). Resume sends the genomes that were not back
again: those that finished before the stop come back from the archive.

[Real2019] E. Real, A. Aggarwal, Y. Huang, Q. V. Le. Regularized evolution for
image classifier architecture search. AAAI 2019.
[Deb2002] K. Deb et al. A fast and elitist multiobjective genetic algorithm:
NSGA-II. IEEE TEC 6(2), 2002.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deap import tools

from ge_nas.config import RunConfig
from ge_nas.grammar import Grammar
from ge_nas.rundir import Checkpoint
from ge_nas.search.evaluator import Evaluation, Evaluator, representation_for
from ge_nas.search.evolution import (
    Individual,
    SearchState,
    distinct_first,
    generation_stats,
    initial_population,
    make_individuals,
    select_parents,
    vary,
)
from ge_nas.search.prescreen import Surrogate, candidates, most_promising


@dataclass
class Steady:
    """The state of a steady-state search between arrivals."""

    grammar: Grammar
    config: RunConfig
    rng: random.Random
    population: collections.deque[Individual]
    queue: collections.deque[list[int]] = field(default_factory=collections.deque)
    out: list[list[int]] = field(default_factory=list)  # handed to workers, not yet back
    elites: list[Individual] = field(default_factory=list)
    bred: int = 0
    arrivals: int = 0
    since: list[Evaluation] = field(default_factory=list)  # arrivals since the last line
    stop: Callable[[], bool] = lambda: False  # e.g. a wall-clock budget: breed nothing more
    surrogate: Surrogate | None = None  # --prescreen: predicts children's accuracy
    # input shape and classes, to size children
    shape: tuple[tuple[int, int, int], int] | None = None
    seen: set[str] = field(
        default_factory=set
    )  # phenotypes evaluated: a screen never picks one again

    @property
    def budget(self) -> int:
        """Return how many genomes the run breeds: μ × (generations + 1)."""
        return self.config.population * (self.config.generations + 1)

    def breed(self) -> list[int] | None:
        """Return the next genome to evaluate, or None when the budget is spent (or stop() says so)."""
        if self.bred >= self.budget or self.stop():
            return None
        if not self.queue:
            self.queue.extend(self._children())
        genome = self.queue.popleft()
        self.bred += 1
        self.out.append(genome)
        return genome

    def _children(self) -> list[list[int]]:
        if not self.population:  # every initial genome is still out: start another one
            return initial_population(self.grammar, self.config, self.rng)[:1]
        population = list(self.population)
        rank_population(population)
        if self.surrogate is None or self.surrogate.model is None or self.shape is None:
            return vary(
                select_parents(population, 2, self.config, self.rng),
                self.grammar,
                self.config,
                self.rng,
            )
        return self._screened(population)

    def _screened(self, population: list[Individual]) -> list[list[int]]:
        """Breed --prescreen pairs of children; return the two the surrogate finds most promising."""
        bred: list[list[int]] = []
        for _ in range(self.config.prescreen):
            bred += vary(
                select_parents(population, 2, self.config, self.rng),
                self.grammar,
                self.config,
                self.rng,
            )
        rep = representation_for(self.grammar, self.config)
        pool = candidates(bred, [rep.map(g).phenotype for g in bred], self.surrogate, self.shape)  # type: ignore[arg-type]
        chosen = most_promising(pool, 2, self.seen)
        return [c.genome for c in chosen] if chosen else bred[:2]

    def admit(self, evaluation: Evaluation) -> bool:
        """Take one arrival into the population; True when it completes a line (every μ)."""
        individual = make_individuals([evaluation], self.config.objectives)[0]
        self._survive(individual)
        m = evaluation.metrics
        self.seen.add(evaluation.phenotype or "")
        if self.surrogate is not None and m.ok and evaluation.phenotype:
            self.surrogate.add(evaluation.phenotype, m.params or 1, m.flops or 1, m.val_accuracy)
        self.elites = keep_front([*self.elites, individual])
        if list(evaluation.genome) in self.out:
            self.out.remove(list(evaluation.genome))
        self.arrivals += 1
        self.since.append(evaluation)
        return self.arrivals % self.config.population == 0

    def _survive(self, individual: Individual) -> None:
        """Add an arrival; past μ, NSGA-II (or accuracy) survival over the μ + 1 drops one."""
        if len(self.population) < self.config.population:
            self.population.append(individual)
            return
        pool = distinct_first([*self.population, individual], self.config.population)
        mu = self.config.population
        kept = tools.selBest(pool, mu) if self.config.single_objective else tools.selNSGA2(pool, mu)
        self.population.clear()
        self.population.extend(kept)

    def state(self, seconds: float) -> SearchState:
        """Return the line's state for generations.jsonl and the checkpoint; start a new line."""
        generation = self.arrivals // self.config.population - 1
        if self.surrogate is not None:
            self.surrogate.fit()
        members = list(self.population)
        stats = generation_stats(generation, [*members, *self.elites], self.since, seconds)
        self.since = []
        pending = [*self.out, *self.queue]
        return SearchState(
            generation, members, self.rng.getstate(), stats, pending=pending, elites=self.elites
        )


def rank_population(population: Sequence[Individual]) -> None:
    """Give every individual its NSGA-II crowding distance within its front (parent selection reads it)."""
    for front in tools.sortNondominated(list(population), len(population)):
        tools.emo.assignCrowdingDist(front)


def keep_front(individuals: list[Individual]) -> list[Individual]:
    """Return the individuals of the first front (trained ones only), one per phenotype."""
    trained = [ind for ind in individuals if ind.evaluation and ind.evaluation.metrics.ok]
    if not trained:
        return []
    front = tools.sortNondominated(trained, len(trained), first_front_only=True)[0]
    kept: dict[str | None, Individual] = {}
    for ind in front:
        kept.setdefault(ind.evaluation.phenotype_hash if ind.evaluation else None, ind)
    return list(kept.values())


def run_steady(
    grammar: Grammar,
    config: RunConfig,
    evaluator: Evaluator,
    *,
    resume: Checkpoint | None = None,
    on_generation: Callable[[SearchState], None] = lambda s: None,
    clock: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
) -> list[Individual]:
    """Evolve with no generational barrier; return the last population and the elites.

    stop() is asked before each new genome; once it is true, nothing more is bred
    and the search ends when the genomes out at the workers are back.
    """
    steady = _start(grammar, config, evaluator, resume)
    steady.stop = stop
    if config.prescreen:
        steady.surrogate, steady.shape = Surrogate(config.seed), evaluator.data_shape()
    start = clock()

    def admit(evaluation: Evaluation) -> None:
        nonlocal start
        if steady.admit(evaluation):
            on_generation(steady.state(clock() - start))
            start = clock()

    evaluator.stream(steady.breed, admit)
    return [*steady.population, *steady.elites]


def _start(
    grammar: Grammar, config: RunConfig, evaluator: Evaluator, resume: Checkpoint | None
) -> Steady:
    rng = random.Random(config.seed)
    population: collections.deque[Individual] = collections.deque(maxlen=config.population)
    steady = Steady(grammar, config, rng, population)
    if resume is None:
        steady.queue.extend(initial_population(grammar, config, rng))
        return steady
    rng.setstate(resume.rng_state)
    population.extend(make_individuals(evaluator.evaluate(resume.genomes), config.objectives))
    steady.elites = keep_front(
        make_individuals(evaluator.evaluate(resume.elites), config.objectives)
    )
    steady.queue.extend(resume.pending)
    steady.arrivals = steady.bred = (resume.generation + 1) * config.population
    return steady
