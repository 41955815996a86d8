"""Fashion-MNIST end to end under a wall-clock budget: GE search and final training, against random search.

    python benchmarks/fmnist.py [--minutes 60] [--seeds 3] [--mode steady] [--representation sge] ...

The budget (--minutes) is the tool's own pipeline, what a user waits for:

1. GE search (--mode generational or steady, --representation ge, sge or bits) with an
   Evaluator on grammars/cnn_fmnist.bnf, objectives (validation accuracy, params),
   until --search-share of the budget is spent (generational: a generation starts
   only if the last one's time still fits; steady: nothing is bred after it).
2. Final training: --finalists structurally different networks of the GE front
   (those within --target-params first) retrained on train+validation, less a
   held-out half of the validation split (--final-holdout), with as many epochs,
   up to --final-epochs, as the rest of the budget allows (timed by one epoch of
   each, which the budget pays for). The held-out accuracy
   chooses the finalist; only finalists are scored on the test set, and the test
   set chooses nothing.

Then, outside the budget, the baseline:

3. Random search: genomes from ge_nas.grammar.initialise.random_population on the same
   grammar, through an Evaluator with the same settings (fidelity, seeds, workers),
   until it has evaluated as many phenotypes as the GE search did and run as long.

Per seed (--seeds N runs seeds --seed .. --seed+N-1, each in --out/seed<S>/) and
as the median over seeds it reports: the hypervolume of (validation error, log10
params), reference point (1, 8), over every network each search trained, as the
ratio GE / random at equal evaluations and at equal wall time, and at equal
evaluations within --target-params (reference point (1, log10 target)); the evaluations
GE needed to reach random search's best validation accuracy within
--target-params, against random search's own; and the test accuracy and size
of the finalist the held-out slice chose within --target-params. The goals:
hypervolume >= 1.1x random search's, GE at random's best in <= half its
evaluations, >= 93% test accuracy at <= 50,000 params in 60 minutes on two cores.
It reports what it reached; there is no pass or fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ge_nas import rundir
from ge_nas.archive import Archive, Record
from ge_nas.config import REPRESENTATIONS, RunConfig
from ge_nas.executors import Executor, make_executor
from ge_nas.fidelity import fidelity_key
from ge_nas.grammar import Grammar, load_grammar
from ge_nas.grammar.initialise import random_population
from ge_nas.metrics import Metrics
from ge_nas.pareto import HV_REFERENCE, hypervolume_2d, size_front, size_point
from ge_nas.search import SearchState, run_search
from ge_nas.search.evaluator import Evaluator, task_for
from ge_nas.search.finalists import pick_finalists, screened, screening_candidates
from ge_nas.search.steady import run_steady
from ge_nas.tables import front_table

ROOT = Path(__file__).resolve().parent.parent
Clock = Callable[[], float]


class BudgetSpent(Exception):
    """Raised from the generation callback to end a generational search at its share of the budget."""


def points(records: Sequence[Record]) -> list[tuple[float, float]]:
    """Return the (validation error, log10 params) of the records whose training succeeded."""
    return [
        size_point(r.metrics.val_accuracy, r.metrics.params or 1) for r in records if r.metrics.ok
    ]


@dataclass(frozen=True)
class SearchResult:
    """Every phenotype one search trained at search fidelity (in the order they finished), and its wall time."""

    records: list[Record]
    seconds: float
    started: float  # time.time() when the search began (records carry time.time() stamps)

    def trained(self) -> list[Record]:
        """Return the records whose training succeeded."""
        return [r for r in self.records if r.metrics.ok]

    def front(self) -> list[Record]:
        """Return the non-dominated records in (validation error, log10 params), best accuracy first."""
        return size_front(self.records)

    def hypervolume(
        self,
        *,
        first: int | None = None,
        within_s: float | None = None,
        reference: tuple[float, float] = HV_REFERENCE,
    ) -> float:
        """Return the hypervolume of what was trained (the first evaluations, or those done within seconds)."""
        records = self.records[:first]
        if within_s is not None:
            records = [r for r in records if (r.ended or 0) - self.started <= within_s]
        return hypervolume_2d(points(records), reference)

    def evaluations_to(self, accuracy: float, target_params: int) -> int | None:
        """Return how many evaluations it took to reach accuracy within target_params (None: never)."""
        for n, r in enumerate(self.records, start=1):
            m = r.metrics
            if m.ok and (m.params or 0) <= target_params and m.val_accuracy >= accuracy:
                return n
        return None

    def within(self, target_params: int) -> list[Record]:
        """Return the trained records with at most target_params parameters."""
        return [r for r in self.trained() if (r.metrics.params or 0) <= target_params]

    def top_within(self, target_params: int, m: int) -> list[Record]:
        """Return the m most accurate structures within target_params, dominated or not (as --screen takes them)."""
        return screening_candidates(self.within(target_params), m)

    def best_within(self, target_params: int) -> float:
        """Return the best validation accuracy within target_params (0 when none)."""
        return max((r.metrics.val_accuracy for r in self.within(target_params)), default=0.0)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the benchmark's options."""
    return make_parser().parse_args(argv)


def make_parser() -> argparse.ArgumentParser:
    """Return the benchmark's option parser (benchmarks/finalists.py adds its own to it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--minutes", type=float, default=60.0, help="wall-clock budget per seed (default 60)"
    )
    p.add_argument(
        "--search-share",
        type=float,
        default=0.8,
        help="share of the budget for the GE search (default 0.8)",
    )
    p.add_argument("--grammar", default=str(ROOT / "grammars" / "cnn_fmnist.bnf"))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument(
        "--mode",
        default="steady",
        choices=("generational", "steady"),
        help="steady (default: more networks per minute on 2 workers) or generational",
    )
    p.add_argument("--representation", default="ge", choices=REPRESENTATIONS)
    p.add_argument(
        "--prescreen",
        type=int,
        default=0,
        help="steady state: pairs bred per pair trained, screened by a surrogate (default 0: off)",
    )
    p.add_argument("--population", type=int, default=12)
    p.add_argument(
        "--accuracy-floor",
        type=float,
        default=RunConfig.accuracy_floor,
        help="GE survival: networks below chance + ACCURACY_FLOOR x (1 - chance) rank after "
        f"those that learned (default {RunConfig.accuracy_floor}: off)",
    )
    p.add_argument("--epochs", type=int, default=1, help="epochs per search evaluation (default 1)")
    p.add_argument(
        "--train-subset",
        type=float,
        default=4000,
        help="training images per search evaluation (default 4000; see benchmarks/fidelity.py)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--classes", help="only these classes, e.g. 5-9 or 0,2,4 (default: all)")
    p.add_argument(
        "--shots",
        type=int,
        help="few-shot: K training images per class, instead of --train-subset (default: off)",
    )
    p.add_argument("--val-shots", type=int, help="with --shots: V validation images per class")
    p.add_argument(
        "--max-params",
        type=int,
        default=0,
        help="reject larger networks before training (default 0: none)",
    )
    p.add_argument(
        "--target-params",
        type=int,
        default=50_000,
        help="the size the results are reported at (default 50000)",
    )
    p.add_argument(
        "--finalists",
        type=int,
        default=2,
        help="networks retrained at the end (default 2: one per worker)",
    )
    p.add_argument(
        "--screen",
        type=int,
        default=0,
        help="candidates screened by one epoch on all the training images; the best of them "
        "by held-out accuracy are the finalists (default 0: the finalists only)",
    )
    p.add_argument(
        "--final-holdout",
        type=float,
        default=0.5,
        help="share of the validation split that chooses the finalist (default 0.5)",
    )
    p.add_argument(
        "--final-epochs",
        type=int,
        default=40,
        help="most epochs for the final training (default 40)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--bf16",
        action="store_true",
        help="search and final training under bfloat16 autocast (fast on CPUs with AMX)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed (default 1)")
    p.add_argument("--out", help="output directory (default runs/bench-fmnist-<time>)")
    return p


def make_run_config(args: argparse.Namespace, seed: int) -> RunConfig:
    """Return the search configuration both searches share."""
    return RunConfig(
        args.grammar, dataset=args.dataset, data_dir=args.data_dir, seed=seed, mode=args.mode,
        representation=args.representation, prescreen=args.prescreen, population=args.population, generations=10_000,
        accuracy_floor=args.accuracy_floor,
        epochs=args.epochs, val_fraction=args.val_fraction,
        train_subset=None if args.shots else args.train_subset,
        classes=args.classes, shots=args.shots, val_shots=args.val_shots,
        max_params=args.max_params, final_epochs=args.final_epochs, finalists=args.finalists,
        final_holdout=args.final_holdout, workers=args.workers, init="sensible", test_in_search=False,
        bf16=args.bf16,
    )  # fmt: skip


def search_ge(
    grammar: Grammar,
    config: RunConfig,
    executor: Executor,
    path: Path,
    deadline: float,
    clock: Clock,
) -> SearchResult:
    """Run the GE search until its share of the budget is spent."""
    start, started = clock(), time.time()

    def on_generation(state: SearchState) -> None:
        s = state.stats
        print(
            f"  GE gen {s.generation}: {s.evaluations} trained, best val {s.best_accuracy:.4f}, "
            f"front {s.front_size}, HV {s.hypervolume:.3f}, {s.seconds:.0f} s",
            flush=True,
        )
        if config.mode == "generational" and clock() + s.seconds > deadline:
            raise BudgetSpent

    with Archive(path) as archive:
        evaluator = Evaluator(grammar, config, archive, executor)
        try:
            if config.mode == "steady":
                run_steady(
                    grammar,
                    config,
                    evaluator,
                    on_generation=on_generation,
                    clock=clock,
                    stop=lambda: clock() > deadline,
                )
            else:
                run_search(grammar, config, evaluator, on_generation=on_generation, clock=clock)
        except BudgetSpent:
            pass
        return SearchResult(
            in_order(archive.records(fidelity_key(config))), clock() - start, started
        )


def in_order(records: Iterable[Record]) -> list[Record]:
    """Return the trained-here records in the order they finished."""
    return sorted(records, key=lambda r: r.ended or 0.0)


def searched(path: Path, key: str | None = None) -> list[Record]:
    """Return a finished search's networks from its archive, in the order they finished.

    key: only those trained at this fidelity (the search's options give it);
    None: every record of the search, final trainings left out, provided the
    search ran at one fidelity (a directory reused with other --epochs or
    --train-subset holds two, which must not be ranked together). The archive
    is only read.
    """
    if not path.is_file():
        raise SystemExit(
            f"{path}: no such archive (expected a benchmarks/fmnist.py search's "
            "OUT/seedN/ge.sqlite or random.sqlite)"
        )
    with Archive(path, read_only=True) as archive:
        records = [r for r in archive.records(key) if "|final=False" in r.fidelity]
    fidelities = sorted({r.fidelity for r in records})
    if len(fidelities) > 1:
        raise SystemExit(
            f"{path}: searches at {len(fidelities)} fidelities ({'; '.join(fidelities)}); "
            "expected one search"
        )
    return in_order(records)


def search_random(
    grammar: Grammar,
    config: RunConfig,
    executor: Executor,
    path: Path,
    evaluations: int,
    seconds: float,
    clock: Clock,
) -> SearchResult:
    """Evaluate random genomes of the grammar until as many phenotypes were trained, for as long, as GE's."""
    start, started, rng = clock(), time.time(), random.Random(config.seed)
    with Archive(path) as archive:
        evaluator = Evaluator(grammar, config, archive, executor)
        for _ in range(20 * evaluations):  # a bound, in case the space runs out of new phenotypes
            if len(archive) >= evaluations and clock() - start >= seconds:
                break
            n = max(executor.workers, min(config.population, evaluations - len(archive)))
            evaluator.evaluate(
                random_population(
                    grammar, rng, n, codon_size=config.codon_size, max_depth=config.max_depth
                )
            )
        print(f"  random: {len(archive)} trained in {clock() - start:.0f} s", flush=True)
        return SearchResult(
            in_order(archive.records(fidelity_key(config))), clock() - start, started
        )


def finalist_candidates(
    search: SearchResult, finalists: int, screen: int, target_params: int
) -> list[Record]:
    """Return the networks that get one epoch of the final training before the finalists are chosen.

    Without screening (screen <= finalists) they are the finalists: structurally
    different front members, those within target_params first. With it, the
    screen most accurate networks within target_params at search fidelity, one per
    structure, dominated or not: a cheap fidelity favours small networks that learn
    fast, and a larger network a little behind them may gain more from a full
    training (the front holds no network larger than the most accurate one).
    """
    if screen <= finalists or finalists == 0:
        return pick_finalists(search.front(), finalists, max_params=target_params)
    return search.top_within(target_params, screen)


def fit_final_epochs(
    calibration: list[Metrics], config: RunConfig, seconds_left: float, workers: int
) -> int:
    """Return the most epochs (1..final_epochs) whose training of the finalists fits in seconds_left.

    calibration holds each finalist's metrics after one epoch of the final training
    itself: the search's epochs on a subset cost 1.5 to 3 times as much per image
    (warm-up, a busier machine), so they made a poor clock.
    """
    per_epoch = [m.train_seconds for m in calibration if m.ok] or [seconds_left]
    wall_per_epoch = max(sum(per_epoch) / workers, max(per_epoch)) * 1.1  # scoring, imbalance
    return max(1, min(config.final_epochs, int(seconds_left / wall_per_epoch)))


def train_finalists(
    finalists: list[Record], config: RunConfig, executor: Executor, epochs: int, out: Path
) -> dict[str, Metrics]:
    """Retrain the finalists (train+validation less the held-out slice); return their metrics by phenotype hash."""
    tasks = [
        task_for(
            config,
            r.phenotype,
            r.phenotype_hash,
            epochs=epochs,
            threads=executor.threads,
            save_dir=str(out / "front" / str(rank)),
        )
        for rank, r in enumerate(finalists, start=1)
    ]
    return {finalists[i].phenotype_hash: outcome.metrics for i, outcome in executor.run(tasks)}


def front_rows(
    front: list[Record], finals: dict[str, Metrics], epochs: int, off_front: Sequence[Record] = ()
) -> list[dict[str, Any]]:
    """Return the front, then the finalists off it, as pareto.csv rows (final test and held-out accuracy where there are)."""
    ranked = [*front, *off_front]
    return [
        rundir.pareto_row(
            rank, r, finals.get(r.phenotype_hash), epochs, on_front=rank <= len(front)
        )
        for rank, r in enumerate(ranked, start=1)
    ]


def chosen_finalist(rows: list[dict[str, Any]], target: int) -> dict[str, Any] | None:
    """Return the finalist within target params with the best held-out accuracy (the test set chooses nothing)."""
    finals = [r for r in rows if r["holdout_accuracy"] is not None and r["params"] <= target]
    return max(finals, key=lambda r: (r["holdout_accuracy"], -r["params"]), default=None)


def summarise(
    ge: SearchResult, rnd: SearchResult, rows: list[dict[str, Any]], target: int
) -> dict[str, Any]:
    """Return one seed's numbers as a JSON-ready dict."""
    n = len(ge.records)
    random_best = rnd.best_within(target)
    chosen = chosen_finalist(rows, target)
    return {
        "evaluations": {"ge": n, "random": len(rnd.records)},
        "seconds": {"ge": ge.seconds, "random": rnd.seconds},
        "hv_ratio_equal_evaluations": _ratio(ge.hypervolume(), rnd.hypervolume(first=n)),
        "hv_ratio_equal_time": _ratio(ge.hypervolume(), rnd.hypervolume(within_s=ge.seconds)),
        "hv_ratio_within_target": _ratio(
            ge.hypervolume(reference=target_reference(target)),
            rnd.hypervolume(first=n, reference=target_reference(target)),
        ),
        "random_best_val_within_target": random_best,
        "ge_best_val_within_target": ge.best_within(target),
        "evaluations_to_random_best": {
            "ge": ge.evaluations_to(random_best, target),
            "random": rnd.evaluations_to(random_best, target),
        },
        "chosen_finalist": None
        if chosen is None
        else {k: chosen[k] for k in ("test_accuracy", "holdout_accuracy", "params", "phenotype")},
    }


def target_reference(target_params: int) -> tuple[float, float]:
    """Return the reference point that bounds the hypervolume at the size target: (1, log10 target).

    The standard reference (1, 8) reaches to 100M params; at a 50k target the area
    between 50k and 100M is a rectangle of the best accuracy that every search
    shares, and it dilutes the ratio of two searches towards 1.
    """
    return (1.0, size_point(0.0, target_params)[1])


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class Finished:
    """A GE search within its share of the budget and its finalists retrained in the rest."""

    search: SearchResult
    finalists: list[Record]
    finals: dict[str, Metrics]  # the finalists' final metrics by phenotype hash
    final_epochs: int
    minutes: float  # search and final training

    def rows(self, config: RunConfig) -> list[dict[str, Any]]:
        """Return the search's front as pareto.csv rows, with the finalists' final metrics.

        A finalist that screening (--screen) took from off the front follows it, ranked after it.
        """
        front = self.search.front()
        on_front = {r.phenotype_hash for r in front}
        off_front = [r for r in self.finalists if r.phenotype_hash not in on_front]
        return front_rows(front, self.finals, config.epochs, off_front)


def search_and_finalise(
    args: argparse.Namespace,
    config: RunConfig,
    executor: Executor,
    out: Path,
    start: float,
    clock: Clock,
) -> Finished:
    """Search until --search-share of --minutes from start; retrain finalists within --target-params in the rest."""
    budget = args.minutes * 60
    grammar = load_grammar(config.grammar)
    deadline = start + args.search_share * budget
    ge = search_ge(grammar, config, executor, out / "ge.sqlite", deadline, clock)
    candidates = finalist_candidates(ge, args.finalists, args.screen, args.target_params)
    finalists: list[Record] = []
    epochs = 0
    if candidates:
        calibration = train_finalists(candidates, config, executor, 1, out / "calibration")
        shutil.rmtree(out / "calibration", ignore_errors=True)
        finalists = screened(candidates, calibration, args.finalists)
        if len(candidates) > len(finalists):
            print(f"  screened {len(candidates)} candidates by one epoch", flush=True)
        left = budget - (clock() - start)
        timed = [calibration[r.phenotype_hash] for r in finalists]
        epochs = fit_final_epochs(timed, config, left, executor.workers)
    print(f"  final training: {len(finalists)} networks, {epochs} epochs", flush=True)
    finals = train_finalists(finalists, config, executor, epochs, out) if finalists else {}
    return Finished(ge, finalists, finals, epochs, (clock() - start) / 60)


def run_seed(args: argparse.Namespace, seed: int, out: Path, clock: Clock) -> dict[str, Any]:
    """Run one seed: GE search and final training within the budget, then random search; return its summary."""
    start = clock()
    config = make_run_config(args, seed)
    out.mkdir(parents=True, exist_ok=True)
    executor = make_executor(config.executor, args.workers)
    try:
        done = search_and_finalise(args, config, executor, out, start, clock)
        print(
            f"  GE search and final training: {done.minutes:.1f} min of {args.minutes:g}; random search next",
            flush=True,
        )
        ge = done.search
        rnd = search_random(
            load_grammar(config.grammar), config, executor, out / "random.sqlite",
            len(ge.records), ge.seconds, clock,
        )  # fmt: skip
    finally:
        executor.close()
    rows = done.rows(config)
    rundir.write_pareto(out, rows)
    Console(width=160).print(
        front_table(
            rows,
            title=f"seed {seed}: GE front ({len(rows)} networks; test accuracy for the finalists only)",
        )
    )
    summary = {
        "seed": seed,
        **summarise(ge, rnd, rows, args.target_params),
        "minutes": done.minutes,
        "final_epochs": done.final_epochs,
    }
    rundir.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


COLUMNS = (
    ("HV ratio, equal evals", lambda s: s["hv_ratio_equal_evaluations"], "{:.3f}"),
    ("HV ratio, equal time", lambda s: s["hv_ratio_equal_time"], "{:.3f}"),
    ("HV ratio within target", lambda s: s.get("hv_ratio_within_target"), "{:.3f}"),
    ("GE evaluations", lambda s: s["evaluations"]["ge"], "{:.0f}"),
    ("GE evals to random's best", lambda s: s["evaluations_to_random_best"]["ge"], "{:.0f}"),
    ("random evals to its best", lambda s: s["evaluations_to_random_best"]["random"], "{:.0f}"),
    (
        "chosen finalist test acc",
        lambda s: (s["chosen_finalist"] or {}).get("test_accuracy"),
        "{:.4f}",
    ),
    ("chosen finalist params", lambda s: (s["chosen_finalist"] or {}).get("params"), "{:.0f}"),
    ("minutes (search + final)", lambda s: s["minutes"], "{:.1f}"),
)


def print_table(summaries: list[dict[str, Any]]) -> None:
    """Print one column per seed and the median."""
    print(
        f"\n{'':28s}"
        + "".join(f"{'seed ' + str(s['seed']):>12s}" for s in summaries)
        + f"{'median':>12s}"
    )
    for label, get, fmt in COLUMNS:
        values = [get(s) for s in summaries]
        known = [v for v in values if v is not None]
        median = statistics.median(known) if known else None
        cells = [("-" if v is None else fmt.format(v)) for v in [*values, median]]
        print(f"{label:28s}" + "".join(f"{c:>12s}" for c in cells))


def main(argv: Sequence[str] | None = None, clock: Clock = time.monotonic) -> int:
    """Run every seed; print each seed's numbers and the median; save summary.json."""
    args = parse_args(argv)
    out = Path(args.out or ROOT / "runs" / f"bench-fmnist-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if (out / "summary.json").exists():
        raise SystemExit(f"{out} already holds a benchmark; choose another --out")
    print(
        f"{args.minutes:g} min per seed, {args.seeds} seed(s), --mode {args.mode} --representation {args.representation}, {args.workers} workers{' (bf16)' if args.bf16 else ''}, {args.epochs} epoch(s) on {f'{args.shots} images per class' if args.shots else f'{args.train_subset:g} images'} per evaluation; out {out}"
    )
    summaries = []
    for seed in range(args.seed, args.seed + args.seeds):
        print(f"seed {seed}", flush=True)
        summaries.append(run_seed(args, seed, out / f"seed{seed}", clock))
    print_table(summaries)
    command = "python benchmarks/fmnist.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rundir.write_atomic(
        out / "summary.json", json.dumps({"command": command, "seeds": summaries}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
