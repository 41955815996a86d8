"""Initialisers: every genome maps back to its tree's phenotype; depths, distinctness, small spaces."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ge_nas.errors import ConfigError
from ge_nas.grammar import Grammar, load_grammar, parse_grammar
from ge_nas.grammar.initialise import (
    Mode,
    _TreeBuilder,
    pi_grow_population,
    random_genome,
    random_population,
    sensible_population,
)
from ge_nas.grammar.mapper import map_genome

GRAMMARS = Path(__file__).parent / "grammars"
EXPR = load_grammar(GRAMMARS / "expr.bnf")
CODON_SIZE = 100_000
# Deep and wide: unit rules, an empty string, two recursive rules, one only mutually recursive.
NESTED = parse_grammar("""
<net>   ::= <block> | <block> <net> | [<inner>]
<inner> ::= <net> ; <net> | <block>
<block> ::= <conv> <act> | pool
<conv>  ::= conv(<n>)
<n>     ::= GE_RANGE:4
<act>   ::= relu | '' | gelu
""")


@pytest.mark.parametrize("grammar", [EXPR, NESTED], ids=["expr", "nested"])
@pytest.mark.parametrize("mode", ["grow", "full", "pi"])
def test_every_tree_maps_back_to_its_phenotype(grammar: Grammar, mode: Mode) -> None:
    builder = _TreeBuilder(grammar, 9, random.Random(1))
    for depth in range(grammar.min_depth(grammar.start), 10):
        for _ in range(15):
            genome, phenotype = builder.genome(depth, mode, CODON_SIZE, 0.5)
            derivation = map_genome(grammar, genome)
            assert derivation.phenotype == phenotype
            assert derivation.depth <= depth
            assert all(0 <= c < CODON_SIZE for c in genome)
            assert len(genome) == derivation.codons_used + -(
                -derivation.codons_used // 2
            )  # used + ceil(used / 2)


@pytest.mark.parametrize("mode", ["full", "pi"])
def test_full_and_pi_grow_reach_the_target_depth(mode: Mode) -> None:
    builder = _TreeBuilder(EXPR, 8, random.Random(2))
    for depth in range(3, 9):
        genome, _ = builder.genome(depth, mode, CODON_SIZE, 0.0)
        assert map_genome(EXPR, genome).depth == depth


def test_full_prefers_recursive_alternatives() -> None:
    builder = _TreeBuilder(EXPR, 8, random.Random(3))
    _, text = builder.tree(8, "full")
    assert text.count("(") + text.count("+") + text.count("-") + text.count("*") >= 5


def test_codon_encodes_choice_modulo_alternatives() -> None:
    grammar = parse_grammar("<a> ::= x | y | z")
    builder = _TreeBuilder(grammar, 2, random.Random(4))
    for _ in range(50):
        genome, text = builder.genome(2, "grow", 10, 0.0)
        assert len(genome) == 1 and genome[0] < 10 and "xyz"[genome[0] % 3] == text


def test_sensible_population_ramps_depths_with_distinct_phenotypes() -> None:
    population = sensible_population(
        EXPR, random.Random(5), 60, min_depth=3, max_depth=7, codon_size=CODON_SIZE
    )
    derivations = [map_genome(EXPR, g) for g in population]
    assert len(population) == 60 and all(d.valid for d in derivations)
    assert len({d.phenotype for d in derivations}) == 60
    assert {d.depth for d in derivations} == {3, 4, 5, 6, 7}


def test_pi_grow_population_is_valid_and_distinct() -> None:
    population = pi_grow_population(
        NESTED, random.Random(6), 40, max_depth=8, codon_size=CODON_SIZE
    )
    derivations = [map_genome(NESTED, g) for g in population]
    assert all(d.valid and d.depth <= 8 for d in derivations)
    assert len({d.phenotype for d in derivations}) == 40


def test_random_population_is_valid_and_distinct_and_sized() -> None:
    population = random_population(
        EXPR, random.Random(7), 30, min_length=5, max_length=9, codon_size=CODON_SIZE, max_depth=6
    )
    derivations = [map_genome(EXPR, g, max_depth=6) for g in population]
    assert all(d.valid for d in derivations) and len({d.phenotype for d in derivations}) == 30
    assert all(5 <= len(g) <= 9 for g in population)


@pytest.mark.parametrize("init", ["random", "sensible", "pi"])
def test_tiny_space_repeats_instead_of_looping_forever(init: str) -> None:
    tiny = parse_grammar("<a> ::= x | y")
    rng = random.Random(8)
    if init == "random":
        population = random_population(tiny, rng, 50, codon_size=10, max_tries=5)
    elif init == "sensible":
        population = sensible_population(
            tiny, rng, 50, min_depth=1, max_depth=4, codon_size=10, max_tries=5
        )
    else:
        population = pi_grow_population(tiny, rng, 50, max_depth=4, codon_size=10, max_tries=5)
    phenotypes = {map_genome(tiny, g).phenotype for g in population}
    assert len(population) == 50 and phenotypes == {"x", "y"}


def test_same_seed_same_population() -> None:
    def make(seed: int) -> list[list[int]]:
        return sensible_population(
            NESTED, random.Random(seed), 20, min_depth=3, max_depth=7, codon_size=CODON_SIZE
        )

    assert make(9) == make(9)
    assert make(9) != make(10)


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="max_depth 2 is below the least tree depth 3"):
        sensible_population(
            EXPR, random.Random(0), 5, min_depth=1, max_depth=2, codon_size=CODON_SIZE
        )
    with pytest.raises(ConfigError, match="codon_size 2 is smaller than the 3 alternatives"):
        pi_grow_population(EXPR, random.Random(0), 5, max_depth=5, codon_size=2)
    with pytest.raises(ConfigError, match="min_length"):
        random_population(
            EXPR, random.Random(0), 5, min_length=9, max_length=3, codon_size=CODON_SIZE
        )


def test_random_genome() -> None:
    genome = random_genome(random.Random(0), 40, 7)
    assert len(genome) == 40 and set(genome) <= set(range(7))
