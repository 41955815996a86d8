"""Objectives: the names a run can optimise, their directions, and the fitness tuple of a Metrics.

Accuracies (val_accuracy, robustness) and the out-of-distribution AUROC
(ood_auroc) are maximised as fractions; sizes and
costs (params, FLOPs, latency) are minimised on a log10 scale, so each order
of magnitude counts alike; the validation loss (val_loss, mean cross-entropy)
is minimised as it is. A network that did not train gets the worst finite
values, never NaN (a NaN fitness sits in DEAP's first Pareto front).

A network that trained but did not learn (validation accuracy below chance
plus a share of the way to 100 %, the accuracy floor) keeps its accuracy and
gets the worst values of the other objectives: every network that learned
dominates it, so NSGA-II ranks it after all of them and orders such networks
by accuracy alone. This is constraint domination [Deb2002] with the floor as
the constraint; without it, tiny networks at chance sit on the accuracy-size
front's small end (nothing smaller dominates them) and become parents.
It is off by default (--accuracy-floor 0): measured on two grammars it did
not improve the search (README, "Search levers, measured").

[Deb2002] K. Deb et al. A fast and elitist multiobjective genetic algorithm:
NSGA-II. IEEE TEC 6(2), 2002 (constrained domination, section V).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ge_nas.metrics import FAILED, Metrics

OBJECTIVES = (
    "val_accuracy",
    "params",
    "flops",
    "latency",
    "robustness",
    "val_loss",
    "ood_auroc",
)
FRACTIONS = ("val_accuracy", "robustness", "ood_auroc")  # maximised as they are; 0 for a failure
WORST_LOG10 = 12.0  # the size given to networks that did not train: worse than any real one
WORST_LOSS = 1e3  # the validation loss given to networks that did not train

OBJECTIVE_WEIGHTS = {
    "val_accuracy": 1.0,
    "val_loss": -1.0,
    "params": -1.0,
    "flops": -1.0,
    "latency": -1.0,
    "robustness": 1.0,
    "ood_auroc": 1.0,
}
LATENCY_FLOOR_MS = 1e-3  # log10 of a latency below a microsecond per batch is taken as -3


def fitness_values(
    metrics: Metrics, objectives: Sequence[str], floor: float = 0.0
) -> tuple[float, ...]:
    """Return the fitness tuple; failures get the worst finite values (never NaN).

    Accuracies (val_accuracy, robustness) and ood_auroc are fractions, 0 for a failure; params,
    FLOPs and latency (ms per batch) are log10, so each order of magnitude counts alike.
    With val_accuracy and another objective, a network below the accuracy floor (see learned)
    keeps its accuracy and gets the worst of everything else.
    """
    if len(objectives) > 1 and "val_accuracy" in objectives and not learned(metrics, floor):
        worst = replace(metrics, status=FAILED)
        return tuple(
            metrics.val_accuracy if name == "val_accuracy" else _fitness_value(worst, name)
            for name in objectives
        )
    return tuple(_fitness_value(metrics, name) for name in objectives)


def learned(metrics: Metrics, floor: float) -> bool:
    """Return False for a trained network below chance + floor x (1 - chance) validation accuracy.

    True when it failed (failures are scored as failures), when floor is 0, or when
    chance was not recorded.
    """
    if not metrics.ok or floor <= 0 or metrics.chance is None:
        return True
    return metrics.val_accuracy >= metrics.chance + floor * (1.0 - metrics.chance)


def _fitness_value(metrics: Metrics, name: str) -> float:
    if name in FRACTIONS:
        score = getattr(metrics, name)
        return float(score) if metrics.ok and score is not None else 0.0
    if name == "val_loss":  # cross-entropy as it is: already on a log scale
        loss = metrics.val_loss
        if not metrics.ok or loss is None or not math.isfinite(loss):
            return WORST_LOSS
        return min(float(loss), WORST_LOSS)
    cost = metrics.latency_ms if name == "latency" else getattr(metrics, name)
    if not metrics.ok or cost is None:
        return WORST_LOG10
    return math.log10(max(cost, LATENCY_FLOOR_MS if name == "latency" else 1))
