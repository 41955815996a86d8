"""Evaluations per hour on the embedded data with 1 and 2 workers, for each executor.

    python benchmarks/parallel.py [--tasks 16] [--epochs 3]

The same list of distinct phenotypes (sampled from grammars/cnn_small.bnf with
a fixed seed) is evaluated by each executor after a warm-up that starts its
workers and loads the data. One worker gets every core's threads; two workers
get one thread each. Reports evaluations per hour and the 2-worker / 1-worker
ratio (goal: at least 1.9 on 2 cores). It measures; it does not judge.

It also prints the ceiling of that ratio: two workers that each ran as fast as
one single-threaded worker, 2 × (1 × 1 thread) / best 1-worker setting. When
one worker with every core's threads beats one with a single thread, the
ceiling is below 2; the ratio over the ceiling is how much of what two
processes can give they gave.

--order flops (default) hands the tasks out largest FLOPs first, as a run's
Evaluator does; --order sampled keeps the sampled order, to see what that costs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

from ge_nas.arch import parse_arch
from ge_nas.config import usable_cores
from ge_nas.executors import DaskExecutor, Executor, ProcessExecutor
from ge_nas.grammar import load_grammar
from ge_nas.grammar.initialise import random_population
from ge_nas.grammar.mapper import map_genome
from ge_nas.search.evaluator import flops_hint
from ge_nas.worker import EvalTask, derive_seed


def phenotypes(n: int, seed: int) -> list[str]:
    """Return n distinct canonical phenotypes of cnn_small."""
    grammar = load_grammar("grammars/cnn_small.bnf")
    seen: dict[str, str] = {}
    rng = random.Random(seed)
    while len(seen) < n:
        for genome in random_population(grammar, rng, n, codon_size=100_000):
            spec = parse_arch(map_genome(grammar, genome).phenotype or "")
            seen.setdefault(spec.hash(), spec.canonical())
    return list(seen.values())[:n]


def rate(executor: Executor, texts: list[str], epochs: int) -> float:
    """Return evaluations per hour for texts after a warm-up task per worker."""
    warm = [
        EvalTask(texts[0], seed=1, epochs=1, train_subset=0.1, threads=executor.threads)
    ] * executor.workers
    list(executor.run(warm))
    tasks = [
        EvalTask(t, derive_seed(0, str(i)), epochs=epochs, threads=executor.threads)
        for i, t in enumerate(texts)
    ]
    start = time.perf_counter()
    outcomes = [o for _, o in executor.run(tasks)]
    seconds = time.perf_counter() - start
    failed = sum(not o.metrics.ok for o in outcomes)
    if failed:
        print(f"  ({failed} of {len(tasks)} evaluations not ok)")
    return len(tasks) / seconds * 3600


def measure(
    name: str, make: Callable[[int, int], Executor], texts: list[str], epochs: int
) -> dict[tuple[int, int], float]:
    """Measure 1 worker x 1 thread, 1 worker x all cores' threads, and 2 workers x 1 thread."""
    cores = usable_cores()
    rates = {}
    for workers, threads in sorted({(1, 1), (1, cores), (2, max(1, cores // 2))}):
        executor = make(workers, threads)
        try:
            rates[workers, threads] = rate(executor, texts, epochs)
        finally:
            executor.close()
        print(
            f"{name:9s} {workers} worker(s) x {threads} thread(s): {rates[workers, threads]:8.0f} evaluations/hour",
            flush=True,
        )
    one = max(v for (w, _), v in rates.items() if w == 1)
    two = rates[2, max(1, cores // 2)]
    ceiling = 2 * rates[1, 1] / one
    print(
        f"{name:9s} ratio 2 workers / best 1-worker setting: {two / one:.2f} "
        f"(ceiling {ceiling:.2f}: 2 x one single-threaded worker; {two / one / ceiling:.0%} of it)"
    )
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--order",
        choices=["flops", "sampled"],
        default="flops",
        help="task order (default flops: largest first)",
    )
    args = parser.parse_args(argv)
    texts = phenotypes(args.tasks, args.seed)
    if args.order == "flops":
        texts.sort(key=lambda t: -flops_hint(t, (1, 8, 8), 10))
    print(
        f"{len(texts)} phenotypes of cnn_small, {args.epochs} epochs each, digits, {usable_cores()} cores, {args.order} order"
    )
    measure("processes", lambda w, t: ProcessExecutor(w, threads=t), texts, args.epochs)
    if not args.no_dask:
        measure("dask", lambda w, t: DaskExecutor(w, threads=t), texts, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
