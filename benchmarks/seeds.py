"""Seed 000's table as a matrix: per data set, the best small network GE finds within its parameter limit.

    python benchmarks/seeds.py [--minutes 60] [--rows mnist,fashion-mnist] [--data-dir DIR] [--seed 0] [--out DIR]

The GA-configured small models this project draws on (seed 000, issue #15)
report, per data set, a test accuracy at a parameter limit (ROWS). Each row
whose data is present runs benchmarks/fmnist.py's pipeline
(`fmnist.search_and_finalise`) in --minutes of wall time: a GE search on
grammars/cnn_fmnist.bnf with the row's limit as --max-params (larger networks
are rejected before training), for fmnist.py's share of the budget; then its
--finalists within the limit retrain on train + validation less a held-out
slice, which chooses one. The row reports that network's test accuracy (the
test set chooses nothing), its parameters and the minutes spent. The other
search settings are fmnist.py's defaults unless given here.

A row's IDX files are looked for in each --data-dir in turn (default
/usr/share/datasets, where Debian's dataset packages put them), in the data
set's own subdirectory of it, as `ge_nas run --dataset NAME` names them:
mnist/, fashion-mnist/, and emnist/ or gzip/ holding EMNIST's
emnist-<split>-* files (MNIST-style names never stand in for an EMNIST
split). A row without its files is marked "no data"; the others still run.

Out (--out, default runs/bench-seeds-<time>): <dataset>/ per row that ran
(ge.sqlite, pareto.csv, front/), and summary.json, rewritten after each row.
The table is printed as Markdown. It reports what it reached; there is no
pass or fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fmnist

from ge_nas import rundir
from ge_nas.data import SYSTEM_DATA_DIR
from ge_nas.data.idx import IDX_SETS, find_idx
from ge_nas.errors import DatasetError, did_you_mean
from ge_nas.executors import make_executor

ROOT = Path(__file__).resolve().parent.parent
NO_DATA = "no data"


@dataclass(frozen=True)
class Row:
    """One data set of seed 000's table: its target test accuracy and parameter limit."""

    dataset: str  # a ge_nas IDX data set name
    label: str
    target: str
    limit: int  # most parameters


ROWS = (
    Row("emnist-balanced", "EMNIST balanced", "≥ 89 %", 150_000),
    Row("emnist-byclass", "EMNIST byclass", "≈ 86.6 %", 150_000),
    Row("emnist-bymerge", "EMNIST bymerge", "≈ 90 %", 150_000),
    Row("emnist-digits", "EMNIST digits", "≈ 100 %", 50_000),
    Row("emnist-letters", "EMNIST letters", "≥ 93 %", 130_000),
    Row("mnist", "MNIST", "≈ 100 %", 48_000),
    Row("fashion-mnist", "Fashion-MNIST", "≥ 90 %", 50_000),
)
BY_NAME = {row.dataset: row for row in ROWS}
# fmnist.py's settings this script does not set itself
SEARCH_OPTIONS = ("grammar", "mode", "representation", "population", "epochs", "train_subset",
                  "finalists", "screen", "final_epochs", "workers")  # fmt: skip


def rows_arg(text: str) -> list[Row]:
    """Parse --rows: comma-separated data set names of ROWS."""
    rows = []
    for name in (part.strip() for part in text.split(",")):
        if name not in BY_NAME:
            raise argparse.ArgumentTypeError(
                f"unknown row {name!r}{did_you_mean(name, BY_NAME)}; rows: {', '.join(BY_NAME)}"
            )
        rows.append(BY_NAME[name])
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the matrix's options; the search settings it leaves out are fmnist.py's defaults."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--minutes", type=float, default=60.0, help="wall-clock budget per row (default 60)"
    )
    p.add_argument(
        "--rows",
        type=rows_arg,
        default=list(ROWS),
        help="data sets, comma-separated (default: all)",
    )
    p.add_argument(
        "--data-dir",
        action="append",
        type=Path,
        dest="data_dirs",
        help="where to look for the data sets; repeat for several (default /usr/share/datasets)",
    )
    p.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    p.add_argument("--out", help="output directory (default runs/bench-seeds-<time>)")
    same = "(default: as benchmarks/fmnist.py)"
    p.add_argument("--grammar", default=argparse.SUPPRESS, help=f"search space {same}")
    p.add_argument("--mode", default=argparse.SUPPRESS, help=f"generational or steady {same}")
    p.add_argument("--representation", default=argparse.SUPPRESS, help=f"ge, sge or bits {same}")
    for flag, what in (
        ("--population", "individuals per generation"),
        ("--epochs", "epochs per search evaluation"),
        ("--finalists", "networks retrained at the end"),
        ("--screen", "candidates screened by one epoch before the finalists are chosen"),
        ("--final-epochs", "most epochs for the final training"),
        ("--workers", "worker processes"),
    ):
        p.add_argument(flag, type=int, default=argparse.SUPPRESS, help=f"{what} {same}")
    p.add_argument(
        "--train-subset",
        type=float,
        default=argparse.SUPPRESS,
        help=f"training images per search evaluation {same}",
    )
    return p.parse_args(argv)


def locate(row: Row, data_dirs: Sequence[Path]) -> Path | None:
    """Return the directory holding the row's IDX files, or None.

    Only a data set's own subdirectories of a --data-dir count (fashion-mnist/,
    emnist/, ...: IdxSpec.subdirs), never the --data-dir itself, whose plain
    IDX names could be any data set's; an EMNIST row's files must carry its prefix.
    """
    spec = IDX_SETS[row.dataset]
    for data_dir in data_dirs:
        for folder in (data_dir / sub for sub in spec.subdirs):
            try:
                paths = find_idx(row.dataset, str(folder), SYSTEM_DATA_DIR)
            except DatasetError:
                continue
            if all(p.parent == folder and p.name.startswith(spec.prefix) for p in paths.values()):
                return folder
    return None


def search_args(args: argparse.Namespace, row: Row, data_dir: Path) -> argparse.Namespace:
    """Return fmnist.py's options for one row: its defaults, this script's settings, the row's data and limit."""
    options = vars(fmnist.parse_args([]))
    options |= {name: getattr(args, name) for name in SEARCH_OPTIONS if hasattr(args, name)}
    options |= {"minutes": args.minutes, "dataset": row.dataset, "data_dir": str(data_dir),
                "max_params": row.limit, "target_params": row.limit}  # fmt: skip
    return argparse.Namespace(**options)


def run_row(
    args: argparse.Namespace, row: Row, data_dir: Path, out: Path, clock: fmnist.Clock
) -> dict[str, Any]:
    """Search and retrain within the row's budget and limit; return the validation-chosen finalist's numbers."""
    start, options = clock(), search_args(args, row, data_dir)
    config = fmnist.make_run_config(options, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    executor = make_executor(config.executor, options.workers)
    try:
        done = fmnist.search_and_finalise(options, config, executor, out, start, clock)
    finally:
        executor.close()
    rows = done.rows(config)
    rundir.write_pareto(out, rows)
    chosen = fmnist.chosen_finalist(rows, row.limit) or {}
    return {
        "status": "ran",
        "data_dir": str(data_dir),
        "evaluations": len(done.search.records),
        "final_epochs": done.final_epochs,
        "minutes": done.minutes,
        **{k: chosen.get(k) for k in ("test_accuracy", "holdout_accuracy", "params", "phenotype")},
    }


def table(results: Sequence[dict[str, Any]]) -> str:
    """Return the matrix as a Markdown table."""
    lines = [
        "| data set | target | limit | test accuracy | params | minutes |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        accuracy = r.get("test_accuracy")
        cells = [
            r["label"],
            r["target"],
            f"{r['limit'] // 1000}k",
            r["status"] if r["status"] != "ran" else _percent(accuracy),
            "" if r.get("params") is None else f"{r['params']:,}",
            "" if r.get("minutes") is None else f"{r['minutes']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "none within the limit" if value is None else f"{100 * value:.2f} %"


def main(argv: Sequence[str] | None = None, clock: fmnist.Clock = time.monotonic) -> int:
    """Run every row whose data is present; print the matrix; save summary.json."""
    args = parse_args(argv)
    out = Path(args.out or ROOT / "runs" / f"bench-seeds-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if (out / "summary.json").exists():
        raise SystemExit(f"{out} already holds a benchmark; choose another --out")
    data_dirs = args.data_dirs or [SYSTEM_DATA_DIR]
    command = "python benchmarks/seeds.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: list[dict[str, Any]] = []
    for row in args.rows:
        data_dir = locate(row, data_dirs)
        print(f"{row.label}: {data_dir or NO_DATA}", flush=True)
        result = {"status": NO_DATA}
        if data_dir is not None:
            result = run_row(args, row, data_dir, out / row.dataset, clock)
        results.append({"dataset": row.dataset, "label": row.label, "target": row.target,
                        "limit": row.limit, **result})  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        summary = {"command": command, "rows": results}
        rundir.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\n{table(results)}\nout {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
