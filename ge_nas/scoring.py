"""Objectives measured on a trained network: CPU latency and robustness to input noise.

Both cost time, so a worker measures them only when the run's objectives ask
for them. Latency is the median wall time of a forward pass of one fixed batch
on one CPU thread, after a warm-up, so networks compare no matter how many
threads the worker trains with. Robustness is accuracy on the validation set
with seeded Gaussian noise added to the (normalized) inputs; every network of
a run sees the same noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from ge_nas.train import accuracy

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
