"""Registry of layer kinds: name -> typed parameters and a builder.

A new layer kind is one `LayerKind` entry here plus nothing else: the
architecture language accepts any registered name, and the builder calls the
entry's `build` with the incoming shape. Shapes are `(C, H, W)` for feature
maps and `(F,)` for flat vectors; the batch dimension is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Union

import torch
from torch import nn

from ge_nas.errors import ArchError

Value = Union[int, float, str]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Param:
    """One typed argument of a layer or hyperparameter, with its default and range."""

    name: str
    kind: type  # int, float or str
    default: Value | None = None  # None: required
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    def check(self, value: Value, where: str) -> Value:
        """Return value converted to this parameter's type, or raise ArchError."""
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise ArchError(f"{where}: {self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if isinstance(value, str):
            raise ArchError(f"{where}: {self.name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ArchError(f"{where}: {self.name} must be a finite number, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise ArchError(f"{where}: {self.name} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ArchError(f"{where}: {self.name} must be in [{self.low:g}, {self.high:g}], got {value!r}")
        return value

    def describe(self) -> str:
        """Return a one-line description for help text and the README."""
        if self.kind is str:
            kind = "|".join(self.choices)
        else:
            kind = f"{self.kind.__name__} {self.low:g}..{self.high:g}"
        default = "required" if self.default is None else f"default {self.default}"
        return f"{self.name}: {kind}, {default}"


Built = tuple[Union[nn.Module, None], Shape]
Builder = Callable[[Mapping[str, Value], Shape], Built]


@dataclass(frozen=True)
class LayerKind:
    """A layer name in the architecture language and how to build it."""

    name: str
    params: tuple[Param, ...]
    build: Builder
    doc: str
    needs_map: bool = False  # True: input must be a (C, H, W) feature map


def _conv_out(size: int, stride: int) -> int:
    # "same" padding: only the stride changes the size, ceil(size / stride).
    return (size - 1) // stride + 1


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((_conv_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_conv(shape: Shape, filters: int, kernel: int, stride: int = 1, *, groups: int = 1, bias: bool = True) -> nn.Module:
    """Return a convolution whose output is ceil(H / stride) x ceil(W / stride), even kernels included."""
    c, h, w = shape
    (top, bottom), (left, right) = _same_padding(h, kernel, stride), _same_padding(w, kernel, stride)
    if top == bottom and left == right:
        return nn.Conv2d(c, filters, kernel, stride=stride, padding=(top, left), groups=groups, bias=bias)
    conv = nn.Conv2d(c, filters, kernel, stride=stride, groups=groups, bias=bias)
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)


def _conv(args: Mapping[str, Value], shape: Shape) -> Built:
    c, h, w = shape
    f, k, s = int(args["filters"]), int(args["kernel"]), int(args["stride"])
    return same_conv(shape, f, k, s), (f, _conv_out(h, s), _conv_out(w, s))


def _sepconv(args: Mapping[str, Value], shape: Shape) -> Built:
    c, h, w = shape
    f, k, s = int(args["filters"]), int(args["kernel"]), int(args["stride"])
    depthwise = same_conv(shape, c, k, s, groups=c, bias=False)
    return nn.Sequential(depthwise, nn.Conv2d(c, f, 1)), (f, _conv_out(h, s), _conv_out(w, s))


class Residual(nn.Module):
    """Basic residual block: conv-bn-relu-conv-bn plus a (projected) shortcut, then relu."""

    def __init__(self, shape: Shape, filters: int, kernel: int, stride: int) -> None:
        super().__init__()
        c, h, w = shape
        inner = (filters, _conv_out(h, stride), _conv_out(w, stride))
        self.body = nn.Sequential(
            same_conv(shape, filters, kernel, stride, bias=False),
            nn.BatchNorm2d(filters),
            nn.ReLU(),
            same_conv(inner, filters, kernel, bias=False),
            nn.BatchNorm2d(filters),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c != filters:
            self.shortcut = nn.Sequential(nn.Conv2d(c, filters, 1, stride=stride, bias=False), nn.BatchNorm2d(filters))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _res(args: Mapping[str, Value], shape: Shape) -> Built:
    c, h, w = shape
    f, k, s = int(args["filters"]), int(args["kernel"]), int(args["stride"])
    return Residual(shape, f, k, s), (f, _conv_out(h, s), _conv_out(w, s))


def _pool(args: Mapping[str, Value], shape: Shape) -> Built:
    c, h, w = shape
    size = int(args["size"])
    if min(h, w) < max(size, 2):
        return None, shape  # adapts to small inputs: no pooling below 2x2
    pool = nn.MaxPool2d(size) if args["kind"] == "max" else nn.AvgPool2d(size)
    return pool, (c, h // size, w // size)


def _gap(args: Mapping[str, Value], shape: Shape) -> Built:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],)


def _flatten(args: Mapping[str, Value], shape: Shape) -> Built:
    if len(shape) == 1:
        return None, shape
    return nn.Flatten(), (shape[0] * shape[1] * shape[2],)


def _dense(args: Mapping[str, Value], shape: Shape) -> Built:
    units = int(args["units"])
    return nn.Linear(shape[0], units), (units,)


def _bn(args: Mapping[str, Value], shape: Shape) -> Built:
    norm = nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
    return norm, shape


def _dropout(args: Mapping[str, Value], shape: Shape) -> Built:
    return nn.Dropout(float(args["p"])), shape


def _activation(factory: Callable[[], nn.Module]) -> Builder:
    def build(args: Mapping[str, Value], shape: Shape) -> Built:
        return factory(), shape

    return build


_FILTERS = Param("filters", int, None, 1, 4096, doc="output channels")
_KERNEL = Param("kernel", int, 3, 1, 15, doc="kernel size (same padding)")
_STRIDE = Param("stride", int, 1, 1, 4, doc="stride")

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky": lambda: nn.LeakyReLU(0.1),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def _registry() -> dict[str, LayerKind]:
    kinds = [
        LayerKind("conv", (_FILTERS, _KERNEL, _STRIDE), _conv, "2-D convolution", needs_map=True),
        LayerKind("sepconv", (_FILTERS, _KERNEL, _STRIDE), _sepconv, "depthwise-separable convolution", needs_map=True),
        LayerKind("res", (_FILTERS, _KERNEL, _STRIDE), _res, "residual block (two convolutions with batch norm)", needs_map=True),
        LayerKind(
            "pool",
            (Param("kind", str, "max", choices=("max", "avg")), Param("size", int, 2, 2, 8, doc="window and stride")),
            _pool,
            "max or average pooling; skipped where the map is smaller than the window",
            needs_map=True,
        ),
        LayerKind("gap", (), _gap, "global average pooling to a flat vector", needs_map=True),
        LayerKind("flatten", (), _flatten, "flatten a feature map to a vector"),
        LayerKind("dense", (Param("units", int, None, 1, 65536),), _dense, "fully connected layer"),
        LayerKind("bn", (), _bn, "batch normalisation"),
        LayerKind("dropout", (Param("p", float, 0.5, 0.0, 0.95, doc="drop probability"),), _dropout, "dropout"),
    ]
    kinds += [LayerKind(name, (), _activation(f), f"{name} activation") for name, f in _ACTIVATIONS.items()]
    return {kind.name: kind for kind in kinds}


LAYERS: Mapping[str, LayerKind] = MappingProxyType(_registry())
