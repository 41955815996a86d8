"""Which search fidelity ranks networks as a longer training does? Spearman correlation per fidelity, and its cost.

    python benchmarks/fidelity.py [--networks 24] [--fidelities 1x2000,1x4000,2x4000,1x8000,2x8000]
                                  [--reference 4x20000] [--workers 2] [--out runs/bench-fidelity-<time>]
    python benchmarks/fidelity.py --archive OUT/seed1/ge.sqlite --archive OUT/seed1/random.sqlite --top 4 ...
    python benchmarks/fidelity.py --phenotypes nets.txt ...

It samples --networks distinct phenotypes of the grammar (grammars/cnn_fmnist.bnf
by default) at random, as random search would; or takes the networks of
--phenotypes FILE (one phenotype per line; blank lines and # comments skipped);
or, with --archive (repeatable), the --top most accurate structures within
--target-params of each finished search (a benchmarks/fmnist.py ge.sqlite or
random.sqlite; each archive one search, at one fidelity): the candidates
`fmnist.py --screen K` screens for its final training, among which a
fidelity must rank well. It trains each at every
fidelity (EPOCHSxIMAGES: epochs over that many training images) and at the
reference fidelity, all scored on the same validation split. Per fidelity it
prints the Spearman and Kendall rank correlation of validation accuracy with
the reference's, the training seconds per network, and how the networks that
augment their data rank there against the reference (mean rank shift: negative
means the fidelity ranks them worse than the reference does, a bias against
augmentation). Each result is appended to results.jsonl as it arrives, so an
interrupted run keeps what it trained. It reports what it measured.

With --repeats R, every cheap fidelity trains each network R times with
different seeds (the reference once): the correlations are then of the mean
over the repeats, and two more columns say how much of a fidelity's accuracy
is seed noise: the mean standard deviation over a network's repeats, and the
noise share, that variance over the variance of single trainings across all
networks (0: the seed never matters; 1: the network never does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import fmnist
from scipy.stats import kendalltau, rankdata, spearmanr

from ge_nas.arch import parse_arch
from ge_nas.config import RunConfig
from ge_nas.errors import ArchError
from ge_nas.executors import make_executor
from ge_nas.grammar import load_grammar
from ge_nas.grammar.initialise import random_population
from ge_nas.grammar.mapper import map_genome
from ge_nas.search.evaluator import task_for

ROOT = Path(__file__).resolve().parent.parent


def parse_fidelity(text: str) -> tuple[int, int]:
    """Return (epochs, images) from 'EPOCHSxIMAGES', both at least 1."""
    try:
        epochs, images = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"fidelity {text!r}: expected EPOCHSxIMAGES, e.g. 2x8000") from None
    if epochs < 1 or images < 1:
        raise SystemExit(f"fidelity {text!r}: epochs and images must be at least 1")
    return epochs, images


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the benchmark's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grammar", default=str(ROOT / "grammars" / "cnn_fmnist.bnf"))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--classes", help="only these classes, e.g. 5-9 or 0,2,4 (default: all)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--networks", type=int, help="networks sampled from the grammar (the default: 24)"
    )
    source.add_argument("--phenotypes", type=Path, help="the networks: one phenotype per line")
    source.add_argument(
        "--archive",
        type=Path,
        action="append",
        help="the networks: a finished search's --top best within --target-params (repeatable)",
    )
    p.add_argument("--top", type=int, help="with --archive: networks per archive (default 4)")
    p.add_argument(
        "--target-params",
        type=int,
        help="with --archive: the most parameters a network may have (default 50000)",
    )
    p.add_argument("--fidelities", default="1x2000,1x4000,2x4000,1x8000,2x8000")
    p.add_argument("--reference", default="4x20000")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="trainings per network at each cheap fidelity, with different seeds (default 1)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", help="a new or empty output directory (default runs/bench-fidelity-<time>)"
    )
    return p.parse_args(argv)


def sample_phenotypes(config: RunConfig, n: int) -> list[str]:
    """Return n distinct phenotypes of the grammar, sampled as random search samples them."""
    grammar = load_grammar(config.grammar)
    rng, found = random.Random(config.seed), dict[str, str]()
    for genome in random_population(
        grammar, rng, 4 * n, codon_size=config.codon_size, max_depth=config.max_depth
    ):
        text = map_genome(grammar, genome, max_depth=config.max_depth).phenotype
        if text is not None:
            spec = parse_arch(text)
            found.setdefault(spec.hash(), spec.canonical())
        if len(found) == n:
            break
    return list(found.values())


def read_phenotypes(path: Path) -> list[str]:
    """Return the distinct networks of a file, one phenotype per line, in canonical text.

    Blank lines and lines starting with # are skipped; a line that does not
    parse stops the benchmark with its file:line and the parser's message.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SystemExit(f"--phenotypes {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SystemExit(f"--phenotypes {path}: not a UTF-8 text file") from None
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            spec = parse_arch(line)
        except ArchError as exc:
            raise SystemExit(f"{path}:{number}: not a phenotype: {exc}") from None
        found.setdefault(spec.hash(), spec.canonical())
    if not found:
        raise SystemExit(f"--phenotypes {path}: no phenotype in it")
    return list(found.values())


def archive_tops(paths: Sequence[Path], top: int, target_params: int) -> dict[str, list[str]]:
    """Return each finished search's top most accurate structures within target_params.

    Maps each network's phenotype (once, in first-seen order) to the archives
    whose top it is in.
    """
    found: dict[str, tuple[str, list[str]]] = {}  # phenotype hash: (its text, archives)
    for path in paths:
        tops = fmnist.SearchResult(fmnist.searched(path), 0.0, 0.0).top_within(target_params, top)
        if not tops:
            raise SystemExit(f"--archive {path}: no trained network within {target_params} params")
        for r in tops:
            found.setdefault(r.phenotype_hash, (r.phenotype, []))[1].append(str(path))
    return dict(found.values())


def choose_networks(args: argparse.Namespace, config: RunConfig) -> dict[str, list[str]]:
    """Return the networks to train, each with where it came from: --phenotypes, --archive, or the grammar."""
    if not args.archive and (args.top is not None or args.target_params is not None):
        raise SystemExit("--top and --target-params choose --archive networks; give --archive")
    if args.phenotypes is not None:
        return {text: [str(args.phenotypes)] for text in read_phenotypes(args.phenotypes)}
    if args.archive:
        return archive_tops(args.archive, args.top or 4, args.target_params or 50_000)
    sampled = sample_phenotypes(config, 24 if args.networks is None else args.networks)
    return {text: [str(config.grammar)] for text in sampled}


def main(argv: Sequence[str] | None = None) -> int:
    """Train every chosen network at every fidelity; print the correlations with the reference."""
    args = parse_args(argv)
    for name in ("repeats", "networks", "top", "target_params"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} {value}: expected at least 1")
    out = Path(args.out or ROOT / "runs" / f"bench-fidelity-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose another --out")
    fidelities = [f.strip() for f in args.fidelities.split(",") if f.strip()]
    levels = [*fidelities, args.reference]
    for level in levels:
        parse_fidelity(level)  # a typo stops the benchmark before it trains anything
    if len(set(levels)) < len(levels):
        raise SystemExit(f"fidelities {', '.join(levels)}: each once, the reference not among them")
    base = RunConfig(
        args.grammar, dataset=args.dataset, data_dir=args.data_dir, classes=args.classes, seed=args.seed,
        workers=args.workers, eval_timeout_s=None, test_in_search=False,
    )  # fmt: skip
    sources = choose_networks(args, base)
    phenotypes = list(sources)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(phenotypes)} networks x {len(levels)} fidelities; out {out}", flush=True)
    executor = make_executor(base.executor, args.workers)
    tasks, labels = [], []
    for level in reversed(levels):  # the longest trainings first, so the workers finish together
        epochs, images = parse_fidelity(level)
        for repeat in range(1 if level == args.reference else args.repeats):
            config = replace(base, train_subset=images, seed=args.seed + repeat)
            for i, text in enumerate(phenotypes):
                key = parse_arch(text).hash()
                tasks.append(task_for(config, text, key, epochs=epochs, threads=executor.threads))
                labels.append((level, i))
    results: dict[str, dict[int, list[tuple[float, float, int]]]] = {level: {} for level in levels}
    try:
        with (out / "results.jsonl").open("a") as log:
            for index, outcome in executor.run(tasks):
                level, i = labels[index]
                m = outcome.metrics
                row = {"fidelity": level, "network": i, "phenotype": phenotypes[i]}
                row |= {"from": sources[phenotypes[i]]}
                row |= {"ok": m.ok, "val_accuracy": m.val_accuracy, "seconds": m.train_seconds}
                row |= {"params": m.params, "error": m.failure() if not m.ok else ""}
                log.write(json.dumps(row) + "\n")
                log.flush()
                if m.ok:
                    trained = (m.val_accuracy, m.train_seconds, m.params or 0)
                    results[level].setdefault(i, []).append(trained)
    finally:
        executor.close()
    print_table(results, fidelities, args.reference, phenotypes)
    return 0


def noise(runs: dict[int, list[tuple[float, float, int]]]) -> tuple[float, float] | None:
    """Return (mean seed standard deviation, noise share) of the networks trained more than once, or None."""
    repeated = [[acc for acc, _, _ in r] for r in runs.values() if len(r) > 1]
    if len(repeated) < 2:
        return None
    within = statistics.mean(statistics.variance(accs) for accs in repeated)
    total = statistics.variance([acc for accs in repeated for acc in accs])
    spread = statistics.mean(statistics.stdev(accs) for accs in repeated)
    return spread, within / total if total else 0.0


def print_table(
    results: dict[str, dict[int, list[tuple[float, float, int]]]],
    fidelities: list[str],
    reference: str,
    phenotypes: list[str],
) -> None:
    """Print, per fidelity, its rank correlation with the reference, its cost, its augmentation bias and its seed noise."""
    ref = {i: runs[0] for i, runs in results[reference].items()}
    augmented = {i for i, text in enumerate(phenotypes) if "aug=none" not in text}
    print(f"\nreference {reference}: {len(ref)} networks trained")
    print(
        f"{'fidelity':>10s}{'n':>5s}{'spearman':>10s}{'kendall':>9s}{'s/net':>8s}{'aug shift':>11s}"
        f"{'seed sd':>9s}{'noise':>7s}"
    )
    for level in [*fidelities, reference]:
        common = sorted(set(results[level]) & set(ref))
        if len(common) < 3:
            print(f"{level:>10s}{len(common):5d}  too few networks trained")
            continue
        low = [statistics.mean(acc for acc, _, _ in results[level][i]) for i in common]
        high = [ref[i][0] for i in common]
        rho, tau = spearmanr(low, high).statistic, kendalltau(low, high).statistic
        seconds = statistics.mean(sec for i in common for _, sec, _ in results[level][i])
        low_rank, high_rank = rankdata(low), rankdata(high)
        shift = [low_rank[k] - high_rank[k] for k, i in enumerate(common) if i in augmented]
        bias = f"{statistics.mean(shift):+.1f}" if shift else "-"
        seeds = noise(results[level])
        spread = f"{seeds[0]:9.4f}{seeds[1]:7.2f}" if seeds else f"{'-':>9s}{'-':>7s}"
        print(f"{level:>10s}{len(common):5d}{rho:10.3f}{tau:9.3f}{seconds:8.1f}{bias:>11s}{spread}")


if __name__ == "__main__":
    sys.exit(main())
