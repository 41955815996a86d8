"""Measure how many genomes per second map_genome maps, on one core.

    python benchmarks/mapper_speed.py [--genomes 20000] [--repeats 5] [--seed 1]

Two grammars: grammars/cnn_small.bnf (skipped with a message if missing) and a
synthetic 200-rule grammar generated here from the seed (2-4 alternatives per
rule, 1-3 symbols per alternative, half of them references to later rules, a
tenth of the rules recursive). Genomes are random, 20-80 codons of 0..99,999.
It reports what it measured (best of the repeats); there is no pass or fail.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from ge_nas.grammar import Grammar, load_grammar, parse_grammar
from ge_nas.grammar.mapper import map_genome

ROOT = Path(__file__).resolve().parent.parent
CODON_SIZE = 100_000


def synthetic_bnf(rng: random.Random, n_rules: int = 200) -> str:
    """Return the text of a random, terminating grammar of n_rules rules."""
    lines = []
    for i in range(n_rules):
        alternatives = [_alternative(rng, i, a, n_rules) for a in range(rng.randint(2, 4))]
        if rng.random() < 0.1:
            alternatives.append(f"<r{i}> {alternatives[0]}")  # a recursive alternative
        lines.append(f"<r{i}> ::= " + " | ".join(alternatives))
    return "\n".join(lines) + "\n"


def _alternative(rng: random.Random, i: int, a: int, n_rules: int) -> str:
    symbols = []
    for k in range(rng.randint(1, 3)):
        if i < n_rules - 1 and rng.random() < 0.5:
            symbols.append(f"<r{rng.randint(i + 1, min(n_rules - 1, i + 20))}>")
        else:
            symbols.append(f"t{i}_{a}_{k}")
    return " ".join(symbols)


def random_genomes(rng: random.Random, n: int) -> list[list[int]]:
    """Return n random genomes of 20-80 codons."""
    return [[rng.randrange(CODON_SIZE) for _ in range(rng.randint(20, 80))] for _ in range(n)]


def measure(
    grammar: Grammar, genomes: list[list[int]], repeats: int
) -> tuple[float, float, float, float]:
    """Return (genomes per wall second, per CPU second, both best of repeats; mean codons used; valid fraction).

    CPU time is the steadier number on a machine shared with other work.
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for genome in genomes:
            map_genome(grammar, genome)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    results = [map_genome(grammar, genome) for genome in genomes]
    used = sum(r.codons_used for r in results) / len(results)
    valid = sum(r.valid for r in results) / len(results)
    return len(genomes) / wall, len(genomes) / cpu, used, valid


def report(name: str, grammar: Grammar, genomes: list[list[int]], repeats: int) -> None:
    """Print one line of measurements for a grammar."""
    rate, cpu_rate, used, valid = measure(grammar, genomes, repeats)
    print(
        f"{name:<24} {len(grammar.rules):>4} rules  {rate:>9,.0f} genomes/s  ({cpu_rate:>9,.0f} per CPU s)  "
        f"{rate * used:>11,.0f} codons/s  mean codons used {used:4.1f}  valid {valid:6.1%}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    genomes = random_genomes(rng, args.genomes)
    print(
        f"python {sys.version.split()[0]}, {args.genomes} genomes of 20-80 codons, best of {args.repeats}"
    )
    cnn = ROOT / "grammars" / "cnn_small.bnf"
    if cnn.exists():
        report("grammars/cnn_small.bnf", load_grammar(cnn), genomes, args.repeats)
    else:
        print(f"skipped grammars/cnn_small.bnf: {cnn} does not exist yet")
    report(
        "synthetic (seeded)",
        parse_grammar(synthetic_bnf(random.Random(args.seed))),
        genomes,
        args.repeats,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
