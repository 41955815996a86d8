"""The run configuration: one frozen dataclass, the only home of defaults.

It is read from TOML (`--config`), overridden by command-line flags, checked
once, and written whole into the run directory with the command line.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ge_nas.errors import ConfigError, did_you_mean
from ge_nas.objectives import OBJECTIVES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
EXECUTORS = ("auto", "serial", "processes", "dask")
INITIALISERS = ("sensible", "random", "pi_grow", "density")  # density: for ge_nas prune's masks
FIDELITIES = ("fixed", "sh")
MODES = (
    "generational",
    "steady",
)  # steady: no generational barrier, a free worker gets a child at once
# codons (GE), one list of choices per rule (structured GE), or ceil(log2 n) bits per choice
REPRESENTATIONS = ("ge", "sge", "bits")
CROSSOVERS = ("one-point", "two-point", "uniform")  # GE, bits: over used codons; SGE: over rules
OOD_SCORES = ("msp", "energy")  # max softmax probability, or logsumexp of the logits


def usable_cores() -> int:
    """Return the cores this process may run on.

    Its CPU affinity where the OS reports one (taskset, a container's cpuset, a
    batch scheduler's allocation), else os.cpu_count(): a process pinned to a
    few cores of a larger machine that started a worker or a torch thread per
    machine core would run several threads per core, which costs 2 to 4 times
    the time.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return len(affinity(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a search run."""

    grammar: str
    dataset: str = "digits"
    data_dir: str | None = None
    out: str | None = None  # default: runs/<grammar>-<dataset>-<time>
    seed: int = 0
    population: int = 12
    generations: int = 6
    objectives: tuple[str, ...] = ("val_accuracy", "params")
    epochs: int = 8
    mode: str = "generational"
    prescreen: int = (
        0  # steady state: breed this many pairs per pair trained, keep the surrogate's best
    )
    fidelity: str = "fixed"  # sh: successive halving, epochs x eta^rung for the best 1/eta^rung
    sh_eta: int = 3
    sh_rungs: int = 3
    train_subset: float | None = None  # fraction in (0, 1] or a count > 1
    val_fraction: float = 0.2
    split_seed: int = (
        0  # fixed by default so validation sets, and archives, are comparable across runs
    )
    # Data views: a subset of the classes, relabelled 0..n-1 in ascending order ("5-9", "0,2,4"),
    # and few-shot training: K images per class, with V validation images per class or
    # --val-fraction of what the shots leave.
    classes: str | None = None
    shots: int | None = None
    val_shots: int | None = None
    eval_timeout_s: float | None = None
    # Budgets a 2-core CPU can train; 0 lifts a limit. Larger networks are rejected before training.
    max_params: int = 5_000_000
    max_flops: int = 200_000_000  # per sample, 2 x multiply-accumulates
    noise_sigma: float = 0.1  # the robustness objective's Gaussian input noise, in normalized units
    # The ood_auroc objective's out-of-distribution images (see parse_ood) and their score.
    ood: str | None = None
    ood_score: str = "msp"
    device: str = "auto"  # auto, cpu, cuda or cuda:N; auto: a GPU when torch sees one
    bf16: bool = False  # bfloat16 autocast while training
    test_in_search: bool = (
        True  # score the test set at every search evaluation (reported only; off saves time)
    )
    # Per worker process: features of frozen first layers (transfer: frozen backbone blocks;
    # prune --freeze-trunk: the trunk) computed once and kept, up to this many MB; 0: off.
    feature_cache_mb: int = 256
    final_epochs: int = 15
    finalists: int = 3
    # Screening: this many of the most accurate networks the search trained (one per structure,
    # on the front or not) get one epoch of the final training; the best `finalists` of them by
    # held-out accuracy are retrained. 0 (or <= finalists): the finalists are the front's.
    screen: int = 0
    # Share of the validation split the finalists never train on; it chooses best/ among them.
    final_holdout: float = 0.5
    workers: int = 0  # 0: one per core
    oversubscribe: bool = False  # allow more local workers than cores
    executor: str = "auto"
    scheduler: str | None = None  # Dask scheduler address, tcp://HOST:PORT; none: a local cluster
    archive: str | None = None  # shared archive file; default: archive.sqlite in the run directory
    representation: str = "ge"
    init: str = "sensible"
    init_max_depth: int | None = None  # default: the start rule's least depth + 6 (INIT_DEPTH_SPAN)
    max_depth: int = 40
    max_wraps: int = 0
    codon_size: int = 100_000
    # One of CROSSOVERS; None: one-point for GE, two-point for bits, uniform for SGE.
    crossover: str | None = None
    crossover_prob: float = 0.9
    # ge_nas prune: the trained model directory whose units the run's masks keep or remove
    # (phenotypes with keep masks are pruned copies of it, fine-tuned for --epochs, 0 allowed),
    # and the SHA-256 (first 16 hex) of its model.pt, part of every archive key.
    prune_base: str | None = None
    prune_base_sha: str | None = None
    # ge_nas prune: fine-tune only the layers from the first masked one on; the unpruned trunk
    # before it keeps the base's weights, stays in eval mode, and its features can be cached.
    # False here (runs written before it resume unchanged); `ge_nas prune` sets it (PRUNE_DEFAULTS).
    freeze_trunk: bool = False
    mutation_prob: float | None = None  # per codon; default 1 / codons used
    individual_mutation_prob: float = 1.0  # the chance a child is mutated at all (DEAP's mutpb)
    tournament_size: int = 2
    # Multi-objective survival with val_accuracy: a network below chance + this share of the way
    # from chance to 100 % has not learned; it ranks after every network that has. 0: off (the
    # default: on the benchmarks it did not pay, README "Search levers, measured").
    accuracy_floor: float = 0.0
    elites: int = 1
    # A trained ge_nas model directory whose blocks `backbone(keep=K, freeze=F)` layers take.
    backbone: str | None = None
    command: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("grammar", "dataset"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(
                    f"--{name} must be a non-empty string, got {getattr(self, name)!r}"
                )
        if self.prune_base is None or self.epochs != 0:  # pruning: 0 epochs = no fine-tune
            _positive_int("epochs", self.epochs)
        self._check_prune_base()
        for name in (
            "population",
            "generations",
            "sh_rungs",
            "final_epochs",
            "max_depth",
            "codon_size",
            "tournament_size",
        ):
            _positive_int(name, getattr(self, name))
        for name in (
            "seed",
            "split_seed",
            "finalists",
            "screen",
            "workers",
            "max_wraps",
            "elites",
            "max_params",
            "max_flops",
            "prescreen",
            "feature_cache_mb",
        ):
            _non_negative_int(name, getattr(self, name))
        for name in ("init_max_depth",):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in (
            "val_fraction",
            "crossover_prob",
            "mutation_prob",
            "individual_mutation_prob",
            "train_subset",
            "eval_timeout_s",
            "final_holdout",
            "accuracy_floor",
        ):
            _number(name, getattr(self, name))
        _choice("executor", self.executor, EXECUTORS)
        _choice("init", self.init, INITIALISERS)
        _choice("fidelity", self.fidelity, FIDELITIES)
        _choice("mode", self.mode, MODES)
        if self.prescreen and self.mode != "steady":
            raise ConfigError(
                "--prescreen works with --mode steady; add it, or leave --prescreen out"
            )
        _choice("representation", self.representation, REPRESENTATIONS)
        if self.crossover is not None:
            _choice("crossover", self.crossover, CROSSOVERS)
        if isinstance(self.sh_eta, bool) or not isinstance(self.sh_eta, int) or self.sh_eta < 2:
            raise ConfigError(f"--sh-eta must be an integer of at least 2, got {self.sh_eta!r}")
        if self.backbone is not None and (not isinstance(self.backbone, str) or not self.backbone):
            raise ConfigError(f"--backbone must be a model directory path, got {self.backbone!r}")
        if self.backbone is not None and self.prescreen:
            raise ConfigError(
                "--prescreen does not work with --backbone yet (its surrogate builds networks "
                "without the backbone); leave one of them out"
            )
        self._check_objectives()
        self._check_fractions()
        self._check_training()
        if self.classes is not None:  # canonical, so that "0,1,2" and "0-2" are one view
            object.__setattr__(self, "classes", classes_text(parse_classes(self.classes)))
        check_data_view(self.shots, self.val_shots, self.train_subset)
        self._check_ood()

    def _check_ood(self) -> None:
        """Check --ood and --ood-score, and that they go with the ood_auroc objective; canonicalise --ood."""
        _choice("ood_score", self.ood_score, OOD_SCORES)
        if self.ood is not None:
            object.__setattr__(self, "ood", parse_ood(self.ood).text())
        if "ood_auroc" in self.objectives and self.ood is None:
            raise ConfigError(
                "--objectives ood_auroc needs --ood SPEC, the out-of-distribution images: "
                f"{OOD_FORMS}"
            )
        if self.ood is not None and "ood_auroc" not in self.objectives:
            raise ConfigError(
                f"--ood {self.ood}: ood_auroc is not among --objectives "
                f"{','.join(self.objectives)}; add it, or leave --ood out"
            )

    def _check_prune_base(self) -> None:
        if (self.prune_base is None) != (self.prune_base_sha is None):
            raise ConfigError(
                "prune_base and prune_base_sha go together (a base model directory and the "
                "SHA-256 of its model.pt); `ge_nas prune` writes both"
            )
        if self.freeze_trunk is True and self.prune_base is None:
            raise ConfigError(
                "freeze_trunk goes with `ge_nas prune` (the trunk is the base model's layers "
                "before the first mask); leave it out of other runs"
            )
        sha = self.prune_base_sha
        if sha is not None and not re.fullmatch(r"[0-9a-f]{16}", str(sha)):
            raise ConfigError(
                f"prune_base_sha must be 16 lowercase hex digits (of model.pt's SHA-256), got {sha!r}"
            )

    def _check_objectives(self) -> None:
        if not self.objectives:
            raise ConfigError(f"--objectives needs at least one of {', '.join(OBJECTIVES)}")
        for name in self.objectives:
            _choice("objectives", name, OBJECTIVES)
        if not {"val_accuracy", "val_loss"} & set(self.objectives):
            raise ConfigError(
                "--objectives must include val_accuracy or val_loss (what the networks are chosen for)"
            )
        if len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"--objectives lists a name twice: {','.join(self.objectives)}")

    def _check_training(self) -> None:
        check_device(self.device)
        for name, flag in (
            ("bf16", "--bf16"),
            ("test_in_search", "test_in_search (--no-test-in-search)"),
            ("freeze_trunk", "freeze_trunk (--no-freeze-trunk)"),
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, name)!r}")
        _number("noise_sigma", self.noise_sigma)
        if self.noise_sigma < 0:
            raise ConfigError(
                f"--noise-sigma must be a standard deviation >= 0, got {self.noise_sigma}"
            )

    def _check_fractions(self) -> None:
        if not 0.0 <= self.accuracy_floor < 1.0:
            raise ConfigError(f"--accuracy-floor must be in [0, 1), got {self.accuracy_floor}")
        if not 0.0 <= self.final_holdout < 1.0:
            raise ConfigError(f"--final-holdout must be in [0, 1), got {self.final_holdout}")
        if self.screen > self.finalists > 0 and self.final_holdout == 0 and self.shots is None:
            raise ConfigError(
                f"--screen {self.screen} ranks its candidates on the held-out slice, and "
                "--final-holdout 0 leaves none (the finalists train on the whole validation split); "
                "set --final-holdout above 0, or leave --screen out"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ConfigError(
                f"--crossover-prob must be between 0 and 1, got {self.crossover_prob}"
            )
        if self.mutation_prob is not None and not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"--mutation-prob must be between 0 and 1, got {self.mutation_prob}")
        if not 0.0 <= self.individual_mutation_prob <= 1.0:
            raise ConfigError(
                "--individual-mutation-prob must be between 0 and 1, "
                f"got {self.individual_mutation_prob}"
            )
        if self.train_subset is not None and self.train_subset <= 0:
            raise ConfigError(
                f"--train-subset must be a fraction in (0, 1] or a count, got {self.train_subset}"
            )
        if (
            self.train_subset is not None and self.train_subset > 1
        ):  # a count: 8000 from the command line arrives as 8000.0
            if self.train_subset != int(self.train_subset):
                raise ConfigError(
                    f"--train-subset {self.train_subset}: above 1 it is a count of samples and must be whole"
                )
            object.__setattr__(self, "train_subset", int(self.train_subset))
        if self.eval_timeout_s is not None and self.eval_timeout_s <= 0:
            raise ConfigError(f"--eval-timeout must be positive seconds, got {self.eval_timeout_s}")

    def data_text(self) -> str:
        """Return the data set, its directory and its view in words, e.g. 'digits, classes 0-4, 20 shots per class'."""
        parts = [self.dataset + (f" ({self.data_dir})" if self.data_dir else "")]
        if self.classes is not None:
            parts.append(f"classes {self.classes}")
        if self.shots is not None:
            parts.append(f"{self.shots} shots per class")
        if self.val_shots is not None:
            parts.append(f"{self.val_shots} validation images per class")
        return ", ".join(parts)

    @property
    def single_objective(self) -> bool:
        """True when the search has one objective (validation accuracy, or validation loss)."""
        return len(self.objectives) == 1

    def resolved_workers(self) -> int:
        """Return the worker count, one per core when unset."""
        return self.workers or usable_cores()

    def check_workers(self, cores: int | None = None) -> None:
        """Raise ConfigError when local workers would outnumber the cores (unless --oversubscribe)."""
        cores = cores or usable_cores()
        remote = self.executor == "dask" and self.scheduler
        if self.resolved_workers() > cores and not self.oversubscribe and not remote:
            raise ConfigError(
                f"--workers {self.workers}: more worker processes than the {cores} "
                f"core{'s' if cores != 1 else ''} this process may use (its CPU affinity; each worker trains with its own "
                "torch threads and ~300 MB); "
                "use at most that many, or pass --oversubscribe"
            )

    def to_toml(self) -> str:
        """Return the whole configuration as TOML; unset options are commented."""
        lines = []
        for key, value in asdict(self).items():
            if value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    return repr(value)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"--{_flag(name)} must be a positive integer, got {value!r}")


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"--{_flag(name)} must be a non-negative integer, got {value!r}")


CLASSES_EXAMPLES = "e.g. 5-9, 0,2,4 or 0-3,7"
_CLASS_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def parse_classes(
    spec: Any, *, flag: str = "--classes", least: int = 2
) -> tuple[tuple[int, int], ...]:
    """Return a --classes SPEC as sorted, disjoint (low, high) label ranges, both ends included.

    SPEC is a comma list of labels and ranges ("5-9", "0,2,4", "0-3,7"). Ranges are
    not expanded, so a huge label costs no memory; whether the data set has the
    labels is checked where it is loaded. flag names the option in messages; least is
    the fewest classes SPEC may keep.

    Raises:
        ConfigError: SPEC is empty or malformed, names a label twice, or keeps fewer than least classes.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            f"{flag} must be a string of labels and ranges, {CLASSES_EXAMPLES}; got {spec!r}"
        )
    if not spec.strip():
        raise ConfigError(
            f"{flag} {spec!r}: no classes given; expected a comma list of labels and ranges, "
            f"{CLASSES_EXAMPLES}"
        )
    ranges = []
    for item in (part.strip() for part in spec.split(",")):
        match = _CLASS_ITEM.fullmatch(item)
        if match is None:
            raise ConfigError(
                f"{flag} {spec!r}: {item!r} is neither a label nor a range LOW-HIGH; "
                f"expected a comma list of non-negative labels and ranges, {CLASSES_EXAMPLES}"
            )
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(2))
        if high < low:
            raise ConfigError(
                f"{flag} {spec!r}: the range {item!r} runs backwards; expected LOW-HIGH "
                f"with LOW <= HIGH, e.g. {high}-{low}"
            )
        ranges.append((low, high))
    ranges.sort()
    for (_, high), (low, _) in zip(ranges, ranges[1:]):
        if low <= high:
            raise ConfigError(
                f"{flag} {spec!r}: label {low} is given twice; expected each label once"
            )
    count = sum(high - low + 1 for low, high in ranges)
    if count < least:
        raise ConfigError(
            f"{flag} {spec!r} keeps {count} class; expected at least {least} (a classifier "
            f"chooses between classes), {CLASSES_EXAMPLES}"
        )
    return tuple(ranges)


def classes_text(ranges: tuple[tuple[int, int], ...]) -> str:
    """Return the canonical SPEC of label ranges: ascending, runs of 3 or more as LOW-HIGH ("0-3,7")."""
    merged: list[list[int]] = []
    for low, high in ranges:
        if merged and low == merged[-1][1] + 1:
            merged[-1][1] = high
        else:
            merged.append([low, high])
    items = []
    for low, high in merged:
        if high - low >= 2:
            items.append(f"{low}-{high}")
        else:
            items.extend(str(label) for label in range(low, high + 1))
    return ",".join(items)


OOD_NOISE = "noise"
OOD_NPZ = "npz:"
OOD_FORMS = (
    "expected DATASET:classes=LIST (held-out classes, e.g. digits:classes=8,9), DATASET "
    "(another data set, e.g. mnist), npz:PATH (an .npz with an array x of images) or noise"
)


@dataclass(frozen=True)
class OodSpec:
    """A parsed --ood SPEC: where the out-of-distribution images come from."""

    kind: str  # "dataset", "npz" or "noise"
    name: str = ""  # the data set's name (dataset) or the archive's path (npz)
    classes: str | None = None  # dataset: these classes only (canonical SPEC); None: all

    def text(self) -> str:
        """Return the canonical SPEC, e.g. 'digits:classes=8,9', 'npz:x.npz' or 'noise'."""
        if self.kind == "noise":
            return OOD_NOISE
        if self.kind == "npz":
            return OOD_NPZ + self.name
        return self.name + ("" if self.classes is None else f":classes={self.classes}")


def parse_ood(spec: Any) -> OodSpec:
    """Return the parsed --ood SPEC: DATASET:classes=LIST, DATASET, npz:PATH or noise.

    Whether the data set or the file exists, and whether its images fit the run's
    input, is checked where the images are loaded (ge_nas.data.ood).

    Raises:
        ConfigError: SPEC is not a string of one of these forms, or its class list is malformed.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"--ood: no out-of-distribution images given ({spec!r}); {OOD_FORMS}")
    text = spec.strip()
    if text.lower() == OOD_NOISE:
        return OodSpec("noise")
    if text[: len(OOD_NPZ)].lower() == OOD_NPZ:
        if not text[len(OOD_NPZ) :]:
            raise ConfigError(f"--ood {spec!r}: npz: without a path; {OOD_FORMS}")
        return OodSpec("npz", text[len(OOD_NPZ) :])
    name, colon, rest = text.partition(":")
    if not name.strip():
        raise ConfigError(f"--ood {spec!r}: no data set name before ':'; {OOD_FORMS}")
    if not colon:
        return OodSpec("dataset", name.strip())
    key, equals, labels = rest.partition("=")
    if key.strip() != "classes" or not equals:
        raise ConfigError(
            f"--ood {spec!r}: {rest!r} after the data set is not classes=LIST; {OOD_FORMS}"
        )
    ranges = parse_classes(labels.strip(), flag=f"--ood {spec!r}: classes", least=1)
    return OodSpec("dataset", name.strip(), classes_text(ranges))


def check_data_view(shots: Any, val_shots: Any, train_subset: Any = None) -> None:
    """Raise ConfigError unless --shots and --val-shots are positive integers that go together.

    --val-shots needs --shots, and --train-subset conflicts with --shots (both choose the
    training images). Whether the classes have enough images is checked where the data is loaded.
    """
    for name, value in (("shots", shots), ("val_shots", val_shots)):
        if value is not None:
            _positive_int(name, value)
    if val_shots is not None and shots is None:
        raise ConfigError(
            f"--val-shots {val_shots} goes with --shots K (K training images per class); "
            "add --shots, or leave --val-shots out (--val-fraction then sizes validation)"
        )
    if shots is not None and train_subset is not None:
        raise ConfigError(
            f"--train-subset {train_subset} and --shots {shots} conflict: both choose the training "
            "images; give one of them"
        )


def check_device(name: Any) -> None:
    """Raise ConfigError unless name is auto, cpu, cuda or cuda:N (whether that GPU exists is checked where it is used)."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ConfigError(f"--device: unknown device {name!r}; expected auto, cpu, cuda or cuda:N")


def _number(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"--{_flag(name)} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"--{_flag(name)} must be a finite number, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"--{_flag(name)}: unknown value {value!r}{did_you_mean(value, choices)}; expected one of {', '.join(choices)}"
        )


def _flag(name: str) -> str:
    return name.removesuffix("_s").replace("_", "-")


def field_default(name: str) -> Any:
    """Return RunConfig's default of a field (None for one without a default)."""
    field = next(f for f in fields(RunConfig) if f.name == name)
    return field.default if field.default is not MISSING else None


def load_toml(path: str | os.PathLike[str], *, keep: str = "") -> dict[str, Any]:
    """Read a TOML file of run options; unknown keys are an error.

    A run's config.toml ends with a [written_by] table (versions, grammar hash):
    it is dropped, unless keep names it, so a run's config.toml works as --config.
    """
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    if keep != "written_by":
        doc.pop("written_by", None)
    known = {f.name for f in fields(RunConfig)} | {keep}
    for key in doc:
        if key not in known:
            raise ConfigError(f"{path}: unknown option {key!r}{did_you_mean(key, known)}")
    if isinstance(doc.get("objectives"), list):
        doc["objectives"] = tuple(doc["objectives"])
    return doc


def make_config(base: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """Return a checked RunConfig from TOML values and non-None overrides."""
    values = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if "grammar" not in values:
        raise ConfigError("--grammar is required (a BNF file, e.g. grammars/cnn_small.bnf)")
    try:
        return RunConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"bad option: {exc}") from None


def default_out(config: RunConfig, stamp: str) -> Path:
    """Return runs/<grammar>-<dataset>-<stamp>."""
    dataset = config.dataset.replace(":", "-").replace("/", "-")
    return Path("runs") / f"{Path(config.grammar).stem}-{dataset}-{stamp}"
