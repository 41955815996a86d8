"""The command line's front door: the command table, the parser, main(); owns the one rich Console.

    python -m ge_nas run --grammar grammars/cnn_small.bnf

A command's module is imported only when that command runs (or when every
parser is asked for), so `--help` and the grammar commands start without
loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ge_nas.errors import GeNasError, SearchError

PIPE_WIDTH = 200  # tables written to a file or pipe get this many columns

# command -> (module that adds its arguments in PARSERS[command], one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ge_nas.cli.run", "search a grammar's space for accurate, small networks"),
    "resume": ("ge_nas.cli.run", "continue a stopped or killed run where it left off"),
    "show": ("ge_nas.cli.report", "summarise a run, finished or still going (read-only)"),
    "report": (
        "ge_nas.cli.report",
        "write pareto.png, history.png and report.html into a run directory",
    ),
    "export": ("ge_nas.cli.models", "export a trained network as ONNX or a torch state dict"),
    "train": (
        "ge_nas.cli.models",
        "fully train one network on train+validation and score it on the test set",
    ),
    "ensemble": (
        "ge_nas.cli.ensemble",
        "combine a run's trained networks into one voting model; compare it with its best member",
    ),
    "prune": (
        "ge_nas.cli.prune",
        "evolve masks that remove units of a trained network: smaller networks, trained weights",
    ),
    "grammar": ("ge_nas.cli.grammar", "check a BNF search space, sample it, map genomes with it"),
    "backbone": (
        "ge_nas.cli.backbone",
        "list a trained network's blocks, for transfer learning with --backbone",
    ),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Return the parser of every ge_nas command, or, given argv, of the command argv names."""
    parser = argparse.ArgumentParser(
        prog="ge_nas",
        description="Grammatical-evolution neural architecture search: accurate and small networks from a BNF search space.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _add_noise_flags(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else next((a for a in argv if a in COMMANDS), "")
    for name, (module, text) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        if chosen is None or chosen == name:
            importlib.import_module(module).PARSERS[name](sub)
        _add_noise_flags(
            sub, default=argparse.SUPPRESS
        )  # so `ge_nas run -q` works as well as `ge_nas -q run`
    return parser


def _version() -> str:
    from ge_nas import __version__

    return __version__


def _add_noise_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log more detail"
    )
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print only errors and the final result",
    )


def _console(*, stderr: bool) -> Console:
    """Return the Console; to a file or pipe it writes whole lines (no wrapping at 80 columns)."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, soft_wrap=True, width=max(console.width, PIPE_WIDTH))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    args.command_line = "python -m ge_nas " + shlex.join(argv)
    console = _console(stderr=getattr(args, "stdout_is_data", False))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    try:
        return int(args.func(args, console))
    except SearchError as exc:  # the input was fine, the search space has nothing to search
        _print_error(exc)
        return 1
    except GeNasError as exc:
        _print_error(exc)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "interrupted: every finished evaluation is in the run's archive.sqlite"
        )
        return 130


def _print_error(exc: GeNasError) -> None:
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(str(exc))}", highlight=False
    )
