"""The architecture language's vocabulary: layer kinds and hyperparameters with typed arguments.

This half of the layer registry is torch-free: it is what the parser checks
phenotypes against. How each layer kind becomes torch modules is the other
half, `ge_nas.network.layers.BUILDERS`; a new layer kind is one entry in each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ge_nas.errors import ArchError, did_you_mean

Value = int | float | str
BITS = re.compile(r"b[01]+")  # a unit mask's text: 'b', then one 0 or 1 per unit


class Bits(str):
    """The kind of a mask argument: a str 'b1011...', one bit per unit of the layer (1: kept)."""


@dataclass(frozen=True)
class Param:
    """One typed argument of a layer or hyperparameter, with its default and range.

    An optional parameter (optional=True) has no default and is keyword-only:
    when it is not given it is left out of the layer's arguments, so its text,
    hash and JSON are those of a layer written without it.
    """

    name: str
    kind: type  # int, float, str or Bits
    default: Value | None = None  # None: required (unless optional)
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""
    # True: left out of canonical text and spec JSON at its default, so that adding the
    # parameter changed no existing phenotype's text, hash or archive key.
    omit_default: bool = False
    optional: bool = False

    def check(self, value: Value, where: str) -> Value:
        """Return value converted to this parameter's type, or raise ArchError."""
        if self.kind is Bits:
            if not isinstance(value, str) or not BITS.fullmatch(value):
                raise self._error(
                    where, f"must be a mask of 0s and 1s after a 'b', e.g. b1101, got {value!r}"
                )
            return value
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise self._error(where, f"must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if isinstance(value, str):
            raise self._error(where, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self._error(where, f"must be a finite number, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise self._error(where, f"must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise self._error(where, f"must be in [{self.low:g}, {self.high:g}], got {value!r}")
        return value

    def _error(self, where: str, problem: str) -> ArchError:
        return ArchError(f"{where}: {self.name} {problem}", argument=self.name)

    def describe(self) -> str:
        """Return a one-line description for help text and the README."""
        if self.kind is str:
            kind = "|".join(self.choices)
        elif self.kind is Bits:
            kind = "bits b0110.. (one per unit; 1: kept)"
        else:
            kind = f"{self.kind.__name__} {self.low:g}..{self.high:g}"
        default = (
            "optional"
            if self.optional
            else "required"
            if self.default is None
            else f"default {self.default}"
        )
        return f"{self.name}: {kind}, {default}"


@dataclass(frozen=True)
class LayerKind:
    """A layer name in the architecture language and its typed arguments."""

    name: str
    params: tuple[Param, ...]
    doc: str
    needs_map: bool = False  # True: input must be a (C, H, W) feature map

    def positional(self) -> tuple[Param, ...]:
        """Return the parameters that may be given by position (an optional one is keyword-only)."""
        return tuple(p for p in self.params if not p.optional)


_FILTERS = Param("filters", int, None, 1, 4096, doc="output channels")
_KERNEL = Param("kernel", int, 3, 1, 15, doc="kernel size (same padding)")
_STRIDE = Param("stride", int, 1, 1, 4, doc="stride")
BACKBONE = "backbone"  # the transfer-learning layer: blocks of a trained network (first layer only)
# A pruning mask: the layer keeps the units whose bit is 1 (its width is their number); the
# network is then a pruned copy of a trained one (`ge_nas prune`), not trained from scratch.
_KEEP = Param("keep", Bits, optional=True, doc="units kept (ge_nas prune)")
WIDTHS = ("filters", "units")  # the arguments that set a layer's width
ACTIVATIONS = ("relu", "relu6", "leaky", "elu", "gelu", "silu", "hardswish", "tanh", "sigmoid")


def _layer_kinds() -> dict[str, LayerKind]:
    pool_args = (
        Param("kind", str, "max", choices=("max", "avg")),
        Param("size", int, 2, 2, 8, doc="window and stride"),
    )
    kinds = [
        LayerKind("conv", (_FILTERS, _KERNEL, _STRIDE, _KEEP), "2-D convolution", needs_map=True),
        LayerKind(
            "sepconv",
            (_FILTERS, _KERNEL, _STRIDE),
            "depthwise-separable convolution",
            needs_map=True,
        ),
        LayerKind(
            "res",
            (_FILTERS, _KERNEL, _STRIDE),
            "residual block (two convolutions with batch norm)",
            needs_map=True,
        ),
        LayerKind(
            "pool",
            pool_args,
            "max or average pooling; skipped where the map is smaller than the window",
            needs_map=True,
        ),
        LayerKind("gap", (), "global average pooling to a flat vector", needs_map=True),
        LayerKind("flatten", (), "flatten a feature map to a vector"),
        LayerKind("dense", (Param("units", int, None, 1, 65536), _KEEP), "fully connected layer"),
        LayerKind("bn", (), "batch normalisation"),
        LayerKind(
            BACKBONE,
            (
                Param("keep", int, None, 1, 4096, doc="blocks of the run's backbone kept"),
                Param("freeze", int, 0, 0, 4096, doc="of those, how many (from the input) frozen"),
            ),
            "the first keep blocks of the run's --backbone network, trained weights included; "
            "only as the first layer",
        ),
        LayerKind(
            "dropout", (Param("p", float, 0.5, 0.0, 0.95, doc="drop probability"),), "dropout"
        ),
    ]
    kinds += [LayerKind(name, (), f"{name} activation") for name in ACTIVATIONS]
    return {kind.name: kind for kind in kinds}


LAYERS: Mapping[str, LayerKind] = MappingProxyType(_layer_kinds())

HPARAMS: Mapping[str, Param] = MappingProxyType(
    {
        p.name: p
        for p in (
            Param("opt", str, "adam", choices=("adam", "adamw", "sgd", "rmsprop"), doc="optimizer"),
            Param("lr", float, 1e-3, 1e-6, 10.0, doc="learning rate"),
            Param("batch", int, 64, 2, 4096, doc="batch size"),
            Param("wd", float, 0.0, 0.0, 1.0, doc="weight decay"),
            Param("momentum", float, 0.9, 0.0, 0.999, doc="momentum (sgd, rmsprop)"),
            Param(
                "sched",
                str,
                "cosine",
                choices=("none", "cosine", "onecycle"),
                doc="learning-rate schedule",
            ),
            Param("ls", float, 0.0, 0.0, 0.5, doc="label smoothing"),
            Param(
                "aug", str, "none", choices=("none", "crop", "flip", "cropflip"), doc="augmentation"
            ),
            Param(
                "blr",
                float,
                1.0,
                0.0,
                10.0,
                doc="learning-rate multiplier of the unfrozen backbone blocks",
                omit_default=True,
            ),
        )
    }
)


def check_layer(
    name: str, positional: list[Value], keywords: dict[str, Value], where: str
) -> tuple[tuple[str, Value], ...]:
    """Return a layer's arguments by name with defaults filled in, or raise ArchError naming what is wrong."""
    kind = LAYERS.get(name)
    if kind is None:
        raise ArchError(
            f"{where}: unknown layer {name!r}{did_you_mean(name, LAYERS)}; known: {', '.join(LAYERS)}",
            reason=f"{where}: unknown layer {name!r}",
        )
    where = f"{where}: {name}"
    ordered = kind.positional()
    if len(positional) > len(ordered):
        raise ArchError(
            f"{where} takes at most {len(ordered)} argument(s) ({_signature(kind)}), got {len(positional)}",
            reason=f"{where} takes at most {len(ordered)} argument(s), got {len(positional)}",
        )
    values = dict(zip((p.name for p in ordered), positional))
    for key, value in keywords.items():
        if key not in {p.name for p in kind.params}:
            raise ArchError(
                f"{where} has no argument {key!r}; expected {_signature(kind)}",
                reason=f"{where} has no argument {key!r}",
                argument=key,
                token=key,
            )
        if key in values:
            raise ArchError(f"{where}: argument {key!r} is given twice", argument=key, token=key)
        values[key] = value
    args = tuple(
        (p.name, _fill(p, values, where)) for p in kind.params if not p.optional or p.name in values
    )
    if any(p.kind is Bits for p in kind.params):  # a keep mask (backbone's keep is a count)
        _check_keep(dict(args), where)
    return args


def kept_width(args: Mapping[str, Value], width: str) -> int:
    """Return a layer's built width: the argument named width, or with a keep mask the number of its 1s."""
    return str(args["keep"]).count("1") if "keep" in args else int(args[width])


def _check_keep(args: Mapping[str, Value], where: str) -> None:
    """Raise ArchError unless a keep mask has one bit per unit and keeps at least one."""
    if "keep" not in args:
        return
    bits = str(args["keep"])[1:]
    width = next(int(args[name]) for name in WIDTHS if name in args)
    if len(bits) != width:
        raise ArchError(
            f"{where}: keep has {len(bits)} bits, expected one per unit: {width}",
            argument="keep",
        )
    if "1" not in bits:
        raise ArchError(f"{where}: keep masks every unit; keep at least one (a 1)", argument="keep")


def _fill(param: Param, values: Mapping[str, Value], where: str) -> Value:
    if param.name in values:
        return param.check(values[param.name], where)
    if param.default is None:
        raise ArchError(f"{where} needs argument {param.name!r}", argument=param.name)
    return param.default


def check_hparams(given: Mapping[str, Value], where: str) -> tuple[tuple[str, Value], ...]:
    """Return every hyperparameter by name, given or default, or raise ArchError."""
    unknown = set(given) - set(HPARAMS)
    if unknown:
        name = sorted(unknown)[0]
        raise ArchError(f"{where}: unknown hyperparameter {name!r}{did_you_mean(name, HPARAMS)}")
    return tuple((name, _fill(p, given, f"{where}: {name}")) for name, p in HPARAMS.items())


def _signature(kind: LayerKind) -> str:
    return f"{kind.name}({', '.join(p.name for p in kind.positional())})"
