"""GE variation: children keep codons in range and at least one codon; parents stay untouched."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ge_nas.errors import ConfigError
from ge_nas.grammar.operators import (
    int_flip_mutation,
    one_point_crossover,
    two_point_crossover,
    uniform_crossover,
)

CODON_SIZE = 1000
GENOMES = st.lists(st.integers(0, CODON_SIZE - 1), min_size=1, max_size=40)
USED = st.integers(0, 120)  # wrapping can use more codons than a genome has
Crossover = Callable[..., tuple[list[int], list[int]]]
CROSSOVERS: list[Crossover] = [one_point_crossover, two_point_crossover, uniform_crossover]


@pytest.mark.parametrize("crossover", CROSSOVERS)
@given(seed=st.integers(0, 2**32), a=GENOMES, b=GENOMES, used_a=USED, used_b=USED)
def test_crossover_children_are_valid_and_conserve_codons(
    crossover: Crossover, seed: int, a: list[int], b: list[int], used_a: int, used_b: int
) -> None:
    a_before, b_before = list(a), list(b)
    child_a, child_b = crossover(random.Random(seed), a, b, used_a=used_a, used_b=used_b)
    assert (a, b) == (a_before, b_before)
    assert len(child_a) >= 1 and len(child_b) >= 1
    assert Counter(child_a) + Counter(child_b) == Counter(a) + Counter(b)
    assert all(0 <= c < CODON_SIZE for c in child_a + child_b)


@pytest.mark.parametrize("seed", range(50))
def test_one_point_cuts_within_the_used_codons(seed: int) -> None:
    a, b = list(range(10)), list(range(100, 110))
    child_a, child_b = one_point_crossover(random.Random(seed), a, b, used_a=3, used_b=5)
    p = sum(c < 100 for c in child_a)
    q = len(b) - (len(child_a) - p)
    assert 1 <= p <= 3 and 1 <= q <= 5
    assert (child_a, child_b) == (a[:p] + b[q:], b[:q] + a[p:])


def test_length_one_genomes() -> None:
    rng = random.Random(0)
    for crossover in CROSSOVERS:
        assert crossover(rng, [7], [9], used_a=1, used_b=1) in [([7], [9]), ([9], [7])]
    assert len(int_flip_mutation(rng, [5], used=1, codon_size=10)) == 1


def test_two_point_swaps_segments_and_keeps_tails() -> None:
    a, b = list(range(10)), list(range(100, 110))
    child_a, child_b = two_point_crossover(random.Random(3), a, b, used_a=4, used_b=4)
    assert (
        child_a[-6:] == a[4:] and child_b[-6:] == b[4:]
    )  # cut points never go past the used codons


@pytest.mark.parametrize("seed", range(20))
def test_uniform_swaps_positions_both_parents_used_and_keeps_lengths(seed: int) -> None:
    a, b = list(range(10)), list(range(100, 106))
    child_a, child_b = uniform_crossover(random.Random(seed), a, b, used_a=8, used_b=4)
    assert (len(child_a), len(child_b)) == (10, 6)
    assert child_a[4:] == a[4:] and child_b[4:] == b[4:], "only positions both used are swapped"
    assert all({child_a[i], child_b[i]} == {a[i], b[i]} for i in range(4))


def test_uniform_swaps_about_half_the_positions() -> None:
    a, b = [0] * 1000, [1] * 1000
    child_a, _ = uniform_crossover(random.Random(0), a, b, used_a=1000, used_b=1000)
    assert 430 < sum(child_a) < 570


def test_empty_parents_come_back_unchanged() -> None:
    assert one_point_crossover(random.Random(0), [], [1], used_a=0, used_b=1) == ([], [1])
    assert two_point_crossover(random.Random(0), [1], [], used_a=1, used_b=0) == ([1], [])
    assert int_flip_mutation(random.Random(0), [], used=0, codon_size=5) == []


@given(
    seed=st.integers(0, 2**32),
    genome=GENOMES,
    used=USED,
    probability=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_mutation_stays_in_range_and_in_the_used_codons(
    seed: int, genome: list[int], used: int, probability: float | None
) -> None:
    before = list(genome)
    child = int_flip_mutation(
        random.Random(seed), genome, used=used, codon_size=CODON_SIZE, probability=probability
    )
    assert genome == before and len(child) == len(genome)
    assert all(0 <= c < CODON_SIZE for c in child)
    span = min(max(used, 1), len(genome))
    assert child[span:] == genome[span:]


def test_mutation_probability_extremes_and_default() -> None:
    genome = [0] * 100
    assert (
        int_flip_mutation(random.Random(1), genome, used=100, codon_size=10**9, probability=0.0)
        == genome
    )
    flipped = int_flip_mutation(
        random.Random(1), genome, used=50, codon_size=10**9, probability=1.0
    )
    assert all(c != 0 for c in flipped[:50]) and flipped[50:] == genome[50:]
    changes = [
        sum(c != 0 for c in int_flip_mutation(random.Random(s), genome, used=20, codon_size=10**9))
        for s in range(400)
    ]
    assert 0.8 < sum(changes) / len(changes) < 1.2  # default: one codon in expectation


def test_mutation_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="probability"):
        int_flip_mutation(random.Random(0), [1, 2], used=2, codon_size=10, probability=1.5)
    with pytest.raises(ConfigError, match="codon_size"):
        int_flip_mutation(random.Random(0), [1, 2], used=2, codon_size=0)
