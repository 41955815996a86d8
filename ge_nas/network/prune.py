"""Physical pruning: remove masked units from a trained network, so the pruned network is really smaller.

A unit is one output of a `dense` layer or one output channel of a `conv`
layer. Masking a unit means that nothing downstream sees it: the next weighted
layer (conv, sepconv, dense, or the classifier) ignores that input. Pruning
then removes the unit's weights and bias, its entries in the batch-norm
layers between the two, and the next weighted layer's inputs that it fed;
the result is an ordinary spec (`dense(37)`, `conv(12,3,1)`) with trained
weights, whose logits equal the masked network's.

A layer's units are prunable when the next weighted layer after it is conv,
sepconv, dense or the classifier (through any of bn, activations, pool,
dropout, gap and flatten). Not before `res`: a residual block's identity
shortcut needs its input width to equal its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch
from torch import nn

from ge_nas.arch import ArchSpec, Layer
from ge_nas.errors import ArchError
from ge_nas.network.build import Slot, build_with_slots

UNIT_LAYERS = {
    "dense": "units",
    "conv": "filters",
}  # prunable kinds and the argument that is their width
WEIGHTED = ("conv", "sepconv", "res", "dense")
CONSUMERS = ("conv", "sepconv", "dense")  # next weighted layers that can take fewer inputs

Masks = Mapping[int, Sequence[bool]]  # layer index (0-based) -> keep flag per unit


def prunable_layers(spec: ArchSpec) -> dict[int, int]:
    """Return {layer index: its number of units} of the layers whose units can be pruned."""
    found = {}
    for i, layer in enumerate(spec.layers):
        if layer.kind not in UNIT_LAYERS:
            continue
        following = [later.kind for later in spec.layers[i + 1 :] if later.kind in WEIGHTED]
        if not following or following[0] in CONSUMERS:
            found[i] = int(layer.arg_map()[UNIT_LAYERS[layer.kind]])
    return found


def split_masks(spec: ArchSpec) -> tuple[ArchSpec, dict[int, list[bool]]]:
    """Return the spec without its keep masks (the unpruned network) and the masks by layer index.

    `dense(4,keep=b1011)` is the unpruned `dense(4)` with mask [True, False, True, True].
    """
    layers = list(spec.layers)
    masks: dict[int, list[bool]] = {}
    for i, layer in enumerate(layers):
        args = layer.arg_map()
        if layer.kind in UNIT_LAYERS and "keep" in args:  # backbone's keep is a block count
            masks[i] = [bit == "1" for bit in str(args["keep"])[1:]]
            layers[i] = Layer(layer.kind, tuple((k, v) for k, v in layer.args if k != "keep"))
    return replace(spec, layers=tuple(layers)), masks


def mask_text(mask: Sequence[bool]) -> str:
    """Return a mask as the architecture language writes it: [True, False] -> 'b10'."""
    return "b" + "".join("1" if keep else "0" for keep in mask)


def pruned_spec(spec: ArchSpec, masks: Masks) -> ArchSpec:
    """Return the spec with each masked layer's width set to its kept units.

    Raises:
        ArchError: a mask names a layer that cannot be pruned, has the wrong length, or keeps no unit.
    """
    _check_masks(spec, masks)
    layers = list(spec.layers)
    for i, mask in masks.items():
        width = UNIT_LAYERS[layers[i].kind]
        kept = sum(bool(k) for k in mask)
        layers[i] = Layer(
            layers[i].kind,
            tuple((name, kept if name == width else value) for name, value in layers[i].args),
        )
    return replace(spec, layers=tuple(layers))


def _check_masks(spec: ArchSpec, masks: Masks) -> None:
    units = prunable_layers(spec)
    for i, mask in masks.items():
        if i not in units:
            where = spec.layers[i].text() if 0 <= i < len(spec.layers) else "none"
            raise ArchError(
                f"layer {i + 1} ({where}) cannot be pruned; prunable layers: "
                + (", ".join(f"{j + 1} ({spec.layers[j].text()})" for j in units) or "none")
            )
        if len(mask) != units[i]:
            raise ArchError(
                f"the mask of layer {i + 1} has {len(mask)} bits; the layer has {units[i]} units"
            )
        if not any(mask):
            raise ArchError(f"the mask of layer {i + 1} keeps no unit; keep at least one")


def prune(
    spec: ArchSpec,
    model: nn.Sequential,
    input_shape: tuple[int, int, int],
    num_classes: int,
    masks: Masks,
) -> tuple[ArchSpec, nn.Sequential]:
    """Return the pruned spec and a network of that spec carrying model's trained weights, less the masked units.

    model must be build_model(spec, input_shape, num_classes) (trained). Its
    logits and the returned network's agree with the masked model's (see mask_model).
    """
    new_spec = pruned_spec(spec, masks)
    _, slots = build_with_slots(spec, input_shape, num_classes)
    pruned, _ = build_with_slots(new_spec, input_shape, num_classes)
    keep_in = torch.arange(input_shape[0])
    with torch.no_grad():
        for i, (layer, slot) in enumerate(zip(spec.layers, slots)):
            keep = _kept(masks.get(i))
            keep_in = _copy_layer(layer.kind, model, pruned, slot, keep_in, keep)
        _copy_linear(model[-1], pruned[-1], keep_in, None)
    pruned.train(model.training)
    return new_spec, pruned


def trunk_modules(
    spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int, masks: Masks
) -> int:
    """Return how many first modules of spec's network come before the first masked layer's weights.

    That trunk is the same in every pruned copy: pruning changes the masked
    layers and the ones after them only. It includes the global pooling a
    masked dense layer gets in front of it. 0 without masks, or when the
    first layer has one.
    """
    if not masks:
        return 0
    with torch.device("meta"):
        _, slots = build_with_slots(spec, input_shape, num_classes)
    return slots[min(masks)].module or 0


def _kept(mask: Sequence[bool] | None) -> torch.Tensor | None:
    return None if mask is None else torch.tensor([i for i, k in enumerate(mask) if k])


def _copy_layer(
    kind: str,
    old: nn.Sequential,
    new: nn.Sequential,
    slot: Slot,
    keep_in: torch.Tensor,
    keep: torch.Tensor | None,
) -> torch.Tensor:
    """Copy one layer's kept weights from old to new; return the kept indices of its output features."""
    if slot.module is None:
        return keep_in
    source, target = old[slot.module], new[slot.module]
    if kind == "conv":
        _copy_conv(_conv_of(source), _conv_of(target), keep_in, keep)
        return keep if keep is not None else torch.arange(slot.output_shape[0])
    if kind == "dense":
        _copy_linear(source, target, keep_in, keep)
        return keep if keep is not None else torch.arange(slot.output_shape[0])
    if kind == "sepconv":
        (depthwise, pointwise), (depthwise_to, pointwise_to) = _sepconv(source), _sepconv(target)
        depthwise_to.weight.copy_(depthwise.weight[keep_in])
        _copy_conv(pointwise, pointwise_to, keep_in, None)
        return torch.arange(slot.output_shape[0])
    if kind == "res":
        target.load_state_dict(source.state_dict())  # never pruned before: its input is whole
        return torch.arange(slot.output_shape[0])
    if kind == "bn":
        target.load_state_dict(
            {k: v[keep_in] if v.dim() else v for k, v in source.state_dict().items()}
        )
        return keep_in
    if kind == "flatten":
        c, h, w = slot.input_shape
        return (keep_in[:, None] * (h * w) + torch.arange(h * w)[None, :]).reshape(-1)
    if list(source.state_dict()):
        raise ArchError(f"pruning does not know how to copy the weights of a {kind!r} layer")
    return keep_in  # pool, gap, dropout, activations: nothing to copy, channels unchanged


def _conv_of(module: nn.Module) -> nn.Conv2d:
    """Return the Conv2d of a 'same' convolution (a Sequential of padding and conv when asymmetric)."""
    conv = module[-1] if isinstance(module, nn.Sequential) else module
    assert isinstance(conv, nn.Conv2d)
    return conv


def _sepconv(module: nn.Module) -> tuple[nn.Conv2d, nn.Conv2d]:
    """Return the depthwise and pointwise convolutions of a sepconv layer."""
    assert isinstance(module, nn.Sequential)
    return _conv_of(module[0]), _conv_of(module[1])


def _linear(module: nn.Module) -> nn.Linear:
    assert isinstance(module, nn.Linear)
    return module


def _copy_conv(
    source: nn.Conv2d, target: nn.Conv2d, keep_in: torch.Tensor, keep: torch.Tensor | None
) -> None:
    rows = source.weight if keep is None else source.weight[keep]
    target.weight.copy_(rows[:, keep_in])
    if source.bias is not None and target.bias is not None:
        target.bias.copy_(source.bias if keep is None else source.bias[keep])


def _copy_linear(
    source: nn.Module, target: nn.Module, keep_in: torch.Tensor, keep: torch.Tensor | None
) -> None:
    source, target = _linear(source), _linear(target)
    rows = source.weight if keep is None else source.weight[keep]
    target.weight.copy_(rows[:, keep_in])
    target.bias.copy_(source.bias if keep is None else source.bias[keep])


def mask_model(
    spec: ArchSpec,
    model: nn.Sequential,
    input_shape: tuple[int, int, int],
    num_classes: int,
    masks: Masks,
) -> nn.Sequential:
    """Return a copy of model in which masked units feed nothing: the next weighted layer's inputs from them are zeroed.

    It keeps every unit, so it is as large as model; prune() gives the same logits with the units removed.
    """
    _check_masks(spec, masks)
    masked, slots = build_with_slots(spec, input_shape, num_classes)
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i, mask in masks.items():
            dropped = torch.tensor([j for j, k in enumerate(mask) if not k], dtype=torch.long)
            _zero_consumer_inputs(spec, masked, slots, i, dropped)
    masked.train(model.training)
    return masked


def _zero_consumer_inputs(
    spec: ArchSpec, model: nn.Sequential, slots: list[Slot], i: int, dropped: torch.Tensor
) -> None:
    """Zero the weights by which the next weighted layer after layer i reads the dropped units."""
    for j in range(i + 1, len(spec.layers)):
        kind, slot = spec.layers[j].kind, slots[j]
        if kind == "flatten" and slot.module is not None:
            c, h, w = slot.input_shape
            dropped = (dropped[:, None] * (h * w) + torch.arange(h * w)[None, :]).reshape(-1)
        if kind in CONSUMERS and slot.module is not None:
            module = model[slot.module]
            if kind == "sepconv":
                _sepconv(module)[0].weight[dropped] = 0.0
            elif kind == "conv":
                _conv_of(module).weight[:, dropped] = 0.0
            else:
                _linear(module).weight[:, dropped] = 0.0
            return
    _linear(model[-1]).weight[:, dropped] = 0.0
