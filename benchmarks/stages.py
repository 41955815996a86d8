"""How well does each stage before the final training rank the networks it hands on? Spearman with the final held-out accuracy.

    python benchmarks/stages.py OUT/finalists*/summary.json [--screen 6]

Each file is the summary.json of a benchmarks/finalists.py run. Every finalist
of rule --screen (a network that rule trained to the end) has three accuracies: its search
accuracy (the search fidelity, on the validation split), its screening epoch's
(one epoch on the final training's images, on the held-out slice) and its final
held-out accuracy. Printed for the first two against the third, and for the
final held-out accuracy against the test accuracy (how well the held-out slice
chooses): the Spearman correlation over all the files' finalists together, and
the share of pairs of finalists of the same run that both order alike (ties
count half; 0.5 is a coin toss): the ranking within one search's top, which is
what a finalist rule needs. Nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from scipy.stats import spearmanr

STAGES = ("search_val_accuracy", "one_epoch_holdout")


def finalists(path: Path, screen: str) -> list[dict[str, float]]:
    """Return the finalists rule screen of one finalists.py summary trained, those with every accuracy."""
    try:
        rules = json.loads(path.read_text())["rules"]
        if screen not in rules:
            raise SystemExit(f"{path}: no --screen {screen} rule (it has {', '.join(rules)})")
        rows = list(rules[screen]["finalists"])
        wanted = (*STAGES, "final_holdout", "final_test")
        return [r for r in rows if all(r.get(k) is not None for k in wanted)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SystemExit(
            f"{path}: not a benchmarks/finalists.py summary.json ({type(e).__name__}: {e})"
        ) from None


def spearman(rows: Sequence[dict[str, float]], x: str, y: str) -> float | None:
    """Return the Spearman correlation of two columns (None when undefined: too few or constant)."""
    xs, ys = [r[x] for r in rows], [r[y] for r in rows]
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys)[0])


def concordant(rows: Sequence[dict[str, float]], x: str, y: str) -> tuple[float, int]:
    """Return how many pairs of rows two columns order alike (ties half), and how many pairs there are."""
    alike, pairs = 0.0, 0
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            dx, dy = a[x] - b[x], a[y] - b[y]
            alike += 0.5 if dx == 0 or dy == 0 else float((dx > 0) == (dy > 0))
            pairs += 1
    return alike, pairs


def correlations(
    groups: Sequence[Sequence[dict[str, float]]],
) -> dict[str, tuple[float | None, float | None, int]]:
    """Return, per stage, against the final held-out accuracy (and it against the test's): the
    Spearman over all groups pooled, the share of within-group pairs ordered alike, and how many pairs."""
    pooled = [r for g in groups for r in g]
    pairs = [(stage, "final_holdout") for stage in STAGES] + [("final_holdout", "final_test")]
    result = {}
    for x, y in pairs:
        counts = [concordant(g, x, y) for g in groups]
        alike, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
        result[f"{x} ~ {y}"] = (spearman(pooled, x, y), alike / n if n else None, n)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Print each stage's rank correlation with the final held-out accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summaries", nargs="+", type=Path)
    p.add_argument("--screen", default="6", help="the rule whose finalists to read (default 6)")
    args = p.parse_args(argv)
    groups = [finalists(path, args.screen) for path in args.summaries]
    print(f"{sum(len(g) for g in groups)} finalists from {len(groups)} runs")
    print(f"{'':40s}{'Spearman, pooled':>18s}   pairs of a run ordered alike")
    for label, (pooled, alike, pairs) in correlations(groups).items():
        rho = "-" if pooled is None else f"{pooled:.2f}"
        share = "-" if alike is None else f"{alike * pairs:g} of {pairs}"
        print(f"{label:40s}{rho:>18s}   {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
