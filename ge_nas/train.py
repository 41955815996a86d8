"""(Module, hyperparameters, splits, budget, seed) -> trained module and accuracies.

Training runs on in-memory tensors that already sit on the training device:
each step indexes a shuffled permutation and augments the whole batch with
tensor operations, so there is no per-sample Python. Only validation accuracy
is for selection; test accuracy is computed for the report.
"""

from __future__ import annotations

import contextlib
import math
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ge_nas.arch import Value
from ge_nas.config import check_device
from ge_nas.errors import ConfigError
from ge_nas.metrics import FAILED, OK, TIMEOUT
from ge_nas.network.build import TransferNet

EVAL_BATCH = 128  # measured on CPU: 28x28 CNNs score twice as fast as in batches of 1024 (activations stay in cache)


def param_groups(model: nn.Module, lr: float, blr: float) -> list[dict[str, Any]]:
    """Return the optimizer's parameter groups: the network's own at lr, and (for a TransferNet)
    the unfrozen backbone blocks' at lr x blr. Frozen parameters are in no group."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not isinstance(model, TransferNet):
        return [{"params": trainable, "lr": lr}]
    backbone = {id(p) for p in model.backbone_parameters()}
    own = [p for p in trainable if id(p) not in backbone]
    groups = [{"params": own, "lr": lr}]
    if backbone:
        groups.append({"params": model.backbone_parameters(), "lr": lr * blr})
    return groups


def make_optimizer(model: nn.Module, hparams: Mapping[str, Value]) -> torch.optim.Optimizer:
    """Return the optimizer named by the hyperparameters (blr scales the backbone blocks' rate)."""
    lr, wd, momentum = float(hparams["lr"]), float(hparams["wd"]), float(hparams["momentum"])
    params = param_groups(model, lr, float(hparams.get("blr", 1.0)))
    name = hparams["opt"]
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=momentum > 0
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def make_schedule(
    optimizer: torch.optim.Optimizer, name: Value, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Return a per-step learning-rate schedule over total_steps."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "onecycle":
        peaks = [float(group["lr"]) for group in optimizer.param_groups]  # lr, lr x blr
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=max(2, total_steps)
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def resolve_device(name: str) -> torch.device:
    """Return the torch device named by --device (auto: the first GPU if there is one, else the CPU).

    Raises:
        ConfigError: the name is not auto, cpu, cuda or cuda:N, or names a GPU this machine lacks.
    """
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
        )
    return device


def slow_bf16(device: torch.device) -> str | None:
    """Return a warning when bfloat16 autocast on device would train slower than float32, else None.

    CPUs compute bfloat16 natively with AVX512-BF16 or AMX (here --bf16 trained 1.9x faster); without
    them autocast emulates it, several times slower.
    """
    if device.type == "cuda":
        with torch.cuda.device(device):
            try:
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # torch before 2.3 counts native support only
                native = torch.cuda.is_bf16_supported()
    elif device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64"):
        names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        checks = [check for name in names if (check := getattr(torch.cpu, name, None)) is not None]
        if not checks:  # a torch that cannot tell: no warning rather than a wrong one
            return None
        native = any(check() for check in checks)
    else:
        return None
    if native:
        return None
    return f"--bf16: {device.type} without native bfloat16 here; autocast will train slower than float32"


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move model to device with 4-D weights in channels_last order (convolutions ran 1.5x faster on CPU)."""
    model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs lack memory_format
    return model


def crop_padding(size: int) -> int:
    """Return the random-crop padding in pixels for images of this side length (CIFAR 4, MNIST 2)."""
    return 4 if size >= 32 else 2 if size >= 16 else 1


def augment(x: torch.Tensor, kind: Value, generator: torch.Generator) -> torch.Tensor:
    """Return a batch of images (N, C, H, W) randomly cropped and/or flipped as kind says."""
    if kind == "none" or x.dim() != 4:
        return x
    if kind in ("crop", "cropflip"):
        x = random_crop(x, crop_padding(min(x.shape[-2:])), generator)
    if kind in ("flip", "cropflip"):
        x = random_flip(x, generator)
    return x


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Return each image shifted by up to pad pixels each way, zero-filled (the mean after normalisation)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (N, C, H + 2 pad, W + 2 pad)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows, cols]  # (N, C, H, W)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the batch with each image mirrored left to right with probability 1/2."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[object]:
    """Return bfloat16 autocast on device when enabled, else a context that does nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Return the fraction of x (each batch passed through transform, if given) that model classifies as y."""
    return accuracy_and_loss(model, x, y, transform=transform)[0]


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return model's float logits on x in eval mode, computed in batches of EVAL_BATCH."""
    model.eval()
    parts = [model(x[i : i + EVAL_BATCH]).float() for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)


@torch.no_grad()
def accuracy_and_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Return the accuracy on (x, y) and the mean cross-entropy, with no label smoothing (0, 0 when empty)."""
    if len(y) == 0:
        return 0.0, 0.0
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), EVAL_BATCH):
        batch, labels = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
        logits = model(batch if transform is None else transform(batch)).float()
        correct += int((logits.argmax(dim=1) == labels).sum())
        loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
    return correct / len(y), loss / len(y)


class TrainingTimeout(Exception):
    """Raised inside a training step when the evaluation's time limit passes."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TrainingTimeout in this thread once seconds have passed, even in the middle of a step.

    SIGALRM is delivered between Python bytecodes, so a forward pass through many
    layers stops between two layers. Only the main thread of a POSIX process can
    take it; elsewhere (Dask worker threads) the check between steps is the limit.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TrainingTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class _Loop:
    """What every training step needs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    aug: Value
    batch: int
    steps: int
    generator: torch.Generator
    bf16: bool
    expired: Callable[[], bool]  # checked after every step


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
    bf16: bool = False,
) -> tuple[str, str, int]:
    """Train model in place on x, y (already on the model's device); return (status, error, epochs completed)."""
    if len(y) < 2:
        return FAILED, f"training needs at least 2 samples, got {len(y)}", 0
    start = clock()
    expired = (lambda: clock() - start > timeout_s) if timeout_s is not None else (lambda: False)
    loop = _make_loop(model, hparams, len(y), epochs, seed, bf16, expired)
    done = 0
    try:
        with time_limit(timeout_s):
            for epoch in range(epochs):
                failure = _train_epoch(loop, x, y, epoch)
                if failure:
                    return FAILED, failure, epoch
                done = epoch + 1
    except TrainingTimeout:
        return TIMEOUT, f"training exceeded {timeout_s:g} s in epoch {done + 1}", done
    return OK, "", epochs


def _make_loop(
    model: nn.Module,
    hparams: Mapping[str, Value],
    n: int,
    epochs: int,
    seed: int,
    bf16: bool,
    expired: Callable[[], bool],
) -> _Loop:
    batch = min(int(hparams["batch"]), n)
    steps = max(1, n // batch)  # the last partial batch is dropped
    optimizer = make_optimizer(model, hparams)
    schedule = make_schedule(optimizer, hparams["sched"], float(hparams["lr"]), epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(hparams["ls"]))
    generator = torch.Generator().manual_seed(seed)
    aug = hparams.get("aug", "none")
    return _Loop(model, optimizer, schedule, loss_fn, aug, batch, steps, generator, bf16, expired)


def _train_epoch(loop: _Loop, x: torch.Tensor, y: torch.Tensor, epoch: int) -> str:
    """Train one epoch; return '' or why training failed."""
    loop.model.train()
    order = torch.randperm(len(y), generator=loop.generator).to(x.device)
    for step in range(loop.steps):
        idx = order[step * loop.batch : (step + 1) * loop.batch]
        with autocast(x.device, loop.bf16):
            loss = loop.loss_fn(loop.model(augment(x[idx], loop.aug, loop.generator)), y[idx])
        value = loss.item()
        if not math.isfinite(value):
            return f"loss became {value} at epoch {epoch + 1} step {step + 1}"
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        loop.schedule.step()
        if loop.expired():
            raise TrainingTimeout
    return ""
