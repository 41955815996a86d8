"""Finalising a search: the front's finalists, or screened ones from on or off the front; resume."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_search_evolution import GRAMMAR, SyntheticExecutor, config, synthetic_metrics

from ge_nas import rundir
from ge_nas.arch import parse_arch
from ge_nas.archive import Archive, Record
from ge_nas.config import RunConfig
from ge_nas.fidelity import fidelity_key
from ge_nas.finalise import SCREEN_EPOCHS, _saved_phenotype, finalise
from ge_nas.grammar import load_grammar
from ge_nas.metrics import OK, Metrics
from ge_nas.search import pareto_front, run_search
from ge_nas.search.evaluator import Evaluation, Evaluator
from ge_nas.search.finalists import pick_finalists, screening_candidates
from ge_nas.worker import EvalTask, Outcome


class FinalExecutor(SyntheticExecutor):
    """Scores final trainings by a held-out accuracy that favours one phenotype; saves a stand-in model."""

    def __init__(self, favourite: str | None = None) -> None:
        super().__init__()
        self.favourite = favourite

    def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
        for i, task in enumerate(tasks):
            self.tasks.append(task)
            m = synthetic_metrics(task.phenotype)
            if task.final:
                spec = parse_arch(task.phenotype)
                held_out = 0.99 if spec.hash() == self.favourite else 0.5
                m = replace(
                    m, val_accuracy=held_out, test_accuracy=0.8 if task.score_test else None
                )
                if task.save_dir is not None:
                    Path(task.save_dir).mkdir(parents=True, exist_ok=True)
                    (Path(task.save_dir) / "spec.json").write_text(spec.to_json())
                    (Path(task.save_dir) / "model.pt").write_bytes(b"weights")
            yield i, Outcome(m, "test", time.time(), time.time())


def searched(cfg: RunConfig, archive: Archive) -> list[Evaluation]:
    evaluator = Evaluator(load_grammar(GRAMMAR), cfg, archive, SyntheticExecutor())
    return pareto_front(run_search(load_grammar(GRAMMAR), cfg, evaluator))


def finalised(cfg: RunConfig, archive: Archive, executor: FinalExecutor, out: Path, front):  # type: ignore[no-untyped-def]
    out.mkdir(exist_ok=True)  # the run directory, as `run` made it
    return finalise(front, Evaluator(load_grammar(GRAMMAR), cfg, archive, executor), out)


def test_screening_can_retrain_a_network_from_off_the_front(tmp_path: Path) -> None:
    cfg = config(generations=4, finalists=1, screen=8)
    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        on_front = {e.phenotype_hash for e in front}
        evaluator = Evaluator(load_grammar(GRAMMAR), cfg, archive, SyntheticExecutor())
        candidates = screening_candidates(evaluator.archived(), cfg.screen)
        off = [c for c in candidates if c.phenotype_hash not in on_front]
        assert len(candidates) == 8 and off  # the most accurate structures reach past the front
        favourite = off[-1]
        executor = FinalExecutor(favourite.phenotype_hash)
        done = finalised(cfg, archive, executor, tmp_path / "run", front)

        screening, finals = executor.tasks[:8], executor.tasks[8:]
        assert {t.phenotype for t in screening} == {c.phenotype for c in candidates}
        assert all(
            t.final and t.save_dir is None and not t.score_test and t.ood is None for t in screening
        )
        assert all(t.epochs == SCREEN_EPOCHS for t in screening)
        assert [t.phenotype for t in finals] == [favourite.phenotype]
        rank = len(front) + 1
        assert finals[0].save_dir == str(tmp_path / "run" / "front" / str(rank))
        assert finals[0].score_test and finals[0].epochs == cfg.final_epochs

        rows = rundir.read_pareto(tmp_path / "run")
        assert [r["on_front"] for r in rows] == ["1"] * len(front) + ["0"]
        assert (
            rows[-1]["phenotype"] == favourite.phenotype and rows[-1]["holdout_accuracy"] == "0.99"
        )
        assert done.best == rank and (tmp_path / "run" / "best" / "model.pt").exists()
        screened_key = fidelity_key(cfg, epochs=SCREEN_EPOCHS, final=True, screen=True)
        assert len(archive.records(screened_key)) == 8

        # Resumed after the final training: nothing is trained again, the same rows come back.
        again = FinalExecutor(favourite.phenotype_hash)
        assert finalised(cfg, archive, again, tmp_path / "run", front).rows == done.rows
        assert again.tasks == []


def test_without_screening_the_finalists_are_the_fronts(tmp_path: Path) -> None:
    cfg = config(generations=3, finalists=2)
    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        executor = FinalExecutor(front[1].phenotype_hash)
        done = finalised(cfg, archive, executor, tmp_path / "run", front)
    assert all(t.save_dir is not None for t in executor.tasks) and len(executor.tasks) == 2
    assert [r["on_front"] for r in done.rows] == [1] * len(front) and done.best == 2


def test_screening_a_finalist_that_fails_leaves_the_others(tmp_path: Path) -> None:
    cfg = config(generations=3, finalists=1, screen=3)

    class Failing(FinalExecutor):
        def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
            for i, outcome in super().run(tasks):
                failed = Outcome(Metrics("failed", error="boom"), "test", 0.0, 0.0)
                yield i, failed if i == 0 else outcome

    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        executor = Failing()
        finalised(cfg, archive, executor, tmp_path / "run", front)
    screening = executor.tasks[:3]
    assert (
        executor.tasks[3].phenotype != screening[0].phenotype
    )  # the failed candidate is not retrained


def test_the_archived_networks_of_a_run_are_those_its_grammar_derives(tmp_path: Path) -> None:
    cfg = config(generations=2)
    with Archive(tmp_path / "a.sqlite") as archive:
        searched(cfg, archive)
        evaluator = Evaluator(load_grammar(GRAMMAR), cfg, archive, SyntheticExecutor())
        before = evaluator.archived()
        foreign = "conv(99,3) relu"
        archive.record(
            Record(parse_arch(foreign).hash(), evaluator.fidelity(), foreign, (1, 2, 3),
                   Metrics(OK, 0.99, 0.99, 100, 100))
        )  # fmt: skip
        after = evaluator.archived()
    assert before and [e.phenotype_hash for e in after] == [e.phenotype_hash for e in before]
    assert all(e.metrics.ok and e.cached for e in after)


@pytest.mark.parametrize(("finalists", "screen"), [(2, 0), (2, 1), (2, 2), (0, 5)])
def test_a_screen_no_larger_than_the_finalists_is_off(
    tmp_path: Path, finalists: int, screen: int
) -> None:
    cfg = config(generations=2, finalists=finalists, screen=screen)
    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        executor = FinalExecutor()
        finalised(cfg, archive, executor, tmp_path / "run", front)
    assert all(t.save_dir is not None for t in executor.tasks)
    assert len(executor.tasks) == finalists


def test_when_no_screening_succeeds_the_fronts_finalists_are_retrained(tmp_path: Path) -> None:
    cfg = config(generations=3, finalists=2, screen=4)

    class Failing(FinalExecutor):
        def run(self, tasks: Iterable[EvalTask]) -> Iterator[tuple[int, Outcome]]:
            for i, outcome in super().run(tasks):
                failed = Outcome(Metrics("failed", error="boom"), "test", 0.0, 0.0)
                yield i, failed if self.tasks[-1].save_dir is None else outcome

    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        executor = Failing()
        finalised(cfg, archive, executor, tmp_path / "run", front)
    finals = [t for t in executor.tasks if t.save_dir is not None]
    assert [t.phenotype for t in finals] == [e.phenotype for e in pick_finalists(front, 2)]


def test_screening_takes_its_candidates_at_the_fronts_rung(tmp_path: Path) -> None:
    """Successive halving whose top rung nobody reached: the front is at a lower rung, and so are the candidates."""
    cfg = config(generations=2, finalists=1, screen=4, fidelity="sh", sh_rungs=3)
    with Archive(tmp_path / "a.sqlite") as archive:
        searched(cfg, archive)
        evaluator = Evaluator(load_grammar(GRAMMAR), cfg, archive, SyntheticExecutor())
        front = [replace(e, rung=0) for e in evaluator.archived(0)[:3]]
        expected = screening_candidates(evaluator.archived(0), 4)
        assert expected != screening_candidates(evaluator.archived(2), 4)
        executor = FinalExecutor()
        finalised(cfg, archive, executor, tmp_path / "run", front)
    screening = [t for t in executor.tasks if t.save_dir is None]
    assert [t.phenotype for t in screening] == [e.phenotype for e in expected]


def test_a_front_that_moved_sets_the_old_ranks_models_aside(tmp_path: Path) -> None:
    """A resumed run with a new front: front/<rank> must hold the network now at that rank."""
    cfg = config(generations=3, finalists=2)
    run = tmp_path / "run"
    with Archive(tmp_path / "a.sqlite") as archive:
        front = searched(cfg, archive)
        finalised(cfg, archive, FinalExecutor(), run, front)
        before = {d.name: _saved_phenotype(d) for d in (run / "front").iterdir()}
        moved_front = front[1:] + front[:1]  # the same networks, other ranks
        done = finalised(cfg, archive, FinalExecutor(), run, moved_front)
    rows = rundir.read_pareto(run)
    for directory in (run / "front").iterdir():
        if directory.name.isdigit():
            assert _saved_phenotype(directory) == rows[int(directory.name) - 1]["phenotype"]
    assert sorted(p.name for p in done.set_aside) == sorted(f"{name}.previous" for name in before)
    assert {_saved_phenotype(p) for p in done.set_aside} == set(
        before.values()
    )  # kept, not deleted
