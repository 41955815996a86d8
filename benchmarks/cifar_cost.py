"""What a run of a grammar costs before it is run: FLOPs of its networks, CPU time measured, GPU time estimated.

For seed 003's CIFAR set-up (grammars/cnnga_cifar.bnf: population 4, 20
generations, 2 epochs per evaluation, the best retrained for 20 epochs):

    python benchmarks/cifar_cost.py

1. FLOPs: --networks random networks of the grammar, measured on the meta
   device (no weights): forward FLOPs per image, mean and range. Training
   costs about three forward passes (forward, and backward twice as much).
2. CPU: --timed of them trained for one epoch on --timed-images random images
   of the input shape, on this machine with --threads torch threads; the
   seconds per training FLOP is the median over them.
3. The run: (population x (generations + 1)) evaluations of --epochs epochs on
   --train-images images, plus --final-epochs of the best on train and
   validation (--train-images / (1 - --val-fraction)). CPU hours are the
   training FLOPs at the measured rate, divided among --workers processes of
   --threads threads (as measured: two one-thread workers on two cores). GPU
   hours assume --gpu-tflops sustained (default 4: a third of a current
   mid-range card's fp32 peak, typical for small convolutions at batch 32);
   they are an estimate from FLOPs, not a measurement.

No data is read: images are random, only their count and shape matter.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence

import torch

from ge_nas.arch import parse_arch
from ge_nas.grammar import load_grammar, map_genome
from ge_nas.grammar.initialise import random_population
from ge_nas.network import build_model, measure
from ge_nas.train import train_model


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grammar", default="grammars/cnnga_cifar.bnf")
    p.add_argument("--input-shape", default="3,32,32", help="C,H,W (default 3,32,32)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--networks", type=int, default=200, help="networks whose FLOPs are measured")
    p.add_argument("--timed", type=int, default=4, help="networks trained to time the CPU")
    p.add_argument("--timed-images", type=int, default=256, help="images per timed epoch")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--epochs", type=int, default=2, help="epochs per evaluation")
    p.add_argument("--final-epochs", type=int, default=20)
    p.add_argument("--train-images", type=int, default=45000, help="images per search epoch")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--gpu-tflops", type=float, default=4.0, help="sustained fp32 TFLOP/s assumed")
    p.add_argument("--max-depth", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    c, h, w = (int(v) for v in args.input_shape.split(","))
    shape = (c, h, w)
    grammar = load_grammar(args.grammar)
    genomes = random_population(
        grammar, random.Random(args.seed), args.networks, codon_size=255, max_depth=args.max_depth
    )
    phenotypes = [map_genome(grammar, g, max_depth=args.max_depth).phenotype for g in genomes]
    specs = [parse_arch(p) for p in phenotypes if p is not None]
    flops = [measure(s, shape, args.num_classes).flops for s in specs]
    mean_flops = statistics.fmean(flops)
    print(
        f"{len(specs)} networks of {args.grammar}: forward MFLOPs per image mean "
        f"{mean_flops / 1e6:.1f}, median {statistics.median(flops) / 1e6:.1f}, "
        f"range {min(flops) / 1e6:.1f} to {max(flops) / 1e6:.1f}"
    )
    rates = []
    for spec, f in list(zip(specs, flops))[: args.timed]:
        model = build_model(spec, shape, args.num_classes)
        x = torch.randn(args.timed_images, *shape)
        y = torch.randint(0, args.num_classes, (args.timed_images,))
        begun = time.perf_counter()
        train_model(model, spec.hparam_map(), x, y, epochs=1, seed=0)
        seconds = time.perf_counter() - begun
        rates.append(seconds / (3 * f * args.timed_images))
        print(f"  timed: {f / 1e6:.1f} MFLOPs, {args.timed_images / seconds:.0f} images/s")
    per_flop = statistics.median(rates)
    search = args.population * (args.generations + 1) * args.epochs * args.train_images
    final = args.final_epochs * round(args.train_images / (1 - args.val_fraction))
    train_flops = 3 * mean_flops * (search + final)
    cpu_hours = train_flops * per_flop / args.workers / 3600
    gpu_hours = train_flops / (args.gpu_tflops * 1e12) / 3600
    print(
        f"the run: {args.population * (args.generations + 1)} evaluations x {args.epochs} epochs "
        f"x {args.train_images:,} images, then {args.final_epochs} epochs of the best: "
        f"{train_flops / 1e15:.3g} PFLOPs of training"
    )
    print(
        f"  CPU, {args.workers} workers x {args.threads} thread(s) here: {cpu_hours:.1f} h "
        f"(measured {1 / per_flop / 1e9:.1f} training GFLOP/s per worker)"
    )
    print(f"  one GPU at {args.gpu_tflops:g} TFLOP/s sustained (assumed): {gpu_hours:.3g} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
