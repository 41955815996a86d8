"""What people read: the front as a rich table and one line per generation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table


def generation_line(stats: Mapping[str, Any], total: int) -> str:
    """Return the one-line summary of a generation from its generations.jsonl record."""
    s = stats
    return (
        f"gen {s['generation']}/{total}: {s['evaluations']} trained, {s['cached']} cached, "
        f"{failure_counts(s)}; best val {s['best_accuracy']:.4f}, median {s['median_accuracy']:.4f}, "
        f"front {s['front_size']}, HV {s['hypervolume']:.3f}, {s['seconds']:.1f} s"
    )


def failure_counts(stats: Mapping[str, Any]) -> str:
    """Return e.g. "3 invalid (2 unknown layer 'bogus', 1 ran out of codons), 1 over budget"."""
    text = f"{stats['invalid']} invalid" + _top_reasons(stats.get("invalid_reasons") or {})
    for key, label in (("over_budget", "over budget"), ("failed", "failed")):
        if stats.get(key):
            text += f", {stats[key]} {label}"
    return text


_MAX_REASON = 48  # characters of a reason in the generation line


def _top_reasons(reasons: Mapping[str, int]) -> str:
    """Return ' (n reason, ...)': the three most common reasons, or two and how many others."""
    ranked = sorted(reasons.items(), key=lambda item: -item[1])
    shown = ranked if len(ranked) <= 3 else ranked[:2]
    parts = [f"{n} {_clip(reason, _MAX_REASON)}" for reason, n in shown]
    if len(shown) < len(ranked):
        parts.append(f"{sum(n for _, n in ranked[2:])} other")
    return f" ({', '.join(parts)})" if parts else ""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


OFF_FRONT_NOTE = "+ a finalist that screening (--screen) took from off the front"


def off_front(row: Mapping[str, Any]) -> bool:
    """True for a pareto.csv row of a finalist screened in from off the front (on_front 0)."""
    return str(row.get("on_front")) == "0"


def front_title(what: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Return a front table's title: how many networks are on the front, and finalists from off it."""
    off = sum(off_front(row) for row in rows)
    beside = f" and {off} finalist{'s' * (off > 1)} from off it" if off else ""
    n = len(rows) - off
    return f"{what} ({n} network{'s' * (n != 1)}{beside}; * test accuracy at search fidelity)"


def rank_text(row: Mapping[str, Any]) -> str:
    """Return a row's rank, marked '+' when screening took it from off the front."""
    return f"{row['rank']}+" if off_front(row) else str(row["rank"])


def front_table(rows: Sequence[Mapping[str, Any]], *, title: str = "Pareto front") -> Table:
    """Return the front (rank, accuracies, size, phenotype) as a rich Table.

    Latency, robustness and OoD AUROC get columns when some row has them (runs that optimised them).
    """
    extras = measured_columns(rows)
    caption = OFF_FRONT_NOTE if any(off_front(row) for row in rows) else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("val acc", justify="right")
    table.add_column("test acc", justify="right")
    table.add_column("params", justify="right")
    table.add_column("FLOPs", justify="right")
    for _, head, _ in extras:
        table.add_column(head, justify="right")
    table.add_column("phenotype", overflow="fold")
    for row in rows:
        test = _number(row.get("test_accuracy"))
        table.add_row(
            rank_text(row),
            f"{float(row['val_accuracy']):.4f}",
            "-"
            if test is None
            else f"{test:.4f}" + ("" if row.get("test_fidelity") == "final" else "*"),
            f"{int(row['params']):,}",
            _si(int(row["flops"])),
            *(optional_cell(row, key, fmt) for key, _, fmt in extras),
            str(row["phenotype"]).split(" | ")[0],
        )
    return table


# (row key, column heading, format) of the objectives that only some runs measure
OPTIONAL_COLUMNS = (
    ("latency_ms", "latency ms", "{:.3f}"),
    ("robustness", "robust acc", "{:.4f}"),
    ("ood_auroc", "OoD AUROC", "{:.4f}"),
    ("test_ood_auroc", "test OoD AUROC", "{:.4f}"),
)


def measured_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """Return the OPTIONAL_COLUMNS that some row has a value for."""
    return [
        column
        for column in OPTIONAL_COLUMNS
        if any(_number(row.get(column[0])) is not None for row in rows)
    ]


def optional_cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
    """Return one optional column's text for a row ('-' where it was not measured)."""
    value = _number(row.get(key))
    return "-" if value is None else fmt.format(value)


def _number(value: Any) -> float | None:
    """Return a row value as a float; None for a missing one (None, or '' as read from pareto.csv)."""
    return None if value in (None, "") else float(value)


def _si(n: int) -> str:
    if n < 1000:
        return str(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if round(n / scale, 1) >= 1:
            return f"{n / scale:.1f}{unit}"
    return str(n)
