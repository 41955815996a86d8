"""The command line: `python -m ge_nas COMMAND ...`; main() is the entry point."""

from ge_nas.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
