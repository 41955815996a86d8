"""Command-line options that set RunConfig fields: one table, defaults and help read from RunConfig.

`run` takes every option here (an absent flag leaves the config file's value);
the grammar commands take the search-space ones, under the same names and
with the same defaults, so a grammar is sampled the way a run initialises it;
`train` takes the data-view ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any

from ge_nas.config import (
    EXECUTORS,
    INITIALISERS,
    MODES,
    OOD_SCORES,
    REPRESENTATIONS,
    RunConfig,
    field_default,
)
from ge_nas.objectives import OBJECTIVES


@dataclass(frozen=True)
class Option:
    """A flag that sets one RunConfig field; '{default}' in help is replaced by the field's default."""

    flag: str
    field: str
    kind: type
    help: str

    @property
    def dest(self) -> str:
        """Return the argparse destination (distinct from the field, so an absent flag is None)."""
        return self.flag[2:].replace("-", "_") + "_opt"


def help_text(option: Option) -> str:
    """Return an option's help with its default filled in from RunConfig."""
    return option.help.format(default=field_default(option.field))


SEARCH_SPACE_OPTIONS = (
    Option(
        "--representation",
        "representation",
        str,
        "genome: ge (integer codons), sge (structured GE) or bits (ceil(log2 n) bits per "
        "choice, read mod n) (default {default})",
    ),
    Option(
        "--seed",
        "seed",
        int,
        "seed of initialisation, variation and each evaluation (default {default})",
    ),
    Option(
        "--init",
        "init",
        str,
        f"initialiser: {', '.join(INITIALISERS)} (default {{default}}: ramped half-and-half)",
    ),
    Option(
        "--init-max-depth",
        "init_max_depth",
        int,
        "deepest initial derivation tree (default: the start rule's least depth + 6)",
    ),
    Option(
        "--max-depth",
        "max_depth",
        int,
        "deepest derivation tree; deeper is invalid (default {default})",
    ),
    Option(
        "--max-wraps",
        "max_wraps",
        int,
        "times the mapper may wrap around the genome (default {default})",
    ),
    Option(
        "--codon-size",
        "codon_size",
        int,
        "ge codons are drawn from 0..codon-size-1 (default {default})",
    ),
)

DATA_VIEW_OPTIONS = (
    Option(
        "--classes",
        "classes",
        str,
        "only these classes, relabelled 0..n-1 in ascending order: labels and ranges, "
        "e.g. 5-9 or 0,2,4 (default: all)",
    ),
    Option(
        "--shots",
        "shots",
        int,
        "few-shot: train on K images per class, chosen with --split-seed; finalists too "
        "(default: all)",
    ),
    Option(
        "--val-shots",
        "val_shots",
        int,
        "with --shots: validate on V images per class from the rest "
        "(default: --val-fraction of the rest)",
    ),
)

RUN_OPTIONS = (
    Option("--data-dir", "data_dir", str, "directory holding the data set's files"),
    Option("--out", "out", str, "run directory (default runs/<grammar>-<dataset>-<time>)"),
    Option(
        "--backbone",
        "backbone",
        str,
        "transfer learning: a trained ge_nas model directory (front/N, best/, what `train` "
        "wrote) whose blocks backbone(keep=K, freeze=F) layers take",
    ),
    *SEARCH_SPACE_OPTIONS,
    Option(
        "--mode",
        "mode",
        str,
        f"{', '.join(MODES)}: steady gives a free worker a child at once, no barrier (default {{default}})",
    ),
    Option(
        "--prescreen",
        "prescreen",
        int,
        "steady state: breed K pairs of children per pair trained; a surrogate picks the pair (default {default}: off)",
    ),
    Option("--population", "population", int, "individuals per generation (default {default})"),
    Option(
        "--generations", "generations", int, "generations after the initial one (default {default})"
    ),
    Option(
        "--epochs",
        "epochs",
        int,
        "training epochs per evaluation during the search (default {default})",
    ),
    Option(
        "--fidelity",
        "fidelity",
        str,
        "fixed, or sh: successive halving, the best 1/eta train eta times longer (default {default})",
    ),
    Option(
        "--sh-eta",
        "sh_eta",
        int,
        "successive halving: keep 1/eta per rung, eta times the epochs (default {default})",
    ),
    Option(
        "--sh-rungs",
        "sh_rungs",
        int,
        "successive halving: number of rungs, epochs x eta^rung (default {default})",
    ),
    Option(
        "--train-subset",
        "train_subset",
        float,
        "train on this fraction (<=1) or count (>1) of the training split (default: all)",
    ),
    Option(
        "--val-fraction",
        "val_fraction",
        float,
        "fraction of the training data held out for validation (default {default})",
    ),
    *DATA_VIEW_OPTIONS,
    Option(
        "--eval-timeout",
        "eval_timeout_s",
        float,
        "seconds one evaluation may train before it is stopped (default: no limit)",
    ),
    Option(
        "--max-params",
        "max_params",
        int,
        "reject networks with more parameters before training (default {default:_}; 0: no limit)",
    ),
    Option(
        "--max-flops",
        "max_flops",
        int,
        "reject networks with more FLOPs per sample before training (default {default:_}; 0: no limit)",
    ),
    Option(
        "--noise-sigma",
        "noise_sigma",
        float,
        "robustness objective: Gaussian input noise, in normalized units (default {default})",
    ),
    Option(
        "--ood",
        "ood",
        str,
        "ood_auroc objective's out-of-distribution images: DATASET:classes=LIST (held out, e.g. "
        "digits:classes=8,9 with --classes 0-7), DATASET, npz:PATH (array x) or noise",
    ),
    Option(
        "--ood-score",
        "ood_score",
        str,
        f"ood_auroc objective's score of the logits: {', '.join(OOD_SCORES)} "
        "(max softmax probability, or logsumexp) (default {default})",
    ),
    Option(
        "--device",
        "device",
        str,
        "auto, cpu, cuda or cuda:N (default {default}: a GPU when torch sees one, else the CPU)",
    ),
    Option(
        "--bf16",
        "bf16",
        bool,
        "train under bfloat16 autocast (fast on GPUs and CPUs with native bf16, slow on others)",
    ),
    Option(
        "--feature-cache-mb",
        "feature_cache_mb",
        int,
        "per worker: keep the features of frozen first layers (frozen backbone blocks, a pruning "
        "run's frozen trunk) up to this many MB, computed once (default {default}; 0: off)",
    ),
    Option(
        "--no-test-in-search",
        "test_in_search",
        bool,
        "score the test set only for finalists, not at every search evaluation",
    ),
    Option(
        "--final-epochs",
        "final_epochs",
        int,
        "epochs for retraining the finalists on train+validation (default {default})",
    ),
    Option(
        "--finalists",
        "finalists",
        int,
        "front members retrained at the end, best first, one per structure (default {default}; 0: none)",
    ),
    Option(
        "--screen",
        "screen",
        int,
        "give the M most accurate networks of the search, on the front or not, one epoch of the "
        "final training, and retrain the --finalists best of them on the held-out slice "
        "(default {default}: off, the finalists are the front's)",
    ),
    Option(
        "--final-holdout",
        "final_holdout",
        float,
        "share of the validation split the finalists never train on; it chooses best/ (default {default})",
    ),
    Option("--workers", "workers", int, "worker processes (default: one per core)"),
    Option(
        "--oversubscribe", "oversubscribe", bool, "allow more local worker processes than cores"
    ),
    Option(
        "--executor",
        "executor",
        str,
        f"{', '.join(EXECUTORS)} (default {{default}}: processes when workers > 1)",
    ),
    Option(
        "--scheduler",
        "scheduler",
        str,
        "Dask scheduler address tcp://HOST:PORT for --executor dask (default: a local cluster)",
    ),
    Option(
        "--archive",
        "archive",
        str,
        "archive file shared with other runs: no phenotype is trained twice across them",
    ),
    Option(
        "--split-seed",
        "split_seed",
        int,
        "seed of the validation split, fixed so runs compare (default {default})",
    ),
    Option(
        "--tournament-size",
        "tournament_size",
        int,
        "tournament size for single-objective selection (default {default})",
    ),
    Option(
        "--accuracy-floor",
        "accuracy_floor",
        float,
        "with val_accuracy and another objective: a network below chance + ACCURACY_FLOOR x "
        "(100 %% - chance) validation accuracy has not learned and ranks after every network "
        "that has, e.g. 0.1 (default {default}: off)",
    ),
    Option(
        "--elites",
        "elites",
        int,
        "best individuals kept unchanged in single-objective search (default {default})",
    ),
    Option(
        "--mutation-prob",
        "mutation_prob",
        float,
        "per-codon mutation probability; bits: per-bit flip (default: 1 / codons used)",
    ),
    Option(
        "--individual-mutation-prob",
        "individual_mutation_prob",
        float,
        "probability that a child is mutated at all; --mutation-prob then acts per codon "
        "(default {default}: every child)",
    ),
    Option(
        "--crossover",
        "crossover",
        str,
        "crossover: one-point, two-point or uniform (default: one-point for ge, two-point "
        "for bits, uniform for sge)",
    ),
    Option(
        "--crossover-prob",
        "crossover_prob",
        float,
        "probability that a pair of parents is crossed (default {default})",
    ),
)

PRUNE_OPTIONS = (  # `ge_nas prune` only
    Option(
        "--no-freeze-trunk",
        "freeze_trunk",
        bool,
        "fine-tune the trunk too (the layers before the first masked one); by default it keeps "
        "the base's weights and batch-norm statistics and its features are computed once",
    ),
)

OBJECTIVES_HELP = (
    f"comma list from {', '.join(OBJECTIVES)} (default {','.join(field_default('objectives'))})"
)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add every RUN_OPTIONS flag; an absent flag is None, so the config file's value stays."""
    add_options(parser, RUN_OPTIONS)


def add_options(
    parser: argparse.ArgumentParser, options: tuple[Option, ...], note: str = ""
) -> None:
    """Add options as flags whose absence is None (help ends with note, e.g. where else a default comes from)."""
    for option in options:
        text = help_text(option)
        if note:  # inside the closing parenthesis of "(default ...)"
            text = text[:-1] + note + ")" if text.endswith(")") else text + note
        if option.kind is bool:  # a switch; --no-X sets False
            const = not option.flag.startswith("--no-")
            parser.add_argument(
                option.flag, action="store_const", const=const, dest=option.dest, help=text
            )
        else:
            metavar = option.flag[2:].replace("-", "_").upper()
            parser.add_argument(
                option.flag, type=option.kind, dest=option.dest, metavar=metavar, help=text
            )


def add_search_space_options(parser: argparse.ArgumentParser) -> None:
    """Add the SEARCH_SPACE_OPTIONS with RunConfig's defaults (for the grammar commands)."""
    for option in SEARCH_SPACE_OPTIONS:
        metavar = option.flag[2:].replace("-", "_").upper()
        choices = {"init": INITIALISERS, "representation": REPRESENTATIONS}.get(option.field)
        parser.add_argument(
            option.flag,
            type=option.kind,
            dest=option.field,
            default=field_default(option.field),
            choices=choices,
            metavar=metavar,
            help=help_text(option),
        )


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Return the RunConfig fields that flags set (None where a flag is absent)."""
    return {option.field: getattr(args, option.dest) for option in RUN_OPTIONS}


def prune_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Return the RunConfig fields that prune's own flags set (None where a flag is absent)."""
    return {option.field: getattr(args, option.dest) for option in PRUNE_OPTIONS}


def config_defaults() -> argparse.Namespace:
    """Return RunConfig's defaults as attributes (training one network needs no grammar)."""
    return argparse.Namespace(**{f.name: field_default(f.name) for f in fields(RunConfig)})
