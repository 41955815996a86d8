"""Phenotype text in the architecture language -> ArchSpec.

The text is parsed with lark (language.lark) and checked against the layer
kinds and hyperparameters of signatures.py. Nothing is executed.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import lark

from ge_nas.arch.signatures import HPARAMS, Value, check_hparams, check_layer
from ge_nas.arch.spec import ArchSpec, Layer
from ge_nas.errors import ArchError, caret_context, did_you_mean


@cache
def _parser() -> lark.Lark:
    text = resources.files("ge_nas.arch").joinpath("language.lark").read_text(encoding="utf-8")
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
    if (
        isinstance(exc, lark.UnexpectedEOF)
        or line < 0
        or (token is not None and token.type == "$END")
    ):
        line, column = _end_position(text)
        return f"phenotype {line}:{column}: ended early, expected {_expected(exc)}\n{caret_context(text + ' ', line, column)}"
    if isinstance(exc, lark.UnexpectedCharacters):
        what = f"unexpected character {text[exc.pos_in_stream or 0]!r}"
    else:
        what = f"unexpected {str(token)!r}, expected {_expected(exc)}"
    return f"phenotype {line}:{column}: {what}\n{caret_context(text, line, column)}"


_TOKEN_WORDS = {
    "NAME": "a name",
    "SIGNED_NUMBER": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "VBAR": "'|'",
    "$END": "the end",
}


def _expected(exc: lark.UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
    words = sorted({_TOKEN_WORDS.get(n, n) for n in names})
    return " or ".join(words) if words else "a layer"


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")  # lines as lark and caret_context count them: \n only
    return len(lines), len(lines[-1]) + 1


def _where(text: str, meta: Any) -> str:
    return (
        f"phenotype {meta.line}:{meta.column}" if not getattr(meta, "empty", True) else "phenotype"
    )


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
        return Layer(name, check_layer(name, positional, keywords, where))

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
                raise ArchError(
                    f"{where}: unknown hyperparameter {name!r}{did_you_mean(name, HPARAMS)}; known: {', '.join(HPARAMS)}"
                )
            seen[name] = HPARAMS[name].check(value, where)
        return check_hparams(seen, "phenotype")

    def start(self, children: list[Any]) -> ArchSpec:
        hparams = children[1] if len(children) > 1 else check_hparams({}, "phenotype")
        return ArchSpec(children[0], hparams)
