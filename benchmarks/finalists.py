"""Which finalists to retrain, on one finished search: the front's best, or candidates screened first.

    python benchmarks/finalists.py --archive OUT/seed1/ge.sqlite --seed 1 --screens 0,6 --final-epochs 8

The archive is one benchmarks/fmnist.py (or seeds.py) search; the other options
must be that search's (the seed, --train-subset, --epochs, --max-params, ...), since
its networks are read at their search fidelity. For each --screens value M, the
rule of `fmnist.py --screen M` picks --finalists networks: M = 0, the front's
most accurate structures within --target-params; M > --finalists, the M most
accurate structures within it, dominated or not, each trained one epoch on the
final training's images, the best by held-out accuracy going on. Every network
any rule picks is then trained for exactly --final-epochs (no wall budget), and
each rule's held-out slice chooses its network. It prints every candidate's
one-epoch held-out accuracy, every finalist's held-out and test accuracy, and
each rule's choice; the test set chooses nothing.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fmnist

from ge_nas import rundir
from ge_nas.archive import Record
from ge_nas.executors import make_executor
from ge_nas.fidelity import fidelity_key
from ge_nas.search.finalists import choose_best


def union(groups: Sequence[Sequence[Record]]) -> list[Record]:
    """Return the records of every group, each phenotype once, in first-seen order."""
    seen: dict[str, Record] = {}
    for group in groups:
        for r in group:
            seen.setdefault(r.phenotype_hash, r)
    return list(seen.values())


def finished_within(records: Sequence[Record], seconds: float) -> list[Record]:
    """Return the records that finished within seconds of the first one's start (those without stamps dropped)."""
    times = [
        (r, r.started, r.ended) for r in records if r.started is not None and r.ended is not None
    ]
    began = min((start for _, start, _ in times), default=0.0)
    return [r for r, _, ended in times if ended - began <= seconds]


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the finalist rules on one archive; print and save what each chose."""
    p = fmnist.make_parser()
    p.add_argument("--archive", type=Path, required=True, help="a search's ge.sqlite")
    p.add_argument("--screens", default="0,6", help="the --screen values to compare (default 0,6)")
    p.add_argument(
        "--search-minutes",
        type=float,
        help="use only the networks the search had finished this many minutes after it began, "
        "as a search with a smaller --search-share would have (default: all)",
    )
    p.add_argument(
        "--evaluations",
        type=int,
        help="use only the first N networks the search finished, e.g. to compare a GE and a "
        "random search at equal evaluations (default: all)",
    )
    args = p.parse_args(argv)
    screens = [int(v) for v in args.screens.split(",")]
    out = Path(args.out or args.archive.parent / "finalists")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out")
    config = fmnist.make_run_config(args, args.seed)
    records = fmnist.searched(args.archive, fidelity_key(config))
    if records and args.search_minutes is not None:
        records = finished_within(records, args.search_minutes * 60)
        if not records:
            raise SystemExit(
                f"--search-minutes {args.search_minutes:g}: no network of {args.archive} "
                "had finished by then"
            )
    if args.evaluations is not None:
        if args.evaluations < 1:
            raise SystemExit(f"--evaluations {args.evaluations}: expected at least 1")
        records = records[: args.evaluations]
    if not records:
        raise SystemExit(
            f"--archive {args.archive}: no network at this fidelity; give the search's options"
        )
    search = fmnist.SearchResult(records, 0.0, 0.0)
    candidates = {
        m: fmnist.finalist_candidates(search, args.finalists, m, args.target_params)
        for m in screens
    }
    executor = make_executor(config.executor, args.workers)
    try:
        every = union(list(candidates.values()))
        print(
            f"{len(records)} networks searched; one epoch for {len(every)} candidates", flush=True
        )
        began = time.monotonic()
        calibration = fmnist.train_finalists(every, config, executor, 1, out / "calibration")
        screening_s = time.monotonic() - began
        shutil.rmtree(out / "calibration", ignore_errors=True)
        chosen = {m: fmnist.screened(candidates[m], calibration, args.finalists) for m in screens}
        trained = union(list(chosen.values()))
        print(f"{args.final_epochs} epochs for {len(trained)} finalists", flush=True)
        began = time.monotonic()
        finals = fmnist.train_finalists(trained, config, executor, args.final_epochs, out)
        final_s = time.monotonic() - began
    finally:
        executor.close()

    def row(r: Record) -> dict[str, Any]:
        one, final = calibration.get(r.phenotype_hash), finals.get(r.phenotype_hash)
        return {
            "phenotype": r.phenotype,
            "params": r.metrics.params,
            "search_val_accuracy": r.metrics.val_accuracy,
            "one_epoch_holdout": one.val_accuracy if one is not None and one.ok else None,
            "final_holdout": final.val_accuracy if final is not None and final.ok else None,
            "final_test": final.test_accuracy if final is not None and final.ok else None,
        }

    rules = {}
    for m in screens:
        rows = [row(r) for r in chosen[m]]
        best = choose_best(
            [
                (i, finals[r.phenotype_hash])
                for i, r in enumerate(chosen[m])
                if r.phenotype_hash in finals
            ]
        )
        rules[m] = {
            "candidates": [row(r) for r in candidates[m]],
            "finalists": rows,
            "chosen": None if best is None else rows[best],
        }
    for m, rule in rules.items():
        print(f"\n--screen {m}: {len(rule['candidates'])} candidates")
        for x in rule["candidates"]:
            mark = "*" if x in rule["finalists"] else " "
            print(
                f" {mark} {x['params']:>8,} params  search {x['search_val_accuracy']:.4f}"
                f"  one epoch {_pct(x['one_epoch_holdout'])}  final held-out {_pct(x['final_holdout'])}"
                f"  test {_pct(x['final_test'])}"
            )
        pick = rule["chosen"]
        if pick is not None:
            print(f"   chosen: {pick['params']:,} params, test {_pct(pick['final_test'])}")
    print(f"\nminutes: screening {screening_s / 60:.1f}, final training {final_s / 60:.1f}")
    command = "python benchmarks/finalists.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    rundir.write_atomic(
        out / "summary.json",
        json.dumps(
            {
                "command": command,
                "networks_searched": len(records),
                "final_epochs": args.final_epochs,
                "minutes": {"screening": screening_s / 60, "final_training": final_s / 60},
                "rules": rules,
            },
            indent=2,
        )
        + "\n",
    )
    return 0


def _pct(value: float | None) -> str:
    return "     -" if value is None else f"{100 * value:5.2f} %"


if __name__ == "__main__":
    sys.exit(main())
