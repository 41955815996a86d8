"""Phenotype text in the architecture language -> ArchSpec.

The text is parsed with lark (arch.lark) and checked against the layer
registry (layers.py) and the hyperparameter table below. Nothing is executed.
An ArchSpec has one canonical text form with every default filled in; its hash
identifies the architecture, so two genomes with one phenotype train once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import lark

from ge_nas.errors import ArchError, caret_context, did_you_mean
from ge_nas.layers import LAYERS, LayerKind, Param, Value

LANGUAGE_VERSION = 1

HPARAMS: Mapping[str, Param] = MappingProxyType(
    {
        p.name: p
        for p in (
            Param("opt", str, "adam", choices=("adam", "adamw", "sgd", "rmsprop"), doc="optimizer"),
            Param("lr", float, 1e-3, 1e-6, 10.0, doc="learning rate"),
            Param("batch", int, 64, 2, 4096, doc="batch size"),
            Param("wd", float, 0.0, 0.0, 1.0, doc="weight decay"),
            Param("momentum", float, 0.9, 0.0, 0.999, doc="momentum (sgd, rmsprop)"),
            Param("sched", str, "cosine", choices=("none", "cosine", "onecycle"), doc="learning-rate schedule"),
            Param("ls", float, 0.0, 0.0, 0.5, doc="label smoothing"),
            Param("aug", str, "none", choices=("none", "crop", "flip", "cropflip"), doc="augmentation"),
        )
    }
)


@dataclass(frozen=True)
class Layer:
    """One layer: its kind and every argument by name, defaults filled in."""

    kind: str
    args: tuple[tuple[str, Value], ...] = ()

    def arg_map(self) -> dict[str, Value]:
        """Return the arguments as a dict."""
        return dict(self.args)

    def text(self) -> str:
        """Return the canonical text, e.g. 'conv(32,3,1)'."""
        if not self.args:
            return self.kind
        return f"{self.kind}({','.join(_format(v) for _, v in self.args)})"


@dataclass(frozen=True)
class ArchSpec:
    """A network: layers in order and training hyperparameters (all filled in)."""

    layers: tuple[Layer, ...]
    hparams: tuple[tuple[str, Value], ...]

    def hparam_map(self) -> dict[str, Value]:
        """Return the hyperparameters as a dict."""
        return dict(self.hparams)

    def canonical(self) -> str:
        """Return the canonical text form; equal specs have equal text."""
        hp = " ".join(f"{k}={_format(v)}" for k, v in self.hparams)
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
            "hparams": dict(self.hparams),
        }
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Read a spec written by to_json, re-checking every value."""
        try:
            doc = json.loads(text)
            if doc.get("version", LANGUAGE_VERSION) != LANGUAGE_VERSION:
                raise ArchError(f"spec JSON is version {doc['version']!r}; this ge_nas reads version {LANGUAGE_VERSION}")
            layers = [_check_layer(d["kind"], [], dict(d["args"]), "spec JSON") for d in doc["layers"]]
            if not layers:
                raise ArchError("spec JSON: a network needs at least one layer")
            hparams = _check_hparams(dict(doc["hparams"]), "spec JSON")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, ArchError):
                raise
            raise ArchError(f"spec JSON is malformed: {exc}") from exc
        return cls(tuple(layers), hparams)


def _format(value: Value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@cache
def _parser() -> lark.Lark:
    text = resources.files("ge_nas").joinpath("arch.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", propagate_positions=True)


def parse_arch(text: str) -> ArchSpec:
    """Parse phenotype text into an ArchSpec.

    Raises:
        ArchError: the text is not in the language, names an unknown layer or
            hyperparameter, or gives a bad argument; the message has the position.
    """
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as exc:
        raise ArchError(_syntax_message(text, exc)) from None
    try:
        return _ToSpec(text).transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, ArchError):
            raise exc.orig_exc from None
        raise


def _syntax_message(text: str, exc: lark.UnexpectedInput) -> str:
    line, column = exc.line, exc.column
    token = getattr(exc, "token", None)
    if isinstance(exc, lark.UnexpectedEOF) or line < 0 or (token is not None and token.type == "$END"):
        line, column = _end_position(text)
        return f"phenotype {line}:{column}: ended early, expected {_expected(exc)}\n{caret_context(text + ' ', line, column)}"
    if isinstance(exc, lark.UnexpectedCharacters):
        what = f"unexpected character {text[exc.pos_in_stream or 0]!r}"
    else:
        what = f"unexpected {str(token)!r}, expected {_expected(exc)}"
    return f"phenotype {line}:{column}: {what}\n{caret_context(text, line, column)}"


_TOKEN_WORDS = {"NAME": "a name", "SIGNED_NUMBER": "a number", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
                "EQUAL": "'='", "VBAR": "'|'", "$END": "the end"}


def _expected(exc: lark.UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
    words = sorted({_TOKEN_WORDS.get(n, n) for n in names})
    return " or ".join(words) if words else "a layer"


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")  # lines as lark and caret_context count them: \n only
    return len(lines), len(lines[-1]) + 1


def _where(text: str, meta: Any) -> str:
    return f"phenotype {meta.line}:{meta.column}" if not getattr(meta, "empty", True) else "phenotype"


class _ToSpec(lark.Transformer[lark.Token, ArchSpec]):
    """Turn the parse tree into an ArchSpec, checking names and values."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def number(self, children: list[lark.Token]) -> Value:
        raw = str(children[0])
        return int(raw) if raw.lstrip("+-").isdigit() else float(raw)

    def word(self, children: list[lark.Token]) -> Value:
        return str(children[0])

    def keyword(self, children: list[Any]) -> tuple[str, Value]:
        return (str(children[0]), children[1])

    def args(self, children: list[Any]) -> list[Any]:
        return [c for c in children if c is not None]

    @lark.v_args(meta=True)
    def layer(self, meta: Any, children: list[Any]) -> Layer:
        name, args = str(children[0]), children[1] or []
        where = _where(self.text, meta)
        positional = [a for a in args if not isinstance(a, tuple)]
        first_keyword = next((i for i, a in enumerate(args) if isinstance(a, tuple)), len(args))
        if len(positional) > first_keyword:
            raise ArchError(f"{where}: {name}: a positional argument follows a keyword argument")
        keywords: dict[str, Value] = {}
        for key, value in (a for a in args if isinstance(a, tuple)):
            if key in keywords:
                raise ArchError(f"{where}: {name}: argument {key!r} is given twice")
            keywords[key] = value
        return _check_layer(name, positional, keywords, where)

    def layers(self, children: list[Layer]) -> tuple[Layer, ...]:
        return tuple(children)

    @lark.v_args(meta=True)
    def hparam(self, meta: Any, children: list[Any]) -> tuple[str, Value, str]:
        return (str(children[0]), children[1], _where(self.text, meta))

    def hparams(self, children: list[tuple[str, Value, str]]) -> tuple[tuple[str, Value], ...]:
        seen: dict[str, Value] = {}
        for name, value, where in children:
            if name in seen:
                raise ArchError(f"{where}: hyperparameter {name!r} is given twice")
            if name not in HPARAMS:
                raise ArchError(f"{where}: unknown hyperparameter {name!r}{did_you_mean(name, HPARAMS)}; known: {', '.join(HPARAMS)}")
            seen[name] = HPARAMS[name].check(value, where)
        return _check_hparams(seen, "phenotype")

    def start(self, children: list[Any]) -> ArchSpec:
        hparams = children[1] if len(children) > 1 else _check_hparams({}, "phenotype")
        return ArchSpec(children[0], hparams)


def _check_layer(name: str, positional: list[Value], keywords: dict[str, Value], where: str) -> Layer:
    kind = LAYERS.get(name)
    if kind is None:
        raise ArchError(f"{where}: unknown layer {name!r}{did_you_mean(name, LAYERS)}; known: {', '.join(LAYERS)}")
    where = f"{where}: {name}"
    if len(positional) > len(kind.params):
        raise ArchError(f"{where} takes at most {len(kind.params)} argument(s) ({_signature(kind)}), got {len(positional)}")
    values = dict(zip((p.name for p in kind.params), positional))
    for key, value in keywords.items():
        if key not in {p.name for p in kind.params}:
            raise ArchError(f"{where} has no argument {key!r}; expected {_signature(kind)}")
        if key in values:
            raise ArchError(f"{where}: argument {key!r} is given twice")
        values[key] = value
    return Layer(name, tuple((p.name, _fill(p, values, where)) for p in kind.params))


def _fill(param: Param, values: Mapping[str, Value], where: str) -> Value:
    if param.name in values:
        return param.check(values[param.name], where)
    if param.default is None:
        raise ArchError(f"{where} needs argument {param.name!r}")
    return param.default


def _check_hparams(given: Mapping[str, Value], where: str) -> tuple[tuple[str, Value], ...]:
    unknown = set(given) - set(HPARAMS)
    if unknown:
        name = sorted(unknown)[0]
        raise ArchError(f"{where}: unknown hyperparameter {name!r}{did_you_mean(name, HPARAMS)}")
    return tuple((name, _fill(p, given, f"{where}: {name}")) for name, p in HPARAMS.items())


def _signature(kind: LayerKind) -> str:
    return f"{kind.name}({', '.join(p.name for p in kind.params)})"
