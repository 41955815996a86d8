"""Genome + Grammar -> Derivation: GE's genotype-to-phenotype map.

The map is PonyGE2's default linear one [Fenton2017]: expand the leftmost
nonterminal with alternative ``codon % number_of_alternatives``, one codon per
expansion (a rule with a single alternative consumes one too, unless
``consume_single=False``); the individual is invalid when nonterminals remain
after the last codon. Wrapping follows the textbook rule [ONeill2001]: codon
index i reads ``genome[i % len(genome)]`` while ``i < len(genome) * (max_wraps + 1)``.

Depth: the root is 1, each expansion puts its children one level deeper, and
terminals are a level, so ``<e> ::= x`` derives a tree of depth 2. A tree
deeper than ``max_depth`` is invalid.

The loop runs over the grammar's precomputed ``ItemTable`` (see grammar.py):
items carry their depth, so there is no tree, no recursion and no per-node
object, only a stack of ints and strings.

[Fenton2017] M. Fenton et al. PonyGE2: Grammatical Evolution in Python. GECCO 2017.
[ONeill2001] M. O'Neill, C. Ryan. Grammatical Evolution. IEEE TEVC 5(4), 2001.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ge_nas.grammar import Grammar, ItemTable

RAN_OUT = "ran out of codons"


@dataclass(frozen=True, init=False)
class Derivation:
    """The outcome of mapping one genome: phenotype text, or None with the reason."""

    phenotype: str | None
    codons_used: int
    wraps: int
    depth: int
    nodes: int
    reason: str = ""

    def __init__(self, phenotype: str | None, codons_used: int, wraps: int, depth: int, nodes: int,
                 reason: str = "") -> None:
        # Written out because the generated __init__ of a frozen dataclass goes
        # through object.__setattr__ per field, which is 4x slower: this runs
        # once per genome mapped.
        fields = self.__dict__
        fields["phenotype"] = phenotype
        fields["codons_used"] = codons_used
        fields["wraps"] = wraps
        fields["depth"] = depth
        fields["nodes"] = nodes
        fields["reason"] = reason

    @property
    def valid(self) -> bool:
        """Return whether the genome derived a complete phenotype."""
        return self.phenotype is not None


def map_genome(grammar: Grammar, genome: Sequence[int], *, max_wraps: int = 0, max_depth: int | None = None,
               consume_single: bool = True) -> Derivation:
    """Map a genome of non-negative int codons to its derivation; never raises on one.

    Args:
        max_wraps: how many times reading may go past the genome's end and restart.
        max_depth: a deeper tree makes the individual invalid (None: no limit).
        consume_single: whether a rule with one alternative consumes a codon.
    """
    items = grammar.codes.items
    n = len(genome)
    if max_wraps > 0 and n:
        codons: Sequence[int] = list(genome) * (max_wraps + 1)
    else:  # the loop needs an iterator with __length_hint__, as lists and tuples have
        codons = genome if type(genome) is list or type(genome) is tuple else list(genome)
    limit = _NO_LIMIT if max_depth is None else (max_depth - 1) * items.n_rules
    if not consume_single:
        return _map_general(items, codons, n, limit, max_depth)
    # The hot loop: one codon per expansion. An item is depth * n_rules + rule,
    # so `top` (the deepest item expanded) gives the depth, and depth checks run
    # only when a derivation reaches a new deepest item.
    stack: list[Any] = [None]  # None marks the bottom
    out: list[str] = []
    item: Any = 0  # the root: rule 0 at depth 0
    top = -1
    it: Any = iter(codons)  # a list iterator: __length_hint__ is what is left
    for codon in it:
        k, alternatives = items[item]
        if item > top:
            if item >= limit:
                used = len(codons) - it.__length_hint__() - 1
                return _invalid(items, used, n, item, used + len(out) + len(stack), max_depth)
            top = item
        item, rest = alternatives[codon % k]
        if rest:
            stack.extend(rest)
        while type(item) is str:
            out.append(item)
            item = stack.pop()
        if item is None:
            used = len(codons) - it.__length_hint__()
            wraps = 0 if used <= n else (used - 1) // n
            return Derivation("".join(out), used, wraps, top // items.n_rules + 2, used + len(out))
    return _invalid(items, len(codons), n, top, len(codons) + len(out) + len(stack), None)


_NO_LIMIT = sys.maxsize


def _invalid(items: ItemTable, used: int, n: int, deepest: int, nodes: int, max_depth: int | None) -> Derivation:
    """Return the Derivation of a failed mapping; max_depth is None when codons ran out."""
    wraps = 0 if used <= n else (used - 1) // n
    depth = deepest // items.n_rules + 2 if deepest >= 0 else 1
    reason = RAN_OUT if max_depth is None else f"exceeded max depth {max_depth}"
    return Derivation(None, used, wraps, depth, nodes, reason)


def _map_general(items: ItemTable, codons: Sequence[int], n: int, limit: int, max_depth: int | None) -> Derivation:
    """Map like map_genome's loop, but a rule with one alternative consumes no codon."""
    stack: list[Any] = [None]
    out: list[str] = []
    item: Any = 0
    top, used, expanded = -1, 0, 0
    while True:
        k, alternatives = items[item]
        if k > 1 and used >= len(codons):
            return _invalid(items, used, n, top, expanded + len(out) + len(stack), None)
        if item > top:
            if item >= limit:
                return _invalid(items, used, n, item, expanded + len(out) + len(stack), max_depth)
            top = item
        item, rest = alternatives[codons[used] % k if k > 1 else 0]
        used += k > 1
        expanded += 1
        stack.extend(rest)
        while type(item) is str:
            out.append(item)
            item = stack.pop()
        if item is None:
            wraps = 0 if used <= n else (used - 1) // n
            return Derivation("".join(out), used, wraps, top // items.n_rules + 2, expanded + len(out))
