"""Objectives measured on a trained network: CPU latency, robustness to input noise, out-of-distribution detection.

Both cost time, so a worker measures them only when the run's objectives ask
for them. Latency is the median wall time of a forward pass of one fixed batch
on one CPU thread, after a warm-up, so networks compare no matter how many
threads the worker trains with. Robustness is accuracy on the validation set
with seeded Gaussian noise added to the (normalized) inputs; every network of
a run sees the same noise. Out-of-distribution detection is the AUROC with
which a score of the logits (max softmax probability [Hendrycks2017], or the
negative free energy [Liu2020]) ranks in-distribution images above
out-of-distribution ones: 0.5 is chance, 1 is perfect.

[Hendrycks2017] D. Hendrycks, K. Gimpel. A baseline for detecting
misclassified and out-of-distribution examples in neural networks. ICLR 2017.
[Liu2020] W. Liu, X. Wang, J. Owens, Y. Li. Energy-based out-of-distribution
detection. NeurIPS 2020.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ge_nas.config import OOD_SCORES as OOD_SCORES
from ge_nas.train import accuracy, predict_logits

LATENCY_BATCH = 64  # images per timed forward pass
LATENCY_WARMUP = 3
LATENCY_REPEATS = 10


@torch.no_grad()
def latency_ms(
    model: nn.Module,
    x: torch.Tensor,
    *,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Return the median milliseconds of one forward pass of x on one CPU thread (moves model to the CPU)."""
    model = model.cpu().eval()
    x = x.cpu()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(warmup):
            model(x)
        return 1000.0 * statistics.median(_timed(model, x, clock) for _ in range(max(1, repeats)))
    finally:
        torch.set_num_threads(threads)


def _timed(model: nn.Module, x: torch.Tensor, clock: Callable[[], float]) -> float:
    start = clock()
    model(x)
    return clock() - start


def robustness(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float, seed: int
) -> float:
    """Return model's accuracy on x plus Gaussian noise of standard deviation sigma, seeded."""
    if sigma == 0:
        return accuracy(model, x, y)
    generator = torch.Generator().manual_seed(seed)

    def add_noise(batch: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(batch.shape, generator=generator).to(batch.device)
        return batch + sigma * noise

    return accuracy(model, x, y, transform=add_noise)


@torch.no_grad()
def ood_scores(model: nn.Module, x: torch.Tensor, score: str = "msp") -> torch.Tensor:
    """Return each image's in-distribution score: max softmax probability, or logsumexp of the logits (energy)."""
    return scores_of_logits([predict_logits(model, x)], score)


def scores_of_logits(logits: Sequence[torch.Tensor], score: str = "msp") -> torch.Tensor:
    """Return each image's in-distribution score from one or more networks' logits on it.

    msp is the largest mean softmax probability; energy the mean logsumexp. One
    network's logits give its own score; several give their ensemble's (soft or
    hard vote alike: a hard vote's counts carry no confidence to score).
    """
    if score not in OOD_SCORES:
        raise ValueError(f"unknown OoD score {score!r}; expected one of {', '.join(OOD_SCORES)}")
    stacked = torch.stack([z.float() for z in logits])
    if score == "msp":
        return stacked.softmax(dim=2).mean(dim=0).amax(dim=1)
    return stacked.logsumexp(dim=2).mean(dim=0)


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Return the probability that a positive scores above a negative (ties count half): the ROC curve's area."""
    if not len(positive) or not len(negative):
        raise ValueError("AUROC needs at least one positive and one negative score")
    scores = torch.cat([positive, negative]).double()
    ordered, order = scores.sort()
    _, counts = torch.unique_consecutive(ordered, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_ranks = ends - (counts.double() - 1) / 2  # tied scores share their mean rank (1-based)
    ranks = torch.empty_like(scores)
    ranks[order] = mean_ranks.repeat_interleave(counts)
    n_pos, n_neg = len(positive), len(negative)
    u = float(ranks[:n_pos].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def ood_auroc(
    model: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, *, score: str = "msp"
) -> float:
    """Return the AUROC of in-distribution images x_in against out-of-distribution x_out by the score."""
    return auroc(ood_scores(model, x_in, score), ood_scores(model, x_out, score))
