"""Finalists: one per structure, and the held-out slice chooses among them."""

from __future__ import annotations

from dataclasses import dataclass

from ge_nas.metrics import OK, Metrics
from ge_nas.search.finalists import choose_best, pick_finalists, structure


@dataclass(frozen=True)
class Item:
    phenotype: str
    metrics: Metrics
    phenotype_hash: str | None = None
    genome: tuple[int, ...] = ()


def item(phenotype: str, params: int) -> Item:
    return Item(phenotype, Metrics(OK, 0.9, None, params, params))


def test_near_copies_share_a_structure() -> None:
    a = structure("conv(24,5) bn relu pool conv(64,5) relu dropout(0.1) | opt=adam")
    b = structure("conv(24,3) bn gelu pool(avg) conv(64,3) elu dropout(0.4) | opt=sgd lr=0.1")
    assert a == b == (("conv", "24"), ("conv", "64"))
    assert structure("conv(24,5) relu dense(10) | opt=adam") != a


def test_finalists_skip_near_copies_and_prefer_the_size_target() -> None:
    front = [
        item("conv(64,5) relu conv(64,3) relu", 90_000),
        item("conv(24,5) relu conv(64,5) relu", 40_000),
        item("conv(24,3) gelu conv(64,3) relu", 39_000),
        item("conv(24,5) relu res(16,3)", 7_000),
    ]
    chosen = pick_finalists(front, 2, max_params=50_000)
    assert [c.metrics.params for c in chosen] == [40_000, 7_000]
    assert len(pick_finalists(front, 9)) == 3


def test_the_held_out_accuracy_chooses_the_best_finalist() -> None:
    finals = [
        (1, Metrics(OK, 0.91, 0.95, 40_000)),
        (3, Metrics(OK, 0.93, 0.90, 7_000)),
        (4, Metrics("failed")),
    ]
    assert choose_best(finals) == 3
    assert choose_best([(2, Metrics("failed"))]) is None


def test_backbone_blocks_kept_and_frozen_are_part_of_the_structure() -> None:
    from ge_nas.search.finalists import structure

    head = " dense(16) relu | opt=adam"
    assert structure("backbone(3,1)" + head) != structure("backbone(4,1)" + head)
    assert structure("backbone(3,1)" + head) != structure("backbone(3,2)" + head)
    assert structure("backbone(3,1)" + head) == structure("backbone(3,1) dropout(0.5)" + head)


def hashed(phenotype: str, accuracy: float, params: int) -> Item:
    return Item(phenotype, Metrics(OK, accuracy, None, params, params), phenotype_hash=phenotype)


def test_screening_takes_the_most_accurate_structures_dominated_or_not() -> None:
    from ge_nas.search.finalists import screening_candidates

    trained = [
        hashed("conv(8,3) relu", 0.80, 1_000),
        hashed("conv(32,3) relu conv(32,3) relu", 0.79, 40_000),  # dominated by the first
        hashed("conv(32,5) gelu conv(32,5) relu", 0.785, 41_000),  # a near-copy of the second
        hashed("conv(16,3) relu conv(64,3) relu", 0.70, 30_000),
        Item("conv(64,3) relu", Metrics("failed"), phenotype_hash="x"),
    ]
    chosen = screening_candidates(trained, 2)
    assert [c.metrics.params for c in chosen] == [1_000, 40_000]
    assert [c.metrics.params for c in screening_candidates(trained, 9)] == [1_000, 40_000, 30_000]


def test_screened_finalists_are_the_best_on_the_held_out_slice() -> None:
    from ge_nas.search.finalists import screened

    candidates = [hashed(p, 0.8, 100) for p in ("a", "b", "c", "d")]
    held_out = {
        "a": Metrics(OK, 0.70, None, 100),
        "b": Metrics(OK, 0.90, None, 100),
        "c": Metrics("failed"),
        "d": Metrics(OK, 0.70, None, 100),
    }
    assert [c.phenotype for c in screened(candidates, held_out, 3)] == ["b", "a", "d"]
    assert [c.phenotype for c in screened(candidates, held_out, 4)] == ["b", "a", "d"]  # c failed
    assert screened(candidates, {}, 2) == []  # nothing screened: nothing chosen
