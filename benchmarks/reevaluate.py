"""How much of a search's best is seed luck? Its top networks retrained at the search fidelity with other seeds.

    python benchmarks/reevaluate.py OUT/seed1/ge.sqlite OUT/seed1/random.sqlite --seed 1 \\
        [--top 10] [--repeats 2] [--evaluations N] [--target-params 50000] [--data-dir DIR]

Each archive is one benchmarks/fmnist.py (or seeds.py) search; the other
options must be that search's (the seed, --train-subset, --epochs, ...), since
its networks are read at their search fidelity. From each archive's first
--evaluations networks it takes the --top most accurate structures within
--target-params (one per structure, as `fmnist.py --screen` takes them) and
trains each --repeats more times at the same fidelity, on the same split, with
seeds no search's own training uses. A search that selects on a noisy measure keeps the networks that
drew a lucky seed: the drop from their search accuracy to their retrained mean
is that luck, and the retrained mean is what the search's best are worth. It
prints, per archive, both means and the drop, and each network's numbers; each
training is appended to results.jsonl (with its seed) as it arrives. Only
validation images are scored. Of fmnist.py's options, those of the search and
its data count; --minutes, --search-share, --seeds, --finalists, --screen and
--final-epochs are ignored.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import fmnist

from ge_nas.archive import Record
from ge_nas.config import RunConfig
from ge_nas.executors import make_executor
from ge_nas.fidelity import fidelity_key
from ge_nas.search.evaluator import task_for
from ge_nas.worker import EvalTask, derive_seed


def top_networks(
    path: Path, key: str, evaluations: int | None, top: int, target: int
) -> list[Record]:
    """Return the top most accurate structures within target among an archive's first evaluations networks."""
    records = fmnist.searched(path, key)[:evaluations]
    if not records:
        raise SystemExit(f"{path}: no network at this fidelity; give the search's options")
    return fmnist.SearchResult(records, 0.0, 0.0).top_within(target, top)


def summarise(pairs: Sequence[tuple[float, Sequence[float]]]) -> dict[str, float] | None:
    """Return the mean search accuracy, the mean of the retrained means, and the drop.

    pairs holds each network's search accuracy and its retrained accuracies; a
    network none of whose retrainings succeeded counts in neither mean.
    """
    kept = [(search, statistics.fmean(again)) for search, again in pairs if again]
    if not kept:
        return None
    searched = statistics.fmean(s for s, _ in kept)
    again = statistics.fmean(a for _, a in kept)
    return {"search": searched, "retrained": again, "drop": searched - again}


def retraining_tasks(
    config: RunConfig, tops: Sequence[Sequence[Record]], repeats: int, threads: int
) -> tuple[list[EvalTask], list[tuple[int, int]]]:
    """Return each network's retrainings at the search fidelity, and (archive, network) for each.

    A search trained a network with derive_seed(its seed, the network's hash);
    a retraining's seed is derived from a key no search uses, so no retraining
    repeats a search's own training, whatever --seed says.
    """
    tasks, labels = [], []
    for repeat in range(repeats):
        for a, records in enumerate(tops):
            for i, r in enumerate(records):
                task = task_for(
                    config, r.phenotype, r.phenotype_hash, epochs=config.epochs, threads=threads
                )
                seed = derive_seed(config.seed, f"reevaluate-{repeat}:{r.phenotype_hash}")
                tasks.append(replace(task, seed=seed))
                labels.append((a, i))
    return tasks, labels


def main(argv: Sequence[str] | None = None) -> int:
    """Retrain each archive's top networks; print what their search accuracy kept."""
    p = fmnist.make_parser()
    p.add_argument("archives", nargs="+", type=Path, help="searches' .sqlite archives")
    p.add_argument("--top", type=int, default=10, help="networks per archive (default 10)")
    p.add_argument("--repeats", type=int, default=2, help="retrainings per network (default 2)")
    p.add_argument(
        "--evaluations",
        type=int,
        help="only each search's first N networks, e.g. a GE and a random search at equal "
        "evaluations (default: all)",
    )
    args = p.parse_args(argv)
    for name in ("top", "repeats", "evaluations", "target_params"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} {value}: expected at least 1")
    out = Path(args.out or args.archives[0].parent / "reevaluate")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out")
    config = fmnist.make_run_config(args, args.seed)
    key = fidelity_key(config)
    tops = [
        top_networks(path, key, args.evaluations, args.top, args.target_params)
        for path in args.archives
    ]
    executor = make_executor(config.executor, args.workers)
    tasks, labels = retraining_tasks(config, tops, args.repeats, executor.threads)
    retrained = [[list[float]() for _ in records] for records in tops]
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(tasks)} trainings: {args.repeats} per network; out {out}", flush=True)
    try:
        with (out / "results.jsonl").open("a") as log:
            for index, outcome in executor.run(tasks):
                a, i = labels[index]
                m, r = outcome.metrics, tops[a][i]
                row = {"archive": str(args.archives[a]), "phenotype": r.phenotype}
                row |= {"seed": tasks[index].seed, "search_val_accuracy": r.metrics.val_accuracy}
                row |= {"ok": m.ok}
                row |= {"val_accuracy": m.val_accuracy, "params": r.metrics.params}
                log.write(json.dumps(row) + "\n")
                log.flush()
                if m.ok:
                    retrained[a][i].append(m.val_accuracy)
    finally:
        executor.close()
    for path, records, again in zip(args.archives, tops, retrained):
        print(f"\n{path}: top {len(records)} within {args.target_params:,} params")
        for r, accs in zip(records, again):
            seeds = " ".join(f"{v:.4f}" for v in accs) or "-"
            print(
                f"  {r.metrics.params or 0:>8,} params  search {r.metrics.val_accuracy:.4f}  retrained {seeds}"
            )
        s = summarise([(r.metrics.val_accuracy, accs) for r, accs in zip(records, again)])
        if s is not None:
            print(
                f"  mean: search {s['search']:.4f}  retrained {s['retrained']:.4f}  "
                f"drop {100 * s['drop']:.2f} points"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
