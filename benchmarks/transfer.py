"""Few-shot transfer against from-scratch search at an equal wall budget (issue #13).

    python benchmarks/transfer.py [--minutes 5] [--shots 5,20,100] [--seeds 3] [--source-epochs 10] ...

1. Source: a fixed cnn_fmnist.bnf network (--source-phenotype) trained on every
   training image of --source-classes (default 0-4) for --source-epochs, saved
   as a ge_nas model directory (what `ge_nas train` writes) in --out/source and
   scored on those classes' test images. A later run with the same --out (after
   an interruption) reuses it; --source DIR takes a model directory from
   elsewhere (e.g. an earlier benchmark's OUT/source), so reruns skip pretraining.
2. Target: --target-classes (default 5-9), K training images per class for each
   K of --shots and --val-shots validation images per class; seed S draws the
   shots and the validation images with split seed S, and both searches of a
   (K, seed) cell see the same ones.
3. Per (K, seed), two searches with the same settings (--mode, --population,
   --epochs per evaluation, --workers), each until --minutes of wall time
   (steady state: nothing is bred after it; generational: a generation starts
   only if the last one's time still fits): transfer, grammars/transfer.bnf
   with the source as --backbone, and from scratch, grammars/cnn_fmnist.bnf.
   Then each search's --finalists (structurally different, best validation
   accuracy first; ge_nas.search.finalists) train for --final-epochs on the K
   shots; validation accuracy chooses among them, and the test set (all of the
   target classes' test images) only reports the chosen one.

Per (K, seed), and as the median and range over seeds for each K, it reports:
the chosen model's test accuracy for both searches and their difference in
points, the evaluations per minute of each search (networks trained to a
score, over the search's wall time) and their ratio, and the share of time
the feature cache saves on transfer evaluations: the first --cache-replay
networks that the transfer search trained are evaluated again in this
process, with a fresh feature cache of --feature-cache-mb and without one,
taking turns (benchmarks/cache_replay.py); both searches ran with the cache
(a worker computes a frozen prefix's features once). Targets, not checks: at K = 5, transfer beats
scratch by >= 3 points median test accuracy, with >= 5x the evaluations per
minute. It reports what it measured; there is no pass or fail.

Data: --dataset fashion-mnist (IDX files, e.g. the Debian package
dataset-fashion-mnist's /usr/share/datasets/fashion-mnist, or --data-dir). For
a smoke test, scikit-learn's bundled digits (8x8; about 144 training images per
class, so K + --val-shots must stay below that):

    python benchmarks/transfer.py --dataset digits --minutes 0.3 --shots 5 --seeds 1 --source-epochs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache_replay import Variant, largest_difference, replay, share_saved
from fmnist import search_ge

from ge_nas import rundir
from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.archive import Record
from ge_nas.config import RunConfig, field_default, parse_classes, usable_cores
from ge_nas.executors import make_executor
from ge_nas.export import META, MODEL, SPEC, Meta
from ge_nas.feature_cache import FeatureCache
from ge_nas.grammar import load_grammar
from ge_nas.metrics import Metrics
from ge_nas.search.evaluator import task_for
from ge_nas.search.finalists import choose_best, pick_finalists
from ge_nas.worker import evaluate

ROOT = Path(__file__).resolve().parent.parent
Clock = Callable[[], float]
ARMS = ("transfer", "scratch")
METRICS_FILE = "metrics.json"  # written last by save_model: a model directory holding it is whole
DEFAULT_SOURCE = (
    "conv(16,3) bn relu pool(max,2) conv(32,3) bn relu conv(32,3) bn relu "
    "pool(max,2) sepconv(64,3) bn relu res(32,3) pool(max,2) conv(64,3) bn relu dropout(0.1) "
    "dense(64) relu dropout(0.1) | opt=adam lr=0.003 batch=128 aug=none ls=0.0"
)  # cnn_fmnist.bnf: a stem and three stages, 7 blocks (transfer.bnf keeps 1..6), ~70k params


@dataclass(frozen=True)
class Source:
    """The pretrained source network: its model directory and what it scored."""

    path: Path
    phenotype: str
    test_accuracy: float | None
    params: int | None
    epochs: int
    seconds: float
    reused: bool

    def to_json(self) -> dict[str, Any]:
        """Return it as a JSON-ready dict."""
        return {
            "path": str(self.path),
            "phenotype": self.phenotype,
            "test_accuracy": self.test_accuracy,
            "params": self.params,
            "epochs": self.epochs,
            "train_seconds": self.seconds,
            "reused": self.reused,
        }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the benchmark's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--minutes", type=float, default=5.0, help="wall-clock budget per search (default 5)"
    )
    p.add_argument(
        "--shots",
        default="5,20,100",
        help="training images per target class, a comma list (default 5,20,100)",
    )
    p.add_argument(
        "--val-shots",
        type=int,
        default=50,
        help="validation images per target class (default 50)",
    )
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--source-classes", default="0-4", help="pretraining classes (default 0-4)")
    p.add_argument("--target-classes", default="5-9", help="few-shot classes (default 5-9)")
    p.add_argument(
        "--source-phenotype",
        default=DEFAULT_SOURCE,
        help="the source network, in the architecture language (default: a 7-block cnn_fmnist CNN)",
    )
    p.add_argument("--source-epochs", type=int, default=10, help="pretraining epochs (default 10)")
    p.add_argument(
        "--source",
        metavar="MODEL_DIR",
        help="a trained source model directory to use instead of pretraining (e.g. OUT/source)",
    )
    p.add_argument("--transfer-grammar", default=str(ROOT / "grammars" / "transfer.bnf"))
    p.add_argument("--scratch-grammar", default=str(ROOT / "grammars" / "cnn_fmnist.bnf"))
    p.add_argument("--mode", default="steady", choices=("generational", "steady"))
    p.add_argument("--population", type=int, default=12)
    p.add_argument(
        "--epochs", type=int, default=20, help="epochs per search evaluation (default 20)"
    )
    p.add_argument(
        "--finalists", type=int, default=2, help="networks retrained per search (default 2)"
    )
    p.add_argument(
        "--final-epochs", type=int, default=50, help="epochs for the finalists (default 50)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--feature-cache-mb",
        type=int,
        default=field_default("feature_cache_mb"),
        help="each worker's frozen-feature cache (default %(default)s; 0: off)",
    )
    p.add_argument(
        "--cache-replay",
        type=int,
        default=20,
        help="transfer evaluations replayed with and without the cache to time it (default 20)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds, from --seed (default 3)")
    p.add_argument("--out", help="output directory (default runs/bench-transfer-<time>)")
    args = p.parse_args(argv)
    try:
        args.shot_list = sorted({int(k) for k in args.shots.split(",") if k.strip()})
    except ValueError:
        p.error(f"--shots {args.shots!r}: expected a comma list of positive integers, e.g. 5,20")
    if not args.shot_list or min(args.shot_list) < 1:
        p.error(f"--shots {args.shots!r}: expected a comma list of positive integers, e.g. 5,20")
    return args


# --- the source -------------------------------------------------------------------


def source_config(args: argparse.Namespace) -> RunConfig:
    """Return the settings the source trains under: every training image of the source classes."""
    return RunConfig(
        args.scratch_grammar, dataset=args.dataset, data_dir=args.data_dir, seed=0,
        classes=args.source_classes, val_fraction=0.1, final_holdout=0.0,
        final_epochs=args.source_epochs, test_in_search=False,
    )  # fmt: skip


def pretrain(args: argparse.Namespace, out: Path) -> Source:
    """Return the source network: --source, or --out/source if whole, or trained now into --out/source."""
    spec = parse_arch(args.source_phenotype)
    given = Path(args.source) if args.source else None
    path = (given or out / "source").resolve()
    if given is None and path.exists() and not (path / METRICS_FILE).exists():
        print(f"  {path} is incomplete (no {METRICS_FILE}); training the source again", flush=True)
        shutil.rmtree(path)
    if given is not None or path.exists():
        return _reused(path, None if given else spec, args.source_classes)
    config = source_config(args)
    task = task_for(
        config, spec.canonical(), spec.hash(), epochs=args.source_epochs,
        threads=usable_cores(), save_dir=str(path),
    )  # fmt: skip
    print(
        f"  pretraining the source on {config.data_text()}, {args.source_epochs} epochs: "
        f"{spec.canonical()}",
        flush=True,
    )
    metrics = evaluate(task).metrics
    if not metrics.ok:
        raise SystemExit(f"the source did not train ({metrics.status}): {metrics.error}")
    return Source(
        path, spec.canonical(), metrics.test_accuracy, metrics.params, metrics.epochs,
        metrics.train_seconds, reused=False,
    )  # fmt: skip


def _reused(path: Path, expected: ArchSpec | None, classes: str) -> Source:
    """Return a trained model directory as the source; with expected, refuse another network or classes."""
    for name in (MODEL, SPEC, META, METRICS_FILE):
        if not (path / name).is_file():
            raise SystemExit(f"--source {path}: no {name}; expected a ge_nas model directory")
    spec = ArchSpec.from_json((path / SPEC).read_text("utf-8"))
    meta = Meta.from_json((path / META).read_text("utf-8"), str(path / META))
    metrics = Metrics.from_json((path / METRICS_FILE).read_text("utf-8"))
    if expected is not None and spec.canonical() != expected.canonical():
        raise SystemExit(
            f"{path} holds another network than --source-phenotype:\n  {spec.canonical()}\n"
            "choose another --out, or pass that network as --source-phenotype"
        )
    wanted = tuple(label for low, high in parse_classes(classes) for label in range(low, high + 1))
    if expected is not None and meta.classes is not None and tuple(meta.classes) != wanted:
        raise SystemExit(
            f"{path} was trained on classes {list(meta.classes)}, not --source-classes {classes}"
        )
    print(f"  reusing the source in {path}", flush=True)
    return Source(
        path, spec.canonical(), metrics.test_accuracy, metrics.params, metrics.epochs,
        metrics.train_seconds, reused=True,
    )  # fmt: skip


# --- one search and its finalists -------------------------------------------------


def arm_config(
    args: argparse.Namespace, arm: str, shots: int, seed: int, source: Path
) -> RunConfig:
    """Return the search settings of one arm in one (K, seed) cell; only grammar and backbone differ."""
    return RunConfig(
        args.transfer_grammar if arm == "transfer" else args.scratch_grammar,
        dataset=args.dataset, data_dir=args.data_dir, seed=seed, split_seed=seed,
        classes=args.target_classes, shots=shots, val_shots=args.val_shots,
        mode=args.mode, population=args.population, generations=10_000, epochs=args.epochs,
        final_epochs=args.final_epochs, finalists=args.finalists, workers=args.workers,
        init="sensible", test_in_search=False, feature_cache_mb=args.feature_cache_mb,
        backbone=str(source) if arm == "transfer" else None,
    )  # fmt: skip


def search(
    config: RunConfig, path: Path, minutes: float, clock: Clock
) -> tuple[list[Record], float]:
    """Run one search until minutes of wall time (fmnist.search_ge); return what it trained and its seconds."""
    executor = make_executor(
        config.executor, config.workers, feature_cache_mb=config.feature_cache_mb
    )
    try:
        grammar = load_grammar(config.grammar)
        result = search_ge(grammar, config, executor, path, clock() + minutes * 60, clock)
    finally:
        executor.close()
    return result.records, result.seconds


def finalists_of(records: list[Record], k: int) -> list[Record]:
    """Return up to k structurally different trained networks, best validation accuracy first."""
    trained = sorted(
        (r for r in records if r.metrics.ok),
        key=lambda r: (-r.metrics.val_accuracy, r.metrics.params or 0),
    )
    return pick_finalists(trained, k)


def train_finalists(
    finalists: list[Record], config: RunConfig, out: Path
) -> tuple[list[tuple[int, Metrics]], float]:
    """Train the finalists on the shots and save them in out/front/N; return (rank, metrics) and seconds."""
    executor = make_executor(
        config.executor, config.workers, feature_cache_mb=config.feature_cache_mb
    )
    start = time.monotonic()
    try:
        tasks = [
            task_for(
                config,
                r.phenotype,
                r.phenotype_hash,
                epochs=config.final_epochs,
                threads=executor.threads,
                save_dir=str(out / "front" / str(rank)),
            )  # fmt: skip
            for rank, r in enumerate(finalists, start=1)
        ]
        finals = sorted((i + 1, outcome.metrics) for i, outcome in executor.run(tasks))
    finally:
        executor.close()
    return finals, time.monotonic() - start


def run_arm(
    args: argparse.Namespace, arm: str, shots: int, seed: int, source: Path, out: Path, clock: Clock
) -> dict[str, Any]:
    """Search, train the finalists, and return one arm's numbers."""
    config = arm_config(args, arm, shots, seed, source)
    print(f"  {arm}: {Path(config.grammar).name}, {args.minutes:g} min", flush=True)
    records, seconds = search(config, out / f"{arm}.sqlite", args.minutes, clock)
    trained = [r for r in records if r.metrics.ok]
    finalists = finalists_of(records, args.finalists)
    finals, final_seconds = (
        train_finalists(finalists, config, out / arm) if finalists else ([], 0.0)
    )
    chosen = choose_best(finals)
    rows = [
        {
            "rank": rank,
            "phenotype": finalists[rank - 1].phenotype,
            "search_val_accuracy": finalists[rank - 1].metrics.val_accuracy,
            "status": m.status,
            "val_accuracy": m.val_accuracy,
            "test_accuracy": m.test_accuracy,
            "params": m.params,
        }
        for rank, m in finals
    ]
    best = rows[chosen - 1] if chosen is not None else None
    result = {
        "evaluations": len(trained),
        "not_trained": len(records) - len(trained),
        "search_seconds": seconds,
        "evaluations_per_minute": len(trained) / (seconds / 60) if seconds > 0 else None,
        "best_search_val_accuracy": max((r.metrics.val_accuracy for r in trained), default=None),
        "finalists": rows,
        "final_seconds": final_seconds,
        "chosen": best,
        "test_accuracy": best["test_accuracy"] if best else None,
        "feature_cache": cache_saving(config, trained[: args.cache_replay])
        if arm == "transfer"
        else None,
    }
    print(
        f"  {arm}: {len(trained)} trained ({len(records) - len(trained)} not) in {seconds:.0f} s, "
        f"{_fmt(result['evaluations_per_minute'], '{:.1f}')} per minute; chosen finalist: "
        f"val {_fmt(best and best['val_accuracy'], '{:.4f}')}, "
        f"test {_fmt(result['test_accuracy'], '{:.4f}')} "
        f"({len(finals)} finalist(s) trained in {final_seconds:.0f} s)",
        flush=True,
    )
    return result


def cache_saving(config: RunConfig, records: list[Record]) -> dict[str, Any]:
    """Return the share of time the feature cache saves on these evaluations, replayed both ways."""
    tasks = [
        task_for(config, r.phenotype, r.phenotype_hash, epochs=config.epochs, threads=1)
        for r in records
    ]
    cache = FeatureCache(config.feature_cache_mb)
    timed = replay(tasks, [Variant("cached", cache=cache), Variant("uncached")])
    cached, uncached = timed["cached"], timed["uncached"]
    saved = share_saved(cached, uncached)
    frozen = cached.used  # the evaluations that froze blocks (and so used the cache)
    saved_frozen = share_saved(cached.only(frozen), uncached.only(frozen))
    difference = largest_difference(cached, uncached)
    print(
        f"  feature cache: {len(tasks)} transfer evaluations replayed in {cached.seconds:.1f} s "
        f"with it, {uncached.seconds:.1f} s without: {_fmt(saved, '{:.0%}')} saved; on the "
        f"{sum(frozen)} that froze blocks {_fmt(saved_frozen, '{:.0%}')} (largest validation "
        f"accuracy difference {difference:.2g})",
        flush=True,
    )
    return {
        "evaluations": len(tasks),
        "cached_seconds": cached.seconds,
        "uncached_seconds": uncached.seconds,
        "time_saved": saved,
        "evaluations_with_frozen_blocks": sum(frozen),
        "time_saved_on_those": saved_frozen,
        "largest_val_accuracy_difference": difference,
    }


def run_cell(
    args: argparse.Namespace, shots: int, seed: int, source: Path, out: Path, clock: Clock
) -> dict[str, Any]:
    """Run both searches of one (K, seed) cell; save and return its summary."""
    if out.exists():  # an interrupted earlier run: its archives would answer from cache
        print(f"  {out} holds an unfinished cell; starting it again", flush=True)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    arms = {arm: run_arm(args, arm, shots, seed, source, out, clock) for arm in ARMS}
    t, s = arms["transfer"], arms["scratch"]
    summary = {
        "shots": shots,
        "seed": seed,
        **arms,
        "test_gain_points": _diff_points(t["test_accuracy"], s["test_accuracy"]),
        "evaluations_per_minute_ratio": _ratio(
            t["evaluations_per_minute"], s["evaluations_per_minute"]
        ),
    }
    rundir.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _diff_points(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else 100 * (a - b)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _fmt(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


# --- the report -------------------------------------------------------------------

COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], Any], str], ...] = (
    ("transfer test acc", lambda c: c["transfer"]["test_accuracy"], "{:.4f}"),
    ("scratch test acc", lambda c: c["scratch"]["test_accuracy"], "{:.4f}"),
    ("transfer - scratch (points)", lambda c: c["test_gain_points"], "{:+.1f}"),
    ("transfer evals/min", lambda c: c["transfer"]["evaluations_per_minute"], "{:.1f}"),
    ("scratch evals/min", lambda c: c["scratch"]["evaluations_per_minute"], "{:.1f}"),
    ("evals/min ratio", lambda c: c["evaluations_per_minute_ratio"], "{:.2f}"),
    ("feature cache time saved", lambda c: c["transfer"]["feature_cache"]["time_saved"], "{:.0%}"),
    (
        "... on frozen-block evals",
        lambda c: c["transfer"]["feature_cache"]["time_saved_on_those"],
        "{:.0%}",
    ),
)


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Return the median, least and greatest of the known values (None when there are none)."""
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(known), "min": min(known), "max": max(known)}


def print_table(shots: int, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Print one K's cells, a column per seed, the median and the range; return the medians and ranges."""
    print(
        f"\nK = {shots}{'':22s}"
        + "".join(f"{'seed ' + str(c['seed']):>12s}" for c in cells)
        + f"{'median':>12s}{'range':>20s}"
    )
    summary: dict[str, Any] = {}
    for label, get, fmt in COLUMNS:
        values = [get(c) for c in cells]
        s = spread(values)
        summary[label] = s
        cells_text = [_fmt(v, fmt) for v in [*values, s["median"]]]
        span = "-" if s["min"] is None else f"{fmt.format(s['min'])} .. {fmt.format(s['max'])}"
        print(f"{label:28s}" + "".join(f"{t:>12s}" for t in cells_text) + f"{span:>20s}")
    return summary


def print_targets(medians: dict[int, dict[str, Any]]) -> None:
    """Print the issue's targets next to what was measured at K = 5 (no verdict)."""
    at5 = medians.get(5)
    if at5 is None:
        print("\ntargets are stated at K = 5, which this run did not measure")
        return
    gain = at5["transfer - scratch (points)"]["median"]
    ratio = at5["evals/min ratio"]["median"]
    print(
        "\ntargets at K = 5 (targets, not checks): transfer - scratch >= +3 points median test "
        f"accuracy (measured {_fmt(gain, '{:+.1f}')}); >= 5x the evaluations per minute "
        f"(measured {_fmt(ratio, '{:.2f}')}x)"
    )


def main(argv: Sequence[str] | None = None, clock: Clock = time.monotonic) -> int:
    """Pretrain (or reuse) the source, run every (K, seed) cell, print the tables, save summary.json."""
    args = parse_args(argv)
    out = Path(args.out or ROOT / "runs" / f"bench-transfer-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if (out / "summary.json").exists():
        raise SystemExit(f"{out} already holds a benchmark; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.seed, args.seed + args.seeds)
    print(
        f"{args.dataset}: source classes {args.source_classes}, target classes "
        f"{args.target_classes}; K = {', '.join(map(str, args.shot_list))} shots per class, "
        f"{args.val_shots} validation images per class; {args.minutes:g} min per search, "
        f"{args.seeds} seed(s), --mode {args.mode}, {args.workers} workers, {args.epochs} epochs "
        f"per evaluation; out {out}",
        flush=True,
    )
    print("source", flush=True)
    source = pretrain(args, out)
    print(
        f"  source: {_fmt(source.params, '{:,}')} params, test accuracy "
        f"{_fmt(source.test_accuracy, '{:.4f}')} on classes {args.source_classes} "
        f"({source.epochs} epochs, {source.seconds:.0f} s{', reused' if source.reused else ''})",
        flush=True,
    )
    cells: dict[int, list[dict[str, Any]]] = {}
    for shots in args.shot_list:
        for seed in seeds:
            print(f"K = {shots}, seed {seed}", flush=True)
            cell = run_cell(
                args, shots, seed, source.path, out / f"K{shots}" / f"seed{seed}", clock
            )
            cells.setdefault(shots, []).append(cell)
    print(f"\nsource test accuracy on classes {args.source_classes}: "
          f"{_fmt(source.test_accuracy, '{:.4f}')}")  # fmt: skip
    medians = {shots: print_table(shots, cells[shots]) for shots in args.shot_list}
    print_targets(medians)
    command = "python benchmarks/transfer.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    doc = {
        "command": command,
        "source": source.to_json(),
        "over_seeds": {str(k): v for k, v in medians.items()},
        "cells": [c for k in args.shot_list for c in cells[k]],
    }
    rundir.write_atomic(out / "summary.json", json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
