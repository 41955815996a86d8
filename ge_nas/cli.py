"""The command line: argparse commands; owns the one rich Console.

    python -m ge_nas run --grammar grammars/cnn_small.bnf
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ge_nas.errors import GeNasError
from ge_nas.inspect_cli import add_inspect_commands
from ge_nas.run import add_resume_command, add_run_command



def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ge_nas command."""
    parser = argparse.ArgumentParser(
        prog="ge_nas",
        description="Grammatical-evolution neural architecture search: accurate and small networks from a BNF search space.",
    )
    _add_noise_flags(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_run_command(commands)
    add_resume_command(commands)
    add_inspect_commands(commands)
    try:
        from ge_nas.grammar_cli import add_grammar_commands
    except ImportError:  # pragma: no cover - only while the grammar commands are being written
        pass
    else:
        add_grammar_commands(commands)
    for sub in commands.choices.values():
        _add_noise_flags(sub, default=argparse.SUPPRESS)  # so `ge_nas run -q` works as well as `ge_nas -q run`
    return parser


def _add_noise_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", default=default, help="log more detail")
    noise.add_argument("-q", "--quiet", action="store_true", default=default, help="print only errors and the final result")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "python -m ge_nas " + shlex.join(argv)
    console = Console(stderr=getattr(args, "stdout_is_data", False))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    try:
        return int(args.func(args, console))
    except GeNasError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: every finished evaluation is in the run's archive.sqlite")
        return 130
