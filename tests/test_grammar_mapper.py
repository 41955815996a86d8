"""Genome + Grammar -> Derivation: PonyGE2's linear map, depth, wrapping, and a reference check."""

from __future__ import annotations

import array
import dataclasses
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ge_nas.grammar import Grammar, Symbol, load_grammar, parse_grammar
from ge_nas.grammar.mapper import Derivation, map_genome

GRAMMARS = Path(__file__).parent / "grammars"
EXPR = load_grammar(GRAMMARS / "expr.bnf")
CODONS = st.lists(st.integers(min_value=0, max_value=2**70), max_size=60)


# --- golden cases ---------------------------------------------------------------------------------


def test_leftmost_nonterminal_first_and_choice_is_codon_modulo() -> None:
    # expr -> expr op expr (0); expr -> var (2 % 3) -> y (1); op -> * (5 % 3); expr -> var (5 % 3) -> x (4 % 2)
    d = map_genome(EXPR, [0, 2, 1, 5, 5, 4])
    assert d == Derivation("y * x", 6, 0, 4, 11)
    assert d.valid


def test_unit_rule_consumes_a_codon_unless_told_not_to() -> None:
    grammar = parse_grammar("<s> ::= <a><b>\n<a> ::= 1 | 2\n<b> ::= 3 | 4")
    assert map_genome(grammar, [0, 1, 0]) == Derivation("23", 3, 0, 3, 5)
    assert map_genome(grammar, [1, 0], consume_single=False) == Derivation("23", 2, 0, 3, 5)
    assert map_genome(grammar, [1, 0]).reason == "ran out of codons"


def test_invalid_when_nonterminals_remain() -> None:
    d = map_genome(EXPR, [0, 2, 1, 5])
    assert d.phenotype is None and not d.valid
    assert (d.codons_used, d.reason) == (4, "ran out of codons")


def test_empty_genome_is_invalid_not_an_error() -> None:
    assert map_genome(EXPR, []) == Derivation(None, 0, 0, 1, 1, "ran out of codons")
    assert map_genome(EXPR, [], max_wraps=3).reason == "ran out of codons"


def test_trailing_codons_are_not_used() -> None:
    assert map_genome(EXPR, [2, 0, 9, 9, 9]) == Derivation("x", 2, 0, 3, 3)


def test_depth_counts_root_and_terminals() -> None:
    assert map_genome(parse_grammar("<e> ::= x"), [0]).depth == 2
    assert map_genome(EXPR, [2, 0]).depth == 3  # expr -> var -> x
    assert map_genome(EXPR, [1, 2, 0]).depth == 4  # expr -> ( expr ) -> var -> x


@pytest.mark.parametrize(
    ("max_depth", "valid"), [(None, True), (5, True), (4, True), (3, False), (1, False)]
)
def test_max_depth_is_exact(max_depth: int | None, valid: bool) -> None:
    d = map_genome(EXPR, [1, 2, 0], max_depth=max_depth)  # a tree of depth exactly 4
    assert d.valid is valid
    if not valid:
        assert d.reason == f"exceeded max depth {max_depth}"


def test_max_depth_applies_without_consuming_single() -> None:
    grammar = parse_grammar("<a> ::= <b>\n<b> ::= <c>\n<c> ::= x")
    assert map_genome(grammar, [], consume_single=False, max_depth=4) == Derivation("x", 0, 0, 4, 4)
    assert (
        map_genome(grammar, [], consume_single=False, max_depth=3).reason == "exceeded max depth 3"
    )


def test_wrapping_reads_genome_again_and_counts_wraps() -> None:
    # read as 0 2 1 | 0 2 1: expr op expr, var, y, +, var, y
    assert map_genome(EXPR, [0, 2, 1]).reason == "ran out of codons"
    assert map_genome(EXPR, [0, 2, 1], max_wraps=1) == Derivation("y + y", 6, 1, 4, 11)
    # the sixth codon is the first one again: var -> x (0 % 2)
    assert map_genome(EXPR, [0, 2, 1, 1, 2], max_wraps=1) == Derivation("y - x", 6, 1, 4, 11)
    assert map_genome(EXPR, [0, 2, 1, 1, 2], max_wraps=0).reason == "ran out of codons"


def test_wrapping_limit_is_length_times_wraps_plus_one() -> None:
    endless = [0]  # expr -> expr op expr forever
    d = map_genome(EXPR, endless, max_wraps=4)
    assert (d.codons_used, d.wraps, d.reason) == (5, 4, "ran out of codons")


def test_node_count_includes_terminals() -> None:
    grammar = parse_grammar("<s> ::= a<t>b<t>c\n<t> ::= x | yz")
    assert map_genome(grammar, [0, 0, 1]) == Derivation("axbyzc", 3, 0, 3, 8)


def test_one_alternative_with_many_codons() -> None:
    grammar = parse_grammar("<a> ::= GE_RANGE:1000")
    assert map_genome(grammar, [123456]).phenotype == "456"


def test_any_sequence_of_ints_is_a_genome() -> None:
    expected = map_genome(EXPR, [0, 2, 1, 5, 5, 4])
    for genome in ((0, 2, 1, 5, 5, 4), array.array("q", [0, 2, 1, 5, 5, 4])):
        assert map_genome(EXPR, genome) == expected
    assert (
        map_genome(EXPR, range(0, 6)).valid is False
    )  # a range is a genome too (this one runs out)
    assert map_genome(EXPR, array.array("q", [0, 2, 1, 5, 5, 4]), max_wraps=2) == expected


def test_derivation_is_a_frozen_picklable_dataclass() -> None:
    d = map_genome(EXPR, [0, 2, 1, 5, 5, 4])
    assert pickle.loads(pickle.dumps(d)) == d
    assert dataclasses.replace(d, wraps=2).wraps == 2
    assert dataclasses.asdict(d)["phenotype"] == "y * x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.wraps = 3  # type: ignore[misc]


# --- properties -----------------------------------------------------------------------------------


@given(CODONS, st.integers(0, 3), st.one_of(st.none(), st.integers(0, 12)), st.booleans())
def test_never_raises_and_is_deterministic(
    genome: list[int], wraps: int, depth: int | None, single: bool
) -> None:
    first = map_genome(EXPR, genome, max_wraps=wraps, max_depth=depth, consume_single=single)
    assert first == map_genome(
        EXPR, list(genome), max_wraps=wraps, max_depth=depth, consume_single=single
    )
    assert first.valid == (first.reason == "")
    assert first.codons_used <= len(genome) * (wraps + 1)


@st.composite
def grammars(draw: st.DrawFn) -> Grammar:
    """Draw a small terminating grammar, built directly from Symbols."""
    names = [f"r{i}" for i in range(draw(st.integers(1, 4)))]
    terminal = st.sampled_from(["a", "b", "", " ", "\n"]).map(lambda t: Symbol(t, False))
    symbol = st.one_of(terminal, st.sampled_from(names).map(lambda n: Symbol(n, True)))
    rules = {
        name: (draw(st.lists(terminal, min_size=1, max_size=2).map(tuple)),)
        + tuple(draw(st.lists(st.lists(symbol, min_size=1, max_size=3).map(tuple), max_size=3)))
        for name in names
    }
    return Grammar("r0", rules)


def reference_map(
    grammar: Grammar, genome: list[int], max_wraps: int, max_depth: int | None, consume_single: bool
) -> tuple[str | None, int, int, int]:
    """Map by rewriting the sentential form's leftmost nonterminal, as the textbook says."""
    form: list[tuple[Symbol, int]] = [(Symbol(grammar.start, True), 1)]
    used, deepest, nodes = 0, 1, 1
    while True:
        at = next((i for i, (s, _) in enumerate(form) if s.is_nt), None)
        if at is None:
            return "".join(s.text for s, _ in form), used, deepest, nodes
        (_, depth), alternatives = form[at], grammar.rules[form[at][0].text]
        choice = 0
        if len(alternatives) > 1 or consume_single:
            if used >= len(genome) * (max_wraps + 1):
                return None, used, deepest, nodes
            choice, used = genome[used % len(genome)] % len(alternatives), used + 1
        if max_depth is not None and depth + 1 > max_depth:
            return None, used, deepest, nodes
        children = alternatives[choice]
        form[at : at + 1] = [(child, depth + 1) for child in children]
        deepest, nodes = max(deepest, depth + 1), nodes + len(children)


@settings(max_examples=300, deadline=None)
@given(
    grammars(), CODONS, st.integers(0, 2), st.one_of(st.none(), st.integers(1, 8)), st.booleans()
)
def test_matches_the_reference_map(
    grammar: Grammar, genome: list[int], wraps: int, depth: int | None, single: bool
) -> None:
    got = map_genome(grammar, genome, max_wraps=wraps, max_depth=depth, consume_single=single)
    text, used, deepest, nodes = reference_map(grammar, genome, wraps, depth, single)
    assert got.phenotype == text
    if text is not None:
        assert (got.codons_used, got.depth, got.nodes) == (used, deepest, nodes)
        assert got.wraps == (max(used - 1, 0) // len(genome) if genome else 0)


@settings(max_examples=300, deadline=None)
@given(
    grammars(), CODONS, st.integers(0, 2), st.one_of(st.none(), st.integers(1, 8)), st.booleans()
)
def test_running_out_reports_the_partial_tree(
    grammar: Grammar, genome: list[int], wraps: int, depth: int | None, single: bool
) -> None:
    got = map_genome(grammar, genome, max_wraps=wraps, max_depth=depth, consume_single=single)
    if got.reason == "ran out of codons":
        assert (None, got.codons_used, got.depth, got.nodes) == reference_map(
            grammar, genome, wraps, depth, single
        )
