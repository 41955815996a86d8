"""Pruning a trained network (issue #14): smaller, as accurate, as good at telling unseen images apart.

    python benchmarks/prune.py [--seeds 3] [--evaluations 200] [--base-epochs 15] ...
    python benchmarks/prune.py --dataset digits --evaluations 8 --population 4 --seeds 1 --base-epochs 2

It drives the command line (ge_nas.cli.main) and reads the run directories it writes:

1. The base: --base-phenotype (default a cnn_fmnist.bnf network of three conv stages and a
   dense head; aug=flip on Fashion-MNIST, none elsewhere), trained by `ge_nas train --classes 0-7` for --base-epochs on Fashion-MNIST
   classes 0-7 and saved in --out/base/ (reused when it is already there).
2. Per seed (--seeds N runs --seed .. --seed+N-1): `ge_nas prune` of the base into
   --out/seed<S>/, objectives validation accuracy, params and ood_auroc against --ood
   (default the held-out classes 8 and 9), population --population, as many generations as
   make about --evaluations, fine-tuning --epochs on --train-subset images (default 8000, or
   all when the split holds fewer); its --finalists train for --final-epochs. With fewer than 2 finalists, the best untrained front members
   are trained into the run (`ge_nas train --from RUN --rank N --out RUN/front/N`), and
   `ge_nas ensemble RUN` combines them.

The base is scored as the front members are: validation accuracy on the run's validation
split (which the base's own final training saw half of, as every pruned copy inherits; the
held-out half is the honest figure, reported as well) and OoD AUROC of the validation images
against the OoD source's training part; and on the test set against each OoD source's test
part (--ood and every --also-ood, default resized digits), as the trained members are.
"Pruned-layer params" are the weights and biases of the layers that carry masks (conv and
dense whose units can go), at the widths the masks leave.

--layers puts masks on some layers only (e.g. dense: the paper's last dense layers), so the
layers before the first mask form a trunk that every child shares; the fine-tune leaves it
frozen (unless --no-freeze-trunk), and the workers' feature cache computes its features once. Then
the first --cache-replay evaluations of each seed are evaluated again in this process, three
ways, taking turns (benchmarks/cache_replay.py): fine-tuning everything, fine-tuning after a
frozen trunk without the cache, and with a fresh cache. It reports their mean validation
accuracy (what freezing the trunk costs) and times (the share of time the cache saves). The
cache needs aug=none in the base's hyperparameters (augmentation reaches the trunk).

It reports, per seed and as the median, against these targets (targets, not checks):

- a front member with >= 50 % fewer params in the pruned layers at a validation accuracy
  >= the base's - 0.5 points;
- a front member with an OoD AUROC >= the base's;
- every trained member's exported model (ge_nas.load_model on front/N) has the parameter
  count pareto.csv reports;
- the ensemble's test accuracy >= its best member's (chosen on the held-out slice) + 0.3
  points; uncertain, since every member is a pruned copy of one trunk.

Results go to --out (default runs/bench-prune-<time>): the base, one run directory per seed,
summary.json. It reports what it measured; there is no pass or fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from cache_replay import Variant, largest_difference, replay, share_saved
from torch import nn

from ge_nas import rundir
from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.archive import Archive
from ge_nas.cli.main import main as ge_nas
from ge_nas.config import RunConfig, field_default
from ge_nas.data import load_splits, run_splits
from ge_nas.data.datasets import Splits
from ge_nas.data.ood import ood_images
from ge_nas.export import META, MODEL, SPEC, Meta, load_model, load_weights
from ge_nas.feature_cache import FeatureCache
from ge_nas.fidelity import fidelity_key
from ge_nas.network import count_params
from ge_nas.network.build import build_with_slots
from ge_nas.network.prune import prunable_layers, pruned_spec, split_masks
from ge_nas.scoring import ood_auroc
from ge_nas.search.evaluator import task_for
from ge_nas.train import accuracy

ROOT = Path(__file__).resolve().parent.parent
BASE_PHENOTYPE = (
    "conv(16,3) bn relu pool(max,2) conv(32,3) bn relu pool(max,2) conv(64,3) bn relu "
    "dropout(0.1) dense(64) relu dropout(0.1) | opt=adam lr=0.002 batch=128 aug={aug} ls=0.0"
)
CUT_TARGET = 0.5  # share of the pruned layers' params a member sheds ...
VAL_SLACK = 0.005  # ... at a validation accuracy at most this far below the base's
ENSEMBLE_TARGET = 0.003  # ensemble test accuracy over its best member's
MIN_MEMBERS = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the benchmark's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist", help="default fashion-mnist")
    p.add_argument("--data-dir", help="directory of the data set's files")
    p.add_argument("--classes", default="0-7", help="the classes the base learns (default 0-7)")
    p.add_argument(
        "--ood",
        help="OoD source of the pruning objective (default DATASET:classes=8,9)",
    )
    p.add_argument(
        "--also-ood",
        action="append",
        metavar="SPEC",
        help="another OoD source to report against, repeatable (default digits; noise on digits)",
    )
    p.add_argument("--ood-score", default="msp", choices=("msp", "energy"))
    p.add_argument(
        "--base-phenotype",
        help="the network to prune (default: three conv stages and a dense head of "
        "cnn_fmnist.bnf, aug=flip on fashion-mnist, else aug=none)",
    )
    p.add_argument("--base-epochs", type=int, default=15, help="base training (default 15)")
    p.add_argument(
        "--evaluations", type=int, default=200, help="pruning evaluations per seed (default 200)"
    )
    p.add_argument("--population", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning per evaluation (default 1)")
    p.add_argument(
        "--train-subset",
        type=float,
        default=8000,
        help="training images per fine-tune, a count or a fraction (default 8000; 0: all)",
    )
    p.add_argument("--final-epochs", type=int, default=3, help="finalists' training (default 3)")
    p.add_argument("--finalists", type=int, default=3, help="finalists per seed (default 3)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--layers", help="`ge_nas prune --layers`: mask only these layers (default: all prunable)"
    )
    p.add_argument(
        "--no-freeze-trunk",
        action="store_true",
        help="`ge_nas prune --no-freeze-trunk`: fine-tune the unpruned trunk too",
    )
    p.add_argument(
        "--cache-replay",
        type=int,
        default=0,
        help="evaluations per seed replayed three ways to time the feature cache (default 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds, from --seed (default 3)")
    p.add_argument("--out", help="output directory (default runs/bench-prune-<time>)")
    args = p.parse_args(argv)
    if args.ood is None:
        args.ood = f"{args.dataset}:classes=8,9"
    if args.also_ood is None:
        args.also_ood = ["noise" if args.dataset == "digits" else "digits"]
    if args.base_phenotype is None:
        aug = "flip" if args.dataset == "fashion-mnist" else "none"
        args.base_phenotype = BASE_PHENOTYPE.format(aug=aug)
    return args


def cli(argv: list[str]) -> None:
    """Run one ge_nas command; stop the benchmark if it fails."""
    print("  $ python -m ge_nas " + " ".join(argv), flush=True)
    code = ge_nas(argv)
    if code != 0:
        raise SystemExit(f"`ge_nas {argv[0]}` exited with {code}")


def data_flags(args: argparse.Namespace) -> list[str]:
    """Return the data set flags every command takes."""
    flags = ["--dataset", args.dataset, "--classes", args.classes]
    return flags + (["--data-dir", args.data_dir] if args.data_dir else [])


def train_base(args: argparse.Namespace, base: Path) -> None:
    """Train the base into base/, or reuse the one there (its phenotype must be --base-phenotype)."""
    if (base / MODEL).is_file():
        saved = ArchSpec.from_json((base / SPEC).read_text(encoding="utf-8")).canonical()
        if saved != parse_arch(args.base_phenotype).canonical():
            raise SystemExit(f"{base} holds {saved!r}, not --base-phenotype; choose another --out")
        print(f"base: reusing {base}", flush=True)
        return
    print(f"base: training for {args.base_epochs} epochs", flush=True)
    cli(["train", "-q", "--phenotype", args.base_phenotype, *data_flags(args),
         "--epochs", str(args.base_epochs), "--seed", str(args.seed), "--out", str(base)])  # fmt: skip


def generations(args: argparse.Namespace) -> int:
    """Return the generations after the first that make about --evaluations."""
    evaluations, population = int(args.evaluations), int(args.population)
    return max(1, round(evaluations / population)) - 1


def fine_tune_subset(args: argparse.Namespace) -> bool:
    """Return whether --train-subset takes fewer images than the training split holds."""
    subset = float(args.train_subset)
    if subset <= 1:
        return 0 < subset < 1
    val_fraction, split_seed = field_default("val_fraction"), field_default("split_seed")
    splits = load_splits(args.dataset, args.data_dir, val_fraction, split_seed, None, args.classes)
    return subset < len(splits.y_train)


def prune_seed(args: argparse.Namespace, base: Path, run: Path, seed: int) -> None:
    """Prune the base into run (resume it if it was stopped; reuse it if it finished)."""
    if (run / rundir.PARETO).is_file():
        print(f"  reusing {run}", flush=True)
        return
    if (run / rundir.CONFIG).is_file():
        cli(["resume", "-q", str(run)])
        return
    subset = ["--train-subset", f"{args.train_subset:g}"] if fine_tune_subset(args) else []
    cli(["prune", "-q", str(base), *data_flags(args), *subset,
         "--objectives", "val_accuracy,params,ood_auroc", "--ood", args.ood,
         "--ood-score", args.ood_score, "--population", str(args.population),
         "--generations", str(generations(args)), "--epochs", str(args.epochs),
         "--final-epochs", str(args.final_epochs), "--finalists", str(args.finalists),
         "--workers", str(args.workers), "--seed", str(seed), "--out", str(run),
         *(["--layers", args.layers] if args.layers else []),
         *(["--no-freeze-trunk"] if args.no_freeze_trunk else [])])  # fmt: skip


def trained_ranks(run: Path) -> list[int]:
    """Return the ranks whose front/<rank>/ holds trained weights, ascending."""
    front = run / "front"
    if not front.is_dir():
        return []
    return sorted(
        int(d.name) for d in front.iterdir() if d.name.isdigit() and (d / MODEL).is_file()
    )


def ensure_members(run: Path, rows: list[dict[str, str]]) -> None:
    """Train the best untrained front members into the run until it has MIN_MEMBERS trained ones."""
    for row in rows:
        if len(trained_ranks(run)) >= MIN_MEMBERS:
            return
        rank = int(row["rank"])
        if rank not in trained_ranks(run):
            cli(["train", "-q", "--from", str(run), "--rank", str(rank),
                 "--out", str(run / "front" / str(rank))])  # fmt: skip


@dataclass(frozen=True)
class Scorer:
    """Scores any trained model directory on one run's data, as the run scores its networks."""

    config: RunConfig
    sources: tuple[str, ...]  # OoD specs: the run's --ood first, then --also-ood

    def splits(self) -> Splits:
        return run_splits(self.config)

    def ood(self, spec: str, part: str, count: int) -> torch.Tensor:
        c = self.config
        return ood_images(spec, c.dataset, c.data_dir, c.classes, part, count, c.split_seed)

    def network(self, directory: Path) -> nn.Module:
        meta = Meta.from_json((directory / META).read_text(encoding="utf-8"), str(directory / META))
        return load_weights(directory, meta)  # takes standardised input, as the splits hold

    def search_figures(self, directory: Path) -> dict[str, float]:
        """Return the validation accuracy and OoD AUROC a search evaluation would record."""
        s, net = self.splits(), self.network(directory)
        x_out = self.ood(self.sources[0], "train", len(s.x_val))
        return {
            "val_accuracy": accuracy(net, s.x_val, s.y_val),
            "ood_auroc": ood_auroc(net, s.x_val, x_out, score=self.config.ood_score),
        }

    def test_aurocs(self, directory: Path) -> dict[str, float]:
        """Return the test images' AUROC against each OoD source's test part."""
        s, net = self.splits(), self.network(directory)
        return {
            spec: ood_auroc(
                net, s.x_test, self.ood(spec, "test", len(s.x_test)), score=self.config.ood_score
            )
            for spec in self.sources
        }


def layer_params(spec: ArchSpec, input_shape: tuple[int, int, int], classes: int,
                 layers: Sequence[int]) -> int:  # fmt: skip
    """Return the parameters of the given layers (by index) of spec's network."""
    network, slots = build_with_slots(spec, input_shape, classes)
    modules = [slots[i].module for i in layers]
    return sum(count_params(network[m]) for m in modules if m is not None)


def base_figures(base: Path, scorer: Scorer) -> dict[str, Any]:
    """Return the base's figures: accuracies, params (total and in the prunable layers), OoD AUROCs."""
    meta = Meta.from_json((base / META).read_text(encoding="utf-8"), str(base / META))
    spec = ArchSpec.from_json((base / SPEC).read_text(encoding="utf-8"))
    trained = json.loads((base / "metrics.json").read_text(encoding="utf-8"))
    layers = sorted(prunable_layers(spec))
    return {
        "phenotype": spec.canonical(),
        **scorer.search_figures(base),
        "holdout_accuracy": trained["val_accuracy"],  # final training: the held-out slice
        "test_accuracy": trained["test_accuracy"],
        "params": trained["params"],
        "prunable_layers": [i + 1 for i in layers],
        "pruned_layer_params": layer_params(spec, meta.input_shape, meta.num_classes, layers),
        "test_ood_auroc": scorer.test_aurocs(base),
    }


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def front_members(rows: list[dict[str, str]], meta: Meta, base: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Return the front (pareto.csv) with each member's pruned-layer params and cut against the base.

    The pruned layers are those that carry masks (with --layers, not every prunable one);
    the cut compares their params with the same layers of the base.
    """
    base_spec = parse_arch(base["phenotype"])
    before: dict[tuple[int, ...], int] = {}  # the base's params in each set of masked layers
    members = []
    for row in rows:
        unpruned, masks = split_masks(parse_arch(row["phenotype"]))
        layers = sorted(masks)
        spec = pruned_spec(unpruned, masks)
        pruned = layer_params(spec, meta.input_shape, meta.num_classes, layers)
        if tuple(layers) not in before:
            before[tuple(layers)] = layer_params(
                base_spec, meta.input_shape, meta.num_classes, layers
            )
        members.append({
            "rank": int(row["rank"]),
            "val_accuracy": float(row["val_accuracy"]),
            "params": int(row["params"]),
            "pruned_layer_params": pruned,
            "cut": 1 - pruned / before[tuple(layers)],
            "ood_auroc": _number(row["ood_auroc"]),
            "widths": {i + 1: sum(mask) for i, mask in sorted(masks.items())},
        })  # fmt: skip
    return members


def trained_members(run: Path, rows: list[dict[str, str]], scorer: Scorer) -> list[dict[str, Any]]:
    """Return each trained member's figures and whether its exported model has pareto.csv's params."""
    by_rank = {int(r["rank"]): r for r in rows}
    members = []
    for rank in trained_ranks(run):
        directory = run / "front" / str(rank)
        metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
        exported = count_params(load_model(directory))
        members.append({
            "name": f"front/{rank}",
            "holdout_accuracy": metrics["val_accuracy"],
            "test_accuracy": metrics["test_accuracy"],
            "params_reported": int(by_rank[rank]["params"]),
            "params_exported": exported,
            "test_ood_auroc": scorer.test_aurocs(directory),
        })  # fmt: skip
    return members


def trunk_replay(run: Path, config: RunConfig, count: int) -> dict[str, Any] | None:
    """Replay the run's first count trained evaluations: everything fine-tuned, the trunk frozen
    without and with the feature cache; return their mean validation accuracies and seconds."""
    if count <= 0:
        return None
    with Archive(rundir.archive_path(run, config)) as archive:
        records = [r for r in archive.records(fidelity_key(config)) if r.metrics.ok][:count]
    tasks = [
        task_for(config, r.phenotype, r.phenotype_hash, epochs=config.epochs, threads=1)
        for r in records
    ]
    variants = [
        Variant("fine-tune all", {"freeze_trunk": False}),
        Variant("trunk frozen", {"freeze_trunk": True}),
        Variant("trunk frozen, cached", {"freeze_trunk": True}, FeatureCache(config.feature_cache_mb)),
    ]  # fmt: skip
    timed = replay(tasks, variants)
    frozen, cached = timed["trunk frozen"], timed["trunk frozen, cached"]
    result = {
        name: {"seconds": t.seconds, "mean_val_accuracy": t.mean_val_accuracy()}
        for name, t in timed.items()
    }
    result["evaluations"] = len(tasks)
    result["cache_time_saved"] = share_saved(cached, frozen)
    result["time_saved_against_fine_tune_all"] = share_saved(cached, timed["fine-tune all"])
    result["cached_vs_uncached_largest_val_difference"] = largest_difference(cached, frozen)
    for name, t in timed.items():
        print(
            f"  replay, {name:22s}: {t.seconds:6.1f} s, mean val acc {_pct(t.mean_val_accuracy())} %"
        )
    saved = share_saved(cached, frozen)
    print(f"  the cache saves {'-' if saved is None else f'{saved:.0%}'} of the frozen-trunk "
          f"time over {len(tasks)} evaluations", flush=True)  # fmt: skip
    return result


def run_seed(args: argparse.Namespace, base_dir: Path, out: Path, seed: int,
             base: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Prune the base with one seed, train members, ensemble; return (the base's figures, the seed's summary)."""
    run = out / f"seed{seed}"
    prune_seed(args, base_dir, run, seed)
    config = rundir.load_run_config(run)
    scorer = Scorer(config, (args.ood, *args.also_ood))
    if base is None:
        base = base_figures(base_dir, scorer)
        print_base(base)
    rows = rundir.read_pareto(run)
    ensure_members(run, rows)
    if not (run / "ensemble" / "metrics.json").is_file():
        cli(["ensemble", str(run)])
    ensemble = json.loads((run / "ensemble" / "metrics.json").read_text(encoding="utf-8"))
    meta = Meta.from_json((base_dir / META).read_text(encoding="utf-8"), str(base_dir / META))
    front = front_members(rows, meta, base)
    trained = trained_members(run, rows, scorer)
    summary = summarise(seed, base, front, trained, ensemble)
    summary["trunk_replay"] = trunk_replay(run, config, args.cache_replay)
    print_seed(summary, base)
    rundir.write_atomic(run / "summary.json", json.dumps(summary, indent=2) + "\n")
    return base, summary


def summarise(seed: int, base: dict[str, Any], front: list[dict[str, Any]],
              trained: list[dict[str, Any]], ensemble: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Return one seed's numbers and how they stand against the targets."""
    floor = base["val_accuracy"] - VAL_SLACK
    accurate = [m for m in front if m["val_accuracy"] >= floor]
    smallest = max(accurate, key=lambda m: m["cut"], default=None)
    aurocs = [m for m in front if m["ood_auroc"] is not None]
    best_ood = max(aurocs, key=lambda m: m["ood_auroc"], default=None)
    best = ensemble["best_member"]
    return {
        "seed": seed,
        "front": front,
        "trained": trained,
        "ensemble": ensemble,
        "targets": {
            "cut_at_base_accuracy": None if smallest is None else smallest["cut"],
            "cut_member": None if smallest is None else smallest["rank"],
            "best_ood_auroc": None if best_ood is None else best_ood["ood_auroc"],
            "best_ood_member": None if best_ood is None else best_ood["rank"],
            "ood_auroc_over_base": None
            if best_ood is None
            else best_ood["ood_auroc"] - base["ood_auroc"],
            "test_ood_auroc_over_base": {
                spec: max((m["test_ood_auroc"][spec] for m in trained), default=value) - value
                for spec, value in base["test_ood_auroc"].items()
            },
            "params_match": all(m["params_reported"] == m["params_exported"] for m in trained),
            "ensemble_gain": ensemble["test_accuracy"] - best["test_accuracy"],
        },
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def print_base(base: dict[str, Any]) -> None:
    """Print the base's figures."""
    print(f"\nbase: {base['phenotype']}")
    print(
        f"  val acc {_pct(base['val_accuracy'])} % (run's validation split), held-out "
        f"{_pct(base['holdout_accuracy'])} %, test {_pct(base['test_accuracy'])} %"
    )
    print(
        f"  params {base['params']:,} in total, {base['pruned_layer_params']:,} in the prunable "
        f"layers {base['prunable_layers']}"
    )
    print(f"  OoD AUROC (validation against the objective's source) {base['ood_auroc']:.4f}")
    for spec, value in base["test_ood_auroc"].items():
        print(f"  OoD AUROC (test) against {spec}: {value:.4f}")
    print(flush=True)


def print_seed(s: dict[str, Any], base: dict[str, Any]) -> None:
    """Print one seed's front, trained members, ensemble and targets."""
    print(f"\nseed {s['seed']}: front ({len(s['front'])} members)")
    print(
        f"  {'rank':>4s} {'val acc':>8s} {'vs base':>8s} {'params':>8s} {'pruned-layer':>12s} "
        f"{'cut':>7s} {'OoD AUROC':>9s}  widths of the masked layers"
    )
    for m in s["front"]:
        d = 100 * (m["val_accuracy"] - base["val_accuracy"])
        auroc = "-" if m["ood_auroc"] is None else f"{m['ood_auroc']:.4f}"
        widths = " ".join(f"{k}:{v}" for k, v in m["widths"].items())
        print(
            f"  {m['rank']:>4d} {_pct(m['val_accuracy']):>8s} {d:>+8.2f} {m['params']:>8,} "
            f"{m['pruned_layer_params']:>12,} {_pct(m['cut']):>6s}% {auroc:>9s}  {widths}"
        )
    specs = list(base["test_ood_auroc"])
    print("  trained members: held-out and test accuracy, params (pareto.csv / load_model), "
          "test OoD AUROC against " + ", ".join(specs))  # fmt: skip
    for m in s["trained"]:
        aurocs = " ".join(f"{m['test_ood_auroc'][spec]:.4f}" for spec in specs)
        print(
            f"  {m['name']:>9s} {_pct(m['holdout_accuracy']):>7s} {_pct(m['test_accuracy']):>7s} "
            f"{m['params_reported']:>8,} / {m['params_exported']:<8,} {aurocs}"
        )
    e = s["ensemble"]
    best = e["best_member"]
    print(
        f"  ensemble of {len(e['members'])} ({e['vote']}): test {_pct(e['test_accuracy'])} %, "
        f"held-out {_pct(e['holdout_accuracy'])} %; best member {best['name']}: test "
        f"{_pct(best['test_accuracy'])} %, held-out {_pct(best['holdout_accuracy'])} %"
    )
    t = s["targets"]
    cut = (
        "no member within"
        if t["cut_member"] is None
        else f"{_pct(t['cut_at_base_accuracy'])} % (rank {t['cut_member']})"
    )
    print("  targets (reported, not checked):")
    print(
        f"    pruned-layer params cut at val acc >= base - {100 * VAL_SLACK:g} pt: {cut}; "
        f"target >= {100 * CUT_TARGET:g} %"
    )
    if t["best_ood_member"] is not None:
        print(
            f"    best OoD AUROC {t['best_ood_auroc']:.4f} (rank {t['best_ood_member']}) against "
            f"the base's {base['ood_auroc']:.4f}: {t['ood_auroc_over_base']:+.4f} (target >= 0)"
        )
    for spec, gain in t["test_ood_auroc_over_base"].items():
        print(
            f"    best trained member's test OoD AUROC against {spec} over the base's: {gain:+.4f}"
        )
    print(f"    exported params equal the reported ones: {'yes' if t['params_match'] else 'NO'}")
    print(
        f"    ensemble test accuracy over its best member's: {100 * t['ensemble_gain']:+.2f} pt "
        f"(target >= +{100 * ENSEMBLE_TARGET:g} pt)",
        flush=True,
    )


COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], Any], str], ...] = (
    ("front size", lambda s: len(s["front"]), "{:.0f}"),
    ("cut at base acc (%)", lambda s: _scaled(s["targets"]["cut_at_base_accuracy"]), "{:.1f}"),
    ("best OoD AUROC", lambda s: s["targets"]["best_ood_auroc"], "{:.4f}"),
    ("OoD AUROC - base's", lambda s: s["targets"]["ood_auroc_over_base"], "{:+.4f}"),
    ("params match (1 = yes)", lambda s: int(s["targets"]["params_match"]), "{:.0f}"),
    ("best member test (%)", lambda s: _scaled(s["ensemble"]["best_member"]["test_accuracy"]), "{:.2f}"),
    ("ensemble test (%)", lambda s: _scaled(s["ensemble"]["test_accuracy"]), "{:.2f}"),
    ("ensemble gain (pt)", lambda s: _scaled(s["targets"]["ensemble_gain"]), "{:+.2f}"),
)  # fmt: skip


def _scaled(x: float | None) -> float | None:
    return None if x is None else 100 * x


def medians(summaries: list[dict[str, Any]]) -> dict[str, float | None]:
    """Return the median of each column over the seeds (None where no seed has a value)."""
    result = {}
    for label, get, _ in COLUMNS:
        known = [v for v in (get(s) for s in summaries) if v is not None]
        result[label] = statistics.median(known) if known else None
    return result


def print_table(summaries: list[dict[str, Any]], median: dict[str, float | None]) -> None:
    """Print one column per seed and the median."""
    print(
        f"\n{'':26s}"
        + "".join(f"{'seed ' + str(s['seed']):>12s}" for s in summaries)
        + f"{'median':>12s}"
    )
    for label, get, fmt in COLUMNS:
        values = [get(s) for s in summaries] + [median[label]]
        print(
            f"{label:26s}" + "".join(f"{'-' if v is None else fmt.format(v):>12s}" for v in values)
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Train or reuse the base; prune it per seed; print each seed's figures and the median; save summary.json."""
    args = parse_args(argv)
    out = Path(args.out or ROOT / "runs" / f"bench-prune-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if (out / "summary.json").exists():
        raise SystemExit(f"{out} already holds a benchmark; choose another --out")
    gens = generations(args)
    print(
        f"{args.dataset} classes {args.classes}, OoD {args.ood} (objective) and "
        f"{', '.join(args.also_ood)}; {args.seeds} seed(s) of {args.population * (gens + 1)} "
        f"evaluations ({args.population} x {gens + 1}), {args.epochs} fine-tuning epoch(s), "
        f"{args.workers} workers; out {out}",
        flush=True,
    )
    base_dir = out / "base"
    train_base(args, base_dir)
    base: dict[str, Any] | None = None
    summaries = []
    for seed in range(args.seed, args.seed + args.seeds):
        print(f"\nseed {seed}", flush=True)
        base, summary = run_seed(args, base_dir, out, seed, base)
        summaries.append(summary)
    median = medians(summaries)
    print_table(summaries, median)
    command = "python benchmarks/prune.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = {"command": command, "base": base, "seeds": summaries, "median": median}
    rundir.write_atomic(out / "summary.json", json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
