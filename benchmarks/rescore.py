"""Recompute a finished Fashion-MNIST benchmark's search numbers from its archives.

    python benchmarks/rescore.py OUT/seed1 OUT/seed2 ... [--target-params 50000]

Each directory is one seed of benchmarks/fmnist.py (or seeds.py): its ge.sqlite
and random.sqlite hold every network the GE and the random search trained, in
the order they finished. Printed per seed and as the median: the hypervolume
ratio GE / random at equal evaluations (as many as the shorter search made)
with the standard reference point (1, 8) and with the reference at the size
target (1, log10 target), each search's best validation accuracy within the
target, and the evaluations each search needed to reach
random search's best validation accuracy within the target in those
evaluations. Nothing is trained.

Two bounds show how far the standard ratio can go on these archives: the
ratio of the union of both searches (a search that found everything either
found), and the ceiling, the ratio of GE's networks plus one imagined network
of --ceiling-params parameters as accurate as the best network within the
target that either search found (a front flat from there up).

Run it with a smaller --target-params (5000, 10000) to compare the searches
where a small device's budget puts the user: there the ratio within the target
and the best validation accuracies show more of what evolution gains.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import fmnist

from ge_nas.pareto import hypervolume_2d, size_point


def load(path: Path) -> fmnist.SearchResult:
    """Return one search's records from its archive (not its final trainings), in the order they finished."""
    return fmnist.SearchResult(fmnist.searched(path), 0.0, 0.0)


def rescore(
    seed_dir: Path, target_params: int, ceiling_params: int = 2_000
) -> dict[str, float | int | None]:
    """Return one seed's hypervolume ratios and evaluations to random's best.

    Both searches are cut to the evaluations the shorter one made (a random
    search stopped early has fewer than the GE search it follows).
    """
    ge, rnd = load(seed_dir / "ge.sqlite"), load(seed_dir / "random.sqlite")
    n = min(len(ge.records), len(rnd.records))
    ge, rnd = replace(ge, records=ge.records[:n]), replace(rnd, records=rnd.records[:n])
    within = fmnist.target_reference(target_params)
    best, ge_best = rnd.best_within(target_params), ge.best_within(target_params)
    ge_any, rnd_any = bool(ge.within(target_params)), bool(rnd.within(target_params))
    return {
        "evaluations compared": n,
        "HV ratio (1, 8)": fmnist._ratio(ge.hypervolume(), rnd.hypervolume()),
        "HV ratio within target": fmnist._ratio(
            ge.hypervolume(reference=within), rnd.hypervolume(reference=within)
        ),
        "HV ratio, union of both": fmnist._ratio(
            hypervolume_2d(fmnist.points(ge.records) + fmnist.points(rnd.records)),
            rnd.hypervolume(),
        ),
        f"HV ratio ceiling, {ceiling_params:,} p": fmnist._ratio(
            hypervolume_2d(
                [
                    *fmnist.points(ge.records),
                    size_point(max(best, ge_best), ceiling_params),
                ]
            ),
            rnd.hypervolume(),
        ),
        "GE best val within target": ge_best if ge_any else None,
        "random best val within target": best if rnd_any else None,
        "GE evals to random's best": ge.evaluations_to(best, target_params) if rnd_any else None,
        "random evals to its best": rnd.evaluations_to(best, target_params) if rnd_any else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print each seed's numbers and their medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("seed_dirs", nargs="+", type=Path)
    p.add_argument("--target-params", type=int, default=50_000)
    p.add_argument(
        "--ceiling-params",
        type=int,
        default=2_000,
        help="the imagined network's size in the ceiling ratio (default 2000)",
    )
    args = p.parse_args(argv)
    rows = [rescore(d, args.target_params, args.ceiling_params) for d in args.seed_dirs]
    print(f"{'':32s}" + "".join(f"{d.name:>12s}" for d in args.seed_dirs) + f"{'median':>12s}")
    for label in rows[0]:
        values = [r[label] for r in rows]
        known = [v for v in values if v is not None]
        cells = [*values, statistics.median(known) if known else None]
        text = [
            "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in cells
        ]
        print(f"{label:32s}" + "".join(f"{t:>12s}" for t in text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
