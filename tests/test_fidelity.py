"""Successive halving: most evaluations stay cheap, the best earn longer budgets, rungs never mix."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from test_search_evolution import GRAMMAR, SyntheticExecutor

from ge_nas.archive import Archive
from ge_nas.config import RunConfig
from ge_nas.fidelity import fidelity_key, rung_count, rung_epochs
from ge_nas.grammar import load_grammar
from ge_nas.search import pareto_front, run_search
from ge_nas.search.evaluator import Evaluator, task_for
from ge_nas.search.steady import run_steady


def config(**kw: object) -> RunConfig:
    base = RunConfig(
        GRAMMAR, population=9, generations=3, seed=2, epochs=1, fidelity="sh", sh_eta=3, sh_rungs=3
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["generational", "steady"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each search mode: generational (a barrier per rung) and steady (asynchronous, ASHA)."""
    return str(request.param)


def sh_search(cfg: RunConfig, tmp_path: Path) -> tuple[list, SyntheticExecutor]:
    grammar = load_grammar(GRAMMAR)
    executor = SyntheticExecutor()
    run = run_steady if cfg.mode == "steady" else run_search
    with Archive(tmp_path / "a.sqlite") as archive:
        population = run(grammar, cfg, Evaluator(grammar, cfg, archive, executor))
    return population, executor


def test_rungs_multiply_epochs_by_eta() -> None:
    assert [rung_epochs(config(), r) for r in range(3)] == [1, 3, 9]
    assert rung_count(config()) == 3 and rung_count(config(fidelity="fixed")) == 1


def test_each_rung_trains_about_a_third_of_the_one_below(mode: str, tmp_path: Path) -> None:
    _, executor = sh_search(config(mode=mode), tmp_path)
    per_rung = Counter(task.epochs for task in executor.tasks)
    assert set(per_rung) == {1, 3, 9}
    assert per_rung[1] > per_rung[3] > per_rung[9] > 0
    assert (
        per_rung[3] <= per_rung[1] // 3 + 4
    )  # ceil per generation: at most one extra per generation


def test_no_phenotype_is_trained_twice_at_one_rung(mode: str, tmp_path: Path) -> None:
    _, executor = sh_search(config(mode=mode), tmp_path)
    keys = [(task.phenotype, task.epochs) for task in executor.tasks]
    assert len(keys) == len(set(keys))


def test_promoted_phenotypes_were_first_trained_at_the_rung_below(
    mode: str, tmp_path: Path
) -> None:
    _, executor = sh_search(config(mode=mode), tmp_path)
    seen: set[tuple[str, int]] = set()
    for task in executor.tasks:
        if task.epochs > 1:
            assert (task.phenotype, task.epochs // 3) in seen
        seen.add((task.phenotype, task.epochs))


def test_front_holds_only_the_top_rung(mode: str, tmp_path: Path) -> None:
    population, _ = sh_search(config(mode=mode), tmp_path)
    front = pareto_front(population)
    assert front and {e.rung for e in front} == {2}
    assert sorted(e.rung for e in (ind.evaluation for ind in population))[-1] == 2


def test_single_objective_with_successive_halving(mode: str, tmp_path: Path) -> None:
    population, executor = sh_search(config(objectives=("val_accuracy",), mode=mode), tmp_path)
    assert {t.epochs for t in executor.tasks} == {1, 3, 9}
    assert pareto_front(population)[0].rung == 2


def test_fixed_fidelity_trains_everything_at_one_budget(mode: str, tmp_path: Path) -> None:
    _, executor = sh_search(config(fidelity="fixed", epochs=2, mode=mode), tmp_path)
    assert {t.epochs for t in executor.tasks} == {2}


def test_resume_restores_rungs_and_continues_identically(tmp_path: Path) -> None:
    from ge_nas.search import checkpoint_of

    grammar = load_grammar(GRAMMAR)
    cfg = config(generations=4)
    states = []
    with Archive(tmp_path / "a.sqlite") as archive:
        whole = run_search(
            grammar,
            cfg,
            Evaluator(grammar, cfg, archive, SyntheticExecutor()),
            on_generation=states.append,
        )
        checkpoint = checkpoint_of(states[2])
        executor = SyntheticExecutor()
        resumed = run_search(
            grammar, cfg, Evaluator(grammar, cfg, archive, executor), resume=checkpoint
        )
    assert [list(i) for i in resumed] == [list(i) for i in whole]
    assert [i.evaluation.rung for i in resumed] == [i.evaluation.rung for i in whole]
    assert executor.tasks == [], "every evaluation after the checkpoint comes from the archive"


def test_steady_resume_with_successive_halving_trains_nothing_twice(tmp_path: Path) -> None:
    from ge_nas.search import checkpoint_of

    grammar = load_grammar(GRAMMAR)
    cfg = config(mode="steady", generations=4)
    states = []
    first, second = SyntheticExecutor(), SyntheticExecutor()
    with Archive(tmp_path / "a.sqlite") as archive:
        whole = run_steady(
            grammar, cfg, Evaluator(grammar, cfg, archive, first), on_generation=states.append
        )
        checkpoint = checkpoint_of(states[2])
        assert 0 < max(checkpoint.rungs), "the checkpoint holds promoted individuals"
        resumed = run_steady(
            grammar, cfg, Evaluator(grammar, cfg, archive, second), resume=checkpoint
        )
    assert {e.rung for e in pareto_front(resumed)} == {2}
    assert second.tasks == [], "every result after the checkpoint is in the archive already"
    assert [(list(i), i.evaluation.rung) for i in resumed] == [
        (list(i), i.evaluation.rung) for i in whole
    ], "one worker: the resumed run continues exactly as the whole one did"


def test_asha_promotes_the_best_third_of_a_rung_once_each() -> None:
    from ge_nas.grammar.mapper import Derivation
    from ge_nas.metrics import OK, Metrics
    from ge_nas.search.evaluator import Evaluation
    from ge_nas.search.steady import Asha

    asha = Asha(config(objectives=("val_accuracy",)))

    def result(i: int, rung: int = 0) -> Evaluation:
        metrics = Metrics(OK, val_accuracy=i / 10, params=100)
        return Evaluation((i,), Derivation(None, 0, 0, 0, 0), f"p{i}", f"h{i}", metrics, rung=rung)

    for i in range(2):
        asha.add(result(i))
    assert asha.promotion() is None, "fewer than eta results: nobody is in the top third yet"
    for i in range(2, 6):
        asha.add(result(i))
    assert asha.promotion() == ([5], 1) and asha.promotion() == ([4], 1)
    assert asha.promotion() is None, "each promoted once; 6 results promote 2"
    for i in (3, 4, 5):  # three at rung 1: the best of them goes to rung 2 before anything else
        asha.add(result(i, rung=1))
    assert asha.promotion() == ([5], 2)


def test_a_data_view_gets_its_own_fidelity_key_and_no_view_keeps_the_old_one() -> None:
    base = RunConfig(GRAMMAR)
    assert "classes" not in fidelity_key(base) and "shots" not in fidelity_key(base)
    # the key of every archive written before data views
    assert fidelity_key(base) == (
        "digits|data_dir=None|val=0.2|split_seed=0|subset=None|epochs=8|final=False"
    )
    views = [
        replace(base, classes="0-4"),
        replace(base, classes="5-9"),
        replace(base, shots=20),
        replace(base, shots=10),
        replace(base, shots=20, val_shots=5),
        replace(base, classes="0-4", shots=20),
    ]
    for final in (False, True):
        keys = [fidelity_key(c, final=final) for c in [base, *views]]
        assert len(set(keys)) == len(keys)
    assert fidelity_key(replace(base, classes="0,1,2,3,4")) == fidelity_key(views[0])
    assert fidelity_key(views[5]).endswith("|classes=0-4|shots=20")


def test_tasks_carry_the_data_view_to_the_workers() -> None:
    config = RunConfig(GRAMMAR, classes="7,0-3", shots=6, val_shots=2)
    search = task_for(config, "conv(8,3)", "k", epochs=1, threads=1)
    final = task_for(config, "conv(8,3)", "k", epochs=1, threads=1, save_dir="x")
    for task in (search, final):
        assert (task.classes, task.shots, task.val_shots) == ("0-3,7", 6, 2)


def test_a_screening_epoch_is_a_final_training_scored_on_the_held_out_slice_alone() -> None:
    config = RunConfig(
        GRAMMAR, ood="noise", objectives=("val_accuracy", "params", "ood_auroc"), final_holdout=0.3
    )
    screen = task_for(config, "conv(8,3)", "k", epochs=1, threads=1, screen=True)
    final = task_for(config, "conv(8,3)", "k", epochs=1, threads=1, save_dir="x")
    assert screen.final and screen.holdout == 0.3 and screen.save_dir is None
    assert not screen.score_test and screen.ood is None and screen.train_subset is None
    assert final.score_test and final.ood == "noise"
    keys = {
        fidelity_key(config, epochs=1, final=True, screen=True),
        fidelity_key(config, epochs=1, final=True),
        fidelity_key(config, epochs=1),
    }
    assert len(keys) == 3
