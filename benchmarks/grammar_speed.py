"""Measure how long large grammars take to load and lint (CPU seconds, best of the repeats).

    python benchmarks/grammar_speed.py [--rules 5000] [--repeats 3]

Three shapes: n rules of three alternatives with comments; a chain of n rules
(deep minimum-depth computation) and a cycle of n rules (n lint errors); n
rules that use undefined names (errors summarised). Targets, on one core of
a 2-core CPU: under 1 s for the first, under 2 s for the others. It reports
what it measured.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from ge_nas.grammar import check_grammar, parse_grammar


def cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """Return the least CPU seconds of repeats runs (wall time would count other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def shapes(n: int) -> dict[str, Callable[[], object]]:
    """Return the workloads by name."""
    big = "".join(
        f"<r{i}> ::= <r{(i + 1) % n}> x{i} | 'y' <r{(i + 7) % n}> | z{i}  # c\n" for i in range(n)
    )
    chain = "".join(f"<r{i}> ::= <r{i + 1}>\n" for i in range(n)) + f"<r{n}> ::= end\n"
    cycle = "".join(f"<r{i}> ::= <r{(i + 1) % n}>\n" for i in range(n))
    undefined = "".join(f"<r{i}> ::= <missing{i}> | x\n" for i in range(n))
    return {
        f"{n} rules, 3 alternatives (target < 1 s)": lambda: parse_grammar(big),
        f"chain of {n} rules (target < 2 s)": lambda: parse_grammar(chain),
        f"cycle of {n} rules (target < 2 s)": lambda: check_grammar(cycle),
        f"{n} undefined names (target < 2 s)": lambda: check_grammar(undefined, "u.bnf"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, work in shapes(args.rules).items():
        print(f"{cpu_seconds(work, args.repeats):7.3f} s  {name}")


if __name__ == "__main__":
    main()
