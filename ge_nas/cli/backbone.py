"""The `backbone show` command: a trained network's blocks, so a grammar author knows what keep and freeze mean.

python -m ge_nas backbone show runs/RUN/best
python -m ge_nas backbone show runs/RUN/best --input-shape 3,32,32
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ge_nas.arch import ArchSpec
from ge_nas.cli.grammar import input_shape_arg
from ge_nas.errors import ArchError, ConfigError
from ge_nas.export import META, SPEC, Meta
from ge_nas.fidelity import weights_file
from ge_nas.network.build import block_sizes


def add_backbone_arguments(p: argparse.ArgumentParser) -> None:
    """Add `backbone show`."""
    commands = p.add_subparsers(dest="backbone_command", metavar="SUBCOMMAND", required=True)
    show: Any = commands.add_parser(
        "show",
        help="list a model's blocks (what backbone(keep=K, freeze=F) keeps and freezes): "
        "layers, output shape, parameters",
    )
    show.add_argument(
        "source",
        metavar="MODEL_DIR",
        help="a ge_nas model directory: front/N or best/ of a run, or what `ge_nas train` wrote",
    )
    show.add_argument(
        "--input-shape",
        type=input_shape_arg,
        metavar="C,H,W",
        help="the target data's input shape (default: the backbone's own, from its meta.json)",
    )
    show.set_defaults(func=command_show)


PARSERS = {"backbone": add_backbone_arguments}


def command_show(args: argparse.Namespace, console: Console) -> int:
    """Print the backbone's blocks with output shapes and (cumulative) parameter counts; return 0."""
    directory = weights_file(args.source).parent
    try:
        spec = ArchSpec.from_json((directory / SPEC).read_text(encoding="utf-8"))
        meta = Meta.from_json((directory / META).read_text(encoding="utf-8"), str(directory / META))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{args.source}: {exc.filename} is missing; expected a model directory"
        ) from None
    except ArchError as exc:
        raise ConfigError(f"{directory / SPEC}: {exc}") from None
    own = meta.input_shape
    shape = args.input_shape or own
    if shape[0] != own[0]:
        console.print(
            f"the data has {shape[0]} channel(s), the backbone {own[0]}: a 1x1 convolution adapter "
            f"conv({own[0]},1,1) ({(shape[0] + 1) * own[0]:,} params, trainable) goes in front",
            highlight=False,
        )
    blocks_in = (own[0], shape[1], shape[2])
    try:
        sizes = block_sizes(spec, blocks_in)
    except ArchError as exc:
        raise ConfigError(
            f"{directory}: its blocks cannot take input {_shape_text(shape)}: {exc}"
        ) from None
    table = Table(
        title=f"{directory}: {len(sizes)} block(s) for input {_shape_text(shape)} "
        f"(backbone {_shape_text(own)}, {meta.num_classes} classes; the classifier head is not a block)"
    )
    for name in ("block", "layers", "output shape", "params", "cumulative params"):
        table.add_column(name, justify="left" if name == "layers" else "right")
    total = 0
    for size in sizes:
        total += size.params
        table.add_row(
            str(size.block.index),
            size.block.text(),
            _shape_text(size.shape),
            f"{size.params:,}",
            f"{total:,}",
        )
    console.print(table)
    console.print(
        f"backbone(keep=K, freeze=F) keeps blocks 1..K (K <= {len(sizes)}) with their trained "
        "weights and freezes blocks 1..F (F <= K); the layers after it and a new classifier head train",
        highlight=False,
    )
    return 0


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)
