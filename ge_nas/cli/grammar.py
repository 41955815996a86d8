"""The `grammar check | sample | map` commands: look at a search space before searching it.

python -m ge_nas grammar check grammars/cnn_small.bnf
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
from decimal import Decimal
from typing import Any

from rich.console import Console

from ge_nas.arch import parse_arch
from ge_nas.cli.options import add_search_space_options
from ge_nas.errors import ArchError, ConfigError, GeNasError
from ge_nas.grammar import (
    Derivation,
    Grammar,
    check_grammar,
    count_derivations,
    explain_arch_error,
    load_grammar,
    read_grammar_text,
)
from ge_nas.grammar.representation import Representation, flatten
from ge_nas.grammar.sge import sge_from_json
from ge_nas.grammar.space import CAP

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
        "check",
        help="report errors, warnings and the search space's size; sample it and parse the samples",
    )
    p.add_argument("path", metavar="PATH", help="a .bnf grammar file")
    p.add_argument(
        "--arch",
        action="store_true",
        help="also build the sampled networks (loads torch; no weights are allocated)",
    )
    p.add_argument(
        "--input-shape",
        type=input_shape_arg,
        default=(1, 8, 8),
        metavar="C,H,W",
        help="default: 1,8,8",
    )
    p.add_argument(
        "--classes", type=int, default=10, metavar="N", help="number of classes (default: 10)"
    )
    p.add_argument(
        "--backbone",
        metavar="MODEL_DIR",
        help="with --arch: the model directory backbone(keep=K, freeze=F) layers take blocks from",
    )
    p.add_argument(
        "-n",
        "--samples",
        type=int,
        default=300,
        metavar="N",
        help="genomes to sample (default: 300)",
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


def input_shape_arg(text: str) -> tuple[int, int, int]:
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
    """Print a grammar's errors, warnings and size; sample it and parse (with --arch, build) the samples.

    Returns 2 when the grammar cannot be used, 1 when no sample is a valid network, else 0.
    """
    report = check_grammar(read_grammar_text(args.path), args.path)
    for message in report.errors:
        _say(console, f"error: {message}")
    for message in report.warnings:
        _say(console, f"warning: {message}")
    if report.grammar is None:
        _say(console, f"{args.path}: {len(report.errors)} error(s); the grammar cannot be used")
        return 2
    _say(console, _summary(report.grammar))
    _say(console, _size(report.grammar, args.max_depth))
    counts = _sample_check(report.grammar, args)
    _print_sample_check(counts, args, console)
    if counts.valid(args.arch):
        return 0
    _say(
        console, f"{args.path}: no sampled phenotype is a valid network; fix the lines named above"
    )
    return 1


def _summary(grammar: Grammar) -> str:
    codes = grammar.codes
    recursive = len({row for row, rec in zip(codes.rows, codes.recursive) if rec})
    rules = f"{len(codes.row_names)} rules"
    if grammar.origins:
        rules += f" ({len(grammar.rules)} once calls of rules with parameters are expanded)"
    return (
        f"{grammar.source}: ok: {rules}, start <{grammar.start}>, least tree depth "
        f"{grammar.min_depth(grammar.start)}, {recursive} recursive rule(s), {len(grammar.warnings)} warning(s)"
    )


def _size(grammar: Grammar, max_depth: int) -> str:
    count = _count_text(count_derivations(grammar, max_depth))
    return (
        f"{grammar.source}: search space: {count} derivation trees up to --max-depth {max_depth} "
        "(no more distinct phenotypes than that)"
    )


def _count_text(n: int) -> str:
    """Return a count exactly up to a million, else as '~1.2e14' (and 'more than 1e1000' at CAP)."""
    if n >= CAP:
        return f"more than 1e{len(str(CAP)) - 1}"
    if n < 10**6:
        return f"{n:,}"
    mantissa, exponent = f"{Decimal(n):.1e}".split("e")
    return f"~{mantissa}e{int(exponent)}"


@dataclass
class _SampleCounts:
    """How many sampled genomes got how far, the sizes of those built, and why the others failed."""

    sampled: int = 0
    mapped: int = 0
    parsed: int = 0
    built: int = 0
    params: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def fail(self, stage: str, reason: str) -> None:
        """Count one failure, grouped by stage and reason with phenotype positions blanked out."""
        key = f"{stage}: {re.sub(r'phenotype [0-9]+:[0-9]+', 'phenotype', reason)}"
        self.failures[key] += 1
        self.examples.setdefault(key, f"{stage}: {reason}")

    def valid(self, built: bool) -> int:
        """Return how many samples are valid networks: parsed, or built when building."""
        return self.built if built else self.parsed


Build = Callable[[Any], int]  # ArchSpec -> parameter count; raises ArchError


def _sample_check(grammar: Grammar, args: argparse.Namespace) -> _SampleCounts:
    build = _meta_builder(args.input_shape, args.classes, args.backbone) if args.arch else None
    counts = _SampleCounts()
    for genome in _sample_genomes(grammar, args):
        counts.sampled += 1
        _check_sample(grammar, _map(grammar, genome, args), build, counts)
    return counts


def _check_sample(
    grammar: Grammar, derivation: Derivation, build: Build | None, counts: _SampleCounts
) -> None:
    """Parse and (given build) build one mapped sample, counting how far it got."""
    phenotype = derivation.phenotype
    if phenotype is None:
        counts.fail("map", derivation.reason)
        return
    counts.mapped += 1
    stage = "parse"
    try:
        spec = parse_arch(phenotype)
        counts.parsed += 1
        stage = "build"
        if build is not None:
            counts.params.append(build(spec))
            counts.built += 1
    except ArchError as exc:
        counts.fail(stage, explain_arch_error(grammar, exc, phenotype))


def _meta_builder(shape: tuple[int, int, int], classes: int, backbone_dir: str | None) -> Build:
    """Return a function that builds a spec without weights and returns its parameter count."""
    import torch

    from ge_nas.export import load_backbone
    from ge_nas.network.build import build_model, size_params

    backbone = load_backbone(backbone_dir) if backbone_dir else None

    def build(spec: Any) -> int:
        with torch.device("meta"):  # shapes are checked, nothing is allocated
            return size_params(build_model(spec, shape, classes, backbone))

    return build


def _representation(grammar: Grammar, args: argparse.Namespace) -> Representation:
    return Representation(
        args.representation, grammar, args.max_depth, args.max_wraps, args.codon_size
    )


def _sample_genomes(grammar: Grammar, args: argparse.Namespace) -> list[list[int]]:
    rng = random.Random(args.seed)
    rep = _representation(grammar, args)
    return rep.initial(rng, args.samples, init=args.init, init_max_depth=args.init_max_depth)


def _map(grammar: Grammar, genome: list[int], args: argparse.Namespace) -> Derivation:
    return _representation(grammar, args).map(genome)


def _print_sample_check(counts: _SampleCounts, args: argparse.Namespace, console: Console) -> None:
    _say(
        console,
        f"{args.path}: sampled {counts.sampled} genomes with --init {args.init} (seed {args.seed}):",
    )
    rows = [("mapped to a phenotype", counts.mapped), ("parsed as an architecture", counts.parsed)]
    if args.arch:
        shape = "x".join(map(str, args.input_shape))
        rows.append((f"built for input {shape}, {args.classes} classes", counts.built))
    for label, count in rows:
        _say(
            console,
            f"  {label:<40} {_percent(count, counts.sampled):>7}  ({count}/{counts.sampled})",
        )
    if counts.params:
        _say(
            console,
            f"  parameters of the built networks: {min(counts.params):,}..{max(counts.params):,}",
        )
    if counts.failures:
        invalid = sum(counts.failures.values())
        _say(console, f"{invalid} invalid; most common reasons:")
        for key, count in counts.failures.most_common(5):
            _say(console, f"  {count:>5} x {counts.examples[key]}")


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
    genomes = _read_genomes(sys.stdin.read(), grammar, args.representation)
    phenotypes = [_map(grammar, g, args).phenotype for g in genomes]
    sys.stdout.write(json.dumps(phenotypes) + "\n")
    return 0


def _read_genomes(text: str, grammar: Grammar, representation: str = "ge") -> list[list[int]]:
    """Parse stdin's JSON: a list of genomes, each a list of non-negative integers.

    Under sge, a genome may also be a genotype object (rule name -> choices); under
    bits, a string of 0 and 1 ("0110"), and every genome must hold only bits.
    """
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
    data = [_genome_of(g, grammar, representation) for g in data]
    for i, genome in enumerate(data):
        if not isinstance(genome, list) or not all(_is_codon(c) for c in genome):
            raise ConfigError(
                f"stdin: genome {i} must be a list of non-negative integers, got {_clip(genome)}"
            )
        if representation == "bits" and not set(genome) <= {0, 1}:
            raise ConfigError(
                f"stdin: genome {i} must hold only bits, 0 and 1 (or be a string such as "
                f'"0110"), got {_clip(genome)}'
            )
    return data


def _genome_of(value: object, grammar: Grammar, representation: str) -> object:
    """Return the flat genome an SGE genotype object or a bit string stands for; other values as given."""
    if representation == "sge" and isinstance(value, dict):
        return flatten(grammar, sge_from_json(grammar, value))
    if representation == "bits" and isinstance(value, str) and set(value) <= {"0", "1"}:
        return [int(bit) for bit in value]
    return value


def _is_codon(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _clip(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
