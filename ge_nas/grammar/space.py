"""The size of a search space: how many distinct derivation trees a grammar has up to a depth.

Depth counts as the mapper does: the root is 1 and terminals are a level. Two
trees can derive one text, so the count is an upper bound on the distinct
phenotypes. It is exact, by dynamic programming over the depth:
``trees(rule, d)`` is the sum over the rule's alternatives of the product over
their nonterminals of ``trees(child, d - 1)``. A count stops growing at CAP:
grammars with branching recursion pass any bound within a few levels.
"""

from __future__ import annotations

import math

from ge_nas.grammar.grammar import Grammar

CAP = 10**1000


def count_derivations(grammar: Grammar, max_depth: int) -> int:
    """Return how many derivation trees of depth at most max_depth the start rule has (at most CAP)."""
    codes = grammar.codes.alternatives  # by rule id; the start rule is 0
    plain = [sum(all(isinstance(s, str) for s in alt) for alt in alts) for alts in codes]
    nested = [[_children(alt) for alt in alts if _children(alt)] for alts in codes]
    counts = [0] * len(codes)  # trees of depth at most d - 1, by rule
    for _ in range(2, max_depth + 1):
        deeper = [_trees(plain[r], nested[r], counts) for r in range(len(codes))]
        if deeper == counts:  # no rule can use the extra level: every count is final
            break
        counts = deeper
    return counts[0]


def _children(alternative: tuple[int | str, ...]) -> tuple[int, ...]:
    return tuple(s for s in alternative if isinstance(s, int))


def _trees(plain: int, nested: list[tuple[int, ...]], counts: list[int]) -> int:
    total = plain + sum(math.prod(counts[c] for c in children) for children in nested)
    return min(total, CAP)
