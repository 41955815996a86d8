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

The loop runs over the grammar's ``ItemTable`` (see item_table.py): items
carry their depth and the text just before them, and terminals are negative
ints, so there is no tree, no recursion and no per-node object, only a stack
of ints.

[Fenton2017] M. Fenton et al. PonyGE2: Grammatical Evolution in Python. GECCO 2017.
[ONeill2001] M. O'Neill, C. Ryan. Grammatical Evolution. IEEE TEVC 5(4), 2001.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ge_nas.grammar.grammar import Grammar
from ge_nas.grammar.item_table import ItemTable

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

    def __init__(
        self,
        phenotype: str | None,
        codons_used: int,
        wraps: int,
        depth: int,
        nodes: int,
        reason: str = "",
    ) -> None:
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


def map_genome(
    grammar: Grammar,
    genome: Sequence[int],
    *,
    max_wraps: int = 0,
    max_depth: int | None = None,
    consume_single: bool = True,
) -> Derivation:
    """Map a genome of non-negative int codons to its derivation; never raises on one.

    Args:
        max_wraps: how many times reading may go past the genome's end and restart.
        max_depth: a deeper tree makes the individual invalid (None: no limit).
        consume_single: whether a rule with one alternative consumes a codon.
    """
    table = grammar.codes.items
    n = len(genome)
    if max_wraps > 0 and n:
        codons: Sequence[int] = list(genome) * (max_wraps + 1)
    else:  # the loop needs an iterator with __length_hint__, as lists and tuples have
        codons = genome if type(genome) is list or type(genome) is tuple else list(genome)
    deepest = (
        _NO_LIMIT if max_depth is None else (max_depth - 1) * table.per_level
    )  # the first item too deep
    if not consume_single:
        return _map_general(table, codons, n, deepest, max_depth)
    return _map(table, codons, n, deepest, max_depth)


def _map(
    table: ItemTable, codons: Sequence[int], n: int, deepest: int, max_depth: int | None
) -> Derivation:
    """Map with one codon per expansion: the hot loop.

    `top`, the deepest item expanded, gives the depth; only an item deeper than
    any before is checked against the limit, and so is the sentinel, which lies
    past it: the loop has no test for the end of the stack.
    """
    entries, terms, limit = table.entries, table.terms, deepest if deepest < _BOTTOM else _BOTTOM
    stack: list[int] = [_BOTTOM]
    out: list[str] = []
    item, top = 0, -1
    it: Any = iter(codons)  # __length_hint__ tells what is left
    while True:
        try:
            for codon in it:
                if item > top:
                    if item >= limit:
                        break
                    top = item
                k, alternatives, text = entries[item]
                if text is not None:
                    out.append(text)
                item, rest = alternatives[codon % k]
                if rest is not None:
                    stack.extend(rest)
                while item < 0:
                    out.append(terms[item])
                    item = stack.pop()
            else:
                return _finish(table, item, top, len(codons), len(codons), n, stack, out, None)
        except (
            KeyError
        ):  # an item met for the first time: build its entry, then read that codon again
            table.entry(item)
        used = len(codons) - it.__length_hint__() - 1
        if not stack:  # the sentinel came up: every nonterminal is expanded
            wraps = 0 if used <= n else (used - 1) // n
            return Derivation(
                "".join(out), used, wraps, top // table.per_level + 2, used + len(out)
            )
        if item >= deepest:
            return _finish(table, item, item, used, used, n, stack, out, max_depth)
        top, it = (
            max(top, item),
            iter(codons[used:]),
        )  # an item past the sentinel's value is deep, not too deep


# The bottom of the stack: an item beyond every real one (short of a million
# levels), and below 2**30, where CPython compares ints fastest.
_BOTTOM = (1 << 30) - 1
_NO_LIMIT = sys.maxsize


def _finish(
    table: ItemTable,
    item: int,
    deepest: int,
    used: int,
    expanded: int,
    n: int,
    stack: list[int],
    out: list[str],
    max_depth: int | None,
) -> Derivation:
    """Return the Derivation where a loop stopped: all expanded, out of codons, or item too deep.

    deepest: the deepest item expanded, or item if it is too deep; expanded: how
    many expansions; max_depth: None unless item is too deep.
    """
    depth = deepest // table.per_level + 2 if deepest >= 0 else 1
    wraps = 0 if used <= n else (used - 1) // n
    if not stack:
        return Derivation("".join(out), used, wraps, depth, expanded + len(out))
    # The sentinel's place on the stack stands for item, not yet expanded.
    nodes = expanded + len(out) + table.symbols(stack) + (item in table.texted)
    reason = RAN_OUT if max_depth is None else f"exceeded max depth {max_depth}"
    return Derivation(None, used, wraps, depth, nodes, reason)


def _map_general(
    table: ItemTable, codons: Sequence[int], n: int, deepest: int, max_depth: int | None
) -> Derivation:
    """Map like map_genome, but a rule with one alternative consumes no codon."""
    stack: list[int] = [_BOTTOM]
    out: list[str] = []
    item, top, used, expanded = 0, -1, 0, 0
    while stack:
        k, alternatives, text = table.entry(item)
        if k > 1 and used >= len(codons):
            return _finish(table, item, top, used, expanded, n, stack, out, None)
        if item > top:
            if item >= deepest:
                return _finish(table, item, item, used, expanded, n, stack, out, max_depth)
            top = item
        if text is not None:
            out.append(text)
        item, rest = alternatives[codons[used] % k if k > 1 else 0]
        used += k > 1
        expanded += 1
        if rest is not None:
            stack.extend(rest)
        while item < 0:
            out.append(table.terms[item])
            item = stack.pop()
    return _finish(table, item, top, used, expanded, n, stack, out, None)
