"""Finalists: the front members worth a full training, structurally different from each other.

Two front members that differ only in a kernel size, an activation, a dropout
rate or a hyperparameter are near-copies; retraining both spends a finalist
slot on what is known. A network's structure here is its sequence of weighted
layers (conv, sepconv, res, dense) with their widths (filters, units): the first
of each structure in front order is taken.
After the final training, the finalists' accuracy on a held-out slice of the
validation split, on which none of them trained, chooses among them.

Screening (`--screen M`) widens the choice beyond the front. A cheap search
fidelity favours small networks that learn fast, and the front holds no network
larger than its most accurate one; a larger network just behind it may gain
more from a full training. The M most accurate structures the search trained,
dominated or not, get one epoch of the final training, and the best of them on
the held-out slice become the finalists (benchmarks/finalists.py compares the rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from ge_nas.arch import parse_arch
from ge_nas.arch.signatures import BACKBONE, WIDTHS, kept_width
from ge_nas.errors import ArchError
from ge_nas.metrics import Metrics, Scored

S = TypeVar("S", bound=Scored)


def structure(phenotype: str) -> tuple[tuple[str, ...], ...]:
    """Return a phenotype's weighted layers with their widths, e.g. (('conv', '32'), ('dense', '64')).

    A layer with a keep mask has the width it is built with: the units it keeps; a
    backbone layer counts with its blocks kept and frozen.
    """
    try:
        spec = parse_arch(phenotype)
    except ArchError:
        return ((phenotype,),)
    weighted = [layer for layer in spec.layers if any(k in WIDTHS for k, _ in layer.args)]
    reused = [(layer.kind, *(str(v) for _, v in layer.args)) for layer in spec.layers[:1]]
    return tuple(
        [r for r in reused if r[0] == BACKBONE]  # blocks kept and frozen are structure too
        + [
            (
                layer.kind,
                *(str(kept_width(layer.arg_map(), k)) for k, _ in layer.args if k in WIDTHS),
            )
            for layer in weighted
        ]
    )


def pick_finalists(front: Sequence[S], k: int, *, max_params: int | None = None) -> list[S]:
    """Return up to k front members in front order, one per structure; within max_params first."""
    ordered = sorted(
        front, key=lambda s: max_params is not None and (s.metrics.params or 0) > max_params
    )
    chosen: list[S] = []
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for item in ordered:
        shape = structure(item.phenotype or "")
        if len(chosen) < k and shape not in seen:
            chosen.append(item)
            seen.add(shape)
    return chosen


def screening_candidates(trained: Sequence[S], m: int) -> list[S]:
    """Return the m most accurate of the trained networks, one per structure (fewer params first on ties)."""
    ok = [s for s in trained if s.metrics.ok]
    ranked = sorted(ok, key=lambda s: (-s.metrics.val_accuracy, s.metrics.params or 0))
    return pick_finalists(ranked, m)


def screened(candidates: Sequence[S], held_out: Mapping[str, Metrics], k: int) -> list[S]:
    """Return up to k candidates with the best held-out accuracy after their screening epoch.

    held_out maps a phenotype hash to its screening metrics; a candidate without
    a successful one is left out. Ties keep candidate order.
    """
    scored = [(held_out.get(s.phenotype_hash or ""), s) for s in candidates]
    ok = [(m.val_accuracy, s) for m, s in scored if m is not None and m.ok]
    return [s for _, s in sorted(ok, key=lambda pair: pair[0], reverse=True)[:k]]


def choose_best(finals: Sequence[tuple[int, Metrics]]) -> int | None:
    """Return the rank of the finalist with the best held-out accuracy (smaller on ties), or None."""
    trained = [(m.val_accuracy, -(m.params or 0), -rank, rank) for rank, m in finals if m.ok]
    return max(trained)[3] if trained else None
