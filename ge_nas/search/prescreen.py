"""Pre-screening: breed several times more children than the workers can train, train the promising ones.

A surrogate model, a random forest fitted on the run's own trained networks
(phenotype features -> validation accuracy), predicts each candidate child's
accuracy; the children with the highest predictions, not seen before, are
trained. Until enough networks have
trained to fit the surrogate, children are not screened.

Measured on Fashion-MNIST archives (benchmarks/proxies.py): the surrogate's
5-fold cross-validated predictions rank networks by validation accuracy with
a Spearman correlation well above the parameter count's and NASWOT's (see the
README's search table for the numbers).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ge_nas.arch import HPARAMS, LAYERS, ArchSpec, parse_arch
from ge_nas.arch.signatures import WIDTHS, kept_width
from ge_nas.errors import ArchError
from ge_nas.network.build import measure

MIN_TRAINED = 20  # networks trained before the surrogate is trusted


def features(spec: ArchSpec, params: int, flops: int) -> list[float]:
    """Return a fixed-length feature vector: layer counts by kind, widths, depth, size, hyperparameters."""
    kinds = collections.Counter(layer.kind for layer in spec.layers)
    widths = [
        float(kept_width(layer.arg_map(), k))
        for layer in spec.layers
        for k, _ in layer.args
        if k in WIDTHS
    ]
    hp = spec.hparam_map()
    numeric = [float(hp[name]) for name, p in HPARAMS.items() if p.kind is not str]
    categorical = [
        float(p.choices.index(str(hp[name]))) for name, p in HPARAMS.items() if p.kind is str
    ]
    shape = [
        len(spec.layers),
        max(widths, default=0.0),
        sum(widths),
        math.log10(max(params, 1)),
        math.log10(max(flops, 1)),
    ]
    return [*(float(kinds[name]) for name in LAYERS), *shape, *numeric, *categorical]


@dataclass(frozen=True)
class Candidate:
    """A bred genome with what the screen knows of it."""

    genome: list[int]
    phenotype: str  # canonical text
    params: int
    predicted: float


@dataclass
class Surrogate:
    """Validation accuracy predicted from phenotype features, refitted as networks train."""

    seed: int
    rows: list[list[float]] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    model: Any = None

    def add(self, phenotype: str, params: int, flops: int, accuracy: float) -> None:
        """Remember one trained network."""
        self.rows.append(features(parse_arch(phenotype), params, flops))
        self.accuracies.append(accuracy)

    def fit(self) -> None:
        """Refit on every trained network so far (once there are MIN_TRAINED)."""
        if len(self.rows) < MIN_TRAINED:
            return
        from sklearn.ensemble import RandomForestRegressor

        self.model = RandomForestRegressor(
            n_estimators=100, min_samples_leaf=2, random_state=self.seed
        )
        self.model.fit(self.rows, self.accuracies)

    def predict(self, rows: Sequence[list[float]]) -> list[float]:
        """Return the predicted accuracies (the model must be fitted)."""
        return [float(v) for v in self.model.predict(list(rows))]


def candidates(
    genomes: Sequence[list[int]],
    phenotypes: Sequence[str | None],
    surrogate: Surrogate,
    shape: tuple[tuple[int, int, int], int],
) -> list[Candidate]:
    """Return the genomes whose phenotypes parse and build, with their size and predicted accuracy."""
    known: list[tuple[list[int], str, int, list[float]]] = []
    for genome, phenotype in zip(genomes, phenotypes):
        try:
            spec = parse_arch(phenotype or "")
            size = measure(spec, *shape)
        except ArchError:
            continue
        known.append(
            (genome, phenotype or "", size.params, features(spec, size.params, size.flops))
        )
    predicted = surrogate.predict([row for *_, row in known]) if known else []
    return [Candidate(g, p, n, a) for (g, p, n, _), a in zip(known, predicted)]


def most_promising(pool: Sequence[Candidate], k: int, seen: set[str]) -> list[Candidate]:
    """Return the k candidates, not seen before, with the highest predicted accuracy.

    Size is left to selection: NSGA-II survival weighs accuracy against size once
    the children have trained. (Ranking by predicted hypervolume gain instead
    favours the smallest children, since a forest never predicts above the best
    accuracy it has seen: on the synthetic objective of the search tests it
    lowered the hypervolume from 3.85 to 2.27; this ranking raised it to 3.95.)
    """
    distinct = {c.phenotype: c for c in pool if c.phenotype not in seen}.values()
    return sorted(distinct, key=lambda c: -c.predicted)[:k]
