"""(Module, hyperparameters, splits, budget, seed) -> trained module and accuracies.

Training runs on in-memory tensors: each step indexes a shuffled permutation,
so there is no per-sample Python. Only validation accuracy is for selection;
test accuracy is computed for the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
import torch
from torch import nn

from ge_nas.layers import Value
from ge_nas.metrics import FAILED, OK, TIMEOUT

EVAL_BATCH = 1024


def make_optimizer(model: nn.Module, hparams: Mapping[str, Value]) -> torch.optim.Optimizer:
    """Return the optimizer named by the hyperparameters."""
    lr, wd, momentum = float(hparams["lr"]), float(hparams["wd"]), float(hparams["momentum"])
    params = model.parameters()
    name = hparams["opt"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=momentum > 0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def make_schedule(optimizer: torch.optim.Optimizer, name: Value, lr: float, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Return a per-step learning-rate schedule over total_steps."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(2, total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of x that model classifies as y."""
    if len(y) == 0:
        return 0.0
    model.eval()
    correct = 0
    for i in range(0, len(y), EVAL_BATCH):
        logits = model(x[i : i + EVAL_BATCH])
        correct += int((logits.argmax(dim=1) == y[i : i + EVAL_BATCH]).sum())
    return correct / len(y)


def train_model(
    model: nn.Module,
    hparams: Mapping[str, Value],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, str, int]:
    """Train model in place; return (status, error, epochs completed)."""
    if len(y) < 2:
        return FAILED, f"training needs at least 2 samples, got {len(y)}", 0
    generator = torch.Generator().manual_seed(seed)
    batch = min(int(hparams["batch"]), len(y))
    steps_per_epoch = max(1, len(y) // batch)  # the last partial batch is dropped
    optimizer = make_optimizer(model, hparams)
    schedule = make_schedule(optimizer, hparams["sched"], float(hparams["lr"]), epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(hparams["ls"]))
    start = clock()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            loss = loss_fn(model(x[idx]), y[idx])
            value = loss.item()
            if not math.isfinite(value):
                return FAILED, f"loss became {value} at epoch {epoch + 1} step {step + 1}", epoch
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if timeout_s is not None and clock() - start > timeout_s:
                return TIMEOUT, f"training exceeded {timeout_s:g} s in epoch {epoch + 1}", epoch
    return OK, "", epochs
