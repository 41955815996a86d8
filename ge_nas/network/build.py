"""ArchSpec -> torch.nn.Module, with parameter count and FLOPs known before training.

Shapes are inferred layer by layer. A dense layer (or the classifier head) that
receives a feature map gets global average pooling first, so one grammar works
for 8x8 and 28x28 inputs; write `flatten` to keep spatial positions instead.
FLOPs are counted by torch's own flop counter on the meta device (no weights
are allocated) and mean 2 x multiply-accumulates of convolutions and matrix
products for one sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ge_nas.arch import LAYERS, ArchSpec, Layer
from ge_nas.arch.blocks import Block, Transfer, blocks, expand_backbone
from ge_nas.errors import ArchError
from ge_nas.network.layers import BUILDERS, Shape


@dataclass(frozen=True)
class Size:
    """What a network costs before it is trained (params: all of them, frozen ones included)."""

    params: int
    flops: int


def build_model(
    spec: ArchSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    backbone: Backbone | None = None,
) -> nn.Sequential:
    """Build the network for inputs of shape (C, H, W) and num_classes outputs.

    A spec that starts with a backbone layer needs backbone (the run's) and
    returns a TransferNet with the backbone's trained weights in its kept blocks.

    Raises:
        ArchError: a layer cannot take the shape it receives, or the backbone layer
            cannot be built (no backbone, too many blocks kept, a kept dense layer
            whose input size no longer fits).
    """
    if spec.backbone is not None:
        return build_transfer(spec, backbone, input_shape, num_classes)
    modules, _, shape = _build_layers(spec.layers, input_shape)
    return nn.Sequential(*modules, *_head(shape, num_classes))


def _build_layers(
    layers: Sequence[Layer], input_shape: tuple[int, ...]
) -> tuple[list[nn.Module], list[range], Shape]:
    """Return the modules of layers, the range of modules each layer made, and the output shape."""
    modules: list[nn.Module] = []
    spans = []
    shape: Shape = tuple(input_shape)
    for index, layer in enumerate(layers, start=1):
        start = len(modules)
        shape = _append(modules, layer, shape, index)
        spans.append(range(start, len(modules)))
    return modules, spans, shape


def _head(shape: Shape, num_classes: int) -> list[nn.Module]:
    """Return the classifier head: global average pooling for a feature map, then a linear layer."""
    pool = [_global_pool()] if len(shape) == 3 else []
    return [*pool, nn.Linear(shape[0], num_classes)]


@dataclass(frozen=True)
class Slot:
    """Where one layer of a spec went in the built network: its module (if any) and its input and output shapes."""

    module: (
        int | None
    )  # index in the Sequential; None when the layer built nothing (a skipped pool)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def build_with_slots(
    spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Sequential, list[Slot]]:
    """Return build_model's network (no backbone) and, for each layer of the spec, its Slot.

    Raises:
        ArchError: a layer cannot take the shape it receives, or the spec has a backbone.
    """
    if spec.backbone is not None:
        raise ArchError("a network with a backbone layer has no slots; expand it first")
    modules: list[nn.Module] = []
    slots: list[Slot] = []
    shape: Shape = tuple(input_shape)
    for index, layer in enumerate(spec.layers, start=1):
        before, incoming = len(modules), shape
        shape = _append(modules, layer, shape, index)
        slots.append(Slot(len(modules) - 1 if len(modules) > before else None, incoming, shape))
    return nn.Sequential(*modules, *_head(shape, num_classes)), slots


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


def size_params(model: nn.Module) -> int:
    """Return the number of parameters, frozen backbone blocks included: the network's size."""
    return sum(p.numel() for p in model.parameters())


def measure(
    spec: ArchSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    backbone: Backbone | None = None,
) -> Size:
    """Return params and per-sample FLOPs without allocating any weights.

    Raises:
        ArchError: the network cannot be built for this input shape (or backbone).
    """
    with torch.device("meta"):
        model = build_model(spec, input_shape, num_classes, backbone)
        sample = torch.empty((1, *input_shape))
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(sample)
    return Size(params=size_params(model), flops=int(counter.get_total_flops()))


# --- transfer learning -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Backbone:
    """A trained ge_nas network that backbone layers take blocks from.

    network is build_model(spec, input_shape, classes) with the trained weights
    loaded (on the CPU); digest identifies its weights file (see ge_nas.fidelity).
    """

    spec: ArchSpec
    input_shape: tuple[int, int, int]
    network: nn.Sequential
    digest: str = ""


class TransferNet(nn.Sequential):
    """A network whose first modules come from a trained network: a backbone, or a pruning base.

    backbone: the indices of the modules taken from the backbone (the adapter is
    not one of them); frozen: the modules that do not train (frozen backbone
    blocks, or a pruned network's unpruned trunk). Frozen modules have
    requires_grad False and stay in eval mode when the network trains, so their
    batch-norm statistics do not move and their dropout is off. The state dict
    is that of nn.Sequential: load_model rebuilds it from the expanded spec. A
    slice (net[:-1]) is a TransferNet with nothing marked.
    """

    def __init__(self, *modules: Any, backbone: range = range(0), frozen: range = range(0)) -> None:
        super().__init__(*modules)
        self.backbone_modules = backbone
        self.frozen_modules = frozen
        for index in frozen:
            self[index].requires_grad_(False)

    def train(self, mode: bool = True) -> TransferNet:
        """Set training mode, keeping the frozen modules in eval mode; return self."""
        super().train(mode)
        for index in self.frozen_modules:
            self[index].eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Return the trainable parameters of the modules taken from the backbone."""
        return [p for i in self.backbone_modules for p in self[i].parameters() if p.requires_grad]

    def frozen_part(self) -> nn.Sequential:
        """Return the modules up to the last frozen one (shared, not copied)."""
        return nn.Sequential(*list(self)[: self.frozen_modules.stop])

    def unfrozen_part(self) -> TransferNet:
        """Return the modules after the last frozen one (shared), their backbone marks shifted to match.

        It trains as this network's tail would: the same parameters in the same optimizer groups.
        """
        stop = self.frozen_modules.stop
        marks = [i - stop for i in self.backbone_modules if i >= stop]
        backbone = range(marks[0], marks[-1] + 1) if marks else range(0)
        return TransferNet(*list(self)[stop:], backbone=backbone)


def transfer_plan(
    spec: ArchSpec, backbone: Backbone | None, input_shape: tuple[int, int, int]
) -> Transfer:
    """Return spec with its backbone layer expanded (see ge_nas.arch.blocks.expand_backbone).

    Raises:
        ArchError: there is no backbone, or spec keeps more blocks than it has.
    """
    if backbone is None:
        layer = spec.backbone.text() if spec.backbone else "backbone"
        raise ArchError(
            f"phenotype: {layer}: this run has no backbone network; "
            "give one with --backbone MODEL_DIR, or use a grammar without backbone layers",
            reason="backbone layer in a run without --backbone",
            token="backbone",
        )
    return expand_backbone(spec, backbone.spec, backbone.input_shape[0], input_shape[0])


def build_transfer(
    spec: ArchSpec,
    backbone: Backbone | None,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> TransferNet:
    """Build a spec that starts with a backbone layer: kept blocks with the backbone's weights, then the rest.

    Raises:
        ArchError: see transfer_plan; or a kept layer's weights no longer fit (a
            dense layer whose input size differs for this data's input shape).
    """
    plan = transfer_plan(spec, backbone, input_shape)
    assert backbone is not None  # transfer_plan raised otherwise
    modules, spans, shape = _build_layers(plan.spec.layers, input_shape)
    _, source_spans, _ = _layer_spans(backbone)
    for offset, index in enumerate(plan.backbone_layers):
        source = [backbone.network[i] for i in source_spans[offset]]
        target = [modules[i] for i in spans[index]]
        _copy_weights(source, target, plan.spec.layers[index], index + 1)
    if plan.adapter and not _on_meta(modules[0]):
        _init_adapter(modules[0], input_shape[0])
    return TransferNet(
        *modules,
        *_head(shape, num_classes),
        backbone=_modules_of(spans, plan.backbone_layers),
        frozen=_modules_of(spans, plan.frozen_layers),
    )


def _layer_spans(backbone: Backbone) -> tuple[list[nn.Module], list[range], Shape]:
    """Return the module ranges of the backbone network's layers (built on the meta device)."""
    with torch.device("meta"):
        return _build_layers(backbone.spec.layers, backbone.input_shape)


def _modules_of(spans: list[range], layers: range) -> range:
    """Return the range of modules that the given layers made."""
    chosen = [spans[i] for i in layers]
    if not chosen:
        return range(0)
    return range(chosen[0].start, chosen[-1].stop)


def _tensors(modules: list[nn.Module]) -> list[torch.Tensor]:
    return [t for m in modules for t in m.state_dict().values()]


def _copy_weights(
    source: list[nn.Module], target: list[nn.Module], layer: Layer, index: int
) -> None:
    """Copy the backbone's parameters and buffers of one layer into its rebuilt modules."""
    theirs, ours = _tensors(source), _tensors(target)
    shapes = [tuple(t.shape) for t in theirs], [tuple(t.shape) for t in ours]
    if shapes[0] != shapes[1]:
        what = (
            f"a dense layer trained on {shapes[0][0][1]} input features gets {shapes[1][0][1]} here"
            if layer.kind == "dense" and shapes[0] and shapes[1]
            else f"weights of shapes {shapes[0]} do not fit {shapes[1]}"
        )
        raise ArchError(
            f"layer {index} {layer.text()!r} of the backbone: {what} (the data's input shape "
            "differs from the backbone's); keep fewer blocks so the backbone ends before it",
            reason=f"kept backbone {layer.kind} layer does not fit this input shape",
            token="backbone",
        )
    if any(_on_meta(m) for m in target):
        return
    with torch.no_grad():
        for mine, trained in zip(ours, theirs):
            mine.copy_(trained)


def _on_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in module.state_dict().values())


def _init_adapter(adapter: nn.Module, channels: int) -> None:
    """Start the adapter as the mean of the data's channels copied to every backbone channel."""
    assert isinstance(adapter, nn.Conv2d)
    with torch.no_grad():
        adapter.weight.fill_(1.0 / channels)
        if adapter.bias is not None:
            adapter.bias.zero_()


@dataclass(frozen=True)
class BlockSize:
    """One block of a network with its output shape and parameter count for an input shape."""

    block: Block
    shape: Shape
    params: int


def block_sizes(spec: ArchSpec, input_shape: tuple[int, int, int]) -> list[BlockSize]:
    """Return every block of spec with its output shape and parameters for inputs of input_shape.

    Built on the meta device: no weights are allocated.

    Raises:
        ArchError: spec starts with a backbone layer, or cannot take input_shape.
    """
    sizes = []
    shape: Shape = tuple(input_shape)
    with torch.device("meta"):
        for block in blocks(spec):
            modules: list[nn.Module] = []
            for index, layer in enumerate(block.layers, start=block.start + 1):
                shape = _append(modules, layer, shape, index)
            sizes.append(BlockSize(block, shape, sum(size_params(m) for m in modules)))
    return sizes
