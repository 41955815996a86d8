"""ArchSpec -> torch.nn.Module, with parameter count and FLOPs known before training.

Shapes are inferred layer by layer. A dense layer (or the classifier head) that
receives a feature map gets global average pooling first, so one grammar works
for 8x8 and 28x28 inputs; write `flatten` to keep spatial positions instead.
FLOPs are counted by torch's own flop counter on the meta device (no weights
are allocated) and mean 2 x multiply-accumulates of convolutions and matrix
products for one sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ge_nas.arch import LAYERS, ArchSpec, Layer
from ge_nas.errors import ArchError
from ge_nas.network.layers import BUILDERS, Shape


@dataclass(frozen=True)
class Size:
    """What a network costs before it is trained."""

    params: int
    flops: int


def build_model(
    spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int
) -> nn.Sequential:
    """Build the network for inputs of shape (C, H, W) and num_classes outputs.

    Raises:
        ArchError: a layer cannot take the shape it receives.
    """
    return build_with_slots(spec, input_shape, num_classes)[0]


@dataclass(frozen=True)
class Slot:
    """Where one layer of a spec went in the built network: its module (if any) and its output shape."""

    module: (
        int | None
    )  # index in the Sequential; None when the layer built nothing (a skipped pool)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def build_with_slots(
    spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Sequential, list[Slot]]:
    """Return build_model's network and, for each layer of the spec, its Slot (the classifier is the last module).

    Raises:
        ArchError: a layer cannot take the shape it receives.
    """
    modules: list[nn.Module] = []
    slots: list[Slot] = []
    shape: Shape = tuple(input_shape)
    for index, layer in enumerate(spec.layers, start=1):
        before = len(modules)
        incoming = shape
        shape = _append(modules, layer, shape, index)
        slots.append(Slot(len(modules) - 1 if len(modules) > before else None, incoming, shape))
    if len(shape) == 3:
        modules.append(_global_pool())
        shape = (shape[0],)
    modules.append(nn.Linear(shape[0], num_classes))
    return nn.Sequential(*modules), slots


def _append(modules: list[nn.Module], layer: Layer, shape: Shape, index: int) -> Shape:
    if LAYERS[layer.kind].needs_map and len(shape) != 3:
        raise ArchError(
            f"layer {index} {layer.text()!r} needs a feature map (C,H,W) but gets a flat vector of "
            f"{shape[0]} features; put it before dense, flatten or gap",
            reason=f"{layer.kind} needs a feature map, gets a flat vector",
            token=layer.kind,
        )
    if layer.kind == "dense" and len(shape) == 3:
        modules.append(_global_pool())
        shape = (shape[0],)
    module, shape = BUILDERS[layer.kind](layer.arg_map(), shape)
    if module is not None:
        modules.append(module)
    return shape


def _global_pool() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def count_params(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def measure(spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> Size:
    """Return params and per-sample FLOPs without allocating any weights.

    Raises:
        ArchError: the network cannot be built for this input shape.
    """
    with torch.device("meta"):
        model = build_model(spec, input_shape, num_classes)
        sample = torch.empty((1, *input_shape))
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(sample)
    return Size(params=count_params(model), flops=int(counter.get_total_flops()))
