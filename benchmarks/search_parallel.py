"""Does a whole search use two workers? Networks trained per minute with 1 and 2 workers, by search mode.

    python benchmarks/search_parallel.py [--minutes 4] [--modes generational,steady] [--dataset fashion-mnist]

benchmarks/parallel.py measures the executors on a fixed list of tasks; here
the search itself runs (grammars/cnn_fmnist.bnf, 1 epoch on 4,000 images per
evaluation, population 12), so a generational search's barrier (each
generation waits for its slowest training) is part of what is measured. For
each mode it runs the search for --minutes with 1 worker of 2 threads (the
best 1-worker setting on 2 cores) and with 2 workers of 1 thread, and prints
the networks trained per minute and the 2-worker / 1-worker ratio, with the
share of the time the workers were busy training. Each setting starts from
the same seed; the searches diverge, so the networks differ. It reports what
it measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fmnist import ROOT, search_ge

from ge_nas.config import RunConfig, usable_cores
from ge_nas.executors import ProcessExecutor
from ge_nas.grammar import load_grammar


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the benchmark's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=4.0, help="per search (default 4)")
    p.add_argument("--modes", default="generational,steady")
    p.add_argument("--grammar", default=str(ROOT / "grammars" / "cnn_fmnist.bnf"))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-subset", type=float, default=4000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def throughput(
    args: argparse.Namespace, mode: str, workers: int, threads: int
) -> tuple[float, float]:
    """Return (networks trained per minute, share of worker time spent training) of one search."""
    config = RunConfig(
        args.grammar, dataset=args.dataset, data_dir=args.data_dir, seed=args.seed, mode=mode,
        population=12, generations=10_000, epochs=args.epochs, train_subset=args.train_subset,
        workers=workers, init="sensible", test_in_search=False,
    )  # fmt: skip
    executor = ProcessExecutor(workers, threads=threads)
    clock = time.monotonic
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = search_ge(
                load_grammar(config.grammar), config, executor, Path(tmp) / "a.sqlite",
                clock() + args.minutes * 60, clock,
            )  # fmt: skip
    finally:
        executor.close()
    trained = result.trained()
    busy = sum((r.ended or 0) - (r.started or 0) for r in trained)
    return len(trained) / result.seconds * 60, busy / (result.seconds * workers)


def main(argv: Sequence[str] | None = None) -> int:
    """Run each mode with 1 and 2 workers; print the rates and their ratio."""
    args = parse_args(argv)
    cores = usable_cores()
    print(
        f"{args.minutes:g} min per search, {args.epochs} epoch(s) on {args.train_subset:g} images, "
        f"{args.dataset}, {cores} cores",
        flush=True,
    )
    for mode in (m.strip() for m in args.modes.split(",") if m.strip()):
        rates = {}
        for workers, threads in ((1, cores), (2, max(1, cores // 2))):
            rate, busy = throughput(args, mode, workers, threads)
            rates[workers] = rate
            print(
                f"{mode:13s} {workers} worker(s) x {threads} thread(s): {rate:6.1f} networks/min, "
                f"workers busy {busy:.0%}",
                flush=True,
            )
        print(f"{mode:13s} ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
