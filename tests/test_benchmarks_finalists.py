"""benchmarks/fmnist.py's finalist rules, and benchmarks/finalists.py comparing them on one archive."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ge_nas.archive import Record
from ge_nas.metrics import OK, Metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fmnist(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import fmnist

    return fmnist


# a search of a few seconds on the embedded digits: the options of benchmarks/fmnist.py
TINY = ("--dataset", "digits", "--minutes", "0.05", "--population", "4", "--epochs", "1",
        "--train-subset", "200", "--finalists", "1", "--final-epochs", "1", "--workers", "1",
        "--grammar", str(ROOT / "tests" / "grammars" / "tiny_cnn.bnf"))  # fmt: skip


@pytest.fixture
def tiny_search(fmnist, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Return the seed directory (ge.sqlite, random.sqlite) of a finished TINY benchmark."""
    assert fmnist.main([*TINY, "--out", str(tmp_path / "bench")]) == 0
    return tmp_path / "bench" / "seed0"


def record(phenotype: str, accuracy: float, params: int) -> Record:
    return Record(phenotype, "f", phenotype, (), Metrics(OK, accuracy, None, params))


SEARCHED = [
    record("conv(8,3) relu", 0.70, 1_000),
    record("conv(16,3) relu", 0.79, 19_000),
    record("conv(16,5) gelu", 0.78, 19_500),  # a near-copy of the 19,000 one
    record("conv(32,3) relu conv(32,3) relu", 0.77, 45_000),  # dominated, within the target
    record("conv(64,3) relu conv(64,3) relu", 0.81, 90_000),  # beyond the target
    Record("bad", "f", "bad", (), Metrics("error")),
]


def test_without_screening_the_finalists_are_the_front_best_within_the_target(fmnist) -> None:  # type: ignore[no-untyped-def]
    search = fmnist.SearchResult(SEARCHED, 1.0, 0.0)
    chosen = fmnist.finalist_candidates(search, 2, 0, 50_000)
    assert [r.metrics.params for r in chosen] == [19_000, 1_000]


def test_screening_takes_the_most_accurate_structures_within_the_target(fmnist) -> None:  # type: ignore[no-untyped-def]
    search = fmnist.SearchResult(SEARCHED, 1.0, 0.0)
    candidates = fmnist.finalist_candidates(search, 2, 3, 50_000)
    assert [r.metrics.params for r in candidates] == [19_000, 45_000, 1_000]
    one_epoch = {
        "conv(16,3) relu": Metrics(OK, 0.85),
        "conv(32,3) relu conv(32,3) relu": Metrics(OK, 0.88),
        "conv(8,3) relu": Metrics("error"),
    }
    finalists = fmnist.screened(candidates, one_epoch, 2)
    assert [r.metrics.params for r in finalists] == [45_000, 19_000]


def test_finalists_benchmark_compares_the_rules_on_one_archive(
    tiny_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import finalists

    tiny = list(TINY)
    archive = tiny_search / "ge.sqlite"
    out = tmp_path / "finalists"
    argv = [*tiny, "--archive", str(archive), "--screens", "0,3", "--out", str(out)]
    assert finalists.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    rules = summary["rules"]
    assert set(rules) == {"0", "3"} and summary["final_epochs"] == 1
    assert len(rules["0"]["finalists"]) == 1 and len(rules["3"]["candidates"]) >= 1
    for rule in rules.values():
        chosen = rule["chosen"]
        assert chosen in rule["finalists"] and 0.0 <= chosen["final_test"] <= 1.0
        assert all(c["one_epoch_holdout"] is not None for c in rule["candidates"])
    assert "--screen 3" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not empty"):
        finalists.main(argv)  # the same --out again: nothing is overwritten
    early = [*tiny, "--archive", str(archive), "--search-minutes", "0", "--out", str(out / "x")]
    with pytest.raises(SystemExit, match="had finished by then"):
        finalists.main(early)
    # the tiny search's length depends on the machine's speed; its first network is always there
    searched = summary["networks_searched"]
    first = [*tiny, "--archive", str(archive), "--screens", "0", "--evaluations", "1"]
    assert finalists.main([*first, "--out", str(out / "first1")]) == 0
    assert json.loads((out / "first1" / "summary.json").read_text())["networks_searched"] == 1
    assert searched >= 1


def test_search_minutes_keeps_what_had_finished_by_then(fmnist) -> None:  # type: ignore[no-untyped-def]
    import finalists

    stamped = [
        replace(r, started=100.0 + 30 * i, ended=100.0 + 30 * i + 40)
        for i, r in enumerate(SEARCHED[:4])
    ]  # ended 40, 70, 100 and 130 s after the first began
    kept = finalists.finished_within([*stamped, SEARCHED[4]], 100)  # the last has no stamps
    assert kept == stamped[:3]
    assert finalists.finished_within(stamped, 10) == []


def test_a_screened_finalist_off_the_front_is_reported_and_can_be_chosen(fmnist) -> None:  # type: ignore[no-untyped-def]
    search = fmnist.SearchResult(SEARCHED, 1.0, 0.0)
    dominated, small = SEARCHED[3], SEARCHED[0]
    finals = {
        dominated.phenotype_hash: Metrics(OK, 0.91, 0.90, 45_000),
        small.phenotype_hash: Metrics(OK, 0.85, 0.84, 1_000),
    }
    done = fmnist.Finished(search, [dominated, small], finals, 3, 1.0)
    rows = done.rows(fmnist.make_run_config(fmnist.parse_args([]), 0))
    front = search.front()
    assert [r["phenotype"] for r in rows] == [r.phenotype for r in front] + [dominated.phenotype]
    assert rows[-1]["rank"] == len(front) + 1 and rows[-1]["holdout_accuracy"] == 0.91
    chosen = fmnist.chosen_finalist(rows, 50_000)
    assert chosen is not None and chosen["phenotype"] == dominated.phenotype


def write_searches(seed_dir: Path, ge: list[Record], rnd: list[Record]) -> None:
    """Write a seed directory's ge.sqlite and random.sqlite: the searches' records, in order."""
    from ge_nas.archive import Archive

    for name, records in (("ge", ge), ("random", rnd)):
        with Archive(seed_dir / f"{name}.sqlite") as archive:
            for t, r in enumerate(records):
                archive.record(replace(r, fidelity="d|final=False", ended=float(t)))


def test_searched_reads_a_search_in_finishing_order_without_its_final_trainings(
    fmnist, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from ge_nas.archive import Archive

    path = tmp_path / "ge.sqlite"
    with Archive(path) as archive:
        for name, fidelity, ended in [("late", "a|final=False", 3.0), ("early", "a|final=False", 1.0),
                                      ("other", "b|final=False", 2.0), ("final", "a|final=True", 0.5)]:  # fmt: skip
            archive.record(replace(record(name, 0.5, 100), fidelity=fidelity, ended=ended))
    assert [r.phenotype for r in fmnist.searched(path, "a|final=False")] == ["early", "late"]
    assert fmnist.searched(path, "c|final=False") == []
    with pytest.raises(SystemExit, match="searches at 2 fidelities"):
        fmnist.searched(path)  # which one is the search's? none is ranked with the other
    one = tmp_path / "one.sqlite"
    with Archive(path, read_only=True) as archive, Archive(one) as copy:
        for r in archive.records():
            if not r.fidelity.startswith("b"):
                copy.record(r)
    assert [r.phenotype for r in fmnist.searched(one)] == ["early", "late"]  # not the final
    with pytest.raises(SystemExit, match=r"none\.sqlite: no such archive"):
        fmnist.searched(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()  # nothing created


def test_rescore_recomputes_the_ratios_from_the_archives(fmnist, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import rescore

    from ge_nas.archive import Archive

    ge = [record("conv(8,3) relu", 0.70, 1_000), record("conv(16,3) relu", 0.80, 20_000)]
    rnd = [record("conv(4,3) relu", 0.60, 500), record("conv(9,3) relu", 0.70, 1_500),
           record("conv(64,3) relu", 0.90, 900_000)]  # fmt: skip
    write_searches(tmp_path, ge, rnd)
    final = record("conv(8,3) relu", 0.99, 1_000)  # a final training: not the search's
    for name in ("ge", "random"):
        with Archive(tmp_path / f"{name}.sqlite") as archive:
            archive.record(replace(final, fidelity="d|final=True", ended=9.0))
    numbers = rescore.rescore(tmp_path, 50_000)
    within = fmnist.target_reference(50_000)
    assert within == pytest.approx((1.0, 4.69897))
    # equal evaluations: random's first two; within 50k random's 900k network counts for nothing
    assert numbers["HV ratio within target"] == pytest.approx(
        fmnist.hypervolume_2d([(0.3, 3.0), (0.2, 4.30103)], within)
        / fmnist.hypervolume_2d([(0.4, 2.69897), (0.3, 3.17609)], within)
    )
    assert numbers["GE evals to random's best"] == 1 and numbers["random evals to its best"] == 2
    assert numbers["evaluations compared"] == 2
    assert numbers["GE best val within target"] == pytest.approx(0.80)
    assert numbers["random best val within target"] == pytest.approx(0.70)
    small = rescore.rescore(tmp_path, 1_200)  # GE's 20k network is over this target
    assert small["GE best val within target"] == pytest.approx(0.70)
    assert small["random best val within target"] == pytest.approx(0.60)
    none = rescore.rescore(tmp_path, 100)  # no network of either search that small
    assert none["GE best val within target"] is None and none["random evals to its best"] is None
    random_hv = fmnist.hypervolume_2d([(0.4, 2.69897), (0.3, 3.17609)])
    # the union adds random's 500-param network below GE's smallest
    assert numbers["HV ratio, union of both"] == pytest.approx(
        fmnist.hypervolume_2d([(0.3, 3.0), (0.2, 4.30103), (0.4, 2.69897)]) / random_hv
    )
    # the ceiling: GE's best within the target (0.80) imagined at 2,000 params
    assert numbers["HV ratio ceiling, 2,000 p"] == pytest.approx(
        fmnist.hypervolume_2d([(0.3, 3.0), (0.2, 4.30103), (0.2, 3.30103)]) / random_hv
    )
    assert rescore.main([str(tmp_path)]) == 0
    assert "HV ratio within target" in capsys.readouterr().out


def test_rescore_compares_equal_evaluations_when_random_stopped_early(
    fmnist, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import rescore

    # GE's third network (after random stopped at two) must not count for GE
    ge = [record("conv(8,3) relu", 0.50, 1_000), record("conv(16,3) relu", 0.55, 2_000),
          record("conv(32,3) relu", 0.95, 3_000)]  # fmt: skip
    rnd = [record("conv(4,3) relu", 0.60, 1_000), record("conv(9,3) relu", 0.70, 1_500)]
    write_searches(tmp_path, ge, rnd)
    numbers = rescore.rescore(tmp_path, 50_000)
    assert numbers["evaluations compared"] == 2
    assert numbers["HV ratio (1, 8)"] < 1.0  # GE's first two are dominated by random's
    assert numbers["GE evals to random's best"] is None
    assert numbers["GE best val within target"] == pytest.approx(0.55)  # not the third's 0.95


def test_reevaluate_summary_counts_only_networks_retrained(fmnist) -> None:  # type: ignore[no-untyped-def]
    import reevaluate

    s = reevaluate.summarise([(0.80, [0.70, 0.74]), (0.78, [0.76]), (0.90, [])])
    assert s is not None  # the third network's retrainings all failed: in neither mean
    assert s["search"] == pytest.approx(0.79) and s["retrained"] == pytest.approx(0.74)
    assert s["drop"] == pytest.approx(0.05)
    assert reevaluate.summarise([(0.9, [])]) is None


def test_reevaluate_retrains_each_archives_top_with_other_seeds(
    fmnist, tiny_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import reevaluate

    from ge_nas.archive import Archive
    from ge_nas.fidelity import fidelity_key
    from ge_nas.worker import derive_seed

    tiny, seed_dir = list(TINY), tiny_search
    archives = [str(seed_dir / "ge.sqlite"), str(seed_dir / "random.sqlite")]
    out = tmp_path / "again"
    argv = [
        *tiny,
        *archives,
        "--top",
        "2",
        "--repeats",
        "2",
        "--evaluations",
        "1",
        "--out",
        str(out),
    ]
    assert reevaluate.main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # each archive's first network, retrained twice
    assert {r["archive"] for r in rows} == set(archives)
    config = fmnist.make_run_config(fmnist.parse_args(tiny), 0)
    with Archive(seed_dir / "ge.sqlite", read_only=True) as archive:
        first = fmnist.in_order(archive.records(fidelity_key(config)))[0]
    ge_rows = [r for r in rows if r["archive"] == archives[0]]
    assert all(r["phenotype"] == first.phenotype for r in ge_rows)
    assert all(r["search_val_accuracy"] == first.metrics.val_accuracy for r in ge_rows)
    # two seeds of its own per retraining, none the search's (nor that of a search seeded 1 or 2)
    searches = {derive_seed(s, first.phenotype_hash) for s in (0, 1, 2)}
    seeds = {r["seed"] for r in ge_rows}
    assert len(seeds) == 2 and not seeds & searches
    tasks, labels = reevaluate.retraining_tasks(config, [[first]], 3, 1)
    assert labels == [(0, 0)] * 3 and len({t.seed for t in tasks} - searches) == 3
    assert all(t.phenotype == first.phenotype and t.epochs == config.epochs for t in tasks)
    assert "drop" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not empty"):
        reevaluate.main(argv)  # nothing is overwritten
    with pytest.raises(SystemExit, match="--repeats 0"):
        reevaluate.main([*argv[:-1], str(tmp_path / "x"), "--repeats", "0"])
    with pytest.raises(SystemExit, match="no such archive"):
        reevaluate.main([*tiny, str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "y")])
    with pytest.raises(SystemExit, match="--target-params 0"):
        reevaluate.main([*argv[:-1], str(tmp_path / "z"), "--target-params", "0"])


def test_stages_rank_correlations_pooled_and_within_a_run(
    fmnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import stages

    def finalist(search: float, one: float, final: float, test: float) -> dict[str, float]:
        return {"search_val_accuracy": search, "one_epoch_holdout": one, "final_holdout": final,
                "final_test": test, "params": 1_000}  # fmt: skip

    runs = [
        [finalist(0.80, 0.90, 0.93, 0.92), finalist(0.70, 0.88, 0.91, 0.93)],
        [finalist(0.60, 0.80, 0.85, 0.84), finalist(0.65, 0.80, 0.86, 0.85)],
    ]
    failed = {**finalist(0.9, 0.9, 0.9, 0.9), "final_holdout": None}  # its final training failed
    other = finalist(0.5, 0.5, 0.99, 0.99)  # a candidate that only another rule's finalists hold
    paths = []
    for i, run in enumerate(runs):
        path = tmp_path / f"s{i}.json"
        rule = {"candidates": [*run, other], "finalists": [*run, failed]}
        path.write_text(json.dumps({"rules": {"6": rule, "0": {"finalists": [other]}}}))
        paths.append(path)
    assert stages.finalists(paths[0], "6") == runs[0]
    result = stages.correlations(runs)
    pooled, alike, pairs = result["search_val_accuracy ~ final_holdout"]
    assert pairs == 2 and alike == 1.0  # both runs order their pair as the final training does
    assert pooled == pytest.approx(1.0)  # the four in the same order in both columns
    _, alike, _ = result["one_epoch_holdout ~ final_holdout"]
    assert alike == 0.75  # run 1 alike, run 2 a tie in the screening epoch: half
    _, alike, _ = result["final_holdout ~ final_test"]
    assert alike == 0.5  # run 1's held-out slice picks the worse test accuracy
    assert stages.main([str(p) for p in paths]) == 0
    printed = capsys.readouterr().out
    assert "4 finalists from 2 runs" in printed and "1.5 of 2" in printed
    with pytest.raises(SystemExit, match="no --screen 12 rule"):
        stages.main([str(paths[0]), "--screen", "12"])
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="list.json: not a benchmarks/finalists.py summary"):
        stages.main([str(tmp_path / "list.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a benchmarks/finalists.py summary"):
        stages.main([str(tmp_path / "bad.json")])
