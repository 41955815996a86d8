"""The size of a search space: derivation trees up to a depth, counted exactly."""

from __future__ import annotations

import itertools
from pathlib import Path

from ge_nas.grammar import count_derivations, load_grammar, map_genome, parse_grammar
from ge_nas.grammar.space import CAP

GRAMMARS = Path(__file__).parent / "grammars"


def test_a_finite_unambiguous_grammar_has_as_many_trees_as_phenotypes() -> None:
    grammar = parse_grammar(
        "<n> ::= <l> <l> | <l>\n<l> ::= conv(<f>) | relu\n<f> ::= 8 | 16 | 32\n"
    )
    phenotypes = {
        map_genome(grammar, genome).phenotype for genome in itertools.product(range(6), repeat=5)
    }
    assert count_derivations(grammar, 40) == len(phenotypes - {None}) == 4 * 4 + 4


def test_recursive_trees_are_counted_level_by_level() -> None:
    # <expr> ::= <expr> <op> <expr> | ( <expr> ) | <var>, three ops, two vars:
    # depth 3: x, y; depth 4: 2 + 2 parenthesised + 2 * 3 * 2 combined.
    grammar = load_grammar(GRAMMARS / "expr.bnf")
    assert [count_derivations(grammar, d) for d in range(1, 6)] == [0, 0, 2, 16, 786]


def test_branching_recursion_stops_at_the_cap() -> None:
    assert count_derivations(load_grammar(GRAMMARS / "expr.bnf"), 40) == CAP
