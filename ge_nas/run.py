"""The `run` command: options -> configuration -> search -> finalists -> run directory."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ge_nas import runs
from ge_nas.archive import Archive, Record
from ge_nas.config import EXECUTORS, OBJECTIVES, RunConfig, default_out, load_toml, make_config
from ge_nas.arch import ArchSpec
from ge_nas.errors import ArchError, ConfigError
from ge_nas.data import DATASET_NAMES
from ge_nas.evaluate import load_splits
from ge_nas.executors import Executor, make_executor
from ge_nas.grammar import Grammar, load_grammar
from ge_nas.report import front_table, generation_line
from ge_nas.evaluator import Evaluation, Evaluator, fidelity_key, task_for
from ge_nas.fidelity import rung_epochs
from ge_nas.search import SearchState, checkpoint_of, pareto_front, run_search
from ge_nas.train import resolve_device


# flag -> (RunConfig field, type, help); defaults live in RunConfig only.
RUN_OPTIONS: list[tuple[str, str, Any, str]] = [
    ("--dataset", "dataset", str, f"data set: {', '.join(DATASET_NAMES)} or npz:PATH (default digits, embedded)"),
    ("--data-dir", "data_dir", str, "directory holding the data set's files"),
    ("--out", "out", str, "run directory (default runs/<grammar>-<dataset>-<time>)"),
    ("--seed", "seed", int, "run seed: initialisation, variation and each evaluation's seed (default 0)"),
    ("--population", "population", int, "individuals per generation (default 12)"),
    ("--generations", "generations", int, "generations after the initial one (default 6)"),
    ("--epochs", "epochs", int, "training epochs per evaluation during the search (default 8)"),
    ("--fidelity", "fidelity", str, "fixed, or sh: successive halving, the best 1/eta of each generation train eta times longer, per rung"),
    ("--sh-eta", "sh_eta", int, "successive halving: keep 1/eta per rung, eta times the epochs (default 3)"),
    ("--sh-rungs", "sh_rungs", int, "successive halving: number of rungs, epochs x eta^rung (default 3)"),
    ("--train-subset", "train_subset", float, "train on this fraction (<=1) or count (>1) of the training split"),
    ("--val-fraction", "val_fraction", float, "fraction of the training data held out for validation (default 0.2)"),
    ("--eval-timeout", "eval_timeout_s", float, "seconds one evaluation may train before it is stopped (status timeout)"),
    ("--max-params", "max_params", int, "reject networks with more parameters before training"),
    ("--max-flops", "max_flops", int, "reject networks with more FLOPs per sample before training"),
    ("--noise-sigma", "noise_sigma", float, "robustness objective: Gaussian input noise, in normalized units (default 0.1)"),
    ("--device", "device", str, "auto, cpu, cuda or cuda:N (default auto: a GPU when torch sees one, else the CPU)"),
    ("--bf16", "bf16", bool, "train under bfloat16 autocast (fast on GPUs and CPUs with native bf16, slow on others)"),
    ("--no-test-in-search", "test_in_search", bool, "score the test set only for finalists, not at every search evaluation (saves time)"),
    ("--final-epochs", "final_epochs", int, "epochs for retraining the finalists on train+validation (default 15)"),
    ("--finalists", "finalists", int, "front members retrained at the end, best first (default 3; 0: none)"),
    ("--workers", "workers", int, "worker processes (default: one per core)"),
    ("--executor", "executor", str, f"{', '.join(EXECUTORS)} (default auto: processes when workers > 1)"),
    ("--scheduler", "scheduler", str, "Dask scheduler address tcp://HOST:PORT for --executor dask (default: a local cluster)"),
    ("--archive", "archive", str, "archive file shared with other runs: no phenotype is trained twice across them"),
    ("--init", "init", str, "initialiser: sensible (ramped half-and-half), random or pi_grow (default sensible)"),
    ("--max-depth", "max_depth", int, "maximum derivation-tree depth; deeper is invalid (default 40)"),
    ("--max-wraps", "max_wraps", int, "times the mapper may wrap around the genome (default 0)"),
    ("--init-max-depth", "init_max_depth", int, "deepest initial derivation tree (default: the start rule's minimum depth + 6)"),
    ("--split-seed", "split_seed", int, "seed of the validation split, fixed so runs compare (default 0)"),
    ("--codon-size", "codon_size", int, "codons are drawn from 0..codon-size-1 (default 100000)"),
    ("--tournament-size", "tournament_size", int, "tournament size for single-objective selection (default 2)"),
    ("--elites", "elites", int, "best individuals kept unchanged in single-objective search (default 1)"),
    ("--mutation-prob", "mutation_prob", float, "per-codon mutation probability (default 1/codons used)"),
    ("--crossover-prob", "crossover_prob", float, "probability that a pair of parents is crossed (default 0.9)"),
]


def add_run_command(commands: Any) -> None:
    """Add `run` to the sub-parsers."""
    p: argparse.ArgumentParser = commands.add_parser("run", help="search a grammar's space for accurate, small networks")
    p.add_argument("--grammar", help="BNF search space, e.g. grammars/cnn_small.bnf (required unless in --config)")
    p.add_argument("--config", help="TOML file of run options (flags override it)")
    p.add_argument("--objectives", help=f"comma list from {', '.join(OBJECTIVES)} (default val_accuracy,params)")
    p.add_argument("--objective", choices=["accuracy"], help="shortcut: single-objective search on validation accuracy")
    for flag, _, kind, text in RUN_OPTIONS:
        if kind is bool:  # a switch (--no-X sets False): absent leaves the config file's value
            p.add_argument(flag, action="store_const", const=not flag.startswith("--no-"), help=text, dest=flag[2:].replace("-", "_") + "_opt")
        else:
            p.add_argument(flag, type=kind, help=text, dest=flag[2:].replace("-", "_") + "_opt", metavar=flag[2:].replace("-", "_").upper())
    p.set_defaults(func=command_run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Return the run configuration: TOML file, then flags."""
    base = load_toml(args.config) if args.config else {}
    overrides: dict[str, Any] = {name: getattr(args, flag[2:].replace("-", "_") + "_opt") for flag, name, _, _ in RUN_OPTIONS}
    overrides["grammar"] = args.grammar
    if args.objectives:
        overrides["objectives"] = tuple(s.strip() for s in args.objectives.split(",") if s.strip())
    if args.objective == "accuracy":
        overrides["objectives"] = ("val_accuracy",)
    overrides["command"] = args.command_line
    return make_config(base, overrides)


def command_run(args: argparse.Namespace, console: Console) -> int:
    """Run a search and print its front."""
    config = config_from_args(args)
    grammar = load_grammar(config.grammar)
    _check_data(config)
    out = Path(config.out) if config.out else default_out(config, dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    with runs.run_lock(runs.make_dir(out)):
        runs.create_run_dir(out, config)
        return _execute(config, grammar, out, None, console, quiet=args.quiet)


def add_resume_command(commands: Any) -> None:
    """Add `resume` to the sub-parsers."""
    p: argparse.ArgumentParser = commands.add_parser("resume", help="continue a stopped or killed run where it left off")
    p.add_argument("run_dir", help="the run directory (holds config.toml)")
    p.add_argument("--generations", type=int, help="run to this many generations (extend a finished run)")
    p.add_argument("--workers", type=int, help="worker processes (results may differ in the last digits with other thread counts)")
    p.add_argument("--executor", help="serial, processes or dask")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT")
    p.set_defaults(func=command_resume)


def command_resume(args: argparse.Namespace, console: Console) -> int:
    """Continue a run from its last checkpoint; finished evaluations come from the archive."""
    out = Path(args.run_dir)
    if not (out / runs.CONFIG).is_file():
        raise ConfigError(f"{out}: not a run directory (no {runs.CONFIG}); give a directory written by `ge_nas run`")
    with runs.run_lock(out):
        overrides = {k: getattr(args, k) for k in ("generations", "workers", "executor", "scheduler")}
        config = make_config(load_toml(out / runs.CONFIG), overrides)
        runs.write_atomic(out / runs.CONFIG, config.to_toml())
        grammar = load_grammar(out / runs.GRAMMAR if (out / runs.GRAMMAR).exists() else config.grammar)
        _check_data(config)
        checkpoint = runs.read_checkpoint(out)
        runs.trim_generations(out, checkpoint.generation if checkpoint else -1)
        if not args.quiet:
            done = f"generation {checkpoint.generation}" if checkpoint else "the start"
            console.print(f"resuming {out} from {done} of {config.generations}")
        return _execute(config, grammar, out, checkpoint, console, quiet=args.quiet)


def _check_data(config: RunConfig) -> None:
    """Load the data and check the device once here, so a missing data set or GPU stops the run before anything is written."""
    load_splits(config.dataset, config.data_dir, config.val_fraction, config.split_seed, config.train_subset)
    resolve_device(config.device)


def _execute(config: RunConfig, grammar: Grammar, out: Path, checkpoint: runs.Checkpoint | None, console: Console, *, quiet: bool) -> int:
    for warning in grammar.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if not quiet:
        console.print(f"run directory: {out}")
    with Archive(Path(config.archive) if config.archive else out / runs.ARCHIVE) as archive:
        executor = make_executor(config.executor, config.resolved_workers(), scheduler=config.scheduler)
        try:
            rows = _search_and_finalise(grammar, config, out, archive, executor, console, checkpoint, quiet=quiet)
        finally:
            executor.close()
    console.print(front_table(rows, title=f"Pareto front ({len(rows)} networks; * test accuracy at search fidelity)"))
    console.print(f"results: {out / runs.PARETO}  best model: {out / 'best'}")
    return 0


def _search_and_finalise(
    grammar: Grammar, config: RunConfig, out: Path, archive: Archive, executor: Executor, console: Console,
    checkpoint: runs.Checkpoint | None, *, quiet: bool,
) -> list[dict[str, Any]]:
    with _progress(console, disable=quiet) as progress:
        gens = progress.add_task("generations", total=config.generations + 1, completed=checkpoint.generation + 1 if checkpoint else 0)
        evals = progress.add_task("evaluations", total=0)

        def on_start(n: int) -> None:
            progress.reset(evals, total=n)

        def on_result(e: Evaluation) -> None:
            progress.update(evals, advance=1, description=f"evaluations [dim]{(e.phenotype or '')[:40]}[/]")

        def on_generation(state: SearchState) -> None:
            _save_generation(out, state)
            progress.advance(gens)
            if not quiet:
                progress.console.print(generation_line(state.stats, config.generations), highlight=False)

        evaluator = Evaluator(grammar, config, archive, executor, on_result=on_result, on_start=on_start)
        population = run_search(grammar, config, evaluator, resume=checkpoint, on_generation=on_generation)
        front = pareto_front(population)
        progress.update(evals, description="finalists")
        on_start(min(config.finalists, len(front)))
        finals = _train_finalists(front, config, out, archive, executor, lambda: progress.advance(evals))
    rows = [runs.pareto_row(rank, e, finals.get(e.phenotype_hash), rung_epochs(config, e.rung)) for rank, e in enumerate(front, start=1)]
    runs.write_pareto(out, rows)
    if rows and (out / "front" / "1").exists():
        shutil.copytree(out / "front" / "1", out / "best", dirs_exist_ok=True)
    return rows


def _progress(console: Console, *, disable: bool) -> Progress:
    # On a terminal: live bars. Elsewhere (CI logs, files) rich draws no bars and
    # only the per-generation lines are printed.
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=disable or not console.is_terminal,
    )


def _save_generation(out: Path, state: SearchState) -> None:
    # The line first, then the checkpoint: a kill between the two leaves a line that resume trims.
    runs.append_line(out / runs.GENERATIONS, runs.jsonable(state.stats))
    runs.write_checkpoint(out, checkpoint_of(state))


def _train_finalists(front: list[Evaluation], config: RunConfig, out: Path, archive: Archive, executor: Executor, tick: Any) -> dict[str | None, Any]:
    finalists = front[: config.finalists]
    fidelity = fidelity_key(config, epochs=config.final_epochs, final=True)
    results = {}
    todo = []
    for rank, e in enumerate(finalists, start=1):
        done = archive.lookup(e.phenotype_hash or "", fidelity)
        if done is not None and _saved_phenotype(out / "front" / str(rank)) == e.phenotype:
            results[e.phenotype_hash] = done  # trained before the run was stopped
            tick()
        else:
            todo.append((rank, e))
    tasks = [
        task_for(config, e.phenotype or "", e.phenotype_hash or "", epochs=config.final_epochs, threads=executor.threads,
                 save_dir=str(out / "front" / str(rank)))
        for rank, e in todo
    ]
    for index, outcome in executor.run(tasks):
        e = todo[index][1]
        archive.record(Record(e.phenotype_hash or "", fidelity, e.phenotype or "", e.genome, outcome.metrics, outcome.worker, outcome.started, outcome.ended))
        results[e.phenotype_hash] = outcome.metrics
        tick()
    return results


def _saved_phenotype(directory: Path) -> str | None:
    """Return the canonical phenotype of the model saved in directory, if there is one."""
    try:
        spec = ArchSpec.from_json((directory / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ArchError):
        return None
    return spec.canonical() if (directory / "model.pt").exists() else None
