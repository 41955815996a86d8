"""The commands that look at a run and reuse its networks: report, export, train, show.

    python -m ge_nas report runs/RUN
    python -m ge_nas export runs/RUN --rank 1 --format onnx
    python -m ge_nas train --from runs/RUN --rank 4
    python -m ge_nas show runs/RUN
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ge_nas import runs
from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.build import measure
from ge_nas.config import RunConfig
from ge_nas.data import DATASET_NAMES, load_dataset
from ge_nas.errors import ConfigError
from ge_nas.evaluate import EvalTask, derive_seed, evaluate, load_splits
from ge_nas.export import FORMATS, Meta, export_onnx, export_torch, finalist_dir, front_row
from ge_nas.html_report import load_run_config, progress_text, read_generations, status_text, write_report
from ge_nas.metrics import Metrics
from ge_nas.report import front_table
from ge_nas.train import resolve_device
from ge_nas.evaluator import fidelity_key


DEFAULT_TRAIN_EPOCHS = 15
ONNX_SAMPLES = 64


def add_inspect_commands(commands: Any) -> None:
    """Add `report`, `export`, `train` and `show` to the sub-parsers."""
    _add_report(commands)
    _add_export(commands)
    _add_train(commands)
    _add_show(commands)


# --- report ---------------------------------------------------------------------------------------


def _add_report(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("report", help="write pareto.png, history.png and report.html into a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `ge_nas run`")
    p.set_defaults(func=command_report)


def command_report(args: argparse.Namespace, console: Console) -> int:
    """Print a run's front and write its plots and HTML report."""
    report = write_report(args.run_dir)
    snapshot = report.snapshot
    what = "Pareto front" if snapshot.front_final else "Non-dominated networks so far"
    if snapshot.front:
        console.print(front_table(snapshot.front, title=f"{what} ({len(snapshot.front)} networks; * test accuracy at search fidelity)"))
    else:
        console.print(f"{what}: no trained network yet")
    _print_notes(console, snapshot.notes)
    for path in report.files:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    return 0


def _print_notes(console: Console, notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


# --- export ---------------------------------------------------------------------------------------


def _add_export(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("export", help="export a finalist's trained network as ONNX or a torch state dict")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("--rank", type=int, default=1, help="rank on the front (pareto.csv; default 1)")
    p.add_argument("--format", required=True, choices=FORMATS, help="torch: model.pt + spec.json + meta.json; onnx: model.onnx checked by onnxruntime")
    p.add_argument("--out", help="directory for the files (default RUN_DIR/export/rank<N>)")
    p.set_defaults(func=command_export)


def command_export(args: argparse.Namespace, console: Console) -> int:
    """Export one finalist and say where it went."""
    run_dir = Path(args.run_dir)
    config = load_run_config(run_dir)
    source = finalist_dir(run_dir, args.rank)
    data = load_dataset(config.dataset, config.data_dir)
    meta = Meta(data.input_shape, data.num_classes)
    out = Path(args.out) if args.out else run_dir / "export" / f"rank{args.rank}"
    if args.format == "onnx":
        exported = export_onnx(source, out, meta, data.x_test[:ONNX_SAMPLES])
        console.print(f"onnxruntime matches torch on {min(ONNX_SAMPLES, len(data.x_test))} test images: max abs diff {exported.max_abs_diff:.2e}")
    else:
        exported = export_torch(source, out, meta)
    names = ", ".join(p.name for p in exported.files)
    console.print(f"exported rank {args.rank} ({args.format}) to {escape(str(out))}: {names}", highlight=False)
    if args.format == "torch":
        console.print(f"load it with: ge_nas.load_model({str(out)!r})", highlight=False)
    return 0


# --- train ----------------------------------------------------------------------------------------


def _add_train(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("train", help="fully train one network on train+validation and score it on the test set")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--phenotype", metavar="TEXT", help='a network in the architecture language, e.g. "conv(16,3) relu pool | opt=adam"')
    source.add_argument("--genome", metavar="CODONS", help="comma-separated codons, mapped with --grammar")
    source.add_argument("--from", dest="from_run", metavar="RUN_DIR", help="a run directory; with --rank: that front member")
    p.add_argument("--grammar", help="BNF file for --genome")
    p.add_argument("--rank", type=int, help="rank on the run's front (pareto.csv), with --from")
    p.add_argument("--dataset", help=f"data set: {', '.join(DATASET_NAMES)} or npz:PATH (default digits, or the run's)")
    p.add_argument("--data-dir", help="directory holding the data set's files")
    p.add_argument("--epochs", type=int, help=f"training epochs (default {DEFAULT_TRAIN_EPOCHS}, or the run's --final-epochs with --from)")
    p.add_argument("--seed", type=int, help="training seed (default 0, or the seed the run used for this network)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto, or the run's)")
    p.add_argument("--bf16", action="store_true", default=None, help="train under bfloat16 autocast (default off, or the run's)")
    p.add_argument("--out", help="directory for model.pt, spec.json, metrics.json, meta.json (default runs/train-<time>)")
    p.set_defaults(func=command_train)


def command_train(args: argparse.Namespace, console: Console) -> int:
    """Train one network fully, print its scores and where it was saved."""
    phenotype, run = _phenotype(args)
    spec = parse_arch(phenotype)
    task = _train_task(args, spec, run)
    resolve_device(task.device)  # an unknown device or a missing GPU stops here, before the data loads
    splits = load_splits(task.dataset, task.data_dir, task.val_fraction, task.split_seed, None)
    size = measure(spec, splits.input_shape, splits.num_classes)  # a shape that cannot work fails here, before training
    console.print(f"training {escape(spec.canonical())}: {size.params:,} params, {task.epochs} epochs on {len(splits.y_train) + len(splits.y_val)} samples", highlight=False)
    metrics = evaluate(task).metrics
    if not metrics.ok:
        console.print(f"[red]training {metrics.status}:[/] {escape(metrics.error)}", highlight=False)
        return 1
    _print_trained(console, metrics, task)
    return 0


def _phenotype(args: argparse.Namespace) -> tuple[str, RunConfig | None]:
    if args.genome is not None:
        return _phenotype_of_genome(args.genome, args.grammar), None
    if args.grammar is not None:
        raise ConfigError("--grammar goes with --genome")
    if args.from_run is not None:
        return _phenotype_of_rank(Path(args.from_run), args.rank)
    if args.rank is not None:
        raise ConfigError("--rank goes with --from RUN_DIR")
    return args.phenotype, None


def _phenotype_of_genome(text: str, grammar_path: str | None) -> str:
    from ge_nas.grammar import load_grammar
    from ge_nas.mapper import map_genome

    if grammar_path is None:
        raise ConfigError("--genome needs --grammar PATH (the BNF file that maps it)")
    genome = parse_genome(text)
    defaults = _defaults()
    derivation = map_genome(load_grammar(grammar_path), genome, max_wraps=defaults.max_wraps, max_depth=defaults.max_depth)
    if derivation.phenotype is None:
        raise ConfigError(f"genome does not map to a network with {grammar_path}: {derivation.reason}")
    return derivation.phenotype


def parse_genome(text: str) -> list[int]:
    """Return the codons of '1,2,3' (commas and/or spaces)."""
    parts = text.replace(",", " ").split()
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--genome {text!r}: expected non-negative integers separated by commas, e.g. 12,7,301")
    return [int(p) for p in parts]


def _phenotype_of_rank(run_dir: Path, rank: int | None) -> tuple[str, RunConfig]:
    if rank is None:
        raise ConfigError("--from needs --rank N (a rank of the run's pareto.csv)")
    config = load_run_config(run_dir)
    return front_row(run_dir, rank)["phenotype"], config


def _train_task(args: argparse.Namespace, spec: ArchSpec, run: RunConfig | None) -> EvalTask:
    base = run or _defaults()
    dataset, data_dir = (args.dataset, args.data_dir) if args.dataset else (base.dataset, args.data_dir or base.data_dir)
    seed = args.seed if args.seed is not None else (derive_seed(run.seed, spec.hash()) if run else 0)
    epochs = args.epochs if args.epochs is not None else (run.final_epochs if run else DEFAULT_TRAIN_EPOCHS)
    out = Path(args.out) if args.out else Path("runs") / f"train-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return EvalTask(
        spec.canonical(), seed, dataset=dataset, data_dir=data_dir, val_fraction=base.val_fraction, split_seed=base.split_seed, train_subset=None, epochs=epochs,
        threads=os.cpu_count() or 1, final=True, save_dir=str(out), device=args.device or base.device,
        bf16=base.bf16 if args.bf16 is None else args.bf16,
    )


def _defaults() -> Any:
    """Return RunConfig's defaults as attributes (a run needs a grammar; training one network does not)."""
    return argparse.Namespace(**{f.name: f.default for f in fields(RunConfig) if f.default is not MISSING})


def _print_trained(console: Console, m: Metrics, task: EvalTask) -> None:
    console.print(f"test accuracy {m.test_accuracy:.4f}", highlight=False)
    console.print(f"params {m.params:,}  FLOPs {m.flops:,}  trained in {m.train_seconds:.1f} s ({m.epochs} epochs, seed {task.seed})", highlight=False)
    console.print(f"saved to {escape(str(task.save_dir))}: model.pt, spec.json, metrics.json, meta.json", highlight=False)
    console.print(f"load it with: ge_nas.load_model({str(task.save_dir)!r})", highlight=False)


# --- show -----------------------------------------------------------------------------------------


def _add_show(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("show", help="summarise a run, finished or still going (read-only)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `ge_nas run`")
    p.set_defaults(func=command_show)


def command_show(args: argparse.Namespace, console: Console) -> int:
    """Print a run's configuration, progress and best network so far."""
    run_dir = Path(args.run_dir)
    config = load_run_config(run_dir)
    notes: list[str] = []
    generations = read_generations(run_dir, notes)
    finished = (run_dir / runs.PARETO).is_file()
    console.print(f"[bold]{escape(str(run_dir))}[/]: {'finished' if finished else 'running, or stopped before the end'}", highlight=False)
    for label, value in _config_lines(config) + [("progress", progress_text(generations, config.generations))]:
        console.print(f"  {label:<12} {escape(value)}", highlight=False)
    _show_archive(console, run_dir, fidelity_key(config), notes)
    _print_notes(console, notes)
    return 0


def _config_lines(c: RunConfig) -> list[tuple[str, str]]:
    return [
        ("grammar", c.grammar),
        ("data set", c.dataset + (f" ({c.data_dir})" if c.data_dir else "")),
        ("objectives", ", ".join(c.objectives)),
        ("budget", f"population {c.population}, generations {c.generations}, epochs {c.epochs}; finalists {c.finalists}, final epochs {c.final_epochs}"),
        ("seed", str(c.seed)),
    ]


def _show_archive(console: Console, run_dir: Path, fidelity: str, notes: list[str]) -> None:
    path = run_dir / runs.ARCHIVE
    if not path.is_file():
        notes.append(f"{runs.ARCHIVE} is missing: no evaluation has been recorded")
        return
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)) as db:
            counts, finals, best = _status_counts(db, fidelity), _final_count(db, fidelity), _best(db, fidelity)
    except sqlite3.Error as exc:
        notes.append(f"{runs.ARCHIVE} is unreadable ({exc})")
        return
    console.print(f"  {'evaluations':<12} {status_text(counts)}; finalists retrained: {finals}", highlight=False)
    console.print(f"  {'best so far':<12} {escape(_best_line(best))}", highlight=False)


def _status_counts(db: sqlite3.Connection, fidelity: str) -> dict[str, int]:
    rows = db.execute("SELECT status, COUNT(*) FROM evaluations WHERE fidelity = ? GROUP BY status", (fidelity,))
    return {str(status): int(n) for status, n in rows}


def _final_count(db: sqlite3.Connection, fidelity: str) -> int:
    row = db.execute("SELECT COUNT(*) FROM evaluations WHERE fidelity != ? AND fidelity LIKE '%|final=True'", (fidelity,)).fetchone()
    return int(row[0])


def _best(db: sqlite3.Connection, fidelity: str) -> tuple[str, Metrics] | None:
    rows = db.execute("SELECT phenotype, metrics FROM evaluations WHERE fidelity = ? AND status = 'ok'", (fidelity,))
    scored = [(phenotype, Metrics.from_json(text)) for phenotype, text in rows]
    return max(scored, key=lambda s: (s[1].val_accuracy, -(s[1].params or 0)), default=None)


def _best_line(best: tuple[str, Metrics] | None) -> str:
    if best is None:
        return "no trained network yet"
    phenotype, m = best
    return f"val {m.val_accuracy:.4f}, {m.params or 0:,} params, {m.flops or 0:,} FLOPs: {phenotype}"
