"""DEAP wiring: initialisation, evaluation with a phenotype cache, variation, selection.

NSGA-II [Deb2002] on (validation accuracy up, log10 params down) by default;
a single objective uses tournament selection with elitism. Individuals are
plain integer genomes; `deap.creator` is not used (it mutates a module at run
time), the fitness and individual classes are defined here.

[Deb2002] Deb, Pratap, Agarwal, Meyarivan, "A fast and elitist multiobjective
genetic algorithm: NSGA-II", IEEE TEC 6(2), 2002.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deap import base, tools

from ge_nas.config import RunConfig
from ge_nas.errors import SearchError
from ge_nas.fidelity import rung_count
from ge_nas.grammar import Grammar
from ge_nas.metrics import FAILED, INVALID, OVER_BUDGET, TIMEOUT
from ge_nas.objectives import OBJECTIVE_WEIGHTS, fitness_values
from ge_nas.pareto import hypervolume_2d, size_front, size_point
from ge_nas.rundir import Checkpoint
from ge_nas.search.evaluator import Evaluation, Evaluator, representation_for
from ge_nas.search.halving import promote


class Fitness(base.Fitness):
    """A DEAP fitness whose weights are set per run (no deap.creator)."""

    def __init__(self, weights: tuple[float, ...], values: tuple[float, ...] = ()) -> None:
        self.weights = weights
        super().__init__(values)

    def __deepcopy__(self, memo: dict[int, Any]) -> Fitness:
        copy = Fitness(self.weights)
        copy.wvalues = self.wvalues
        return copy


class Individual(list):  # type: ignore[type-arg]
    """A genome (list of int codons) with its fitness and evaluation."""

    def __init__(self, genome: Sequence[int], weights: tuple[float, ...]) -> None:
        super().__init__(genome)
        self.fitness = Fitness(weights)
        self.evaluation: Evaluation | None = None


@dataclass(frozen=True)
class GenerationStats:
    """One line of generations.jsonl."""

    generation: int
    evaluations: int
    invalid: int
    cached: int
    best_accuracy: float
    median_accuracy: float
    front_size: int
    hypervolume: float
    seconds: float
    over_budget: int = 0
    failed: int = 0  # training failed or timed out
    invalid_reasons: Mapping[str, int] = field(default_factory=dict)  # most common first


def initial_population(grammar: Grammar, config: RunConfig, rng: random.Random) -> list[list[int]]:
    """Return the first population's genomes with the run's initialiser and representation."""
    return representation_for(grammar, config).initial(
        rng, config.population, init=config.init, init_max_depth=config.init_max_depth
    )


def used_codons(individual: Individual) -> int:
    """Return how many codons the mapping read (the whole genome if unknown)."""
    e = individual.evaluation
    return max(1, min(len(individual), e.derivation.codons_used)) if e else len(individual)


def select_parents(
    population: list[Individual], k: int, config: RunConfig, rng: random.Random
) -> list[Individual]:
    """Pick k parents: crowded binary tournaments for NSGA-II, plain tournaments otherwise."""
    if config.single_objective:
        return [
            max(
                rng.sample(population, min(config.tournament_size, len(population))),
                key=_accuracy_key,
            )
            for _ in range(k)
        ]
    rank = {
        id(ind): (-rung, r)
        for rung, group in _by_rung(population)
        for r, front in enumerate(tools.sortNondominated(group, len(group)))
        for ind in front
    }
    return [
        _crowded_winner(rng.sample(population, min(2, len(population))), rank) for _ in range(k)
    ]


def _rung(ind: Individual) -> int:
    return ind.evaluation.rung if ind.evaluation else 0


def _by_rung(individuals: Sequence[Individual]) -> list[tuple[int, list[Individual]]]:
    """Group individuals by fidelity rung, highest first: only equals are compared."""
    groups: dict[int, list[Individual]] = {}
    for ind in individuals:
        groups.setdefault(_rung(ind), []).append(ind)
    return sorted(groups.items(), reverse=True)


def _accuracy_key(ind: Individual) -> tuple[float, ...]:
    return (_rung(ind), *ind.fitness.wvalues)


def _crowded_winner(pair: list[Individual], rank: dict[int, tuple[int, int]]) -> Individual:
    return min(pair, key=lambda ind: (rank[id(ind)], -getattr(ind.fitness, "crowding_dist", 0.0)))


VARIATION_TRIES = 5  # children that do not map are bred again, up to this many times


def vary(
    parents: list[Individual], grammar: Grammar, config: RunConfig, rng: random.Random
) -> list[list[int]]:
    """Return children from crossover of parent pairs and mutation, as the run's representation varies genomes.

    A pair is crossed with --crossover-prob; each child is mutated with --individual-mutation-prob.
    """
    children: list[list[int]] = []
    for a, b in zip(parents[::2], parents[1::2]):
        children += _breed(a, b, grammar, config, rng)
    if len(parents) % 2:
        children.append(_mutate(list(parents[-1]), grammar, config, rng))
    return children


def _breed(
    a: Individual, b: Individual, grammar: Grammar, config: RunConfig, rng: random.Random
) -> list[list[int]]:
    rep = representation_for(grammar, config)
    for _ in range(VARIATION_TRIES):
        if rng.random() < config.crossover_prob:
            pair = rep.crossover(
                list(a), list(b), rng, used_a=used_codons(a), used_b=used_codons(b)
            )
        else:
            pair = (list(a), list(b))
        children = [_mutate(child, grammar, config, rng) for child in pair]
        if all(rep.map(child).valid for child in children):
            break
    return children


def _mutate(
    genome: list[int], grammar: Grammar, config: RunConfig, rng: random.Random
) -> list[int]:
    chance = config.individual_mutation_prob
    if chance < 1.0 and rng.random() >= chance:  # no draw at 1: runs keep their random streams
        return genome
    rep = representation_for(grammar, config)
    used = max(1, min(len(genome), rep.map(genome).codons_used))
    return rep.mutate(genome, rng, used=used)


def survivors(
    population: list[Individual], offspring: list[Individual], config: RunConfig
) -> list[Individual]:
    """Return the next population: NSGA-II selection, or elites plus offspring."""
    mu = config.population
    if not offspring:
        offspring, population = population, []
    if rung_count(config) > 1:
        return _survivors_by_rung(distinct_first(population + offspring, mu), config)
    if not config.single_objective:
        return list(tools.selNSGA2(distinct_first(population + offspring, mu), mu))
    elites: list[Individual] = tools.selBest(population, min(config.elites, mu))
    rest: list[Individual] = tools.selBest(
        distinct_first(offspring, mu - len(elites)), mu - len(elites)
    )
    return elites + rest


def _survivors_by_rung(pool: list[Individual], config: RunConfig) -> list[Individual]:
    """Fill the population from the highest rung down, selecting within a rung only."""
    chosen: list[Individual] = []
    for _, group in _by_rung(pool):
        room = config.population - len(chosen)
        if room <= 0:
            break
        chosen += (
            tools.selBest(group, room) if config.single_objective else tools.selNSGA2(group, room)
        )
    return chosen


def best_indices(evaluations: list[Evaluation], k: int, config: RunConfig) -> list[int]:
    """Return the indices of the k best evaluations (one rung): NSGA-II order or accuracy."""
    individuals = make_individuals(evaluations, config)
    chosen = (
        tools.selBest(individuals, k) if config.single_objective else tools.selNSGA2(individuals, k)
    )
    where = {id(ind): i for i, ind in enumerate(individuals)}
    return [where[id(ind)] for ind in chosen]


def distinct_first(individuals: list[Individual], k: int) -> list[Individual]:
    """Drop repeated phenotypes while at least k individuals remain (duplicates starve diversity).

    Of one phenotype, the copy scored at the highest fidelity rung is the one kept.
    """
    seen: set[object] = set()
    distinct: list[Individual] = []
    repeats: list[Individual] = []
    for ind in sorted(individuals, key=lambda ind: -_rung(ind)):  # stable: order kept within a rung
        e = ind.evaluation
        key = e.phenotype_hash if e and e.phenotype_hash else tuple(ind)
        (repeats if key in seen else distinct).append(ind)
        seen.add(key)
    return distinct + repeats[: max(0, k - len(distinct))]


def make_individuals(evaluations: Sequence[Evaluation], config: RunConfig) -> list[Individual]:
    """Wrap evaluations as DEAP individuals with their fitness set (the run's objectives and accuracy floor)."""
    weights = tuple(OBJECTIVE_WEIGHTS[name] for name in config.objectives)
    individuals = []
    for e in evaluations:
        ind = Individual(e.genome, weights)
        ind.fitness.values = fitness_values(e.metrics, config.objectives, config.accuracy_floor)
        ind.evaluation = e
        individuals.append(ind)
    return individuals


def generation_stats(
    generation: int,
    population: Sequence[Individual],
    evaluations: Sequence[Evaluation],
    seconds: float,
) -> GenerationStats:
    """Summarise one generation for generations.jsonl and the live display (top rung only)."""
    scored = [e for e in _top_rung(population) if e.metrics.ok]
    accuracies = [e.metrics.val_accuracy for e in scored] or [0.0]
    front = pareto_front(population)
    # the hypervolume of accuracy and size alone, as random search's is measured: no floor
    points = [size_point(e.metrics.val_accuracy, e.metrics.params or 1) for e in size_front(scored)]
    statuses = Counter(e.metrics.status for e in evaluations)
    return GenerationStats(
        generation=generation,
        evaluations=sum(1 for e in evaluations if e.phenotype and not e.cached),
        invalid=statuses[INVALID],
        cached=sum(1 for e in evaluations if e.cached),
        best_accuracy=max(accuracies),
        median_accuracy=statistics.median(accuracies),
        front_size=len(front),
        hypervolume=hypervolume_2d(points),
        seconds=seconds,
        over_budget=statuses[OVER_BUDGET],
        failed=statuses[FAILED] + statuses[TIMEOUT],
        invalid_reasons=dict(invalid_reasons(evaluations)),
    )


def invalid_reasons(evaluations: Sequence[Evaluation]) -> list[tuple[str, int]]:
    """Return how many invalid evaluations each reason has, most common first."""
    counts = Counter(e.metrics.failure() for e in evaluations if e.metrics.status == INVALID)
    return counts.most_common()


def check_initial(evaluations: Sequence[Evaluation], grammar: Grammar) -> None:
    """Raise SearchError saying what to fix when no network of the initial generation is valid."""
    if not evaluations or any(e.metrics.status != INVALID for e in evaluations):
        return
    counts = Counter(e.metrics.error.split("\n")[0] for e in evaluations)
    errors = {e.metrics.error.split("\n")[0]: e.metrics.error for e in reversed(evaluations)}
    raise SearchError(
        f"no valid network in the initial generation: all {len(evaluations)} individuals are "
        "invalid\n"
        + "".join(_error_lines(errors[line], n) for line, n in counts.most_common(5))
        + "fix the grammar where these lines say, then check it without training: "
        f"python -m ge_nas grammar check {grammar.source}"
    )


def _error_lines(error: str, count: int) -> str:
    """Return an error's first line with its count, and the next line (the detail) under it."""
    lines = error.split("\n")
    detail = f"{' ' * (len(str(count)) + 5)}{lines[1]}\n" if len(lines) > 1 else ""
    return f"  {count} x {lines[0]}\n{detail}"


def _top_rung(population: Sequence[Individual]) -> list[Evaluation]:
    """Return the evaluations at the highest rung any trained individual reached."""
    evaluations = [ind.evaluation for ind in population if ind.evaluation]
    trained = [e.rung for e in evaluations if e.metrics.ok]
    return [e for e in evaluations if e.rung == max(trained)] if trained else evaluations


def pareto_front(population: Sequence[Individual]) -> list[Evaluation]:
    """Return the distinct trained phenotypes of the first front, best accuracy first."""
    top = {id(e) for e in _top_rung(population)}
    trained = [
        ind
        for ind in population
        if ind.evaluation and ind.evaluation.metrics.ok and id(ind.evaluation) in top
    ]
    if not trained:
        return []
    seen: dict[str | None, Evaluation] = {}
    for ind in tools.sortNondominated(trained, len(trained), first_front_only=True)[0]:
        if ind.evaluation is not None:
            seen.setdefault(ind.evaluation.phenotype_hash, ind.evaluation)
    return sorted(seen.values(), key=lambda e: (-e.metrics.val_accuracy, e.metrics.params or 0))


def restore_population(
    checkpoint: Checkpoint, evaluator: Evaluator, config: RunConfig, rng: random.Random
) -> list[Individual]:
    """Rebuild a checkpointed population (every phenotype comes from the archive) and the RNG."""
    rng.setstate(checkpoint.rng_state)
    evaluations = evaluator.evaluate(checkpoint.genomes)
    for rung in set(checkpoint.rungs) - {0}:
        at = [i for i, r in enumerate(checkpoint.rungs) if r == rung]
        for i, e in zip(at, evaluator.upgrade([evaluations[i] for i in at], rung)):
            evaluations[i] = e
    population = make_individuals(evaluations, config)
    for individual, crowding in zip(population, checkpoint.crowding):
        individual.fitness.crowding_dist = crowding
    return population


def checkpoint_of(state: SearchState) -> Checkpoint:
    """Return the plain-data checkpoint of a generation's state."""
    genomes = [list(ind) for ind in state.population]
    crowding = [float(getattr(ind.fitness, "crowding_dist", 0.0)) for ind in state.population]
    return Checkpoint(
        state.generation,
        genomes,
        crowding,
        state.rng_state,
        [_rung(ind) for ind in state.population],
        pending=[list(g) for g in state.pending],
        elites=[list(ind) for ind in state.elites],
        rung_results=[[list(g) for g in rung] for rung in state.rung_results],
        elite_rungs=[_rung(ind) for ind in state.elites],
        promoted=list(state.promoted),
    )


@dataclass(frozen=True)
class SearchState:
    """What a generation leaves behind: enough to checkpoint and to resume."""

    generation: int
    population: list[Individual]
    rng_state: Any
    stats: GenerationStats
    pending: list[list[int]] = field(default_factory=list)  # steady state: bred, not yet back
    elites: list[Individual] = field(
        default_factory=list
    )  # steady state: the front of every arrival
    rung_results: list[list[tuple[int, ...]]] = field(default_factory=list)  # steady ASHA: per rung
    promoted: list[tuple[str, int]] = field(default_factory=list)  # steady ASHA: (hash, rung left)


def evaluate_generation(
    genomes: Sequence[Sequence[int]], evaluator: Evaluator, config: RunConfig
) -> list[Evaluation]:
    """Evaluate genomes at rung 0 and promote the best by successive halving when it is on."""
    evaluations = evaluator.evaluate(genomes)
    if rung_count(config) == 1:
        return evaluations
    return promote(
        evaluations, evaluator.evaluate, lambda es, k: best_indices(es, k, config), config
    )


def run_search(
    grammar: Grammar,
    config: RunConfig,
    evaluator: Evaluator,
    *,
    resume: Checkpoint | None = None,
    on_generation: Callable[[SearchState], None] = lambda s: None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Individual]:
    """Evolve until config.generations, from scratch or from a checkpoint; return the final population.

    Raises:
        SearchError: no network of the initial generation is valid (the message says why).
    """
    rng = random.Random(config.seed)
    if resume is None:
        start = clock()
        evaluations = evaluate_generation(
            initial_population(grammar, config, rng), evaluator, config
        )
        population = survivors(make_individuals(evaluations, config), [], config)
        stats = generation_stats(0, population, evaluations, clock() - start)
        on_generation(SearchState(0, population, rng.getstate(), stats))
        check_initial(evaluations, grammar)
    else:
        population = restore_population(resume, evaluator, config, rng)
    for generation in range((resume.generation if resume else 0) + 1, config.generations + 1):
        start = clock()
        children = vary(
            select_parents(population, config.population, config, rng), grammar, config, rng
        )
        evaluations = evaluate_generation(children, evaluator, config)
        population = survivors(population, make_individuals(evaluations, config), config)
        stats = generation_stats(generation, population, evaluations, clock() - start)
        on_generation(SearchState(generation, population, rng.getstate(), stats))
    return population
