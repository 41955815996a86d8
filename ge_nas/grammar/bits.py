"""Bit genomes: each choice read from ceil(log2 n) bits; their map, encoding and variation.

A genome is a list of bits (ints 0 and 1), so it is stored, archived and
checkpointed as any genome. The map is GE's with codons of variable width
[ONeill2001]: expand the leftmost nonterminal first; a rule with n
alternatives reads the next b = ceil(log2 n) bits as an unsigned integer v,
most significant bit first, and takes alternative v mod n. A rule with one
alternative reads no bits. With one rule per gene, a grammar lays out a
fixed-layout binary GA's genome, such as the 20 bits of the CNN GA on CIFAR
that issue #15 reproduces (filter scale, kernel, activation, stages, one bit
per stage).

**n not a power of two.** The b bits have 2^b patterns, 2^b - n more than
there are alternatives; mod n gives the spare ones to the first 2^b - n
alternatives, which under uniform random bits are then twice as likely as the
others: n = 3 gives 1/2, 1/4, 1/4; n = 5 gives 1/4, 1/4, 1/4, 1/8, 1/8. It is
GE's codon-modulo rule with codons of b bits, so every alternative is
reachable, every bit pattern decodes (no invalid genomes from a spare
pattern), and a grammar author controls the bias as in GE: put the
alternatives to favour first, or repeat alternatives up to a power of two.
Clamping (v >= n takes the last) would favour one alternative by up to
2^b - n + 1 patterns (4 of 8 for n = 5); rejecting spare patterns would waste
evaluations on invalid genomes.

**Wrapping** is GE's: bit i reads ``genome[i % len(genome)]`` while
``i < len(genome) * (max_wraps + 1)``; a choice whose bits run past that end
makes the genome invalid ('ran out of bits').

**Length.** An initial genome is the bits its derivation reads plus a random
tail half as long (as the sensible initialiser's codons). Variation never
lengthens a genome: crossover exchanges bits at the same positions in both
parents (a binary GA's homologous crossover, so a bit keeps its place in the
layout), and each child is as long as one of its parents; mutation flips
bits. A run's longest genome is its longest initial one.

**Variation** acts on the used bits (those the mapping read, clamped to the
genome). Two-point crossover (the default) swaps the bits between two cuts,
one-point every bit from one cut on, both at the same positions in both
parents and within the longer used prefix that both genomes hold; uniform
crossover swaps each such position with probability 1/2. Mutation flips each
used bit with a probability (default 1 / used bits). Two-point is the default
because it measured best on the synthetic search of
tests/test_search_evolution.py (mean hypervolume over 15 seeds, generational
and steady state: two-point 3.69 and 3.64, uniform 3.63 and 3.57, one-point
3.60 and 3.48; GE codons 3.56 and 3.70). One-point bred the fewest new
networks there: of 260 genomes per run, 157 and 155 were new phenotypes,
against 174 and 171 for two-point.

[ONeill2001] M. O'Neill, C. Ryan. Grammatical Evolution. IEEE TEVC 5(4), 2001.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from ge_nas.errors import ConfigError
from ge_nas.grammar.derive import Choice, Chooser, derive, ge_choices
from ge_nas.grammar.grammar import Grammar, RuleCodes
from ge_nas.grammar.mapper import Derivation

RAN_OUT_OF_BITS = "ran out of bits"
TAIL_RATIO = 0.5  # random bits after the used ones in an initial genome, as a share of them


def choice_bits(n: int) -> int:
    """Return the bits a rule of n alternatives reads: ceil(log2 n), 0 for one alternative."""
    return (n - 1).bit_length()


def map_bits(
    grammar: Grammar, genome: Sequence[int], *, max_wraps: int = 0, max_depth: int | None = None
) -> Derivation:
    """Map a bit genome to its derivation; never raises on one.

    codons_used counts the bits read (up to the failure, for an invalid genome).
    A genome holding anything but 0 and 1 is invalid.
    """
    bad = next((i for i, bit in enumerate(genome) if bit not in (0, 1)), None)
    if bad is not None:
        return Derivation(
            None, 0, 0, 0, 0, f"not a bit genome: {genome[bad]} at position {bad} (bits are 0 or 1)"
        )
    read = [0]
    d = derive(grammar.codes, _bit_reader(grammar.codes, genome, read, max_wraps, max_depth))
    n = len(genome)
    wraps = 0 if read[0] <= n else (read[0] - 1) // n
    return Derivation(d.phenotype, read[0], wraps, d.depth, d.nodes, d.reason)


def _bit_reader(
    codes: RuleCodes, genome: Sequence[int], read: list[int], max_wraps: int, max_depth: int | None
) -> Chooser:
    """Read each choice's bits (read[0]: bits read so far), wrapping as GE does."""
    limit = len(genome) * (max_wraps + 1)

    def choose(rule: int, level: int) -> int | str:
        n = len(codes.alternatives[rule])
        width, at = choice_bits(n), read[0]
        if at + width > limit:
            return RAN_OUT_OF_BITS
        value = 0
        for i in range(at, at + width):
            value = value << 1 | genome[i % len(genome)]
        read[0] = at + width
        if max_depth is not None and level >= max_depth:
            return f"exceeded max depth {max_depth}"
        return value % n

    return choose


def encode_choices(grammar: Grammar, choices: Sequence[Choice], rng: random.Random) -> list[int]:
    """Return the bits of leftmost (rule id, alternative) choices, each as a random pattern that decodes to it."""
    bits: list[int] = []
    for rule, choice in choices:
        n = len(grammar.codes.alternatives[rule])
        width = choice_bits(n)
        value = choice + n * rng.randrange((2**width - 1 - choice) // n + 1) if width else 0
        bits += [value >> shift & 1 for shift in reversed(range(width))]
    return bits


def bits_from_genome(
    grammar: Grammar,
    genome: Sequence[int],
    rng: random.Random,
    *,
    max_wraps: int = 0,
    max_depth: int | None = None,
) -> list[int]:
    """Return a bit genome deriving the tree a GE genome derives, with a random tail (TAIL_RATIO).

    A genome is at least one bit long, even when its derivation reads none.
    """
    choices = ge_choices(grammar, genome, max_wraps=max_wraps, max_depth=max_depth)
    bits = encode_choices(grammar, choices, rng)
    tail = max(1, math.ceil(len(bits) * TAIL_RATIO))
    return bits + [rng.randrange(2) for _ in range(tail)]


def bit_flip_mutation(
    rng: random.Random, genome: Sequence[int], *, used: int, probability: float | None = None
) -> list[int]:
    """Flip each used bit with probability (default 1 / used bits)."""
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ConfigError(f"mutation probability must be within 0..1, got {probability}")
    child = list(genome)
    span = _span(used, child)
    chance = 1.0 / max(1, span) if probability is None else probability
    for i in range(span):
        if rng.random() < chance:
            child[i] ^= 1
    return child


def bit_crossover(
    kind: str, rng: random.Random, a: Sequence[int], b: Sequence[int], *, used_a: int, used_b: int
) -> tuple[list[int], list[int]]:
    """Return two children that exchange bits at the same positions (see the module docstring)."""
    span = min(max(used_a, used_b, 1), len(a), len(b))
    if span < 1:
        return list(a), list(b)
    if kind == "one-point":  # every bit from the cut on: the children swap lengths too
        p = rng.randint(1, span)
        return list(a[:p]) + list(b[p:]), list(b[:p]) + list(a[p:])
    first, second = list(a), list(b)
    for i in _swapped_positions(kind, span, rng):
        first[i], second[i] = second[i], first[i]
    return first, second


def _swapped_positions(kind: str, span: int, rng: random.Random) -> Sequence[int]:
    if kind == "uniform":
        return [i for i in range(span) if rng.random() < 0.5]
    if kind == "two-point":
        start, end = sorted(rng.sample(range(span + 1), 2))
        return range(start, end)
    raise ConfigError(f"unknown crossover {kind!r}; expected one-point, two-point or uniform")


def _span(used: int, genome: Sequence[int]) -> int:
    """Return the used bits clamped to the genome (wrapping can read more than its length)."""
    return min(max(used, 0), len(genome))
