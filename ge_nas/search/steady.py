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

With successive halving (--fidelity sh) it is asynchronous successive halving
(ASHA [Li2020]): a phenotype in the best 1/eta of its rung's results so far
is trained at the next rung by the next free worker, before any new child,
and the population is filled from the highest rung down, as generational
successive halving fills it.

A run evaluates μ × (generations + 1) genomes (promotions included), as a
generational run of the same settings breeds; every μ arrivals make one line of generations.jsonl and one
checkpoint (the population in arrival order, the elites, the genomes bred but
not yet back, ASHA's rung tables, and the RNG state). Resume sends the genomes that were not back
again: those that finished before the stop come back from the archive.

[Real2019] E. Real, A. Aggarwal, Y. Huang, Q. V. Le. Regularized evolution for
image classifier architecture search. AAAI 2019.
[Li2020] L. Li, K. Jamieson, A. Rostamizadeh, E. Gonina, J. Ben-tzur, M. Hardt,
B. Recht, A. Talwalkar. A system for massively parallel hyperparameter tuning.
MLSys 2020.
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
from ge_nas.fidelity import rung_count
from ge_nas.grammar import Grammar
from ge_nas.rundir import Checkpoint
from ge_nas.search.evaluator import Evaluation, Evaluator, representation_for
from ge_nas.search.evolution import (
    Individual,
    SearchState,
    best_indices,
    distinct_first,
    generation_stats,
    initial_population,
    make_individuals,
    restore_population,
    select_parents,
    survivors,
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
    asha: Asha = field(init=False)

    def __post_init__(self) -> None:
        self.asha = Asha(self.config)

    @property
    def budget(self) -> int:
        """Return how many genomes the run evaluates: μ × (generations + 1), promotions included."""
        return self.config.population * (self.config.generations + 1)

    def breed(self) -> tuple[list[int], int] | None:
        """Return the next (genome, rung) to evaluate, or None when the budget is spent (or stop() says so).

        With successive halving, a promotion (ASHA) comes before a new child and
        counts as one of the budget's evaluations.
        """
        if self.bred >= self.budget or self.stop():
            return None
        if (promotion := self.asha.promotion()) is not None:
            self.bred += 1
            self.out.append(promotion[0])
            return promotion
        if not self.queue:
            self.queue.extend(self._children())
        genome = self.queue.popleft()
        self.bred += 1
        self.out.append(genome)
        return genome, 0

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
        individual = make_individuals([evaluation], self.config)[0]
        self._survive(individual)
        self.asha.add(evaluation)
        m = evaluation.metrics
        self.seen.add(evaluation.phenotype or "")
        if self.surrogate is not None and m.ok and evaluation.phenotype and evaluation.rung == 0:
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
        kept = survivors(pool, [], self.config)  # a promotion's copy replaces its lower rung's
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
        rungs = range(max(self.asha.results, default=-1) + 1)
        return SearchState(
            generation, members, self.rng.getstate(), stats, pending=pending, elites=self.elites,
            rung_results=[[e.genome for e in self.asha.results.get(r, [])] for r in rungs],
            promoted=sorted(self.asha.promoted),
        )  # fmt: skip


@dataclass
class Asha:
    """Asynchronous successive halving [Li2020]: a phenotype in the top 1/eta of its rung's results moves up.

    Each rung's results are ranked as successive halving ranks them (NSGA-II
    order, or accuracy for a single objective); a phenotype among the best
    len/eta of rung r that has not left it yet is trained at rung r + 1 by the
    next free worker, before any new child. Without successive halving it
    promotes nothing.
    """

    config: RunConfig
    results: dict[int, list[Evaluation]] = field(default_factory=dict)  # rung -> one per phenotype
    promoted: set[tuple[str, int]] = field(default_factory=set)  # (hash, the rung it left)
    _best: dict[int, list[int]] = field(default_factory=dict)  # rung -> cached best indices

    def add(self, evaluation: Evaluation) -> None:
        """Take a trained result at its rung (a repeat of a phenotype at a rung is ignored)."""
        key = evaluation.phenotype_hash
        if rung_count(self.config) == 1 or key is None or not evaluation.metrics.ok:
            return
        at = self.results.setdefault(evaluation.rung, [])
        if all(e.phenotype_hash != key for e in at):
            at.append(evaluation)
            self._best.pop(evaluation.rung, None)
        if evaluation.rung > 0:
            self.promoted.add((key, evaluation.rung - 1))

    def promotion(self) -> tuple[list[int], int] | None:
        """Return (genome, rung) of the next phenotype to train longer, highest rung first; None if none."""
        for rung in reversed(range(rung_count(self.config) - 1)):
            at = self.results.get(rung, [])
            k = len(at) // self.config.sh_eta
            if k == 0:
                continue
            if rung not in self._best:
                self._best[rung] = best_indices(at, k, self.config)
            for i in self._best[rung]:
                key = at[i].phenotype_hash or ""
                if (key, rung) not in self.promoted:
                    self.promoted.add((key, rung))
                    return list(at[i].genome), rung + 1
        return None


def rank_population(population: Sequence[Individual]) -> None:
    """Give every individual its NSGA-II crowding distance within its front (parent selection reads it)."""
    for front in tools.sortNondominated(list(population), len(population)):
        tools.emo.assignCrowdingDist(front)


def keep_front(individuals: list[Individual]) -> list[Individual]:
    """Return the individuals of the first front (trained ones only, within each rung), one per phenotype."""
    rungs: dict[int, list[Individual]] = {}
    for ind in individuals:
        if ind.evaluation and ind.evaluation.metrics.ok:
            rungs.setdefault(ind.evaluation.rung, []).append(ind)
    kept: dict[tuple[str | None, int], Individual] = {}
    for rung, trained in sorted(rungs.items()):
        for ind in tools.sortNondominated(trained, len(trained), first_front_only=True)[0]:
            kept.setdefault((ind.evaluation.phenotype_hash if ind.evaluation else None, rung), ind)
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
    population.extend(restore_population(resume, evaluator, config, rng))
    elites = evaluator.evaluate(resume.elites)
    for i, rung in enumerate(resume.elite_rungs[: len(elites)]):
        if rung:
            elites[i] = evaluator.upgrade([elites[i]], rung)[0]
    steady.elites = keep_front(make_individuals(elites, config))
    for rung, genomes in enumerate(resume.rung_results):  # archived: nothing trains again
        for evaluation in evaluator.evaluate(genomes, rung):
            steady.asha.add(evaluation)
    steady.asha.promoted |= set(resume.promoted)
    steady.queue.extend(resume.pending)
    steady.arrivals = steady.bred = (resume.generation + 1) * config.population
    return steady
