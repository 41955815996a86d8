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
INITIALISERS = ("sensible", "random", "pi_grow")
FIDELITIES = ("fixed", "sh")
MODES = (
    "generational",
    "steady",
)  # steady: no generational barrier, a free worker gets a child at once
REPRESENTATIONS = ("ge", "sge")  # codons (GE) or one list of choices per rule (structured GE)


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
    eval_timeout_s: float | None = None
    # Budgets a 2-core CPU can train; 0 lifts a limit. Larger networks are rejected before training.
    max_params: int = 5_000_000
    max_flops: int = 200_000_000  # per sample, 2 x multiply-accumulates
    noise_sigma: float = 0.1  # the robustness objective's Gaussian input noise, in normalized units
    device: str = "auto"  # auto, cpu, cuda or cuda:N; auto: a GPU when torch sees one
    bf16: bool = False  # bfloat16 autocast while training
    test_in_search: bool = (
        True  # score the test set at every search evaluation (reported only; off saves time)
    )
    final_epochs: int = 15
    finalists: int = 3
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
    crossover_prob: float = 0.9
    mutation_prob: float | None = None  # per codon; default 1 / codons used
    tournament_size: int = 2
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
        for name in (
            "population",
            "generations",
            "epochs",
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
            "workers",
            "max_wraps",
            "elites",
            "max_params",
            "max_flops",
            "prescreen",
        ):
            _non_negative_int(name, getattr(self, name))
        for name in ("init_max_depth",):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in (
            "val_fraction",
            "crossover_prob",
            "mutation_prob",
            "train_subset",
            "eval_timeout_s",
            "final_holdout",
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

    def _check_objectives(self) -> None:
        if not self.objectives:
            raise ConfigError(f"--objectives needs at least one of {', '.join(OBJECTIVES)}")
        for name in self.objectives:
            _choice("objectives", name, OBJECTIVES)
        if "val_accuracy" not in self.objectives:
            raise ConfigError("--objectives must include val_accuracy")
        if len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"--objectives lists a name twice: {','.join(self.objectives)}")

    def _check_training(self) -> None:
        check_device(self.device)
        for name, flag in (
            ("bf16", "--bf16"),
            ("test_in_search", "test_in_search (--no-test-in-search)"),
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, name)!r}")
        _number("noise_sigma", self.noise_sigma)
        if self.noise_sigma < 0:
            raise ConfigError(
                f"--noise-sigma must be a standard deviation >= 0, got {self.noise_sigma}"
            )

    def _check_fractions(self) -> None:
        if not 0.0 <= self.final_holdout < 1.0:
            raise ConfigError(f"--final-holdout must be in [0, 1), got {self.final_holdout}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ConfigError(
                f"--crossover-prob must be between 0 and 1, got {self.crossover_prob}"
            )
        if self.mutation_prob is not None and not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"--mutation-prob must be between 0 and 1, got {self.mutation_prob}")
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

    @property
    def single_objective(self) -> bool:
        """True when the search maximises validation accuracy alone."""
        return self.objectives == ("val_accuracy",)

    def resolved_workers(self) -> int:
        """Return the worker count, one per core when unset."""
        return self.workers or os.cpu_count() or 1

    def check_workers(self, cores: int | None = None) -> None:
        """Raise ConfigError when local workers would outnumber the cores (unless --oversubscribe)."""
        cores = cores or os.cpu_count() or 1
        remote = self.executor == "dask" and self.scheduler
        if self.resolved_workers() > cores and not self.oversubscribe and not remote:
            raise ConfigError(
                f"--workers {self.workers}: more worker processes than the {cores} cores here "
                "(each trains with its own torch threads and ~300 MB); "
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
