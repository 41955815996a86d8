"""The `prune` command: evolve masks over the units of a trained network [MO-EvoPruneDeepTL].

python -m ge_nas prune runs/RUN/front/1 --dataset digits

It prepares an ordinary run: a grammar of mask bits (grammar.bnf, editable),
a config.toml naming the base model (copied into the run directory as base/)
and the hash of its weights, and then searches that grammar like `ge_nas run`,
so `resume`, `show`, `report` and `export` work on it unchanged. A phenotype is
the base network with keep masks, e.g. `dense(8,keep=b10110111)`: the worker
removes the masked units from the trained weights (network/prune.py),
fine-tunes the smaller network for --epochs (0: not at all) and scores it.
Its params are the pruned network's, and a finalist is saved with its plain
spec (`dense(6)`), as any trained network.

`--layers` puts masks on some prunable layers only (the paper's setting: the
last dense layers). The layers before the first masked one are the trunk,
the same in every child; the fine-tune leaves it as the base has it (unless
`--no-freeze-trunk`), so each worker computes its features once (the feature
cache, ge_nas.feature_cache) and fine-tunes only the layers after it.

Defaults follow the paper: population 30, about 200 evaluations, initial
masks whose share of ones is drawn from U(0, 1) (--init density), uniform
crossover, and on average one flipped bit per child.

[MO-EvoPruneDeepTL] J. Poyatos, D. Molina, A. Martinez-Seras, J. Del Ser,
F. Herrera. Multiobjective evolutionary pruning of deep neural networks with
transfer learning for improving their performance and robustness. 2023.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ge_nas import rundir
from ge_nas.arch import ArchSpec
from ge_nas.cli.models import finalist_dir
from ge_nas.cli.options import (
    OBJECTIVES_HELP,
    PRUNE_OPTIONS,
    RUN_OPTIONS,
    Option,
    add_options,
    prune_overrides,
    run_overrides,
)
from ge_nas.cli.run import PRUNE_BASE, check_run, start_run
from ge_nas.config import RunConfig, load_toml, make_config
from ge_nas.data import DATASET_NAMES, run_splits
from ge_nas.errors import ConfigError
from ge_nas.export import META, MODEL, SPEC, BaseModel, load_base
from ge_nas.grammar import parse_grammar
from ge_nas.network.prune import UNIT_LAYERS, prunable_layers

# A run's settings that pruning changes: the paper's population and budget (30 x 7 generations:
# about 200 evaluations), short fine-tunes, masks as 0/1 codons drawn at a density ~ U(0, 1),
# uniform crossover, and a frozen trunk (measured: freezing it during a one-epoch fine-tune
# cost no validation accuracy; README). The mutation probability is set from the mask's length.
PRUNE_DEFAULTS: Mapping[str, Any] = {
    "population": 30,
    "generations": 6,
    "epochs": 1,
    "final_epochs": 3,
    "init": "density",
    "crossover": "uniform",
    "codon_size": 2,
    "freeze_trunk": True,
}


def add_prune_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `prune`."""
    p.add_argument(
        "source",
        metavar="MODEL_OR_RUN",
        help="a trained model directory (front/N, best/, what `ge_nas train` saved), "
        "or a finished run directory with --rank",
    )
    p.add_argument("--rank", type=int, help="with a run directory: its front member (default 1)")
    p.add_argument(
        "--group",
        type=int,
        default=1,
        metavar="G",
        help="one mask bit per G units of a layer, for coarse masks (default 1: one per unit)",
    )
    p.add_argument(
        "--layers",
        metavar="LIST",
        help="mask only these layers: numbers (1 = the first layer) and/or kinds conv, dense, "
        "comma-separated, e.g. dense or 9,13 (default: every prunable layer)",
    )
    p.add_argument("--config", help="TOML file of run options (flags override it)")
    p.add_argument(
        "--dataset",
        help=f"data set: {', '.join(DATASET_NAMES)} or npz:PATH; it must give the model's input "
        "shape and classes (default: the run's with a run directory, else digits)",
    )
    p.add_argument("--objectives", help=OBJECTIVES_HELP)
    add_options(p, tuple(_prune_option(o) for o in (*RUN_OPTIONS, *PRUNE_OPTIONS)))
    p.set_defaults(func=command_prune)


def _prune_option(option: Option) -> Option:
    """Return a run option with help that states prune's default where it differs from run's."""
    if option.field == "out":
        return dataclasses.replace(option, help="run directory (default runs/prune-<model>-<time>)")
    if option.field == "mutation_prob":
        text = "per-codon mutation probability (default: 2 / mask bits, one flipped bit per child on average)"
        return dataclasses.replace(option, help=text)
    if option.field == "init":  # run's help describes its own default, not density's
        text = (
            option.help.split(" (default")[0]
            + " (default density: each mask keeps a share of units ~ U(0, 1))"
        )
        return dataclasses.replace(option, help=text)
    if option.field == "epochs":
        text = "fine-tuning epochs of each pruned network; 0: none (default {default})"
        return dataclasses.replace(option, help=text.replace("{default}", "1"))
    if option.field in PRUNE_DEFAULTS:
        value = str(PRUNE_DEFAULTS[option.field])
        return dataclasses.replace(
            option, help=option.help.replace("{default}", value).replace("{default:_}", value)
        )
    return option


PARSERS = {"prune": add_prune_arguments}


def command_prune(args: argparse.Namespace, console: Console) -> int:
    """Write a mask grammar for a trained network and search it; every check runs before anything is written."""
    model_dir, run = _model_dir(Path(args.source), args.rank)
    base = load_base(model_dir)
    units = chosen_layers(base.spec, prunable_layers(base.spec), args.layers)
    if not units:
        raise ConfigError(
            f"{model_dir}: nothing to prune in {base.spec.canonical()!r}: only the units of conv "
            "and dense layers whose next weighted layer is conv, sepconv, dense or the classifier "
            "can be removed"
        )
    if isinstance(args.group, bool) or args.group < 1:
        raise ConfigError(f"--group must be a positive number of units per bit, got {args.group}")
    out = Path(args.out_opt) if args.out_opt else _default_out(model_dir)
    text = mask_grammar(base.spec, units, args.group, f"{model_dir} (model.pt {base.sha})")
    config = _config(args, run, out, base, mask_bits(units, args.group))
    grammar = parse_grammar(text, str(out / rundir.GRAMMAR))
    _check_data(config, base, model_dir)
    check_run(config, grammar)
    rundir.check_new_run_dir(out)  # before saying where the grammar goes
    if not args.quiet:
        bits = mask_bits(units, args.group)
        console.print(
            f"pruning {escape(str(model_dir))}: {sum(units.values())} units in {len(units)} "
            f"layers, {bits} mask bits (grammar: {escape(str(out / rundir.GRAMMAR))})",
            highlight=False,
        )
    return start_run(
        config,
        grammar,
        text,
        out,
        console,
        quiet=args.quiet,
        prepare=lambda o: _copy_base(model_dir, o),
    )


def _model_dir(source: Path, rank: int | None) -> tuple[Path, RunConfig | None]:
    """Return the model directory to prune and, when source is a run directory, its configuration."""
    if (source / rundir.CONFIG).is_file():
        return finalist_dir(source, 1 if rank is None else rank), rundir.load_run_config(source)
    if rank is not None:
        raise ConfigError(
            f"--rank {rank} goes with a run directory; {source} holds no {rundir.CONFIG}"
        )
    if not source.is_dir():
        raise ConfigError(
            f"{source}: no such directory; give a trained model directory (front/N, best/, what "
            "`ge_nas train` saved) or a run directory with --rank"
        )
    return source, None


def _default_out(model_dir: Path) -> Path:
    name = "-".join(p for p in model_dir.resolve().parts[-2:] if p not in ("/", "front"))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"prune-{name}-{stamp}"


def _config(
    args: argparse.Namespace, run: RunConfig | None, out: Path, base: BaseModel, bits: int
) -> RunConfig:
    """Return the pruning run's configuration: prune's defaults, the source run's data, --config, then flags."""
    values: dict[str, Any] = dict(PRUNE_DEFAULTS)
    if run is not None:  # the data the base model was trained on
        values |= {k: getattr(run, k) for k in ("dataset", "data_dir", "classes")}
    if args.config:
        values |= load_toml(args.config)
    overrides = run_overrides(args) | prune_overrides(args)
    if args.dataset:
        overrides["dataset"] = args.dataset
        if run is not None and args.dataset != run.dataset:  # the run's view goes with its data
            values = {k: v for k, v in values.items() if k not in ("data_dir", "classes")}
    if args.objectives:
        overrides["objectives"] = tuple(s.strip() for s in args.objectives.split(",") if s.strip())
    values.setdefault("mutation_prob", min(1.0, 2.0 / bits))
    overrides |= {
        "grammar": str(out / rundir.GRAMMAR),
        "prune_base": str((out / PRUNE_BASE).resolve()),
        "prune_base_sha": base.sha,
        "command": args.command_line,
    }
    return make_config(values, overrides)


def chosen_layers(spec: ArchSpec, units: Mapping[int, int], choice: str | None) -> dict[int, int]:
    """Return the prunable layers (index: units) that --layers names; all of them when it is None.

    Raises:
        ConfigError: an item is neither a kind (conv, dense) nor the number of a prunable layer.
    """
    if choice is None:
        return dict(units)
    chosen: dict[int, int] = {}
    for item in (part.strip() for part in choice.split(",") if part.strip()):
        if item in UNIT_LAYERS:
            chosen |= {i: n for i, n in units.items() if spec.layers[i].kind == item}
        elif item.isdigit() and int(item) - 1 in units:
            chosen[int(item) - 1] = units[int(item) - 1]
        else:
            valid = ", ".join(f"{i + 1} ({spec.layers[i].text()})" for i in units)
            raise ConfigError(
                f"--layers {choice}: {item!r} is neither conv, dense nor the number of a prunable "
                f"layer; the prunable layers are {valid}"
            )
    return dict(sorted(chosen.items()))


def _check_data(config: RunConfig, base: BaseModel, model_dir: Path) -> None:
    """Raise ConfigError unless the run's data gives the base model's input shape, classes and class view."""
    splits = run_splits(config)
    meta = base.meta
    if (splits.input_shape, splits.num_classes) != (meta.input_shape, meta.num_classes):
        raise ConfigError(
            f"--dataset {config.data_text()}: inputs {splits.input_shape} with "
            f"{splits.num_classes} classes, but {model_dir / META} takes {meta.input_shape} with "
            f"{meta.num_classes} classes; give the data set the model was trained on"
        )
    if meta.classes is not None and splits.classes != meta.classes:
        raise ConfigError(
            f"--dataset {config.data_text()}: the model's outputs are the classes "
            f"{','.join(map(str, meta.classes))} (meta.json); give --classes "
            f"{','.join(map(str, meta.classes))}"
        )


def _copy_base(model_dir: Path, out: Path) -> None:
    """Copy the base model's files into the run directory (its config names the copy)."""
    target = rundir.make_dir(out / PRUNE_BASE)
    for name in (MODEL, SPEC, META):
        shutil.copyfile(model_dir / name, target / name)


def mask_bits(units: Mapping[int, int], group: int) -> int:
    """Return how many bits the masks of these layers take, one per group of up to group units."""
    return sum(-(-n // group) for n in units.values())


def mask_grammar(spec: ArchSpec, units: Mapping[int, int], group: int, source: str) -> str:
    """Return a BNF grammar whose phenotypes are spec with a keep mask on each layer of units.

    units: {layer index: units} (prunable_layers). Layer i's mask is rule <keepN> (N = i + 1),
    a sequence of bit rules: <bit> ::= 0 | 1, or with group G > 1 <bitG> ::= 00..0 | 11..1 (one
    codon for G units; a layer's last group may be shorter). The hyperparameters after '|'
    set the fine-tuning and may be edited; the layers must stay the base model's.
    """
    layers = []
    for i, layer in enumerate(spec.layers):
        text = layer.text()
        layers.append(f"{text[:-1]},keep=b<keep{i + 1}>)" if i in units else text)
    hparams = spec.canonical().split(" | ", 1)[1]
    lines = [
        "# ge_nas prune: keep masks over the units of a trained network (1: the unit stays).",
        f"# Base model: {source}",
        f"#   {spec.canonical()}",
        "# Each <keepN> is the mask of layer N, one bit rule per "
        + ("unit." if group == 1 else f"group of {group} units."),
        "# Edit freely: fix a bit (write 1 for units that must stay), drop a layer's mask",
        "# (write the layer without keep=...), or change the fine-tuning hyperparameters",
        "# after '|'. The layers themselves must stay the base model's.",
        "",
        f'<net> ::= {" ".join(layers)} " | " {hparams}',
        "",
    ]
    sizes: set[int] = set()
    for i, n in units.items():
        groups = [min(group, n - at) for at in range(0, n, group)]
        sizes.update(groups)
        lines.append(f"<keep{i + 1}> ::= " + "".join(_bit_rule(g) for g in groups))
    lines.append("")
    for g in sorted(sizes):
        lines.append(f"{_bit_rule(g)} ::= {'0' * g} | {'1' * g}")
    return "\n".join(lines) + "\n"


def _bit_rule(group: int) -> str:
    return "<bit>" if group == 1 else f"<bit{group}>"
