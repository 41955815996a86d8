"""Graph facts over coded rules: least depths, recursion, reachability."""

from __future__ import annotations

from ge_nas.grammar.rule_graph import Code, min_depths, reachable, recursive_rules

# <e> ::= <e> + <e> | <v>    <v> ::= x | y    <loop> ::= <loop>    <u> ::= <v> <v>
RULES: list[list[tuple[Code, ...]]] = [[(0, "+", 0), (1,)], [("x",), ("y",)], [(2,)], [(1, 1)]]


def test_min_depth_counts_terminals_as_a_level_and_none_never_finishes() -> None:
    assert min_depths(RULES) == [3, 2, None, 3]


def test_min_depth_takes_the_best_alternative_and_its_deepest_child() -> None:
    # <a> ::= <b> x | <c>    <b> ::= <c>    <c> ::= z
    assert min_depths([[(1, "x"), (2,)], [(2,)], [("z",)]]) == [3, 3, 2]


def test_recursion_is_being_on_a_cycle() -> None:
    assert recursive_rules(RULES) == [True, False, True, False]
    assert recursive_rules([[(1,)], [(0,), ("x",)], [(0,)]]) == [True, True, False]


def test_reachable_follows_references_from_the_start() -> None:
    assert reachable(RULES, 0) == [True, True, False, False]
    assert reachable(RULES, 3) == [False, True, False, True]
