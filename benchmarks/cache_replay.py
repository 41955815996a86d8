"""Replay a search's evaluations with and without the frozen-feature cache, and time them.

benchmarks/transfer.py and benchmarks/prune.py use it for "the share of time
saved by the feature cache": the same tasks (phenotypes that the search
trained, at its settings) are evaluated again in this process, one thread,
once per variant (e.g. with a fresh FeatureCache, and without one). The
variants take turns task by task, so a change in the machine's load hits all
of them alike. A first untimed evaluation loads the data and the backbone or
base model, which every variant then shares.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ge_nas.feature_cache import FeatureCache
from ge_nas.metrics import Metrics
from ge_nas.worker import EvalTask, evaluate


@dataclass(frozen=True)
class Variant:
    """One way to evaluate the tasks: its name, how each task changes, and the cache (None: none)."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)  # EvalTask fields to replace
    cache: FeatureCache | None = None


@dataclass(frozen=True)
class Timing:
    """A variant's wall seconds and metrics for each task, and whether its cache served the task."""

    name: str
    times: tuple[float, ...]
    metrics: tuple[Metrics, ...]
    used: tuple[bool, ...]  # the evaluation read or wrote a cache entry

    @property
    def seconds(self) -> float:
        """Return the total over the tasks."""
        return sum(self.times)

    def only(self, chosen: Sequence[bool]) -> Timing:
        """Return the timing of the chosen tasks only."""
        keep = [i for i, c in enumerate(chosen) if c]
        return Timing(
            self.name,
            tuple(self.times[i] for i in keep),
            tuple(self.metrics[i] for i in keep),
            tuple(self.used[i] for i in keep),
        )

    def mean_val_accuracy(self) -> float:
        """Return the mean validation accuracy over the tasks that trained."""
        ok = [m.val_accuracy for m in self.metrics if m.ok]
        return sum(ok) / len(ok) if ok else 0.0


def replay(tasks: Sequence[EvalTask], variants: Sequence[Variant]) -> dict[str, Timing]:
    """Evaluate every task under every variant (one thread, taking turns); return each variant's timing."""
    tasks = [replace(t, threads=1, save_dir=None) for t in tasks]
    if tasks:
        evaluate(tasks[0])  # untimed: loads the data and the backbone or base model
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    metrics: dict[str, list[Metrics]] = {v.name: [] for v in variants}
    used: dict[str, list[bool]] = {v.name: [] for v in variants}
    for task in tasks:
        for v in variants:
            begun = time.perf_counter()
            outcome = evaluate(replace(task, **v.changes), v.cache)
            times[v.name].append(time.perf_counter() - begun)
            metrics[v.name].append(outcome.metrics)
            used[v.name].append(outcome.cache is not None and outcome.cache.used)
    return {
        v.name: Timing(v.name, tuple(times[v.name]), tuple(metrics[v.name]), tuple(used[v.name]))
        for v in variants
    }


def share_saved(fast: Timing, slow: Timing) -> float | None:
    """Return the share of slow's time that fast saves (None when slow took no time)."""
    return 1 - fast.seconds / slow.seconds if slow.seconds > 0 else None


def largest_difference(a: Timing, b: Timing) -> float:
    """Return the largest difference in validation accuracy between two variants' metrics of one task."""
    return max(
        (abs(x.val_accuracy - y.val_accuracy) for x, y in zip(a.metrics, b.metrics)), default=0.0
    )
