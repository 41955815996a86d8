"""Blocks of a ge_nas network, the cut points of transfer learning, and a backbone layer expanded.

A block is one weighted layer (conv, sepconv, res, dense) together with the
layers without weights that follow it (bn, activations, pool, dropout, gap,
flatten), up to the next weighted layer. Layers before the first weighted
layer belong to block 1. The classifier head that the builder appends is not a
layer of the spec, so it is never part of a block.

`backbone(keep=K, freeze=F)` stands for the first K blocks of the run's
backbone network: `expand_backbone` replaces it by their layers (behind a 1x1
convolution adapter when the data has another channel count than the
backbone was trained on), so the expanded spec is an ordinary network that
`build_model` builds and `load_model` loads. Torch-free: the weights are the
network builder's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from ge_nas.arch.signatures import BACKBONE, check_layer
from ge_nas.arch.spec import ArchSpec, Layer
from ge_nas.errors import ArchError

WEIGHTED = ("conv", "sepconv", "res", "dense")  # the layer kinds that start a block


@dataclass(frozen=True)
class Block:
    """One block of a network: its 1-based index, where it starts in the spec's layers, its layers."""

    index: int
    start: int  # 0-based index of its first layer in spec.layers
    layers: tuple[Layer, ...]

    @property
    def stop(self) -> int:
        """Return the 0-based index one past its last layer."""
        return self.start + len(self.layers)

    def text(self) -> str:
        """Return its layers as canonical text, e.g. 'conv(8,3,1) bn relu'."""
        return " ".join(layer.text() for layer in self.layers)


def blocks(spec: ArchSpec) -> tuple[Block, ...]:
    """Return the blocks of a network, in order from the input (none if it has no weighted layer).

    Raises:
        ArchError: the spec starts with a backbone layer (expand it first).
    """
    if spec.backbone is not None:
        raise ArchError(
            "a network that starts with a backbone layer has no blocks of its own; "
            "use the saved model (its spec.json holds the expanded layers)"
        )
    starts = [i for i, layer in enumerate(spec.layers) if layer.kind in WEIGHTED]
    if not starts:
        return ()
    cuts = [0, *starts[1:], len(spec.layers)]
    return tuple(
        Block(n, begin, spec.layers[begin:end])
        for n, (begin, end) in enumerate(zip(cuts, cuts[1:]), start=1)
    )


@dataclass(frozen=True)
class Transfer:
    """A phenotype whose backbone layer was replaced by the layers it stands for.

    spec has no backbone layer. Its first layer is the adapter when adapter is
    True; then come `kept` layers from the backbone, the first `frozen` of them
    frozen; then the phenotype's own layers.
    """

    spec: ArchSpec
    adapter: bool
    kept: int
    frozen: int

    @property
    def backbone_layers(self) -> range:
        """Return the 0-based indices in spec.layers of the layers taken from the backbone."""
        start = int(self.adapter)
        return range(start, start + self.kept)

    @property
    def frozen_layers(self) -> range:
        """Return the 0-based indices in spec.layers of the frozen backbone layers."""
        start = int(self.adapter)
        return range(start, start + self.frozen)


def expand_backbone(
    spec: ArchSpec, source: ArchSpec, source_channels: int, channels: int
) -> Transfer:
    """Return spec with its backbone layer replaced by the first `keep` blocks of source.

    source is the backbone network's spec, trained on source_channels input
    channels; channels is the data's. When they differ, a 1x1 convolution
    (`conv(source_channels,1,1)`, trainable) maps the data's channels to the
    backbone's.

    Raises:
        ArchError: spec has no backbone layer, or keeps more blocks than source has.
    """
    layer = spec.backbone
    if layer is None:
        raise ArchError("phenotype has no backbone layer to expand")
    args = layer.arg_map()
    keep, freeze = int(args["keep"]), int(args["freeze"])
    found = blocks(source)
    if keep > len(found):
        raise ArchError(
            f"phenotype: backbone(keep={keep}): the backbone has {len(found)} block(s); keep at most "
            f"{len(found)} (list them with `ge_nas backbone show`)",
            reason="backbone keep exceeds the backbone's blocks",
            token=BACKBONE,
            argument="keep",
        )
    kept = source.layers[: found[keep - 1].stop]
    frozen = found[freeze - 1].stop if freeze else 0
    adapter: tuple[Layer, ...] = ()
    if source_channels != channels:
        adapter = (Layer("conv", check_layer("conv", [source_channels, 1, 1], {}, "adapter")),)
    expanded = ArchSpec((*adapter, *kept, *spec.layers[1:]), spec.hparams)
    return Transfer(expanded, bool(adapter), len(kept), frozen)
