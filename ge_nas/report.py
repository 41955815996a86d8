"""What people read: the front as a rich table and one line per generation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from ge_nas.search import GenerationStats


def generation_line(stats: GenerationStats, total: int) -> str:
    """Return the one-line summary of a generation."""
    return (
        f"gen {stats.generation}/{total}: {stats.evaluations} trained, {stats.cached} cached, "
        f"{stats.invalid} invalid; best val {stats.best_accuracy:.4f}, median {stats.median_accuracy:.4f}, "
        f"front {stats.front_size}, HV {stats.hypervolume:.3f}, {stats.seconds:.1f} s"
    )


def front_table(rows: Sequence[Mapping[str, Any]], *, title: str = "Pareto front") -> Table:
    """Return the front (rank, accuracies, size, phenotype) as a rich Table."""
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("val acc", justify="right")
    table.add_column("test acc", justify="right")
    table.add_column("params", justify="right")
    table.add_column("FLOPs", justify="right")
    table.add_column("phenotype", overflow="fold")
    for row in rows:
        test = row.get("test_accuracy")
        table.add_row(
            str(row["rank"]),
            f"{float(row['val_accuracy']):.4f}",
            "-" if test in (None, "") else f"{float(test):.4f}" + ("" if row.get("test_fidelity") == "final" else "*"),
            f"{int(row['params']):,}",
            _si(int(row["flops"])),
            str(row["phenotype"]).split(" | ")[0],
        )
    return table


def _si(n: int) -> str:
    if n < 1000:
        return str(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if round(n / scale, 1) >= 1:
            return f"{n / scale:.1f}{unit}"
    return str(n)
