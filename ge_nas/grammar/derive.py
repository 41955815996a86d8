"""Leftmost derivations driven by a chooser: the loop that SGE genotypes and bit genomes share.

`derive` expands the leftmost nonterminal with the alternative a chooser
returns, until none is left or the chooser returns a reason to stop. Each
representation that is not GE codons supplies its own chooser (sge.py,
bits.py); `ge_choices` replays a GE genome's choices as `map_genome` makes
them, so those representations can start from the GE initialisers.

Depth counts as in `ge_nas.grammar.mapper`: the root is 1 and terminals are a
level. The phenotype of a tree is the one the GE mapper gives for a genome
deriving the same tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ge_nas.grammar.grammar import Grammar, RuleCodes
from ge_nas.grammar.mapper import RAN_OUT, Derivation
from ge_nas.grammar.rule_graph import Code

# Called once per expansion with (rule id, level of the node): the alternative
# to expand it with, or the reason the derivation stops there.
Chooser = Callable[[int, int], int | str]
Choice = tuple[int, int]  # (rule id, alternative)


def derive(codes: RuleCodes, choose: Chooser) -> Derivation:
    """Expand the leftmost nonterminal with the chooser's alternative until none is left.

    codons_used counts the expansions made (up to the failure, for an invalid one); wraps is 0.
    """
    alternatives = codes.alternatives
    stack: list[tuple[Code, int]] = [(0, 1)]  # (symbol, level)
    out: list[str] = []
    used, depth, nodes = 0, 1, 1
    while stack:
        symbol, level = stack.pop()
        if isinstance(symbol, str):
            out.append(symbol)
            continue
        choice = choose(symbol, level)
        if isinstance(choice, str):
            return Derivation(None, used, 0, depth, nodes, choice)
        alternative = alternatives[symbol][choice]
        used, nodes, depth = used + 1, nodes + len(alternative), max(depth, level + 1)
        stack.extend([(child, level + 1) for child in reversed(alternative)])
    return Derivation("".join(out), used, 0, depth, nodes)


def ge_choices(
    grammar: Grammar,
    genome: Sequence[int],
    *,
    max_wraps: int = 0,
    max_depth: int | None = None,
    consume_single: bool = True,
) -> list[Choice]:
    """Return the (rule id, alternative) of each expansion, leftmost first, that a GE genome makes.

    The options are `map_genome`'s. For an invalid genome, the choices made before the mapping stopped.
    """
    choices: list[Choice] = []
    derive(
        grammar.codes,
        _ge_reader(grammar.codes, genome, choices, max_wraps, max_depth, consume_single),
    )
    return choices


def _ge_reader(
    codes: RuleCodes,
    genome: Sequence[int],
    choices: list[Choice],
    max_wraps: int,
    max_depth: int | None,
    consume_single: bool,
) -> Chooser:
    """Read GE codons as map_genome does (codon modulo alternatives), recording each choice."""
    read, limit = 0, len(genome) * (max_wraps + 1)

    def choose(rule: int, level: int) -> int | str:
        nonlocal read
        n, choice = len(codes.alternatives[rule]), 0
        if n > 1 or consume_single:
            if read >= limit:
                return RAN_OUT
            choice, read = genome[read % len(genome)] % n, read + 1
        if max_depth is not None and level >= max_depth:
            return f"exceeded max depth {max_depth}"
        choices.append((rule, choice))
        return choice

    return choose
