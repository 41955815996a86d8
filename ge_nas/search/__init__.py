"""The search: DEAP wiring (initialisation, variation, selection, the loop) and the evaluator that feeds it."""

from ge_nas.search.evaluator import Evaluation, Evaluator, flops_hint, task_for
from ge_nas.search.evolution import (
    GenerationStats,
    Individual,
    SearchState,
    checkpoint_of,
    generation_stats,
    pareto_front,
    run_search,
)

__all__ = [
    "Evaluation",
    "Evaluator",
    "GenerationStats",
    "Individual",
    "SearchState",
    "checkpoint_of",
    "flops_hint",
    "generation_stats",
    "pareto_front",
    "run_search",
    "task_for",
]
