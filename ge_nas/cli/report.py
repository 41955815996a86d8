"""The commands that read a run directory: show (a summary) and report (plots and an HTML page).

python -m ge_nas show runs/RUN
python -m ge_nas report runs/RUN
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ge_nas import rundir
from ge_nas.config import RunConfig
from ge_nas.fidelity import fidelity_key
from ge_nas.report import (
    best_text,
    progress_text,
    read_evaluations,
    status_counts,
    status_text,
    write_report,
)
from ge_nas.tables import front_table, front_title


def add_show_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `show`."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `ge_nas run`")
    p.set_defaults(func=command_show)


def command_show(args: argparse.Namespace, console: Console) -> int:
    """Print a run's configuration, progress and best network so far."""
    run_dir = Path(args.run_dir)
    config = rundir.load_run_config(run_dir)
    notes: list[str] = []
    generations = rundir.read_generations(run_dir, notes)
    finished = (run_dir / rundir.PARETO).is_file()
    console.print(
        f"[bold]{escape(str(run_dir))}[/]: {'finished' if finished else 'running, or stopped before the end'}",
        highlight=False,
    )
    for label, value in _config_lines(config) + [
        ("progress", progress_text(generations, config.generations))
    ]:
        console.print(f"  {label:<12} {escape(value)}", highlight=False)
    _show_archive(console, run_dir, config, notes)
    _print_notes(console, notes)
    return 0


def _config_lines(c: RunConfig) -> list[tuple[str, str]]:
    return [
        ("grammar", c.grammar),
        ("data set", c.data_text()),
        (
            "objectives",
            ", ".join(c.objectives)
            + (f" (OoD images {c.ood}, score {c.ood_score})" if c.ood else ""),
        ),
        (
            "budget",
            f"population {c.population}, generations {c.generations}, epochs {c.epochs}; finalists {c.finalists}, final epochs {c.final_epochs}",
        ),
        ("seed", str(c.seed)),
    ]


def _show_archive(console: Console, run_dir: Path, config: RunConfig, notes: list[str]) -> None:
    records = read_evaluations(rundir.archive_path(run_dir, config), None, notes)
    search = [r for r in records if r.fidelity == fidelity_key(config)]
    finals = sum(
        1
        for r in records
        if r.fidelity == fidelity_key(config, epochs=config.final_epochs, final=True)
    )
    console.print(
        f"  {'evaluations':<12} {status_text(status_counts(search))}; finalists retrained: {finals}",
        highlight=False,
    )
    console.print(f"  {'best so far':<12} {escape(best_text(search))}", highlight=False)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `report`."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `ge_nas run`")
    p.set_defaults(func=command_report)


def command_report(args: argparse.Namespace, console: Console) -> int:
    """Print a run's front and write its plots and HTML report."""
    report = write_report(args.run_dir)
    snapshot = report.snapshot
    what = "Pareto front" if snapshot.front_final else "Non-dominated networks so far"
    if snapshot.front:
        console.print(front_table(snapshot.front, title=front_title(what, snapshot.front)))
    else:
        console.print(f"{what}: no trained network yet")
    _print_notes(console, snapshot.notes)
    for path in report.files:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    return 0


def _print_notes(console: Console, notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


PARSERS = {"show": add_show_arguments, "report": add_report_arguments}
