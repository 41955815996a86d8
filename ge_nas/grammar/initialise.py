"""Initial populations: random genomes, sensible initialisation, position-independent grow.

Sensible initialisation [Ryan2003] builds derivation trees ramped
half-and-half over a depth range: *grow* picks any alternative that fits the
remaining depth, *full* prefers recursive alternatives and forces the tree to
the target depth. Position-independent grow [Fagan2016] makes one randomly
chosen branch at each level reach the target depth and grows the others.

A tree becomes a genome by writing, in leftmost order, codon ``c + k * r`` for
choice c of a rule with k alternatives (r random, codon < codon_size), then a
random tail. Every genome maps back (map_genome, default options) to exactly
the phenotype of its tree. All randomness comes from the rng passed in.

[Ryan2003] C. Ryan, R. M. A. Azad. Sensible Initialisation in Grammatical
Evolution. GECCO 2003 workshops.
Density initialisation draws a share d ~ U(0, 1) per genome and makes each
codon 1 with probability d: for the mask grammars of `ge_nas prune`, masks
keeping anything from few to almost all units [MO-EvoPruneDeepTL].

[MO-EvoPruneDeepTL] J. Poyatos, D. Molina, A. Martinez-Seras, J. Del Ser,
F. Herrera. Multiobjective evolutionary pruning of deep neural networks with
transfer learning for improving their performance and robustness. 2023.
[Fagan2016] D. Fagan, M. Fenton, M. O'Neill. Exploring Position Independent
Initialisation in Grammatical Evolution. IEEE CEC 2016.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Literal

from ge_nas.errors import ConfigError
from ge_nas.grammar.grammar import Grammar
from ge_nas.grammar.mapper import RAN_OUT, map_genome

logger = logging.getLogger(__name__)

Mode = Literal["grow", "full", "pi"]
Node = tuple[int, int, bool]  # rule id, depth budget, must the subtree reach the budget exactly?
Attempt = tuple[list[int], "str | None"]  # a genome and its phenotype (None: invalid)
INIT_DEPTH_SPAN = 6  # default deepest initial tree: the start rule's least depth + this


def initial_genomes(
    grammar: Grammar,
    rng: random.Random,
    n: int,
    *,
    init: str,
    codon_size: int,
    max_depth: int,
    init_max_depth: int | None,
) -> list[list[int]]:
    """Return n distinct valid genomes from the initialiser named init (sensible, random or pi_grow).

    init_max_depth None means the start rule's least depth + INIT_DEPTH_SPAN, never above max_depth.
    """
    if init == "random":
        return random_population(grammar, rng, n, codon_size=codon_size, max_depth=max_depth)
    if init == "density":
        return density_population(grammar, rng, n, max_depth=max_depth)
    low = grammar.min_depth(grammar.start)
    high = min(max_depth, init_max_depth or low + INIT_DEPTH_SPAN)
    if init == "pi_grow":
        return pi_grow_population(grammar, rng, n, max_depth=high, codon_size=codon_size)
    return sensible_population(
        grammar, rng, n, min_depth=low, max_depth=high, codon_size=codon_size
    )


def random_genome(rng: random.Random, length: int, codon_size: int) -> list[int]:
    """Return length codons drawn uniformly from range(codon_size)."""
    return [rng.randrange(codon_size) for _ in range(length)]


def random_population(
    grammar: Grammar,
    rng: random.Random,
    n: int,
    *,
    min_length: int = 20,
    max_length: int = 80,
    codon_size: int,
    max_depth: int | None = None,
    max_tries: int = 100,
) -> list[list[int]]:
    """Return n random genomes with valid, distinct phenotypes where the space allows.

    Each individual gets up to max_tries random genomes; when none is valid and
    new, it keeps a valid duplicate, or else an invalid genome.
    """
    if not 1 <= min_length <= max_length:
        raise ConfigError(
            f"genome lengths must satisfy 1 <= min_length <= max_length, got {min_length}..{max_length}"
        )
    _check_codon_size(grammar, codon_size)

    def attempt() -> Attempt:
        genome = random_genome(rng, rng.randint(min_length, max_length), codon_size)
        return genome, map_genome(grammar, genome, max_depth=max_depth).phenotype

    return _distinct(n, attempt, max_tries, "random")


def density_population(
    grammar: Grammar,
    rng: random.Random,
    n: int,
    *,
    max_depth: int | None = None,
    max_codons: int = 1 << 20,
    max_tries: int = 100,
) -> list[list[int]]:
    """Return n genomes of 0/1 codons, each drawing its density d ~ U(0, 1) and each codon 1 with probability d.

    Meant for mask grammars (`ge_nas prune`), where each bit rule reads `0 | 1` (or a group
    `000 | 111`): a genome's masks then keep a share d of the units, and the population's
    shares spread over (0, 1) [MO-EvoPruneDeepTL]. A genome is as long as its mapping uses.
    """

    def attempt() -> Attempt:
        density = rng.random()
        genome: list[int] = []
        while True:
            genome += [int(rng.random() < density) for _ in range(max(16, len(genome)))]
            derivation = map_genome(grammar, genome, max_depth=max_depth)
            if derivation.reason != RAN_OUT or len(genome) >= max_codons:
                break
        return genome[: max(1, derivation.codons_used)], derivation.phenotype

    return _distinct(n, attempt, max_tries, "density")


def sensible_population(
    grammar: Grammar,
    rng: random.Random,
    n: int,
    *,
    min_depth: int,
    max_depth: int,
    codon_size: int,
    tail_ratio: float = 0.5,
    max_tries: int = 100,
) -> list[list[int]]:
    """Return n genomes from ramped half-and-half (grow / full) trees over min_depth..max_depth."""
    depths = _depth_ramp(grammar, min_depth, max_depth)
    builder = _TreeBuilder(grammar, max_depth, rng)
    _check_codon_size(grammar, codon_size)
    count = 0

    def attempt() -> Attempt:
        nonlocal count
        depth, mode = depths[(count // 2) % len(depths)], ("grow", "full")[count % 2]
        count += 1
        return builder.genome(depth, mode, codon_size, tail_ratio)  # type: ignore[arg-type]

    return _distinct(n, attempt, max_tries, "sensible")


def pi_grow_population(
    grammar: Grammar,
    rng: random.Random,
    n: int,
    *,
    max_depth: int,
    codon_size: int,
    min_depth: int | None = None,
    tail_ratio: float = 0.5,
    max_tries: int = 100,
) -> list[list[int]]:
    """Return n genomes from position-independent grow trees ramped over min_depth..max_depth."""
    depths = _depth_ramp(grammar, min_depth or 0, max_depth)
    builder = _TreeBuilder(grammar, max_depth, rng)
    _check_codon_size(grammar, codon_size)
    count = 0

    def attempt() -> Attempt:
        nonlocal count
        depth = depths[count % len(depths)]
        count += 1
        return builder.genome(depth, "pi", codon_size, tail_ratio)

    return _distinct(n, attempt, max_tries, "PI grow")


def _depth_ramp(grammar: Grammar, min_depth: int, max_depth: int) -> list[int]:
    least = grammar.min_depth(grammar.start)
    if max_depth < least:
        raise ConfigError(
            f"max_depth {max_depth} is below the least tree depth {least} of {grammar.source} "
            f"(start rule <{grammar.start}>)"
        )
    return list(range(max(min_depth, least), max_depth + 1))


def _check_codon_size(grammar: Grammar, codon_size: int) -> None:
    widest = max(len(alts) for alts in grammar.rules.values())
    if codon_size < widest:
        raise ConfigError(
            f"codon_size {codon_size} is smaller than the {widest} alternatives of a rule "
            f"in {grammar.source}"
        )


def _distinct(n: int, attempt: Callable[[], Attempt], max_tries: int, what: str) -> list[list[int]]:
    """Collect n genomes with new valid phenotypes; after max_tries misses in a row, take what comes."""
    seen: set[str] = set()
    genomes: list[list[int]] = []
    exhausted = False
    while len(genomes) < n:
        genome, phenotype = _one(attempt, seen, 1 if exhausted else max(1, max_tries))
        if phenotype is None or phenotype in seen:
            if not exhausted:
                logger.info(
                    "%s initialisation: no new valid phenotype in %d tries; allowing repeats",
                    what,
                    max_tries,
                )
            exhausted = True
        if phenotype is not None:
            seen.add(phenotype)
        genomes.append(genome)
    return genomes


def _one(attempt: Callable[[], Attempt], seen: set[str], tries: int) -> Attempt:
    """Return the first attempt with a new valid phenotype, else the best of tries (valid first)."""
    best: Attempt | None = None
    for _ in range(tries):
        genome, phenotype = attempt()
        if phenotype is not None and phenotype not in seen:
            return genome, phenotype
        if best is None or (best[1] is None and phenotype is not None):
            best = genome, phenotype
    assert best is not None
    return best


class _TreeBuilder:
    """Build derivation trees under depth constraints, leftmost first, as choices and text."""

    def __init__(self, grammar: Grammar, max_depth: int, rng: random.Random) -> None:
        codes = grammar.codes
        self.alternatives = codes.alternatives
        self.alt_min = codes.alt_min_depths
        self.min_depths = codes.min_depths
        self.recursive_alt = [
            [any(isinstance(s, int) and codes.recursive[s] for s in alt) for alt in alts]
            for alts in codes.alternatives
        ]
        self.exact = _exact_depths(codes.alternatives, codes.alt_min_depths, max_depth)
        self.rng = rng

    def genome(self, depth: int, mode: Mode, codon_size: int, tail_ratio: float) -> Attempt:
        """Build one tree of the given depth and mode; return its genome and phenotype."""
        choices, phenotype = self.tree(depth, mode)
        genome = [c + k * self.rng.randrange((codon_size - 1 - c) // k + 1) for c, k in choices]
        tail = math.ceil(len(genome) * tail_ratio)
        return genome + random_genome(self.rng, tail, codon_size), phenotype

    def tree(self, depth: int, mode: Mode) -> tuple[list[tuple[int, int]], str]:
        """Return the (choice, number of alternatives) of each expansion in leftmost order, and the text."""
        if mode != "grow":
            depth = self.deepest_exact(0, depth)
        choices: list[tuple[int, int]] = []
        out: list[str] = []
        stack: list[Node | str] = [(0, depth, mode != "grow")]
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                out.append(node)
                continue
            rule, budget, exact = node
            a = self.choose(rule, budget, exact, mode)
            choices.append((a, len(self.alternatives[rule])))
            stack.extend(reversed(self.children(rule, a, budget, exact, mode)))
        return choices, "".join(out)

    def choose(self, rule: int, budget: int, exact: bool, mode: Mode) -> int:
        """Pick an alternative that fits the budget (and can reach it exactly when required)."""
        alts = range(len(self.alternatives[rule]))
        if not exact:
            return self.rng.choice([a for a in alts if self.alt_min[rule][a] <= budget])
        fits = [a for a in alts if self.alt_exact(rule, a, budget)]
        if mode == "full":
            fits = [a for a in fits if self.recursive_alt[rule][a]] or fits
        return self.rng.choice(fits)

    def alt_exact(self, rule: int, a: int, depth: int) -> bool:
        """Return whether alternative a of rule can derive a tree of exactly depth."""
        alt = self.alternatives[rule][a]
        return self.alt_min[rule][a] <= depth and any(
            self.exact[s][depth - 1] if isinstance(s, int) else depth == 2 for s in alt
        )

    def children(self, rule: int, a: int, budget: int, exact: bool, mode: Mode) -> list[Node | str]:
        """Return the child nodes of an expansion, each with its own depth constraint."""
        alt = self.alternatives[rule][a]
        below = budget - 1
        if not exact:
            return [(s, below, False) if isinstance(s, int) else s for s in alt]
        if mode == "full":
            return [
                (s, self.deepest_exact(s, below), True) if isinstance(s, int) else s for s in alt
            ]
        carriers = [i for i, s in enumerate(alt) if isinstance(s, int) and self.exact[s][below]]
        chosen = self.rng.choice(carriers) if carriers else -1
        return [(s, below, i == chosen) if isinstance(s, int) else s for i, s in enumerate(alt)]

    def deepest_exact(self, rule: int, depth: int) -> int:
        """Return the greatest d <= depth such that rule can derive a tree of exactly depth d."""
        for d in range(depth, self.min_depths[rule], -1):
            if self.exact[rule][d]:
                return d
        return self.min_depths[rule]


def _exact_depths(
    alternatives: tuple[tuple[tuple[int | str, ...], ...], ...],
    alt_min: tuple[tuple[int, ...], ...],
    max_depth: int,
) -> list[list[bool]]:
    """Return exact[r][d]: can rule r derive a tree of depth exactly d (d <= max_depth)?"""
    exact = [[False] * (max_depth + 1) for _ in alternatives]
    for d in range(2, max_depth + 1):
        for r, alts in enumerate(alternatives):
            exact[r][d] = any(
                alt_min[r][a] <= d
                and any(exact[s][d - 1] if isinstance(s, int) else d == 2 for s in alt)
                for a, alt in enumerate(alts)
            )
    return exact
