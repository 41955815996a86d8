"""Representations: how a genome becomes a derivation, and how genomes are made and varied.

Three kinds behind one interface, which initialisation, variation, the
evaluator, checkpoints and `grammar map` use:

- ``ge``: standard grammatical evolution. A genome is a list of codons mapped
  leftmost-first (mapper.py); crossover is one-point within the used codons,
  mutation int-flip per used codon (operators.py).
- ``sge``: structured GE, dynamic variant [Lourenco2016, Lourenco2018] (sge.py):
  one list of choices per rule, so a mutation changes one choice, not the
  whole tail. To keep genomes lists of ints everywhere (DEAP individuals, the
  archive, checkpoint.json), an SGE genotype is stored flat: for each rule in
  file order, the number of its choices, then the choices.
- ``bits``: a list of 0/1, each choice read from ceil(log2 n) bits as an
  unsigned integer mod n (bits.py, which states the bias for n not a power
  of two); crossover exchanges bits at the same positions (two-point unless
  set), mutation flips used bits.

All start from the same initialisers (initialise.py): an SGE genotype or a bit
genome is read off the derivation tree of a GE genome, so a run's first
population has the same networks under any representation.

[Lourenco2016] N. Lourenco, F. B. Pereira, E. Costa. Unveiling the properties
of structured grammatical evolution. GPEM 17(3), 2016.
[Lourenco2018] N. Lourenco, F. Assuncao, F. B. Pereira, E. Costa, P. Machado.
Structured grammatical evolution: a dynamic approach. Handbook of GE, 2018.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ge_nas.config import REPRESENTATIONS
from ge_nas.errors import ConfigError, did_you_mean
from ge_nas.grammar import sge
from ge_nas.grammar.bits import bit_crossover, bit_flip_mutation, bits_from_genome, map_bits
from ge_nas.grammar.grammar import Grammar
from ge_nas.grammar.initialise import initial_genomes
from ge_nas.grammar.mapper import Derivation, map_genome
from ge_nas.grammar.operators import CROSSOVERS, int_flip_mutation


@dataclass(frozen=True)
class Representation:
    """A kind of genome with the options that map and vary it."""

    kind: str
    grammar: Grammar
    max_depth: int
    max_wraps: int = 0
    codon_size: int = 100_000
    mutation_prob: float | None = None  # GE, bits: per used codon or bit; default 1 / used
    crossover_kind: str | None = (
        None  # one-point, two-point, uniform (None: one-point GE, two-point bits, uniform SGE)
    )

    def __post_init__(self) -> None:
        if self.kind not in REPRESENTATIONS:
            raise ConfigError(
                f"--representation: unknown value {self.kind!r}{did_you_mean(self.kind, REPRESENTATIONS)}; "
                f"expected one of {', '.join(REPRESENTATIONS)}"
            )
        if self.crossover_kind is not None and self.crossover_kind not in CROSSOVERS:
            raise ConfigError(
                f"--crossover: unknown value {self.crossover_kind!r}{did_you_mean(self.crossover_kind, CROSSOVERS)}; "
                f"expected one of {', '.join(CROSSOVERS)}"
            )

    def map(self, genome: Sequence[int]) -> Derivation:
        """Return the derivation of a genome (invalid, with a reason, when it does not map)."""
        if self.kind == "ge":
            return map_genome(
                self.grammar, genome, max_wraps=self.max_wraps, max_depth=self.max_depth
            )
        if self.kind == "bits":
            return map_bits(
                self.grammar, genome, max_wraps=self.max_wraps, max_depth=self.max_depth
            )
        genotype = unflatten(self.grammar, genome)
        if genotype is None:
            return Derivation(
                None, 0, 0, 0, 0, "not a flat SGE genome (counts and choices per rule)"
            )
        return sge.map_sge(self.grammar, genotype, max_depth=self.max_depth)

    def initial(
        self, rng: random.Random, n: int, *, init: str, init_max_depth: int | None
    ) -> list[list[int]]:
        """Return n distinct valid genomes from the named initialiser."""
        genomes = initial_genomes(
            self.grammar, rng, n, init=init, codon_size=self.codon_size,
            max_depth=self.max_depth, init_max_depth=init_max_depth,
        )  # fmt: skip
        if self.kind == "bits":
            return [self._bits_from_ge(g, rng) for g in genomes]
        return genomes if self.kind == "ge" else [self._from_ge(g) for g in genomes]

    def crossover(
        self, a: Sequence[int], b: Sequence[int], rng: random.Random, *, used_a: int, used_b: int
    ) -> tuple[list[int], list[int]]:
        """Return two children: GE within used codons (one-point unless set), bits (two-point), or SGE over rules (uniform)."""
        if self.kind == "ge":
            cross = CROSSOVERS[self.crossover_kind or "one-point"]
            return cross(rng, a, b, used_a=used_a, used_b=used_b)
        if self.kind == "bits":
            kind = self.crossover_kind or "two-point"
            return bit_crossover(kind, rng, a, b, used_a=used_a, used_b=used_b)
        first, second = sge.crossover_sge(
            self.grammar, self._sge(a), self._sge(b), rng, max_depth=self.max_depth,
            kind=self.crossover_kind or "uniform",
        )  # fmt: skip
        return flatten(self.grammar, first), flatten(self.grammar, second)

    def mutate(self, genome: Sequence[int], rng: random.Random, *, used: int) -> list[int]:
        """Return a mutant: GE int-flip of used codons, bit flips of used bits, or SGE one changed choice (repaired)."""
        if self.kind == "ge":
            return int_flip_mutation(
                rng, genome, used=used, codon_size=self.codon_size, probability=self.mutation_prob
            )
        if self.kind == "bits":
            return bit_flip_mutation(rng, genome, used=used, probability=self.mutation_prob)
        mutant = sge.mutate_sge(self.grammar, self._sge(genome), rng, max_depth=self.max_depth)
        return flatten(self.grammar, mutant)

    def _from_ge(self, genome: Sequence[int]) -> list[int]:
        genotype = sge.sge_from_genome(
            self.grammar, genome, max_wraps=self.max_wraps, max_depth=self.max_depth
        )
        return flatten(self.grammar, genotype)

    def _bits_from_ge(self, genome: Sequence[int], rng: random.Random) -> list[int]:
        return bits_from_genome(
            self.grammar, genome, rng, max_wraps=self.max_wraps, max_depth=self.max_depth
        )

    def _sge(self, genome: Sequence[int]) -> sge.Genotype:
        genotype = unflatten(self.grammar, genome)
        if genotype is None:
            raise ConfigError(
                f"not a flat SGE genome for {self.grammar.source}: {list(genome)[:12]}..."
            )
        return genotype


def flatten(grammar: Grammar, genotype: sge.Genotype) -> list[int]:
    """Return an SGE genotype as one list: per rule in file order, its count of choices, then them.

    (A rule of the file with parameters has one list, `RuleCodes.row_names`.)
    """
    flat: list[int] = []
    for name in grammar.codes.row_names:
        row = genotype.get(name, [])
        flat += [len(row), *row]
    return flat


def unflatten(grammar: Grammar, genome: Sequence[int]) -> sge.Genotype | None:
    """Return the SGE genotype a flat list holds, or None when it is not one for this grammar."""
    genotype: sge.Genotype = {}
    at = 0
    for name in grammar.codes.row_names:
        if at >= len(genome) or genome[at] < 0 or at + 1 + genome[at] > len(genome):
            return None
        genotype[name] = list(genome[at + 1 : at + 1 + genome[at]])
        at += 1 + genome[at]
    return genotype if at == len(genome) else None
