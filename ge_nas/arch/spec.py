"""ArchSpec: a network as frozen data, with one canonical text form and a hash that identifies it.

Two genomes with one phenotype have equal specs, equal canonical text and one
hash, so they train once. A spec also round-trips through JSON (spec.json).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ge_nas.arch.signatures import BACKBONE, HPARAMS, LAYERS, Value, check_hparams, check_layer
from ge_nas.errors import ArchError

LANGUAGE_VERSION = 1


@dataclass(frozen=True)
class Layer:
    """One layer: its kind and every argument by name, defaults filled in."""

    kind: str
    args: tuple[tuple[str, Value], ...] = ()

    def arg_map(self) -> dict[str, Value]:
        """Return the arguments as a dict."""
        return dict(self.args)

    def text(self) -> str:
        """Return the canonical text, e.g. 'conv(32,3,1)', keyword-only arguments by name: 'dense(4,keep=b1011)'."""
        if not self.args:
            return self.kind
        kind = LAYERS.get(self.kind)
        named = {p.name for p in kind.params if p.optional} if kind else set()
        return f"{self.kind}({','.join(_arg_text(k, v, named) for k, v in self.args)})"


@dataclass(frozen=True)
class ArchSpec:
    """A network: layers in order and training hyperparameters (all filled in)."""

    layers: tuple[Layer, ...]
    hparams: tuple[tuple[str, Value], ...]

    def __post_init__(self) -> None:
        _check_backbone(self.layers)

    def hparam_map(self) -> dict[str, Value]:
        """Return the hyperparameters as a dict."""
        return dict(self.hparams)

    def written_hparams(self) -> tuple[tuple[str, Value], ...]:
        """Return the hyperparameters the text and JSON forms write: all but those omitted at their default."""
        return tuple(
            (k, v)
            for k, v in self.hparams
            if not (k in HPARAMS and HPARAMS[k].omit_default and v == HPARAMS[k].default)
        )

    @property
    def backbone(self) -> Layer | None:
        """Return the backbone layer (always the first), or None for a network of its own."""
        return self.layers[0] if self.layers and self.layers[0].kind == BACKBONE else None

    def canonical(self) -> str:
        """Return the canonical text form; equal specs have equal text."""
        hp = " ".join(f"{k}={format_value(v)}" for k, v in self.written_hparams())
        return f"{' '.join(layer.text() for layer in self.layers)} | {hp}"

    def hash(self) -> str:
        """Return a short stable hash of the canonical text and language version."""
        data = f"v{LANGUAGE_VERSION}:{self.canonical()}".encode()
        return hashlib.sha256(data).hexdigest()[:16]

    def to_json(self) -> str:
        """Return a JSON document that from_json reads back into an equal spec."""
        doc = {
            "version": LANGUAGE_VERSION,
            "layers": [{"kind": layer.kind, "args": dict(layer.args)} for layer in self.layers],
            "hparams": dict(self.written_hparams()),
        }
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Read a spec written by to_json, re-checking every value."""
        try:
            doc = json.loads(text)
            if doc.get("version", LANGUAGE_VERSION) != LANGUAGE_VERSION:
                raise ArchError(
                    f"spec JSON is version {doc['version']!r}; this ge_nas reads version {LANGUAGE_VERSION}"
                )
            layers = [
                Layer(d["kind"], check_layer(d["kind"], [], dict(d["args"]), "spec JSON"))
                for d in doc["layers"]
            ]
            if not layers:
                raise ArchError("spec JSON: a network needs at least one layer")
            hparams = check_hparams(dict(doc["hparams"]), "spec JSON")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, ArchError):
                raise
            raise ArchError(f"spec JSON is malformed: {exc}") from exc
        return cls(tuple(layers), hparams)


def _check_backbone(layers: tuple[Layer, ...]) -> None:
    """Raise ArchError unless a backbone layer is the first layer and freezes no more than it keeps."""
    for index, layer in enumerate(layers, start=1):
        if layer.kind != BACKBONE:
            continue
        if index > 1:
            raise ArchError(
                f"phenotype: layer {index} {layer.text()!r}: backbone must be the first layer "
                "(it takes the network's input)",
                reason="backbone must be the first layer",
                token=BACKBONE,
            )
        keep, freeze = layer.arg_map()["keep"], layer.arg_map()["freeze"]
        if int(freeze) > int(keep):
            raise ArchError(
                f"phenotype: backbone(keep={keep}, freeze={freeze}): freeze must be at most keep "
                "(it freezes kept blocks, counted from the input)",
                reason="backbone freeze exceeds keep",
                token=BACKBONE,
                argument="freeze",
            )


def _arg_text(name: str, value: Value, named: set[str]) -> str:
    return f"{name}={format_value(value)}" if name in named else format_value(value)


def text_hash(text: str) -> str:
    """Return a short stable hash of phenotype text as written (for text that is not an ArchSpec)."""
    return hashlib.sha256(f"text:{text}".encode()).hexdigest()[:16]


def format_value(value: Value) -> str:
    """Return a value as canonical text (floats by repr, so they read back exactly)."""
    return repr(value) if isinstance(value, float) else str(value)
