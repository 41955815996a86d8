"""Per-channel standardisation: raw input -> (x - mean) / std with the training set's statistics.

A data set is standardised once at load; a saved network carries the same
statistics (`Standardize`, in front of it) so that it takes the raw input the
data set's files give. Both apply the same float32 operations, so a network
sees bit for bit the same values either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ge_nas.errors import DatasetError


@dataclass(frozen=True)
class Standardization:
    """The per-channel mean and std a data set was standardised with, in raw units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw: str  # the raw input, e.g. "uint8 pixel values 0..255 as in the IDX files"

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mean and std as float32 tensors shaped (1, C, 1, 1)."""
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        return mean, torch.tensor(self.std, dtype=torch.float32).view(shape)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise float32 images (N, C, H, W) in place and return them."""
        mean, std = self.tensors()
        return x.sub_(mean).div_(std)


def measure_standardization(train: torch.Tensor, raw: str, source: str) -> Standardization:
    """Return the per-channel statistics of training images (N, C, H, W) float32.

    A constant channel gets std 1 (and its value as mean), so it becomes zeros.

    Raises:
        DatasetError: the statistics overflow float32.
    """
    std, mean = torch.std_mean(train, dim=(0, 2, 3), correction=0)  # (C,)
    low, high = torch.amin(train, dim=(0, 2, 3)), torch.amax(train, dim=(0, 2, 3))
    constant = low == high
    mean = torch.where(constant, low, mean)
    std = torch.where(constant, torch.ones_like(std), std)
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise DatasetError(
            f"{source}: cannot standardise the training images (per-channel mean {mean.tolist()}, "
            f"std {std.tolist()}); expected values small enough for float32 statistics"
        )
    return Standardization(tuple(mean.tolist()), tuple(std.tolist()), raw)


class Standardize(nn.Module):
    """Standardise raw images (N, C, H, W) per channel: the first step of a loaded model."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, standardization: Standardization) -> None:
        super().__init__()
        mean, std = standardization.tensors()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
