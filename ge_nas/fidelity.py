"""Multi-fidelity search: successive halving inside each generation [Jamieson2016].

With `--fidelity sh`, every new phenotype is first trained for `--epochs`
(rung 0). The best 1/eta of each generation's newcomers, in NSGA-II order (or
by accuracy for a single objective), are trained again for eta times as many
epochs (rung 1), the best 1/eta of those for eta^2 times (rung 2), up to
`--sh-rungs` rungs. Most evaluations stay cheap; promising ones earn longer
budgets. Results at different rungs are stored under different fidelity keys
and never compared as equals: selection ranks a higher rung above a lower one
and compares individuals only within a rung, and the front holds the top rung.

[Jamieson2016] K. Jamieson, A. Talwalkar, "Non-stochastic best arm
identification and hyperparameter optimization", AISTATS 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ge_nas.config import RunConfig

if TYPE_CHECKING:
    from ge_nas.evaluator import Evaluation

EvaluateAt = Callable[[Sequence[Sequence[int]], int], "list[Evaluation]"]
Choose = Callable[["list[Evaluation]", int], "list[int]"]


def rung_count(config: RunConfig) -> int:
    """Return how many fidelity rungs the run uses (1 without successive halving)."""
    return config.sh_rungs if config.fidelity == "sh" else 1


def rung_epochs(config: RunConfig, rung: int) -> int:
    """Return the training epochs of a rung: epochs x eta^rung."""
    return int(config.epochs * config.sh_eta**rung)


def promote(evaluations: list[Evaluation], evaluate_at: EvaluateAt, choose: Choose, config: RunConfig) -> list[Evaluation]:
    """Return evaluations with the best 1/eta re-evaluated at each higher rung, rung by rung."""
    result = list(evaluations)
    current = [i for i, e in enumerate(result) if e.metrics.ok]
    for rung in range(1, rung_count(config)):
        firsts = list({result[i].phenotype_hash: i for i in reversed(current)}.values())  # one per phenotype
        k = math.ceil(len(firsts) / config.sh_eta)
        if k == 0:
            break
        chosen = [firsts[j] for j in choose([result[i] for i in firsts], k)]
        promoted = dict(zip((result[i].phenotype_hash for i in chosen), evaluate_at([result[i].genome for i in chosen], rung)))
        for i, e in enumerate(result):
            if e.phenotype_hash in promoted and e.rung == rung - 1:
                result[i] = promoted[e.phenotype_hash].with_genome(e.genome, e.derivation)
        current = [i for i in current if result[i].rung == rung and result[i].metrics.ok]
    return result
