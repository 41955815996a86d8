"""Tests for ge_nas.pareto: dominance, non-dominated sorting, 2-D hypervolume."""

from __future__ import annotations

import math

import pytest

from ge_nas.pareto import HV_REFERENCE, dominates, hypervolume_2d, nondominated, size_point


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((1, 1), (2, 2), True),
        ((1, 2), (2, 2), True),
        ((2, 2), (1, 1), False),
        ((1, 1), (1, 1), False),
        ((1, 3), (2, 2), False),
        ((0.1, 5.0, 3), (0.1, 5.0, 4), True),
    ],
)
def test_dominates(a: tuple[float, ...], b: tuple[float, ...], expected: bool) -> None:
    assert dominates(a, b) is expected


def test_nondominated() -> None:
    points = [(0.5, 3.0), (0.2, 5.0), (0.6, 4.0), (0.1, 7.0), (0.2, 6.0)]
    assert nondominated(points) == [0, 1, 3]


def test_nondominated_keeps_first_of_equals() -> None:
    assert nondominated([(1, 2), (0, 5), (1, 2), (1, 2)]) == [0, 1]


def test_nondominated_edge_cases() -> None:
    assert nondominated([]) == []
    assert nondominated([(3, 3)]) == [0]
    assert nondominated([(1, 1), (1, 1)]) == [0]


def test_hypervolume_single_point() -> None:
    assert hypervolume_2d([(0.2, 5.0)]) == pytest.approx(0.8 * 3.0)


def test_hypervolume_staircase() -> None:
    # [0.2,1]x[5,8] = 2.4 and [0.5,1]x[3,8] = 2.5 overlap in [0.5,1]x[5,8] = 1.5
    assert hypervolume_2d([(0.2, 5.0), (0.5, 3.0)]) == pytest.approx(3.4)
    assert hypervolume_2d([(0.5, 3.0), (0.2, 5.0)]) == pytest.approx(3.4)  # order does not matter


def test_hypervolume_ignores_dominated_and_duplicate_points() -> None:
    front = [(0.2, 5.0), (0.5, 3.0)]
    assert hypervolume_2d(front + [(0.6, 6.0), (0.2, 5.0), (0.2, 7.0)]) == pytest.approx(3.4)


@pytest.mark.parametrize("outside", [(1.0, 2.0), (1.5, 2.0), (0.5, 8.0), (0.5, 9.0), (2.0, 9.0)])
def test_hypervolume_ignores_points_outside_reference(outside: tuple[float, float]) -> None:
    assert hypervolume_2d([outside]) == 0.0
    assert hypervolume_2d([(0.2, 5.0), outside]) == pytest.approx(2.4)


def test_hypervolume_custom_reference_and_empty() -> None:
    assert hypervolume_2d([], (1, 1)) == 0.0
    assert hypervolume_2d([(0, 0)], (2, 3)) == pytest.approx(6.0)
    assert hypervolume_2d([(0.0, 0.0)]) == pytest.approx(HV_REFERENCE[0] * HV_REFERENCE[1])


def test_size_point() -> None:
    assert size_point(0.9, 1000) == pytest.approx((0.1, 3.0))
    assert size_point(1.0, 0) == (0.0, 0.0)
    err, logp = size_point(0.75, 12345)
    assert err == 0.25 and logp == pytest.approx(math.log10(12345))
