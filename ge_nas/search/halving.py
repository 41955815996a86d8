"""Successive halving inside each generation: promote the best 1/eta to the next rung, rung by rung.

The rungs' budgets and archive keys are defined in ge_nas.fidelity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ge_nas.config import RunConfig
from ge_nas.fidelity import rung_count
from ge_nas.search.evaluator import Evaluation

EvaluateAt = Callable[[Sequence[Sequence[int]], int], list[Evaluation]]
Choose = Callable[[list[Evaluation], int], list[int]]


def promote(
    evaluations: list[Evaluation], evaluate_at: EvaluateAt, choose: Choose, config: RunConfig
) -> list[Evaluation]:
    """Return evaluations with the best 1/eta re-evaluated at each higher rung, rung by rung."""
    result = list(evaluations)
    current = [i for i, e in enumerate(result) if e.metrics.ok]
    for rung in range(1, rung_count(config)):
        firsts = list(
            {result[i].phenotype_hash: i for i in reversed(current)}.values()
        )  # one per phenotype
        k = math.ceil(len(firsts) / config.sh_eta)
        if k == 0:
            break
        chosen = [firsts[j] for j in choose([result[i] for i in firsts], k)]
        promoted = dict(
            zip(
                (result[i].phenotype_hash for i in chosen),
                evaluate_at([result[i].genome for i in chosen], rung),
            )
        )
        for i, e in enumerate(result):
            if e.phenotype_hash in promoted and e.rung == rung - 1:
                result[i] = promoted[e.phenotype_hash].with_genome(e.genome, e.derivation)
        current = [i for i in current if result[i].rung == rung and result[i].metrics.ok]
    return result
