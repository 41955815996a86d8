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
"""

from __future__ import annotations

from ge_nas.config import RunConfig


def rung_count(config: RunConfig) -> int:
    """Return how many fidelity rungs the run uses (1 without successive halving)."""
    return config.sh_rungs if config.fidelity == "sh" else 1


def rung_epochs(config: RunConfig, rung: int) -> int:
    """Return the training epochs of a rung: epochs x eta^rung."""
    return int(config.epochs * config.sh_eta**rung)


def fidelity_key(config: RunConfig, *, epochs: int | None = None, final: bool = False) -> str:
    """Return the archive key of a training budget; results at different keys never mix.

    A pruning run's key names its base model (the hash of its weights): the same masks
    over other weights are other networks.
    """
    epochs = config.epochs if epochs is None else epochs
    key = (
        f"{config.dataset}|data_dir={config.data_dir}|val={config.val_fraction}|split_seed={config.split_seed}"
        f"|subset={config.train_subset}|epochs={epochs}|final={final}"
    )
    held = f"|holdout={config.final_holdout}" if final and config.final_holdout else ""
    return (
        key
        + _view(config)
        + held
        + ("|bf16" if config.bf16 else "")
        + (f"|base={config.prune_base_sha}" if config.prune_base_sha else "")
        + ("" if final else _measured(config))
    )


def _view(config: RunConfig) -> str:
    """Return the key suffix naming the data view (empty without one, so older archives keep their keys)."""
    parts = [
        f"|{name}={getattr(config, name)}"
        for name in ("classes", "shots", "val_shots")
        if getattr(config, name) is not None
    ]
    return "".join(parts)


def _measured(config: RunConfig) -> str:
    """Return the key suffix naming the optional objectives measured (a result without them must not be reused)."""
    names = [
        n if n != "robustness" else f"robustness@{config.noise_sigma}"
        for n in config.objectives
        if n in ("latency", "robustness", "val_loss")
    ]
    return f"|measured={','.join(names)}" if names else ""
