"""Tests for ge_nas.metrics: the Metrics record and its JSON form."""

from __future__ import annotations

import json

import pytest

from ge_nas.metrics import FAILED, INVALID, OK, OVER_BUDGET, STATUSES, TIMEOUT, Metrics

FULL = Metrics(
    OK,
    0.91,
    0.88,
    params=1234,
    flops=99999,
    latency_ms=1.25,
    robustness=0.5,
    train_seconds=3.5,
    epochs=8,
)


@pytest.mark.parametrize(
    "metrics", [FULL, Metrics(INVALID, error="phenotype 1:1: unknown layer 'x'"), Metrics(TIMEOUT)]
)
def test_json_round_trip(metrics: Metrics) -> None:
    assert Metrics.from_json(metrics.to_json()) == metrics


def test_json_is_a_plain_object() -> None:
    doc = json.loads(FULL.to_json())
    assert doc["status"] == "ok" and doc["params"] == 1234 and doc["test_accuracy"] == 0.88


def test_unknown_keys_are_ignored_and_missing_get_defaults() -> None:
    doc = {"status": OK, "val_accuracy": 0.5, "future_field": [1, 2], "another": None}
    assert Metrics.from_json(json.dumps(doc)) == Metrics(OK, 0.5)


def test_with_error() -> None:
    failed = FULL.with_error(FAILED, "loss became nan")
    assert failed.status == FAILED and failed.error == "loss became nan"
    assert failed.params == FULL.params and failed.val_accuracy == FULL.val_accuracy
    assert FULL.status == OK and FULL.error == ""  # the original is unchanged


def test_ok() -> None:
    assert FULL.ok
    assert not Metrics(OVER_BUDGET).ok
    assert not FULL.with_error(TIMEOUT, "slow").ok


def test_statuses() -> None:
    assert STATUSES == ("ok", "invalid", "over_budget", "failed", "timeout")


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        FULL.status = FAILED  # type: ignore[misc]


def test_failure_is_the_reason_else_the_errors_first_line_else_the_status() -> None:
    assert Metrics(INVALID, error="x (a.bnf:3)\ndetail", reason="x").failure() == "x"
    assert Metrics(INVALID, error="x (a.bnf:3)\ndetail").failure() == "x (a.bnf:3)"
    assert Metrics(TIMEOUT).failure() == "timeout"
