"""Latency and robustness: measured on known networks, asked for only when a run's objectives need them."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_search_evolution import GRAMMAR, SyntheticExecutor
from torch import nn

from ge_nas.archive import Archive
from ge_nas.config import RunConfig
from ge_nas.fidelity import fidelity_key
from ge_nas.grammar import load_grammar
from ge_nas.metrics import FAILED, OK, Metrics
from ge_nas.objectives import OBJECTIVE_WEIGHTS, WORST_LOG10, WORST_LOSS, fitness_values
from ge_nas.scoring import latency_ms, robustness
from ge_nas.search.evaluator import Evaluator
from ge_nas.train import accuracy
from ge_nas.worker import EvalTask, evaluate

NET = "conv(8,3) relu pool(max,2) flatten | opt=adam lr=0.01 batch=32"


pytestmark = pytest.mark.usefixtures("one_thread")


def scored(**kw: object) -> Metrics:
    options: dict[str, object] = {"seed": 3, "epochs": 3, "train_subset": 0.3, "threads": 1}
    options.update(kw)
    return evaluate(EvalTask(NET, **options)).metrics  # type: ignore[arg-type]


def linear_classifier() -> nn.Module:
    """Return a fixed network that predicts the larger of two coordinates."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    return model


def margin_points(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Return points one unit from the diagonal, labelled by the larger coordinate."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g)
    x[:, 1] = x[:, 0] + torch.where(y == 1, 1.0, -1.0)
    return x, y


def test_latency_is_positive_and_finite() -> None:
    ms = latency_ms(
        nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten()), torch.randn(64, 1, 28, 28)
    )
    assert 0 < ms < 10_000 and math.isfinite(ms)


def test_latency_is_the_median_of_timed_runs() -> None:
    ticks = iter([0.0, 0.001, 1.0, 1.005, 2.0, 2.003])  # runs of 1, 5 and 3 ms
    ms = latency_ms(
        nn.Identity(), torch.zeros(4, 2), warmup=1, repeats=3, clock=lambda: next(ticks)
    )
    assert ms == pytest.approx(3.0)


def test_latency_runs_on_one_thread_and_restores_the_count() -> None:
    seen: list[int] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return x

    torch.set_num_threads(2)
    latency_ms(Spy(), torch.zeros(1), warmup=1, repeats=2)
    assert seen == [1, 1, 1] and torch.get_num_threads() == 2


def test_robustness_at_zero_noise_is_accuracy() -> None:
    x, y = margin_points()
    model = linear_classifier()
    assert robustness(model, x, y, sigma=0.0, seed=1) == accuracy(model, x, y) == 1.0


def test_robustness_drops_with_noise_and_is_seeded() -> None:
    x, y = margin_points()
    model = linear_classifier()
    small, large = (robustness(model, x, y, sigma=s, seed=1) for s in (0.1, 3.0))
    assert 1.0 >= small > large and large < 0.75
    assert robustness(model, x, y, sigma=3.0, seed=1) == large
    assert robustness(model, x, y, sigma=3.0, seed=2) != large


def test_objectives_are_measured_only_when_asked() -> None:
    plain = scored()
    assert plain.ok and plain.latency_ms is None and plain.robustness is None


def test_evaluate_measures_latency_and_robustness() -> None:
    m = scored(measure_latency=True, measure_robustness=True, noise_sigma=0.0)
    assert m.ok and m.latency_ms is not None and 0 < m.latency_ms < 10_000
    assert m.robustness == m.val_accuracy
    noisy = scored(measure_robustness=True, noise_sigma=2.0)
    assert noisy.robustness is not None and noisy.robustness < noisy.val_accuracy
    assert noisy.val_accuracy == m.val_accuracy  # measuring does not change the training


OBJECTIVES = ("val_accuracy", "params", "latency", "robustness")


def test_fitness_of_latency_is_log10_ms_and_robustness_a_fraction() -> None:
    m = Metrics(OK, 0.9, 0.9, params=1000, flops=10, latency_ms=25.0, robustness=0.7)
    assert fitness_values(m, OBJECTIVES) == pytest.approx((0.9, 3.0, math.log10(25.0), 0.7))
    assert fitness_values(replace(m, latency_ms=0.0), ("latency",)) == (-3.0,)  # floored, finite
    assert [OBJECTIVE_WEIGHTS[n] for n in OBJECTIVES] == [1.0, -1.0, -1.0, 1.0]


def test_validation_loss_is_minimised_as_it_is_and_failures_get_the_worst() -> None:
    assert fitness_values(Metrics(OK, 0.9, val_loss=0.35), ("val_loss",)) == (0.35,)
    assert OBJECTIVE_WEIGHTS["val_loss"] == -1.0
    assert fitness_values(Metrics(FAILED, val_loss=0.1), ("val_loss",)) == (WORST_LOSS,)
    assert fitness_values(Metrics(OK, 0.9), ("val_loss",)) == (WORST_LOSS,)
    assert fitness_values(Metrics(OK, 0.1, val_loss=float("inf")), ("val_loss",)) == (WORST_LOSS,)


def test_evaluate_records_the_validation_loss() -> None:
    m = scored()
    assert m.ok and m.val_loss is not None and 0 < m.val_loss < 10


def test_failures_get_the_worst_finite_objectives() -> None:
    bad = fitness_values(Metrics(FAILED, latency_ms=1.0, robustness=0.9), OBJECTIVES)
    assert bad == (0.0, WORST_LOG10, WORST_LOG10, 0.0)
    unmeasured = fitness_values(Metrics(OK, 0.9, params=10), OBJECTIVES)
    assert unmeasured[2:] == (WORST_LOG10, 0.0)


def test_fidelity_key_names_what_was_measured() -> None:
    base = RunConfig(GRAMMAR)
    both = replace(base, objectives=OBJECTIVES, noise_sigma=0.2)
    assert fidelity_key(base) == fidelity_key(replace(base, objectives=("val_accuracy", "flops")))
    assert fidelity_key(both).endswith("|measured=latency,robustness@0.2")
    assert fidelity_key(both, final=True) == fidelity_key(
        base, final=True
    )  # finalists measure neither
    assert fidelity_key(replace(base, bf16=True)).endswith("|bf16")


@pytest.mark.parametrize(
    ("objectives", "latency", "robust"),
    [
        (("val_accuracy", "params"), False, False),
        (OBJECTIVES, True, True),
        (("val_accuracy", "latency"), True, False),
    ],
)
def test_tasks_ask_for_what_the_objectives_need(
    tmp_path: Path, objectives: tuple[str, ...], latency: bool, robust: bool
) -> None:
    cfg = RunConfig(GRAMMAR, objectives=objectives, noise_sigma=0.3, device="cpu", bf16=True)
    grammar = load_grammar(GRAMMAR)
    executor = SyntheticExecutor()
    with Archive(tmp_path / "a.sqlite") as archive:
        Evaluator(grammar, cfg, archive, executor).evaluate(
            [[i, i + 1, i + 2, 7, 9, 11] * 4 for i in range(4)]
        )
    assert executor.tasks
    for task in executor.tasks:
        assert (task.measure_latency, task.measure_robustness) == (latency, robust)
        assert (task.noise_sigma, task.device, task.bf16) == (0.3, "cpu", True)


def test_auroc_counts_pairs_ranked_right_and_ties_half() -> None:
    from ge_nas.scoring import auroc

    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5
    assert auroc(torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.0, 2.0])) == 0.5
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(300, generator=gen) + 1, torch.randn(200, generator=gen)
    brute = sum(float(p > n) + 0.5 * float(p == n) for p in pos for n in neg) / (300 * 200)
    assert auroc(pos, neg) == pytest.approx(brute)
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        auroc(torch.tensor([1.0]), torch.tensor([]))


def test_ood_auroc_separates_what_the_network_is_sure_of() -> None:
    from ge_nas.scoring import ood_auroc, ood_scores

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3, 4) * 10)
        model[1].bias.zero_()
    sure = torch.zeros(20, 1, 2, 2)
    sure.view(20, 4)[:, 0] = 1.0  # a large logit for class 0
    unsure = torch.zeros(20, 1, 2, 2)  # every logit 0: softmax 1/3
    assert ood_auroc(model, sure, unsure) == 1.0
    assert ood_auroc(model, sure, unsure, score="energy") == 1.0
    assert torch.allclose(ood_scores(model, unsure), torch.full((20,), 1 / 3))
    with pytest.raises(ValueError, match="expected one of msp, energy"):
        ood_scores(model, sure, "entropy")
