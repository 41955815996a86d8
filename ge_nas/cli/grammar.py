"""The `grammar check | sample | map` commands: look at a search space before searching it.

python -m ge_nas grammar check grammars/cnn_small.bnf --arch --input-shape 1,28,28
python -m ge_nas grammar sample grammars/cnn_small.bnf -n 5 --seed 1
echo '[[3, 1, 4, 1, 5]]' | python -m ge_nas grammar map grammars/cnn_small.bnf
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from ge_nas.cli.options import add_search_space_options
from ge_nas.errors import ArchError, ConfigError, GeNasError
from ge_nas.grammar import (
    Derivation,
    Grammar,
    check_grammar,
    initial_genomes,
    load_grammar,
    map_genome,
    read_grammar_text,
)

Handler = Callable[[argparse.Namespace, Console], int]


def add_grammar_arguments(grammar: argparse.ArgumentParser) -> None:
    """Add `grammar check`, `grammar sample` and `grammar map`."""
    commands = grammar.add_subparsers(dest="grammar_command", metavar="SUBCOMMAND", required=True)
    _add_check(commands)
    _add_sample(commands)
    _add_map(commands)


PARSERS = {"grammar": add_grammar_arguments}


def _add_check(commands: Any) -> None:
    p = commands.add_parser(
        "check", help="report errors and warnings; with --arch, how many samples build"
    )
    p.add_argument("path", metavar="PATH", help="a .bnf grammar file")
    p.add_argument(
        "--arch",
        action="store_true",
        help="also sample phenotypes and parse and build them as networks",
    )
    p.add_argument(
        "--input-shape", type=_shape, default=(1, 8, 8), metavar="C,H,W", help="default: 1,8,8"
    )
    p.add_argument(
        "--classes", type=int, default=10, metavar="N", help="number of classes (default: 10)"
    )
    p.add_argument(
        "-n",
        "--samples",
        type=int,
        default=300,
        metavar="N",
        help="samples for --arch (default: 300)",
    )
    add_search_space_options(p)
    p.set_defaults(func=_guarded(command_check))


def _add_sample(commands: Any) -> None:
    p = commands.add_parser(
        "sample",
        help="print random valid phenotypes, one per line, as a run's initialiser makes them",
    )
    p.add_argument("path", metavar="PATH", help="a .bnf grammar file")
    p.add_argument(
        "-n", "--samples", type=int, default=5, metavar="N", help="how many (default: 5)"
    )
    add_search_space_options(p)
    p.set_defaults(func=_guarded(command_sample), stdout_is_data=True)


def _add_map(commands: Any) -> None:
    p = commands.add_parser(
        "map", help="map a JSON list of genomes on stdin to a JSON list of phenotypes on stdout"
    )
    p.add_argument("path", metavar="PATH", help="a .bnf grammar file")
    add_search_space_options(p)
    p.set_defaults(func=_guarded(command_map), stdout_is_data=True)


def _shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 1,28,28, got {text!r}") from None
    if min(c, h, w) < 1:
        raise argparse.ArgumentTypeError(f"every size must be positive, got {text!r}")
    return c, h, w


def _guarded(handler: Handler) -> Handler:
    """Turn a GeNasError into one message on the console and exit code 2."""

    def run(args: argparse.Namespace, console: Console) -> int:
        try:
            return handler(args, console)
        except GeNasError as exc:
            _say(console, f"error: {exc}")
            return 2

    return run


def _say(console: Console, text: str) -> None:
    """Print plain text: no markup, no highlighting, no wrapping (messages are one line each)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


# --- check ----------------------------------------------------------------------------------------


def command_check(args: argparse.Namespace, console: Console) -> int:
    """Print a grammar's errors and warnings; with --arch, sample it and build the samples."""
    report = check_grammar(read_grammar_text(args.path), args.path)
    for message in report.errors:
        _say(console, f"error: {message}")
    for message in report.warnings:
        _say(console, f"warning: {message}")
    if report.grammar is None:
        _say(console, f"{args.path}: {len(report.errors)} error(s); the grammar cannot be used")
        return 2
    _say(console, _summary(report.grammar))
    if args.arch:
        _print_arch_check(_arch_check(report.grammar, args), args, console)
    return 0


def _summary(grammar: Grammar) -> str:
    recursive = sum(grammar.codes.recursive)
    return (
        f"{grammar.source}: ok: {len(grammar.rules)} rules, start <{grammar.start}>, least tree depth "
        f"{grammar.min_depth(grammar.start)}, {recursive} recursive rule(s), {len(grammar.warnings)} warning(s)"
    )


@dataclass
class _ArchCounts:
    """How many sampled genomes got how far, and why the others did not."""

    sampled: int = 0
    mapped: int = 0
    parsed: int = 0
    built: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def fail(self, stage: str, message: str) -> None:
        """Count one failure, grouped by its message with numbers blanked out."""
        first = message.splitlines()[0] if message else stage
        key = f"{stage}: {re.sub(r'[0-9]+', '#', first)}"
        self.failures[key] += 1
        self.examples.setdefault(key, first)


def _arch_check(grammar: Grammar, args: argparse.Namespace) -> _ArchCounts:
    from ge_nas.arch import parse_arch
    from ge_nas.network.build import build_model

    counts = _ArchCounts()
    for genome in _sample_genomes(grammar, args):
        counts.sampled += 1
        derivation = _map(grammar, genome, args)
        if derivation.phenotype is None:
            counts.fail("map", derivation.reason)
            continue
        counts.mapped += 1
        try:
            spec = parse_arch(derivation.phenotype)
        except ArchError as exc:
            counts.fail("parse", str(exc))
            continue
        counts.parsed += 1
        try:
            _build_on_meta(build_model, spec, args.input_shape, args.classes)
        except ArchError as exc:
            counts.fail("build", str(exc))
            continue
        counts.built += 1
    return counts


def _build_on_meta(
    build_model: Callable[..., Any], spec: Any, shape: tuple[int, int, int], classes: int
) -> None:
    """Build without allocating weights: shapes are checked, nothing is trained."""
    import torch

    with torch.device("meta"):
        build_model(spec, shape, classes)


def _sample_genomes(grammar: Grammar, args: argparse.Namespace) -> list[list[int]]:
    options = {
        "init": args.init,
        "codon_size": args.codon_size,
        "max_depth": args.max_depth,
        "init_max_depth": args.init_max_depth,
    }
    return initial_genomes(grammar, random.Random(args.seed), args.samples, **options)


def _map(grammar: Grammar, genome: list[int], args: argparse.Namespace) -> Derivation:
    return map_genome(grammar, genome, max_wraps=args.max_wraps, max_depth=args.max_depth)


def _print_arch_check(counts: _ArchCounts, args: argparse.Namespace, console: Console) -> None:
    shape = "x".join(map(str, args.input_shape))
    _say(
        console,
        f"{args.path}: sampled {counts.sampled} genomes with --init {args.init} (seed {args.seed}):",
    )
    rows = [
        ("mapped to a phenotype", counts.mapped, counts.sampled),
        ("parsed as an architecture", counts.parsed, counts.sampled),
        (f"built for input {shape}, {args.classes} classes", counts.built, counts.sampled),
    ]
    for label, count, total in rows:
        _say(console, f"  {label:<40} {_percent(count, total):>7}  ({count}/{total})")
    if counts.failures:
        _say(console, "most common failures:")
        for key, count in counts.failures.most_common(5):
            stage = key.split(":", 1)[0]
            _say(console, f"  {count:>5} x {stage}: {counts.examples[key]}")


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


# --- sample ---------------------------------------------------------------------------------------


def command_sample(args: argparse.Namespace, console: Console) -> int:
    """Print random valid phenotypes to stdout, one per line."""
    grammar = load_grammar(args.path)
    phenotypes = [
        d.phenotype
        for d in (_map(grammar, g, args) for g in _sample_genomes(grammar, args))
        if d.phenotype is not None
    ]
    separator = "\n\n" if any("\n" in p for p in phenotypes) else "\n"
    if phenotypes:
        sys.stdout.write(separator.join(phenotypes) + "\n")
    if len(phenotypes) < args.samples:
        _say(console, f"{args.path}: only {len(phenotypes)} of {args.samples} samples were valid")
    return 0


# --- map ------------------------------------------------------------------------------------------


def command_map(args: argparse.Namespace, console: Console) -> int:
    """Read a JSON list of genomes from stdin; write a JSON list of phenotypes (null: invalid) to stdout."""
    grammar = load_grammar(args.path)
    genomes = _read_genomes(sys.stdin.read())
    phenotypes = [_map(grammar, g, args).phenotype for g in genomes]
    sys.stdout.write(json.dumps(phenotypes) + "\n")
    return 0


def _read_genomes(text: str) -> list[list[int]]:
    """Parse stdin's JSON: a list of genomes, each a list of non-negative integers."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"stdin is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            "expected a list of genomes such as [[3, 1, 4], [1, 5]]"
        ) from None
    if not isinstance(data, list):
        raise ConfigError(
            f"stdin: expected a JSON list of genomes such as [[3, 1, 4]], got {type(data).__name__}"
        )
    for i, genome in enumerate(data):
        if not isinstance(genome, list) or not all(_is_codon(c) for c in genome):
            raise ConfigError(
                f"stdin: genome {i} must be a list of non-negative integers, got {_clip(genome)}"
            )
    return data


def _is_codon(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _clip(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
