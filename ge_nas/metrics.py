"""Metrics: what one evaluation of one phenotype produced, success or not."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

OK = "ok"
INVALID = "invalid"  # genome did not map, phenotype did not parse, or shape cannot work
OVER_BUDGET = "over_budget"  # rejected before training by --max-params / --max-flops
FAILED = "failed"  # training went wrong (NaN loss, worker crash)
TIMEOUT = "timeout"  # training exceeded --eval-timeout
STATUSES = (OK, INVALID, OVER_BUDGET, FAILED, TIMEOUT)


@dataclass(frozen=True)
class Metrics:
    """The outcome of evaluating one phenotype at one fidelity."""

    status: str
    val_accuracy: float = 0.0
    test_accuracy: float | None = None
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    robustness: float | None = None
    val_loss: float | None = None  # mean cross-entropy on the validation split (no label smoothing)
    ood_auroc: float | None = None  # validation images against out-of-distribution ones (search)
    # The most frequent class's share of the validation labels: what a network that learned
    # nothing scores (None in archives written before it was recorded).
    chance: float | None = None
    test_ood_auroc: float | None = None  # test images against out-of-distribution ones (finalists)
    train_seconds: float = 0.0
    epochs: int = 0
    error: str = ""
    reason: str = (
        ""  # the failure in a few words, to count alike failures by (error has the detail)
    )

    @property
    def ok(self) -> bool:
        """True when the network trained and was scored."""
        return self.status == OK

    def with_error(self, status: str, error: str, reason: str = "") -> Metrics:
        """Return a copy marked with a failure status, its detail and, optionally, a short reason."""
        return replace(self, status=status, error=error, reason=reason)

    def failure(self) -> str:
        """Return what went wrong in a few words: reason, else the error's first line, else the status."""
        return self.reason or self.error.split("\n")[0] or self.status

    def to_json(self) -> str:
        """Return the metrics as a JSON object."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Metrics:
        """Read metrics written by to_json, ignoring unknown keys."""
        doc: dict[str, Any] = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


class Scored(Protocol):
    """A phenotype with its search metrics (a search Evaluation or an archive Record)."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def phenotype_hash(self) -> str | None: ...
    @property
    def phenotype(self) -> str | None: ...
    @property
    def genome(self) -> tuple[int, ...]: ...
