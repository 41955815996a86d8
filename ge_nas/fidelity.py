"""Training budgets: fidelity rungs (successive halving [Jamieson2016]) and the archive key of a budget.

With `--fidelity sh`, every new phenotype is first trained for `--epochs`
(rung 0). The best 1/eta of each generation's newcomers, in NSGA-II order (or
by accuracy for a single objective), are trained again for eta times as many
epochs (rung 1), the best 1/eta of those for eta^2 times (rung 2), up to
`--sh-rungs` rungs; in `--mode steady` the promotions are asynchronous
(ASHA, see ge_nas.search.steady). Most evaluations stay cheap; promising ones earn longer
budgets. Results at different rungs are stored under different fidelity keys
and never compared as equals: selection ranks a higher rung above a lower one
and compares individuals only within a rung, and the front holds the top rung.

[Jamieson2016] K. Jamieson, A. Talwalkar, "Non-stochastic best arm
identification and hyperparameter optimization", AISTATS 2016.

A run with `--backbone` adds the backbone's identity to every key: the
sha256 of its weights file (first 16 hex digits), so runs with different
backbones never share results, and runs without one keep their keys.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from ge_nas.config import RunConfig
from ge_nas.errors import ConfigError

WEIGHTS = "model.pt"  # a ge_nas model directory's weights file (ge_nas.export.MODEL)


def rung_count(config: RunConfig) -> int:
    """Return how many fidelity rungs the run uses (1 without successive halving)."""
    return config.sh_rungs if config.fidelity == "sh" else 1


def rung_epochs(config: RunConfig, rung: int) -> int:
    """Return the training epochs of a rung: epochs x eta^rung."""
    return int(config.epochs * config.sh_eta**rung)


def fidelity_key(
    config: RunConfig, *, epochs: int | None = None, final: bool = False, screen: bool = False
) -> str:
    """Return the archive key of a training budget; results at different keys never mix.

    A final training's key says whether it screened a finalist candidate (scored on
    the held-out slice alone) or trained a finalist (scored on the test set too).

    A pruning run's key names its base model (the hash of its weights): the same masks
    over other weights are other networks; and whether the fine-tune leaves the trunk frozen.
    """
    epochs = config.epochs if epochs is None else epochs
    key = (
        f"{config.dataset}|data_dir={config.data_dir}|val={config.val_fraction}|split_seed={config.split_seed}"
        f"|subset={config.train_subset}|epochs={epochs}|final={final}"
    )
    held = f"|holdout={config.final_holdout}" if final and config.final_holdout else ""
    backbone = f"|backbone={backbone_digest(config.backbone)}" if config.backbone else ""
    return (
        key
        + _view(config)
        + held
        + ("|screen" if final and screen else "")
        + ("|bf16" if config.bf16 else "")
        + backbone
        + (f"|base={config.prune_base_sha}" if config.prune_base_sha else "")
        + ("|trunk=frozen" if config.prune_base_sha and config.freeze_trunk else "")
        + (_final_measured(config) if final else _measured(config))
    )


def _view(config: RunConfig) -> str:
    """Return the key suffix naming the data view (empty without one, so older archives keep their keys)."""
    parts = [
        f"|{name}={getattr(config, name)}"
        for name in ("classes", "shots", "val_shots")
        if getattr(config, name) is not None
    ]
    return "".join(parts)


def weights_file(backbone: str) -> Path:
    """Return the weights file of a backbone: DIR/model.pt for a model directory, else the path itself.

    Raises:
        ConfigError: there is no such file, or backbone names a torchvision network.
    """
    if backbone.startswith("torchvision:"):
        raise ConfigError(
            f"--backbone {backbone}: torchvision backbones are not supported (installing "
            "torchvision does not change that); give a ge_nas model directory"
        )
    path = Path(backbone)
    weights = path / WEIGHTS if path.is_dir() else path
    if not weights.is_file():
        where = f"{path} has no {WEIGHTS}" if path.is_dir() else f"{path} does not exist"
        raise ConfigError(
            f"--backbone {backbone}: {where}; expected a ge_nas model directory "
            "(front/N or best/ of a run, or what `ge_nas train` wrote)"
        )
    return weights


def backbone_digest(backbone: str) -> str:
    """Return the first 16 hex digits of the sha256 of a backbone's weights file.

    Raises:
        ConfigError: the file is missing or unreadable.
    """
    weights = weights_file(backbone)
    try:
        return file_digest(weights)
    except OSError as exc:
        raise ConfigError(f"--backbone {backbone}: cannot read {weights}: {exc}") from None


def file_digest(path: Path) -> str:
    """Return the first 16 hex digits of the sha256 of a file (cached per process by path, mtime and size).

    Raises:
        OSError: the file cannot be read.
    """
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """Return the digest of a file's content (cached per process by path, mtime and size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _measured(config: RunConfig) -> str:
    """Return the key suffix naming the optional objectives measured (a result without them must not be reused)."""
    names = [
        _measured_name(config, n)
        for n in config.objectives
        if n in ("latency", "robustness", "val_loss", "ood_auroc")
    ]
    return f"|measured={','.join(names)}" if names else ""


def _measured_name(config: RunConfig, name: str) -> str:
    """Return an objective's name with the settings its value depends on (noise, OoD images, score)."""
    if name == "robustness":
        return f"robustness@{config.noise_sigma}"
    if name == "ood_auroc":
        return f"ood_auroc@{config.ood}@{config.ood_score}"
    return name


def _final_measured(config: RunConfig) -> str:
    """Return a finalist's key suffix: the test-set OoD AUROC it reports (empty without --ood)."""
    return f"|measured=test_ood_auroc@{config.ood}@{config.ood_score}" if config.ood else ""
