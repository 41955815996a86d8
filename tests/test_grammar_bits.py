"""Bit genomes: hand-worked decodings, n not a power of two, round trips, variation, the representation."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grammar_mapper import CODONS, grammars

from ge_nas.errors import ConfigError
from ge_nas.grammar import Grammar, load_grammar, map_genome, parse_grammar
from ge_nas.grammar.bits import (
    RAN_OUT_OF_BITS,
    bit_crossover,
    bit_flip_mutation,
    bits_from_genome,
    choice_bits,
    encode_choices,
    map_bits,
)
from ge_nas.grammar.representation import Representation

ROOT = Path(__file__).parent.parent
# <s>: 1 alternative, no bits; <e>: 2, 1 bit; <op>: 3, 2 bits; <v>: 5, 3 bits.
HAND = parse_grammar(
    "\n".join(
        [
            "<s>  ::= (<e>)",
            "<e>  ::= <e><op><e> | <v>",
            "<op> ::= + | - | *",
            "<v>  ::= x | y | z | w | u",
        ]
    )
)


def bits(text: str) -> list[int]:
    return [int(c) for c in text.replace(" ", "")]


# --- hand-worked decodings ------------------------------------------------------------------------


def test_choice_widths_are_ceil_log2_of_the_alternatives() -> None:
    assert [choice_bits(n) for n in range(1, 10)] == [0, 1, 2, 2, 3, 3, 3, 3, 4]


def test_each_choice_reads_its_bits_most_significant_first_modulo_n() -> None:
    # <s>: no bits -> (<e>); <e> 0 -> <e><op><e>; <e> 1 -> <v>; <v> 011 = 3 -> w;
    # <op> 11 = 3, 3 mod 3 = 0 -> +; <e> 1 -> <v>; <v> 111 = 7, 7 mod 5 = 2 -> z. Then a tail.
    d = map_bits(HAND, bits("0 1 011 11 1 111 0101"))
    assert (d.phenotype, d.codons_used, d.wraps) == ("(w+z)", 11, 0)
    ge = map_genome(HAND, [0, 0, 1, 3, 0, 1, 2])  # the same tree from GE codons
    assert (d.depth, d.nodes) == (ge.depth, ge.nodes)


def test_a_genome_that_ends_inside_a_choice_is_invalid() -> None:
    d = map_bits(HAND, bits("0 1 011 11 1 11"))  # <v> needs 3 bits, 2 are left
    assert (d.phenotype, d.reason, d.codons_used) == (None, RAN_OUT_OF_BITS, 8)


def test_wrapping_reads_the_genome_again_from_its_start() -> None:
    # <e> 1 -> <v>; <v> reads bits 1, 2 and, wrapped, bit 0: 101 = 5, 5 mod 5 = 0 -> x.
    assert map_bits(HAND, bits("110")).reason == RAN_OUT_OF_BITS
    d = map_bits(HAND, bits("110"), max_wraps=1)
    assert (d.phenotype, d.codons_used, d.wraps) == ("(x)", 4, 1)


def test_too_deep_and_non_bit_genomes_are_invalid() -> None:
    assert map_bits(HAND, bits("1000"), max_depth=3).reason == "exceeded max depth 3"
    assert map_bits(HAND, bits("1000"), max_depth=4).phenotype == "(x)"
    assert map_bits(HAND, [1, 2]).reason == "not a bit genome: 2 at position 1 (bits are 0 or 1)"


# --- n not a power of two: the spare patterns go to the first alternatives ----------------------


@pytest.mark.parametrize("n", range(2, 10))
def test_the_first_spare_count_alternatives_get_two_patterns_the_rest_one(n: int) -> None:
    grammar = parse_grammar("<s> ::= " + " | ".join(f"a{i}" for i in range(n)))
    width = choice_bits(n)
    patterns = [[v >> s & 1 for s in reversed(range(width))] for v in range(2**width)]
    counts = Counter(map_bits(grammar, p).phenotype for p in patterns)
    spare = 2**width - n
    assert counts == {f"a{i}": 2 if i < spare else 1 for i in range(n)}


def test_n_five_favours_its_first_three_alternatives_one_in_four_to_one_in_eight() -> None:
    rng = random.Random(0)
    grammar = parse_grammar("<s> ::= 1 | 2 | 3 | 4 | 5")
    counts = Counter(
        map_bits(grammar, [rng.randrange(2) for _ in range(3)]).phenotype for _ in range(8000)
    )
    shares = [counts[str(k)] / 8000 for k in range(1, 6)]
    assert shares == pytest.approx([1 / 4, 1 / 4, 1 / 4, 1 / 8, 1 / 8], abs=0.02)


# --- encoding: derivation -> bits -> the same phenotype -------------------------------------------


def test_a_choice_is_encoded_as_any_pattern_that_decodes_to_it() -> None:
    op = HAND.codes.ids["op"]
    seen = {tuple(encode_choices(HAND, [(op, 0)], random.Random(seed))) for seed in range(40)}
    assert seen == {(0, 0), (1, 1)}  # 0 and 3 are both + (3 mod 3 = 0)
    assert encode_choices(HAND, [(HAND.codes.ids["s"], 0)], random.Random(0)) == []


@settings(max_examples=300, deadline=None)
@given(grammars(), CODONS, st.integers(0, 2), st.none() | st.integers(1, 8), st.integers(0, 99))
def test_a_ge_genome_and_its_bits_derive_the_same_tree(
    grammar: Grammar, genome: list[int], max_wraps: int, max_depth: int | None, seed: int
) -> None:
    ge = map_genome(grammar, genome, max_wraps=max_wraps, max_depth=max_depth)
    genome_bits = bits_from_genome(
        grammar, genome, random.Random(seed), max_wraps=max_wraps, max_depth=max_depth
    )
    assert genome_bits and set(genome_bits) <= {0, 1}
    d = map_bits(grammar, genome_bits, max_depth=max_depth)
    if ge.valid:
        assert (d.phenotype, d.depth, d.nodes, d.wraps) == (ge.phenotype, ge.depth, ge.nodes, 0)
        assert len(genome_bits) - d.codons_used == max(1, -(-d.codons_used // 2))  # the tail


class Stop(Exception):
    """The reference decoding ran out of bits."""


def reference_bits(
    grammar: Grammar, genome: list[int], max_wraps: int
) -> tuple[str | None, int, list[tuple[int, int]]]:
    """Decode recursively over grammar.rules: ceil(log2 n) bits as an unsigned int, mod n.

    Return the phenotype (None when the bits run out), the bits read and the choices, leftmost first.
    """
    stream, read, out, choices = genome * (max_wraps + 1), [0], [], []

    def expand(name: str) -> None:
        alternatives = grammar.rules[name]
        width = (len(alternatives) - 1).bit_length()
        if read[0] + width > len(stream):
            raise Stop
        value = int("".join(map(str, stream[read[0] : read[0] + width])) or "0", 2)
        read[0] += width
        choice = value % len(alternatives)
        choices.append((grammar.codes.ids[name], choice))
        for symbol in alternatives[choice]:
            expand(symbol.text) if symbol.is_nt else out.append(symbol.text)

    try:
        expand(grammar.start)
    except (Stop, RecursionError):
        return None, read[0], choices
    return "".join(out), read[0], choices


@settings(max_examples=300, deadline=None)
@given(grammars(), st.lists(st.integers(0, 1), max_size=40), st.integers(0, 2))
def test_matches_the_reference_decoding_and_encodes_back(
    grammar: Grammar, genome: list[int], max_wraps: int
) -> None:
    d = map_bits(grammar, genome, max_wraps=max_wraps)
    phenotype, read, choices = reference_bits(grammar, genome, max_wraps)
    assert d.phenotype == phenotype
    if phenotype is not None:
        assert d.codons_used == read
        again = map_bits(grammar, encode_choices(grammar, choices, random.Random(0)))
        assert (again.phenotype, again.codons_used) == (phenotype, read)


# --- variation: bit flips and crossovers at the same positions ------------------------------------


def test_mutation_flips_only_used_bits() -> None:
    rng = random.Random(0)
    assert bit_flip_mutation(rng, bits("0011 01"), used=4, probability=1.0) == bits("1100 01")
    assert bit_flip_mutation(rng, bits("0011 01"), used=4, probability=0.0) == bits("0011 01")
    flips = [sum(bit_flip_mutation(rng, [0] * 30, used=20)) for _ in range(2000)]
    assert sum(flips) / len(flips) == pytest.approx(1.0, abs=0.1)  # default 1 / used bits
    with pytest.raises(ConfigError, match="within 0..1"):
        bit_flip_mutation(rng, [0], used=1, probability=1.5)


def test_one_point_crossover_cuts_both_parents_at_the_same_place() -> None:
    a, b = [0] * 6, [1] * 9
    cuts = set()
    for seed in range(60):
        first, second = bit_crossover("one-point", random.Random(seed), a, b, used_a=3, used_b=5)
        p = first.index(1)
        assert first == a[:p] + b[p:] and second == b[:p] + a[p:]
        cuts.add(p)
    assert cuts == {1, 2, 3, 4, 5}  # within the longer used prefix (5 bits)


@pytest.mark.parametrize("kind", ["two-point", "uniform"])
def test_two_point_and_uniform_swap_used_positions_and_keep_lengths(kind: str) -> None:
    a, b = [0] * 6, [1] * 9
    swapped = set()
    for seed in range(60):
        first, second = bit_crossover(kind, random.Random(seed), a, b, used_a=4, used_b=2)
        assert (len(first), len(second)) == (6, 9)
        assert [x ^ 1 for x in first] == second[:6] and second[6:] == [1, 1, 1]
        swapped |= {i for i, bit in enumerate(first) if bit}
    assert swapped == {0, 1, 2, 3}


def test_an_unknown_crossover_is_refused() -> None:
    with pytest.raises(ConfigError, match="three-point"):
        bit_crossover("three-point", random.Random(0), [0, 1], [1, 0], used_a=2, used_b=2)


# --- the representation: initial genomes, map, variation ------------------------------------------


@pytest.mark.parametrize("init", ["sensible", "random", "pi_grow"])
def test_initial_bit_genomes_derive_the_networks_the_ge_initialiser_makes(init: str) -> None:
    grammar = load_grammar(ROOT / "grammars" / "cnn_small.bnf")
    ge, rep = Representation("ge", grammar, 40), Representation("bits", grammar, 40)
    codons = ge.initial(random.Random(5), 12, init=init, init_max_depth=None)
    genomes = rep.initial(random.Random(5), 12, init=init, init_max_depth=None)
    assert all(set(g) <= {0, 1} for g in genomes)
    assert [rep.map(g).phenotype for g in genomes] == [ge.map(g).phenotype for g in codons]


def test_the_representation_varies_bit_genomes_into_bit_genomes() -> None:
    grammar = load_grammar(ROOT / "grammars" / "cnn_small.bnf")
    rng = random.Random(1)
    rep = Representation("bits", grammar, 40, crossover_kind="two-point", mutation_prob=0.2)
    a, b = rep.initial(rng, 2, init="sensible", init_max_depth=None)
    used_a, used_b = rep.map(a).codons_used, rep.map(b).codons_used
    children = [
        *rep.crossover(a, b, rng, used_a=used_a, used_b=used_b),
        rep.mutate(a, rng, used=used_a),
    ]
    assert all(set(c) <= {0, 1} for c in children)
    assert sorted(map(len, children[:2])) == sorted([len(a), len(b)]) and len(children[2]) == len(a)
    assert children[2][used_a:] == a[used_a:]  # the tail is not mutated
