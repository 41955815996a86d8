"""Measure images per second of ge_nas training against a plain hand-written PyTorch loop.

    python benchmarks/train_speed.py [--images 6400] [--epochs 1] [--repeats 5] [--threads 1]

One fixed phenotype, a 46k-parameter CNN, is built by ge_nas and trained on
the same images, with the same optimizer, schedule, batch size and torch
threads, five ways: a plain loop over the network as built (NCHW weights),
the same loop with channels_last weights, ge_nas's train_model as a search
worker runs it (place_model + train_model), ge_nas with augmentation on, and
ge_nas under bfloat16 autocast (--bf16; fast only on CPUs with AMX or native bf16).
The data is the Fashion-MNIST training set if it is installed, else the
embedded digits. Runs are interleaved in rotating order and repeated; the median counts. It
reports what it measured; there is no pass or fail. The goal for ge_nas
against the plain loop is a ratio of at least 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.data import load_dataset
from ge_nas.errors import DatasetError
from ge_nas.network.build import build_model, measure
from ge_nas.train import make_optimizer, make_schedule, place_model, train_model

PHENOTYPE = (
    "conv(32,3) bn relu pool(max,2) conv(48,3) bn relu pool(max,2) conv(72,3) bn relu"
    " | opt=adam lr=0.003 batch=128 sched=cosine"
)

Trainer = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], None]


def load_images(n: int) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Return the data set's name and its first n training images and labels."""
    try:
        data = load_dataset("fashion-mnist")
    except DatasetError:
        data = load_dataset("digits")
    return data.name, data.x_train[:n].contiguous(), data.y_train[:n].contiguous()


def plain_loop(spec: ArchSpec, *, channels_last: bool) -> Trainer:
    """Return a hand-written training loop: shuffle, slice, forward, backward, step."""

    def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
        if channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs lack memory_format
        hp = spec.hparam_map()
        batch, steps = int(hp["batch"]), len(y) // int(hp["batch"])
        optimizer = make_optimizer(model, hp)
        schedule = make_schedule(optimizer, hp["sched"], float(hp["lr"]), epochs * steps)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(y))
            for step in range(steps):
                idx = order[step * batch : (step + 1) * batch]
                loss = loss_fn(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()

    return train


def ge_nas_loop(spec: ArchSpec, *, aug: str = "none", bf16: bool = False) -> Trainer:
    """Return ge_nas's training as a search worker runs it (bf16: under bfloat16 autocast, --bf16)."""
    hparams = {**spec.hparam_map(), "aug": aug}

    def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
        model = place_model(model, torch.device("cpu"))
        status, error, _ = train_model(model, hparams, x, y, epochs=epochs, seed=0, bf16=bf16)
        if error:
            raise RuntimeError(f"ge_nas training failed ({status}): {error}")

    return train


def images_per_second(
    trainer: Trainer, spec: ArchSpec, x: torch.Tensor, y: torch.Tensor, epochs: int
) -> float:
    """Return training images per second of one fresh network over epochs."""
    torch.manual_seed(0)
    model = build_model(spec, tuple(x.shape[1:]), 10)  # type: ignore[arg-type]
    start = time.perf_counter()
    trainer(model, x, y, epochs)
    return len(y) * epochs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print images per second and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--images", type=int, default=6400, help="training images per epoch (default 6400)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs per measurement (default 1)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="measurements of each variant, interleaved (default 5)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, as one search worker has (default 1)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    name, x, y = load_images(args.images)
    spec = parse_arch(PHENOTYPE)
    size = measure(spec, tuple(x.shape[1:]), 10)  # type: ignore[arg-type]
    print(
        f"{name}: {len(y)} images {tuple(x.shape[1:])}, {size.params:,} params, {size.flops / 1e6:.1f} MFLOPs/image, "
        f"{args.threads} thread(s), batch {spec.hparam_map()['batch']}, {args.epochs} epoch(s) x {args.repeats} repeats"
    )
    variants = {
        "plain loop (NCHW)": plain_loop(spec, channels_last=False),
        "plain loop (channels_last)": plain_loop(spec, channels_last=True),
        "ge_nas train_model": ge_nas_loop(spec),
        "ge_nas train_model aug=cropflip": ge_nas_loop(spec, aug="cropflip"),
        "ge_nas train_model --bf16": ge_nas_loop(spec, bf16=True),
    }
    rates: dict[str, list[float]] = {label: [] for label in variants}
    labels = list(variants)
    for repeat in range(args.repeats):
        for label in (
            labels[repeat % len(labels) :] + labels[: repeat % len(labels)]
        ):  # rotate: no variant always goes first
            rates[label].append(images_per_second(variants[label], spec, x, y, args.epochs))
    report(rates)
    return 0


def report(rates: dict[str, list[float]]) -> None:
    """Print the median and spread of each variant and ge_nas's ratios to the plain loops."""
    median = {label: statistics.median(values) for label, values in rates.items()}
    for label, values in rates.items():
        print(
            f"  {label:34s} median {median[label]:7.0f} img/s  (min {min(values):.0f}, max {max(values):.0f})"
        )
    ours = median["ge_nas train_model"]
    print(f"ratio ge_nas / plain loop (NCHW):           {ours / median['plain loop (NCHW)']:.3f}")
    print(
        f"ratio ge_nas / plain loop (channels_last):  {ours / median['plain loop (channels_last)']:.3f}"
    )
    print(
        f"augmentation cost (cropflip / none):        {median['ge_nas train_model aug=cropflip'] / ours:.3f}"
    )
    print(
        f"bfloat16 autocast speed-up (--bf16 / off):  {median['ge_nas train_model --bf16'] / ours:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
