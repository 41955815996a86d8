"""The commands that make and move trained networks: train (one network, fully) and export (ONNX or torch).

python -m ge_nas train --from runs/RUN --rank 4
python -m ge_nas export runs/RUN --rank 1 --format onnx
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from ge_nas import rundir
from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.cli.options import DATA_VIEW_OPTIONS, add_options, config_defaults
from ge_nas.config import RunConfig, check_data_view, field_default, usable_cores
from ge_nas.data import DATASET_NAMES, load_raw
from ge_nas.data.datasets import final_splits
from ge_nas.errors import ConfigError
from ge_nas.export import (
    FORMATS,
    META,
    MODEL,
    ONNX,
    SPEC,
    Meta,
    export_onnx,
    export_torch,
    load_backbone,
)
from ge_nas.feature_cache import FeatureCache
from ge_nas.fidelity import backbone_digest
from ge_nas.grammar import load_grammar, map_genome
from ge_nas.metrics import Metrics
from ge_nas.network import measure
from ge_nas.train import resolve_device, slow_bf16
from ge_nas.worker import EvalTask, derive_seed, evaluate, task_splits

ONNX_SAMPLES = 64
EXPORTED_FILES = (MODEL, SPEC, META, ONNX, ONNX + ".tmp")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `train`."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--phenotype",
        metavar="TEXT",
        help='a network in the architecture language, e.g. "conv(16,3) relu pool | opt=adam"',
    )
    source.add_argument(
        "--genome", metavar="CODONS", help="comma-separated codons, mapped with --grammar"
    )
    source.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN_DIR",
        help="a run directory; with --rank: that front member",
    )
    p.add_argument("--grammar", help="BNF file for --genome")
    p.add_argument("--rank", type=int, help="rank on the run's front (pareto.csv), with --from")
    p.add_argument(
        "--dataset",
        help=f"data set: {', '.join(DATASET_NAMES)} or npz:PATH (default digits, or the run's)",
    )
    p.add_argument("--data-dir", help="directory holding the data set's files")
    add_options(p, DATA_VIEW_OPTIONS, note=", or the run's with --from on its data set")
    p.add_argument(
        "--epochs",
        type=int,
        help=f"training epochs (default {field_default('final_epochs')}, or the run's --final-epochs with --from)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="training seed (default 0, or the seed the run used for this network)",
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto, or the run's)")
    p.add_argument(
        "--bf16",
        action="store_true",
        default=None,
        help="train under bfloat16 autocast (default off, or the run's)",
    )
    p.add_argument(
        "--backbone",
        metavar="MODEL_DIR",
        help="the model directory a backbone(keep=K, freeze=F) layer takes blocks from (default: the run's)",
    )
    p.add_argument(
        "--out",
        help="directory for model.pt, spec.json, metrics.json, meta.json (default runs/train-<time>)",
    )
    p.set_defaults(func=command_train)


def command_train(args: argparse.Namespace, console: Console) -> int:
    """Train one network fully, print its scores and where it was saved."""
    phenotype, run = _phenotype(args)
    spec = parse_arch(phenotype)
    task = _train_task(args, spec, run)
    rundir.check_empty_dir(Path(str(task.save_dir)))
    # An unknown device, a missing GPU, a data view the data set cannot give or a shape that
    # cannot work stops here, before training.
    device = resolve_device(task.device)
    if task.bf16 and (slow := slow_bf16(device)):
        console.print(f"[yellow]warning:[/] {escape(slow)}", highlight=False)
    splits = task_splits(task)
    backbone = load_backbone(task.backbone, task.backbone_digest) if task.backbone else None
    size = measure(spec, splits.input_shape, splits.num_classes, backbone)
    trained_on = len(final_splits(splits, task.holdout, task.split_seed).y_train)
    console.print(
        f"training {escape(spec.canonical())}: {size.params:,} params, {task.epochs} epochs on {trained_on} samples",
        highlight=False,
    )
    cache = FeatureCache((run or config_defaults()).feature_cache_mb)  # its epochs reuse features
    metrics = evaluate(task, cache).metrics
    if not metrics.ok:
        console.print(
            f"[red]training {metrics.status}:[/] {escape(metrics.error)}", highlight=False
        )
        return 1
    _print_trained(console, metrics, task)
    _print_input(console, splits.standardization.raw, splits.classes)
    return 0


def _phenotype(args: argparse.Namespace) -> tuple[str, RunConfig | None]:
    if args.genome is not None:
        return _phenotype_of_genome(args.genome, args.grammar), None
    if args.grammar is not None:
        raise ConfigError("--grammar goes with --genome")
    if args.from_run is not None:
        return _phenotype_of_rank(Path(args.from_run), args.rank)
    if args.rank is not None:
        raise ConfigError("--rank goes with --from RUN_DIR")
    return args.phenotype, None


def _phenotype_of_genome(text: str, grammar_path: str | None) -> str:
    if grammar_path is None:
        raise ConfigError("--genome needs --grammar PATH (the BNF file that maps it)")
    genome = parse_genome(text)
    defaults = config_defaults()
    derivation = map_genome(
        load_grammar(grammar_path),
        genome,
        max_wraps=defaults.max_wraps,
        max_depth=defaults.max_depth,
    )
    if derivation.phenotype is None:
        raise ConfigError(
            f"genome does not map to a network with {grammar_path}: {derivation.reason}"
        )
    return derivation.phenotype


def parse_genome(text: str) -> list[int]:
    """Return the codons of '1,2,3' (commas and/or spaces)."""
    parts = text.replace(",", " ").split()
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError(
            f"--genome {text!r}: expected non-negative integers separated by commas, e.g. 12,7,301"
        )
    return [int(p) for p in parts]


def _phenotype_of_rank(run_dir: Path, rank: int | None) -> tuple[str, RunConfig]:
    if rank is None:
        raise ConfigError("--from needs --rank N (a rank of the run's pareto.csv)")
    config = rundir.load_run_config(run_dir)
    return rundir.front_row(run_dir, rank)["phenotype"], config


def _train_task(args: argparse.Namespace, spec: ArchSpec, run: RunConfig | None) -> EvalTask:
    base = run or config_defaults()
    dataset, data_dir = (
        (args.dataset, args.data_dir)
        if args.dataset
        else (base.dataset, args.data_dir or base.data_dir)
    )
    seed = (
        args.seed if args.seed is not None else (derive_seed(run.seed, spec.hash()) if run else 0)
    )
    epochs = (
        args.epochs if args.epochs is not None else (run.final_epochs if run else base.final_epochs)
    )
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"train-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    # The run's data view goes with the run's data set; a flag replaces its part of it.
    view = {
        option.field: getattr(args, option.dest)
        if getattr(args, option.dest) is not None
        else (None if args.dataset else getattr(base, option.field))
        for option in DATA_VIEW_OPTIONS
    }
    check_data_view(view["shots"], view["val_shots"])
    backbone = args.backbone or (run.backbone if run else None)
    return EvalTask(
        spec.canonical(),
        seed,
        dataset=dataset,
        data_dir=data_dir,
        val_fraction=base.val_fraction,
        split_seed=base.split_seed,
        train_subset=None,
        classes=view["classes"],
        shots=view["shots"],
        val_shots=view["val_shots"],
        epochs=epochs,
        threads=usable_cores(),
        final=True,
        holdout=base.final_holdout,
        save_dir=str(out),
        device=args.device or base.device,
        bf16=base.bf16 if args.bf16 is None else args.bf16,
        backbone=backbone,
        backbone_digest=backbone_digest(backbone) if backbone else "",
        prune_base=run.prune_base if run else None,  # a pruning run's phenotype: from its base
        prune_base_sha=run.prune_base_sha if run else None,
        freeze_trunk=base.freeze_trunk,
    )


def _print_trained(console: Console, m: Metrics, task: EvalTask) -> None:
    console.print(f"test accuracy {m.test_accuracy:.4f}", highlight=False)
    console.print(
        f"params {m.params:,}  FLOPs {m.flops:,}  trained in {m.train_seconds:.1f} s ({m.epochs} epochs, seed {task.seed})",
        highlight=False,
    )
    console.print(
        f"saved to {escape(str(task.save_dir))}: model.pt, spec.json, metrics.json, meta.json",
        highlight=False,
    )
    console.print(f"load it with: ge_nas.load_model({str(task.save_dir)!r})", highlight=False)


def _print_input(console: Console, raw: str, classes: tuple[int, ...] | None) -> None:
    console.print(
        f"the model takes raw float32 images (N, C, H, W): {escape(raw)}; it standardises them itself",
        highlight=False,
    )
    if classes is not None:
        console.print(
            f"its outputs 0..{len(classes) - 1} are the data set's classes {', '.join(map(str, classes))} (meta.json's classes)",
            highlight=False,
        )


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `export`."""
    p.add_argument(
        "source",
        metavar="RUN_DIR_OR_MODEL_DIR",
        help="a finished run (with --rank), or a model directory: front/N, best/, or what `train` saved",
    )
    p.add_argument(
        "--rank", type=int, default=1, help="rank on a run's front (pareto.csv; default 1)"
    )
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="torch: model.pt + spec.json + meta.json; onnx: model.onnx checked by onnxruntime",
    )
    p.add_argument(
        "--out",
        help="directory for the files (default RUN_DIR/export/rank<N>, or MODEL_DIR/export)",
    )
    p.set_defaults(func=command_export)


def command_export(args: argparse.Namespace, console: Console) -> int:
    """Export a finalist or a saved model and say where it went."""
    source, default_out, run = _export_source(Path(args.source), args.rank)
    meta = Meta.from_json((source / META).read_text(encoding="utf-8"), str(source / META))
    out = Path(args.out) if args.out else default_out
    rundir.check_empty_dir(out, allowed=EXPORTED_FILES)  # a re-export replaces only its own files
    if args.format == "onnx":
        sample, what = _onnx_sample(run, meta)
        exported = export_onnx(source, out, meta, sample)
        console.print(
            f"onnxruntime matches torch on {what}: max abs diff {exported.max_abs_diff:.2e}"
        )
    else:
        exported = export_torch(source, out, meta)
    names = ", ".join(p.name for p in exported.files)
    console.print(
        f"exported {source} ({args.format}) to {escape(str(out))}: {names}", highlight=False
    )
    if args.format == "torch":
        console.print(f"load it with: ge_nas.load_model({str(out)!r})", highlight=False)
    if meta.standardization is not None:
        _print_input(console, meta.standardization.raw, meta.classes)
    return 0


def _export_source(path: Path, rank: int) -> tuple[Path, Path, RunConfig | None]:
    """Return (model directory, default output directory, the run's config if path is a run)."""
    if (path / MODEL).is_file() and (path / META).is_file():
        return path, path / "export", None
    if (path / rundir.CONFIG).is_file():
        return (
            finalist_dir(path, rank),
            path / "export" / f"rank{rank}",
            rundir.load_run_config(path),
        )
    raise ConfigError(
        f"{path}: neither a run directory (config.toml) nor a model directory (model.pt and meta.json); "
        "give what `ge_nas run` or `ge_nas train` wrote"
    )


def _onnx_sample(run: RunConfig | None, meta: Meta) -> tuple[torch.Tensor, str]:
    """Return raw inputs to check ONNX against torch: the run's test images, or seeded ones in the raw range."""
    if run is not None:
        raw = load_raw(run.dataset, run.data_dir, classes=run.classes).x_test[:ONNX_SAMPLES]
        return torch.from_numpy(raw.astype("float32")), f"{len(raw)} raw test images"
    mean, std = (
        meta.standardization.tensors() if meta.standardization else (torch.zeros(1), torch.ones(1))
    )
    noise = torch.randn(
        (ONNX_SAMPLES, *meta.input_shape), generator=torch.Generator().manual_seed(0)
    )
    return mean + std * noise, f"{ONNX_SAMPLES} random inputs in the raw range"


def finalist_dir(run_dir: Path, rank: int) -> Path:
    """Return front/<rank> of a finished run, or raise ConfigError saying how to get weights."""
    rundir.front_row(run_dir, rank)
    directory = run_dir / "front" / str(rank)
    if not (directory / MODEL).is_file():
        raise ConfigError(
            f"rank {rank} of {run_dir} has no trained weights (only the finalists are retrained); "
            f"train it into the run first: python -m ge_nas train --from {run_dir} --rank {rank} "
            f"--out {directory}, then run this command again"
        )
    return directory


PARSERS = {"train": add_train_arguments, "export": add_export_arguments}
