"""Pareto fronts and hypervolume on minimisation points.

The hypervolume reported everywhere in ge_nas is that of (validation error,
log10 params) with reference point (1.0, 8.0): the area a front dominates in
the accuracy-size plane, comparable across runs and against random search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

from ge_nas.metrics import Scored

HV_REFERENCE = (1.0, 8.0)

Point = Sequence[float]
S = TypeVar("S", bound=Scored)


def dominates(a: Point, b: Point) -> bool:
    """True when a is no worse than b everywhere and better somewhere (minimising)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def nondominated(points: Sequence[Point]) -> list[int]:
    """Return the indices of points no other point dominates, first of equals only."""
    front: list[int] = []
    for i, p in enumerate(points):
        if any(
            dominates(points[j], p) or (tuple(points[j]) == tuple(p) and j < i)
            for j in range(len(points))
        ):
            continue
        front.append(i)
    return front


def hypervolume_2d(points: Sequence[Point], reference: Point = HV_REFERENCE) -> float:
    """Return the area dominated by points and bounded by reference (both minimised)."""
    inside = sorted((p[0], p[1]) for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, best_y = 0.0, reference[1]
    for x, y in inside:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


def size_point(val_accuracy: float, params: int) -> tuple[float, float]:
    """Return (validation error, log10 params) for the hypervolume."""
    return (1.0 - val_accuracy, math.log10(max(params, 1)))


def size_front(records: Iterable[S]) -> list[S]:
    """Return the trained records no other trained record dominates in (validation error, log10 params), best accuracy first."""
    trained = [r for r in records if r.metrics.ok]
    front = [
        trained[i]
        for i in nondominated(
            [size_point(r.metrics.val_accuracy, r.metrics.params or 1) for r in trained]
        )
    ]
    return sorted(front, key=lambda r: (-r.metrics.val_accuracy, r.metrics.params or 0))
