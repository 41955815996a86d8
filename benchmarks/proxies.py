"""How well do cheap predictions rank networks? Spearman correlation with trained validation accuracy.

    python benchmarks/proxies.py runs/ablation-*/seed0/ge.sqlite runs/ablation-*/seed0/random.sqlite

For every trained phenotype in the archives given (at one fidelity: the most
common one in each file), it computes, without training:

- params: the parameter count (bigger networks tend to be more accurate);
- NASWOT [Mellor2021]: log-determinant of the Hamming-similarity kernel of the
  binary activation codes of one batch of 64 training images, at initialisation
  (one forward pass);
- surrogate: a random forest on phenotype features (layer counts by kind,
  widths, depth, params, FLOPs, hyperparameters), predicted for each network by
  5-fold cross-validation, so no network is predicted by a model that saw it.

It prints each predictor's Spearman rank correlation with the archived
validation accuracy, and its cost per network. It reports what it measured.

[Mellor2021] J. Mellor, J. Turner, A. Storkey, E. J. Crowley. Neural
architecture search without training. ICML 2021.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict
from torch import nn

from ge_nas.arch import parse_arch
from ge_nas.archive import Archive, Record
from ge_nas.data import load_splits
from ge_nas.network import build_model, measure
from ge_nas.search.prescreen import features

ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Tanh,
    nn.Sigmoid,
)


def trained_records(path: str) -> list[Record]:
    """Return the trained records of an archive at its most common fidelity."""
    with Archive(path, read_only=True) as archive:
        records = [r for r in archive.records() if r.metrics.ok]
    common = collections.Counter(r.fidelity for r in records).most_common(1)
    return [r for r in records if common and r.fidelity == common[0][0]]


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """Return the NASWOT score of an untrained model on a batch x."""
    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _, __, out: codes.append((out > 0).flatten(1).float()))
             for m in model.modules() if isinstance(m, ACTIVATIONS)]  # fmt: skip
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    if not codes:
        return 0.0
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(kernel.double()).logabsdet)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="+")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--classes", help="the archives' class view, e.g. 5-9 (default: all)")
    args = parser.parse_args(argv)
    records = {r.phenotype_hash: r for path in args.archives for r in trained_records(path)}
    rows = list(records.values())
    splits = load_splits(args.dataset, args.data_dir, args.val_fraction, 0, None, args.classes)
    x = splits.x_train[:64]
    torch.manual_seed(0)
    accuracy = [r.metrics.val_accuracy for r in rows]
    start = time.perf_counter()
    scores = [
        naswot(build_model(parse_arch(r.phenotype), splits.input_shape, splits.num_classes), x)
        for r in rows
    ]
    naswot_s = (time.perf_counter() - start) / len(rows)
    params = [
        r.metrics.params
        or measure(parse_arch(r.phenotype), splits.input_shape, splits.num_classes).params
        for r in rows
    ]
    feats = np.array(
        [features(parse_arch(r.phenotype), p, r.metrics.flops or 1) for r, p in zip(rows, params)]
    )
    start = time.perf_counter()
    forest = RandomForestRegressor(n_estimators=200, random_state=0, min_samples_leaf=2)
    predicted = cross_val_predict(
        forest, feats, accuracy, cv=KFold(5, shuffle=True, random_state=0)
    )
    surrogate_s = (time.perf_counter() - start) / len(rows)
    print(
        f"{len(rows)} trained networks from {len(args.archives)} archive(s); Spearman with validation accuracy:"
    )
    for name, values, cost in (
        ("params", params, 0.0),
        ("NASWOT", scores, naswot_s),
        ("surrogate (5-fold CV)", predicted, surrogate_s),
    ):
        rho = spearmanr(values, accuracy).statistic
        print(f"  {name:24s} {rho:+.3f}   {1000 * cost:8.1f} ms per network")


if __name__ == "__main__":
    main()
