"""Builders of layer kinds: name -> a function from (arguments, input shape) to (module, output shape).

The arguments were checked against the layer's signature in
`ge_nas.arch.signatures.LAYERS`; every name there has a builder here, except `backbone`, which
`ge_nas.network.build` expands into the backbone network's own layers. Shapes are `(C, H, W)` for feature
maps and `(F,)` for flat vectors; the batch dimension is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch
from torch import nn

from ge_nas.arch.signatures import Value, kept_width

Shape = tuple[int, ...]


Built = tuple[nn.Module | None, Shape]
Builder = Callable[[Mapping[str, Value], Shape], Built]


def _conv_out(size: int, stride: int) -> int:
    # "same" padding: only the stride changes the size, ceil(size / stride).
    return (size - 1) // stride + 1


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((_conv_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_conv(
    shape: Shape, filters: int, kernel: int, stride: int = 1, *, groups: int = 1, bias: bool = True
) -> nn.Module:
    """Return a convolution whose output is ceil(H / stride) x ceil(W / stride), even kernels included."""
    c, h, w = shape
    (top, bottom), (left, right) = (
        _same_padding(h, kernel, stride),
        _same_padding(w, kernel, stride),
    )
    if top == bottom and left == right:
        return nn.Conv2d(
            c, filters, kernel, stride=stride, padding=(top, left), groups=groups, bias=bias
        )
    conv = nn.Conv2d(c, filters, kernel, stride=stride, groups=groups, bias=bias)
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)


def _conv(args: Mapping[str, Value], shape: Shape) -> Built:
    c, h, w = shape
    f, k, s = kept_width(args, "filters"), int(args["kernel"]), int(args["stride"])
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
            self.shortcut = nn.Sequential(
                nn.Conv2d(c, filters, 1, stride=stride, bias=False), nn.BatchNorm2d(filters)
            )

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
    units = kept_width(args, "units")
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


BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "conv": _conv,
        "sepconv": _sepconv,
        "res": _res,
        "pool": _pool,
        "gap": _gap,
        "flatten": _flatten,
        "dense": _dense,
        "bn": _bn,
        "dropout": _dropout,
        **{name: _activation(factory) for name, factory in _ACTIVATIONS.items()},
    }
)
