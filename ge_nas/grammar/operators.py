"""GE variation on plain integer genomes: one-point, two-point and uniform crossover, int-flip mutation.

Crossover points fall within the codons each parent used when it was mapped
(PonyGE2's ``within_used`` default [Fenton2017]), chosen independently in each
parent, so children change length. Every child keeps at least one codon.
Uniform crossover swaps each codon position that both parents used with
probability 1/2; the children keep their parents' lengths.
Mutation redraws each used codon with a per-codon probability. Parents are
never modified; all randomness comes from the rng passed in.

[Fenton2017] M. Fenton et al. PonyGE2: Grammatical Evolution in Python. GECCO 2017.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ge_nas.config import CROSSOVERS as CROSSOVER_NAMES
from ge_nas.errors import ConfigError


def one_point_crossover(
    rng: random.Random, a: Sequence[int], b: Sequence[int], *, used_a: int, used_b: int
) -> tuple[list[int], list[int]]:
    """Return a[:p] + b[q:] and b[:q] + a[p:] for points p, q in 1..used of each parent."""
    if not a or not b:
        return list(a), list(b)
    p = rng.randint(1, _span(a, used_a))
    q = rng.randint(1, _span(b, used_b))
    return list(a[:p]) + list(b[q:]), list(b[:q]) + list(a[p:])


def two_point_crossover(
    rng: random.Random, a: Sequence[int], b: Sequence[int], *, used_a: int, used_b: int
) -> tuple[list[int], list[int]]:
    """Swap a non-empty segment within the used codons of each parent."""
    if not a or not b:
        return list(a), list(b)
    p1, p2 = sorted(rng.sample(range(_span(a, used_a) + 1), 2))
    q1, q2 = sorted(rng.sample(range(_span(b, used_b) + 1), 2))
    child_a = list(a[:p1]) + list(b[q1:q2]) + list(a[p2:])
    child_b = list(b[:q1]) + list(a[p1:p2]) + list(b[q2:])
    return child_a, child_b


def uniform_crossover(
    rng: random.Random, a: Sequence[int], b: Sequence[int], *, used_a: int, used_b: int
) -> tuple[list[int], list[int]]:
    """Swap each codon position within the used codons of both parents with probability 1/2."""
    child_a, child_b = list(a), list(b)
    if not a or not b:
        return child_a, child_b
    for i in range(min(_span(a, used_a), _span(b, used_b))):
        if rng.random() < 0.5:
            child_a[i], child_b[i] = child_b[i], child_a[i]
    return child_a, child_b


CROSSOVERS = dict(
    zip(CROSSOVER_NAMES, (one_point_crossover, two_point_crossover, uniform_crossover))
)  # by --crossover name


def int_flip_mutation(
    rng: random.Random,
    genome: Sequence[int],
    *,
    used: int,
    codon_size: int,
    probability: float | None = None,
) -> list[int]:
    """Redraw each used codon from range(codon_size) with probability (default 1 / used codons)."""
    if codon_size < 1:
        raise ConfigError(f"codon_size must be at least 1, got {codon_size}")
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ConfigError(f"mutation probability must be within 0..1, got {probability}")
    child = list(genome)
    if not child:
        return child
    span = _span(child, used)
    chance = 1.0 / span if probability is None else probability
    for i in range(span):
        if rng.random() < chance:
            child[i] = rng.randrange(codon_size)
    return child


def _span(genome: Sequence[int], used: int) -> int:
    """Return the used codons clamped to 1..len(genome) (wrapping can use more than len)."""
    return min(max(used, 1), len(genome))
