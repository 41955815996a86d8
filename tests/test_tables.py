"""Tests for ge_nas.tables: the front table and the generation line, rendered as text."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import pytest
from rich.console import Console

from ge_nas.search import GenerationStats
from ge_nas.tables import front_table, front_title, generation_line

ROWS: list[dict[str, Any]] = [
    {
        "rank": 1,
        "val_accuracy": 0.95123,
        "test_accuracy": 0.93,
        "test_fidelity": "final",
        "params": 1234567,
        "flops": 2_500_000,
        "phenotype": "conv(32,3,1) bn relu | opt=adam lr=0.001",
    },
    # as read back from pareto.csv: every value a string
    {
        "rank": "2",
        "val_accuracy": "0.9",
        "test_accuracy": "0.88",
        "test_fidelity": "e8",
        "params": "980",
        "flops": "512",
        "phenotype": "dense(4) | opt=sgd",
    },
    {
        "rank": 3,
        "val_accuracy": 0.5,
        "test_accuracy": None,
        "params": 12,
        "flops": 3_000_000_000,
        "phenotype": "relu",
    },
]

EXPECTED = """\
Pareto front
┏━━━━━━┳━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━┓
┃ rank ┃ val acc ┃ test acc ┃    params ┃ FLOPs ┃ phenotype            ┃
┡━━━━━━╇━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━┩
│    1 │  0.9512 │   0.9300 │ 1,234,567 │  2.5M │ conv(32,3,1) bn relu │
│    2 │  0.9000 │  0.8800* │       980 │   512 │ dense(4)             │
│    3 │  0.5000 │        - │        12 │  3.0G │ relu                 │
└──────┴─────────┴──────────┴───────────┴───────┴──────────────────────┘
"""


def render(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"  # type: ignore[attr-defined]


def table_rows(rows: list[Mapping[str, Any]]) -> list[list[str]]:
    """Return the body cells of the rendered table."""
    lines = [line for line in render(front_table(rows)).splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in lines]


def test_front_table_renders_exactly() -> None:
    assert render(front_table(ROWS)) == EXPECTED


def test_test_accuracy_starred_unless_final() -> None:
    cells = table_rows(ROWS)
    assert [row[2] for row in cells] == ["0.9300", "0.8800*", "-"]


def test_empty_string_test_accuracy_is_a_dash() -> None:
    row = {**ROWS[0], "test_accuracy": "", "test_fidelity": ""}
    assert table_rows([row])[0][2] == "-"


def test_phenotype_drops_hyperparameters() -> None:
    assert [row[5] for row in table_rows(ROWS)] == ["conv(32,3,1) bn relu", "dense(4)", "relu"]


def test_title() -> None:
    assert render(front_table([], title="Finalists")).splitlines()[0] == "Finalists"


def test_long_phenotype_is_folded_not_cut() -> None:
    phenotype = " ".join(f"conv({n},3,1)" for n in range(1, 30))
    text = render(front_table([{**ROWS[0], "phenotype": phenotype}]), width=80)
    assert "…" not in text
    cells = [
        line.rstrip("│ ").rsplit("│", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("│")
    ]
    assert "".join(cells).replace(" ", "") == phenotype.replace(" ", "")


@pytest.mark.parametrize(
    ("flops", "shown"),
    [
        (0, "0"),
        (940, "940"),
        (1000, "1.0k"),
        (25_400, "25.4k"),
        (999_999, "1.0M"),
        (1_000_000, "1.0M"),
        (7_250_000_000, "7.2G"),
    ],
)
def test_flops_si_units(flops: int, shown: str) -> None:
    assert table_rows([{**ROWS[0], "flops": flops}])[0][4] == shown


@pytest.mark.parametrize("flops", [960, 999])
def test_flops_below_a_thousand_are_exact(flops: int) -> None:
    assert table_rows([{**ROWS[0], "flops": flops}])[0][4] == str(flops)


def test_generation_line() -> None:
    stats = GenerationStats(
        generation=3,
        evaluations=10,
        invalid=2,
        cached=4,
        best_accuracy=0.91234,
        median_accuracy=0.5,
        front_size=5,
        hypervolume=2.71828,
        seconds=12.345,
    )
    assert generation_line(asdict(stats), 6) == (
        "gen 3/6: 10 trained, 4 cached, 2 invalid; best val 0.9123, median 0.5000, front 5, HV 2.718, 12.3 s"
    )


def test_generation_line_renders_on_one_line() -> None:
    stats = GenerationStats(0, 12, 0, 0, 1.0, 0.75, 1, 0.0, 0.04)
    line = generation_line(asdict(stats), 6)
    assert (
        line
        == "gen 0/6: 12 trained, 0 cached, 0 invalid; best val 1.0000, median 0.7500, front 1, HV 0.000, 0.0 s"
    )
    assert render(line) == line + "\n"


def test_generation_line_counts_invalid_by_reason_and_over_budget_apart() -> None:
    reasons = {"unknown layer 'bogus'": 2, "ran out of codons": 1}
    stats = GenerationStats(
        1, 9, 3, 0, 0.9, 0.8, 2, 1.5, 2.0, over_budget=2, invalid_reasons=reasons
    )
    assert generation_line(asdict(stats), 6) == (
        "gen 1/6: 9 trained, 0 cached, 3 invalid (2 unknown layer 'bogus', 1 ran out of codons), "
        "2 over budget; best val 0.9000, median 0.8000, front 2, HV 1.500, 2.0 s"
    )


def test_generation_line_shows_two_reasons_and_counts_the_others() -> None:
    reasons = {"a": 5, "b" * 50: 4, "c": 2, "d": 1}
    stats = GenerationStats(1, 0, 12, 0, 0.0, 0.0, 0, 0.0, 1.0, failed=1, invalid_reasons=reasons)
    line = generation_line(asdict(stats), 2)
    assert f"12 invalid (5 a, 4 {'b' * 45}..., 3 other), 1 failed;" in line
    assert render(line, width=400) == line + "\n"


def test_latency_and_robustness_columns_only_when_measured() -> None:
    assert "latency" not in render(front_table(ROWS)) and "robust" not in render(front_table(ROWS))
    rows = [
        {**ROWS[0], "latency_ms": 1.23456, "robustness": ""},
        {**ROWS[1], "latency_ms": "0.5", "robustness": ""},
    ]
    text = render(front_table(rows))
    assert "latency ms" in text and "robust acc" not in text
    assert [row[5] for row in table_rows(rows)] == ["1.235", "0.500"]
    assert [row[6] for row in table_rows(rows)] == ["conv(32,3,1) bn relu", "dense(4)"]
    both = table_rows([{**ROWS[0], "latency_ms": None, "robustness": 0.81234}])
    assert both[0][5:] == ["0.8123", "conv(32,3,1) bn relu"]


def test_a_finalist_from_off_the_front_is_marked_and_explained() -> None:
    rows = [ROWS[0], {**ROWS[1], "rank": "2", "on_front": "0"}]
    text = render(front_table(rows))
    assert [row[0] for row in table_rows(rows)] == ["1", "2+"]
    assert "+ a finalist that screening (--screen) took from off the front" in text
    assert "screening" not in render(front_table(ROWS))


def test_a_front_title_counts_the_front_apart_from_finalists_off_it() -> None:
    off = {**ROWS[1], "rank": "2", "on_front": "0"}
    assert front_title("Pareto front", ROWS).startswith(f"Pareto front ({len(ROWS)} networks;")
    assert front_title("Pareto front", [ROWS[0], off]).startswith(
        "Pareto front (1 network and 1 finalist from off it;"
    )
