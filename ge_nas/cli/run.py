"""The `run` and `resume` commands: options -> configuration -> search -> finalists -> run directory."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ge_nas import rundir
from ge_nas.archive import Archive, check_archive, default_lease_s
from ge_nas.cli.options import OBJECTIVES_HELP, add_run_options, run_overrides
from ge_nas.config import RunConfig, default_out, field_default, load_toml, make_config
from ge_nas.data import DATASET_NAMES, run_splits
from ge_nas.data.ood import check_ood
from ge_nas.errors import ConfigError
from ge_nas.executors import Executor, Observed, make_executor
from ge_nas.export import load_backbone
from ge_nas.feature_cache import CacheTally
from ge_nas.finalise import Steps, finalise
from ge_nas.grammar import Grammar, load_grammar, parse_grammar, read_grammar_text
from ge_nas.search import SearchState, checkpoint_of, pareto_front, run_search
from ge_nas.search.evaluator import Evaluation, Evaluator
from ge_nas.search.evolution import initial_population
from ge_nas.search.steady import run_steady
from ge_nas.tables import front_table, front_title, generation_line
from ge_nas.train import resolve_device, slow_bf16
from ge_nas.worker import Outcome, base_model

PRUNE_BASE = "base"  # a pruning run's copy of its base model (model.pt, spec.json, meta.json)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `run`."""
    p.add_argument(
        "--grammar",
        help="BNF search space, e.g. grammars/cnn_small.bnf (required unless in --config)",
    )
    p.add_argument("--config", help="TOML file of run options (flags override it)")
    p.add_argument(
        "--dataset",
        help=f"data set: {', '.join(DATASET_NAMES)} or npz:PATH (default {field_default('dataset')}, embedded)",
    )
    p.add_argument("--objectives", help=OBJECTIVES_HELP)
    p.add_argument(
        "--objective",
        choices=["accuracy", "loss"],
        help="shortcut: single-objective search on validation accuracy, or on validation loss",
    )
    add_run_options(p)
    p.set_defaults(func=command_run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Return the run configuration: TOML file, then flags."""
    base = load_toml(args.config) if args.config else {}
    overrides = run_overrides(args)
    overrides["grammar"] = args.grammar
    overrides["dataset"] = args.dataset
    if args.objectives:
        overrides["objectives"] = tuple(s.strip() for s in args.objectives.split(",") if s.strip())
    if args.objective:
        overrides["objectives"] = (
            ("val_accuracy",) if args.objective == "accuracy" else ("val_loss",)
        )
    overrides["command"] = args.command_line
    backbone = overrides.get("backbone")
    if backbone and not backbone.startswith("torchvision:"):  # resume may run from elsewhere
        overrides["backbone"] = str(Path(backbone).resolve())
    return make_config(base, overrides)


def command_run(args: argparse.Namespace, console: Console) -> int:
    """Run a search and print its front; every check that can fail runs before anything is written."""
    config = config_from_args(args)
    grammar = load_grammar(config.grammar)
    grammar_text = read_grammar_text(config.grammar)
    check_run(config, grammar)
    out = (
        Path(config.out)
        if config.out
        else default_out(config, dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    )
    return start_run(config, grammar, grammar_text, out, console, quiet=args.quiet)


def start_run(
    config: RunConfig,
    grammar: Grammar,
    grammar_text: str,
    out: Path,
    console: Console,
    *,
    quiet: bool,
    prepare: Callable[[Path], None] = lambda out: None,
) -> int:
    """Create the run directory out, call prepare(out) in it, search and finalise; return the exit code.

    The configuration and grammar must be checked (check_run); out must be new or empty.
    """
    rundir.check_new_run_dir(out)
    check_archive(rundir.archive_path(out, config))  # refuse a file that is not an archive at once
    with _executor(config, console, quiet) as executor, rundir.run_lock(rundir.make_dir(out)):
        rundir.create_run_dir(out, config, grammar_text)
        prepare(out)
        return _execute(config, grammar, out, None, executor, console, quiet=quiet)


def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `resume`."""
    p.add_argument("run_dir", help="the run directory (holds config.toml)")
    p.add_argument(
        "--generations", type=int, help="run to this many generations (extend a finished run)"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes (results may differ in the last digits with other thread counts)",
    )
    p.add_argument("--executor", help="serial, processes or dask")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT")
    p.set_defaults(func=command_resume)


PARSERS = {"run": add_run_arguments, "resume": add_resume_arguments}


def command_resume(args: argparse.Namespace, console: Console) -> int:
    """Continue a run from its last checkpoint; finished evaluations come from the archive."""
    out = Path(args.run_dir)
    if not (out / rundir.CONFIG).is_file():
        raise ConfigError(
            f"{out}: not a run directory (no {rundir.CONFIG}); give a directory written by `ge_nas run`"
        )
    with rundir.run_lock(out):
        overrides = {
            k: getattr(args, k) for k in ("generations", "workers", "executor", "scheduler")
        }
        config = _moved_base(make_config(load_toml(out / rundir.CONFIG), overrides), out)
        grammar = parse_grammar(rundir.checked_grammar_copy(out), str(out / rundir.GRAMMAR))
        checkpoint = rundir.read_checkpoint(out)
        # never write into a file ge_nas did not make
        check_archive(rundir.archive_path(out, config))
        check_run(config, grammar)
        if config.prune_base is not None:  # the base model must still be there, unchanged
            base_model(config.prune_base, config.prune_base_sha)
        with _executor(config, console, args.quiet) as executor:
            written_by = rundir.read_written_by(out)
            rundir.write_atomic(out / rundir.CONFIG, rundir.config_text(config, written_by))
            rundir.trim_generations(out, checkpoint.generation if checkpoint else -1)
            if not args.quiet:
                done = f"generation {checkpoint.generation}" if checkpoint else "the start"
                console.print(f"resuming {out} from {done} of {config.generations}")
            return _execute(config, grammar, out, checkpoint, executor, console, quiet=args.quiet)


def _moved_base(config: RunConfig, out: Path) -> RunConfig:
    """Return config with a pruning run's base model in out/base when the recorded path is gone (the run moved)."""
    copy = out / PRUNE_BASE
    if config.prune_base is None or Path(config.prune_base).is_dir() or not copy.is_dir():
        return config
    return dataclasses.replace(config, prune_base=str(copy.resolve()))


def check_run(config: RunConfig, grammar: Grammar) -> None:
    """Raise ConfigError for anything that would stop the run later: search space, workers, data, device,
    backbone."""
    if config.backbone is not None:
        load_backbone(config.backbone)
    initial_population(grammar, config, random.Random(config.seed))
    config.check_workers()
    splits = run_splits(config)  # the data set and its view: labels, shots per class
    check_ood(config, len(splits.y_val))  # the OoD images: found, held out, of a usable shape
    resolve_device(config.device)


@contextlib.contextmanager
def _executor(config: RunConfig, console: Console, quiet: bool) -> Iterator[Executor]:
    """Start the executor (an unreachable scheduler fails here) and close it on the way out.

    Unless quiet, it prints a line per feature-cache entry a worker makes or refuses, and a
    summary of the cache at the end.
    """
    tally = CacheTally()

    def report(outcome: Outcome) -> None:
        for line in tally.add(outcome.worker, outcome.cache) if outcome.cache else ():
            if not quiet:
                console.print(escape(line), highlight=False)

    executor = make_executor(
        config.executor, config.resolved_workers(), scheduler=config.scheduler,
        feature_cache_mb=config.feature_cache_mb,
    )  # fmt: skip
    try:
        yield Observed(executor, report)
    finally:
        executor.close()
        if not quiet and (summary := tally.summary()):
            console.print(escape(summary), highlight=False)


def _execute(
    config: RunConfig,
    grammar: Grammar,
    out: Path,
    checkpoint: rundir.Checkpoint | None,
    executor: Executor,
    console: Console,
    *,
    quiet: bool,
) -> int:
    warnings = list(grammar.warnings)
    if config.bf16 and (slow := slow_bf16(resolve_device(config.device))):
        warnings.append(slow)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if not quiet:
        console.print(f"run directory: {out}")
    lease_s = default_lease_s(config.eval_timeout_s)
    try:
        with Archive(rundir.archive_path(out, config), lease_s=lease_s) as archive:
            rows = _search_and_finalise(
                grammar, config, out, archive, executor, console, checkpoint, quiet=quiet
            )
    except KeyboardInterrupt:
        console.print(
            f"interrupted: every finished evaluation is in {rundir.archive_path(out, config)}; "
            f"continue with: python -m ge_nas resume {out}",
            highlight=False,
        )
        return 130
    _print_summary(console, config, out, rows)
    return 0


def _print_summary(
    console: Console, config: RunConfig, out: Path, rows: list[dict[str, Any]]
) -> None:
    what = "Best networks by validation accuracy" if config.single_objective else "Pareto front"
    console.print(front_table(rows, title=front_title(what, rows)))
    console.print(f"results: {out / rundir.PARETO}", highlight=False)
    if (out / "best").is_dir():
        console.print(f"best model: {out / 'best'}", highlight=False)
    elif rows:
        console.print(
            f"no model was retrained (--finalists {config.finalists}); train one with: "
            f"python -m ge_nas train --from {out} --rank 1",
            highlight=False,
        )


def _search_and_finalise(
    grammar: Grammar,
    config: RunConfig,
    out: Path,
    archive: Archive,
    executor: Executor,
    console: Console,
    checkpoint: rundir.Checkpoint | None,
    *,
    quiet: bool,
) -> list[dict[str, Any]]:
    with _progress(console, disable=quiet) as progress:
        # Generation 0 is the initial population, as in the lines printed below: the bar counts 1..N.
        gens = progress.add_task(
            "generations",
            total=config.generations,
            completed=checkpoint.generation if checkpoint else 0,
        )
        evals = progress.add_task("evaluations", total=0)

        def on_start(n: int) -> None:
            progress.reset(evals, total=n)

        def on_result(e: Evaluation) -> None:
            progress.update(
                evals, advance=1, description=f"evaluations [dim]{(e.phenotype or '')[:40]}[/]"
            )

        def on_generation(state: SearchState) -> None:
            _save_generation(out, state)
            if state.generation > 0:
                progress.advance(gens)
            if not quiet:
                progress.console.print(
                    generation_line(rundir.jsonable(state.stats), config.generations),
                    highlight=False,
                )

        evaluator = Evaluator(
            grammar, config, archive, executor, on_result=on_result, on_start=on_start
        )
        search = run_steady if config.mode == "steady" else run_search
        population = search(
            grammar, config, evaluator, resume=checkpoint, on_generation=on_generation
        )
        front = pareto_front(population)

        def on_stage(stage: str, n: int) -> None:
            progress.update(evals, description=stage)
            on_start(n)

        done = finalise(front, evaluator, out, Steps(on_stage, lambda: progress.advance(evals)))
    for moved in done.set_aside:
        console.print(
            f"{escape(str(moved))}: set aside, its network is no longer at rank "
            f"{moved.name.split('.')[0]} of the front",
            highlight=False,
        )
    return done.rows


def _progress(console: Console, *, disable: bool) -> Progress:
    # On a terminal: live bars. Elsewhere (CI logs, files) rich draws no bars and
    # only the per-generation lines are printed.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable or not console.is_terminal,
    )


def _save_generation(out: Path, state: SearchState) -> None:
    # The line first, then the checkpoint: a kill between the two leaves a line that resume trims.
    rundir.append_line(out / rundir.GENERATIONS, rundir.jsonable(state.stats))
    rundir.write_checkpoint(out, checkpoint_of(state))
