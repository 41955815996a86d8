"""Worker-side evaluation and executors: statuses are data, results do not depend on the executor."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ge_nas import metrics as st
from ge_nas.arch import parse_arch
from ge_nas.worker import EvalTask, derive_seed, evaluate, majority_share

SMALL = "conv(8,3) relu pool(max,2) | opt=adam lr=0.005 batch=64"


def task(phenotype: str = SMALL, **kw: object) -> EvalTask:
    options = {"seed": 3, "epochs": 1, "train_subset": 0.3, "threads": 1}
    options.update(kw)
    return EvalTask(phenotype, **options)  # type: ignore[arg-type]


def test_ok_evaluation_reports_accuracies_and_size() -> None:
    m = evaluate(
        task("conv(8,3) relu pool(max,2) flatten | opt=adam lr=0.01 batch=32", epochs=3)
    ).metrics
    assert m.status == st.OK
    assert 0.6 < m.val_accuracy <= 1.0 and m.test_accuracy is not None
    assert m.params == (8 * 9 + 8) + (8 * 4 * 4 * 10 + 10)
    assert m.flops and m.flops > 0 and m.epochs == 3


def scores(m: st.Metrics) -> st.Metrics:
    """Drop the timing, which no two runs share."""
    return replace(m, train_seconds=0.0)


def test_test_set_is_scored_only_when_asked() -> None:
    skipped = evaluate(task(score_test=False)).metrics
    scored = evaluate(task()).metrics
    assert skipped.test_accuracy is None and scored.test_accuracy is not None
    assert skipped.val_accuracy == scored.val_accuracy  # the same training either way


def test_same_task_same_result() -> None:
    assert scores(evaluate(task()).metrics) == scores(evaluate(task()).metrics)


def test_shape_that_cannot_work_is_invalid_not_an_exception() -> None:
    m = evaluate(task("dense(16) conv(8,3)")).metrics
    assert m.status == st.INVALID and "feature map" in m.error


def test_shape_that_cannot_work_has_a_short_reason_to_count_it_by() -> None:
    m = evaluate(task("dense(16) conv(8,3)")).metrics
    assert m.reason == "conv needs a feature map, gets a flat vector"


def test_unparsable_phenotype_is_invalid() -> None:
    assert evaluate(task("conv(8,")).metrics.status == st.INVALID


@pytest.mark.parametrize(("option", "value"), [("max_params", 100), ("max_flops", 1000)])
def test_over_budget_is_rejected_before_training(option: str, value: int) -> None:
    m = evaluate(task(**{option: value})).metrics
    assert m.status == st.OVER_BUDGET and m.train_seconds == 0.0 and m.params == 170


def test_nan_loss_fails() -> None:
    m = evaluate(
        task(
            "flatten dense(256) dense(256) | opt=sgd lr=10 momentum=0.99 sched=none batch=2",
            epochs=3,
        )
    ).metrics
    assert m.status == st.FAILED and "loss" in m.error


def test_timeout_status() -> None:
    m = evaluate(task(epochs=200, train_subset=None, timeout_s=0.05)).metrics
    assert m.status == st.TIMEOUT


def test_final_task_saves_model(tmp_path) -> None:
    out = evaluate(task(final=True, save_dir=str(tmp_path / "m")))
    assert out.metrics.ok
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.pt",
        "spec.json",
        "meta.json",
        "metrics.json",
    }


def test_seed_depends_on_run_seed_and_phenotype_only() -> None:
    h = parse_arch(SMALL).hash()
    assert derive_seed(1, h) == derive_seed(1, h)
    assert derive_seed(1, h) != derive_seed(2, h)
    assert 0 <= derive_seed(1, h) < 2**31


@pytest.mark.parametrize(("option", "value"), [("max_params", 169), ("max_flops", 1000)])
def test_over_budget_never_reaches_the_trainer(
    monkeypatch: pytest.MonkeyPatch, option: str, value: int
) -> None:
    from ge_nas import worker as module

    def no_training(*args: object, **kw: object) -> None:
        pytest.fail("an over-budget network reached train_model")

    monkeypatch.setattr(module, "train_model", no_training)
    monkeypatch.setattr(
        module,
        "build_model",
        lambda *a, **k: pytest.fail("an over-budget network was built with weights"),
    )
    m = evaluate(task(**{option: value})).metrics
    assert m.status == st.OVER_BUDGET and m.epochs == 0 and m.train_seconds == 0.0
    assert f"--{option.replace('_', '-')} {value}" in m.error


def test_within_budget_does_reach_the_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    from ge_nas import worker as module

    calls: list[object] = []
    real = module.train_model
    monkeypatch.setattr(module, "train_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert evaluate(task(max_params=170, max_flops=10**9)).metrics.ok and len(calls) == 1


def test_cuda_without_a_gpu_fails_the_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    m = evaluate(task(device="cuda")).metrics
    assert m.status == st.FAILED and "--device cuda: CUDA is not available" in m.error


def test_a_task_trains_and_scores_in_its_data_view() -> None:
    phenotype = "conv(8,3) relu pool(max,2) flatten | opt=adam lr=0.01 batch=32"
    m = evaluate(task(phenotype, train_subset=None, classes="0-2", shots=10, val_shots=4)).metrics
    assert m.status == st.OK and m.val_accuracy is not None and m.test_accuracy is not None
    assert m.params == (8 * 9 + 8) + (8 * 4 * 4 * 3 + 3)  # three outputs
    assert abs(m.val_accuracy * 12 - round(m.val_accuracy * 12)) < 1e-9  # 4 images a class
    assert m.chance == pytest.approx(1 / 3)  # what a network that learned nothing scores


def test_chance_is_the_most_frequent_labels_share() -> None:
    assert majority_share(torch.tensor([0, 2, 2, 1, 2, 0])) == pytest.approx(0.5)
    assert majority_share(torch.tensor([], dtype=torch.long)) is None
