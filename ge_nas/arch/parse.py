"""Phenotype text in the architecture language -> ArchSpec.

The text is parsed with lark (language.lark) and checked against the layer
kinds and hyperparameters of signatures.py. Nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

import lark

from ge_nas.arch.signatures import HPARAMS, LAYERS, Value, check_hparams, check_layer
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
            hyperparameter, or gives a bad argument; the message has the position,
            and the error's fields say where and which text (see ArchError).
    """
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    try:
        return _ToSpec().transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, ArchError):
            raise exc.orig_exc from None
        raise


def _syntax_error(text: str, exc: lark.UnexpectedInput) -> ArchError:
    token = getattr(exc, "token", None)
    if (
        isinstance(exc, lark.UnexpectedEOF)
        or exc.line < 0
        or (token is not None and token.type == "$END")
    ):
        line, column = _end_position(text)
        reason = f"ended early, expected {_expected(exc)}"
        return _with_caret(reason, text + " ", line, column, None)
    if isinstance(exc, lark.UnexpectedCharacters):
        char = text[exc.pos_in_stream or 0]
        return _with_caret(f"unexpected character {char!r}", text, exc.line, exc.column, char)
    reason = f"unexpected {str(token)!r}, expected {_expected(exc)}"
    return _with_caret(reason, text, exc.line, exc.column, str(token))


def _with_caret(reason: str, text: str, line: int, column: int, token: str | None) -> ArchError:
    message = f"phenotype {line}:{column}: {reason}\n{caret_context(text, line, column)}"
    return ArchError(message, reason=reason, line=line, column=column, token=token)


_TOKEN_WORDS = {
    "NAME": "a name",
    "SIGNED_NUMBER": "a number",
    "BITS": "a mask (b0110..)",
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


def _where(meta: Any) -> str:
    return (
        f"phenotype {meta.line}:{meta.column}" if not getattr(meta, "empty", True) else "phenotype"
    )


def _fault(
    where: str, reason: str, token: lark.Token, argument: str | None = None, message: str = ""
) -> ArchError:
    """Return the error 'where: reason' (or message) at token: its position and text."""
    return ArchError(
        message or f"{where}: {reason}",
        reason=reason,
        line=token.line,
        column=token.column,
        token=str(token),
        argument=argument,
    )


def _located(exc: ArchError, where: str, token: lark.Token) -> ArchError:
    """Return an error of check_layer or Param.check (which know no positions) placed at token."""
    reason = exc.reason.removeprefix(f"{where}: ")
    return _fault(where, reason, token, exc.argument, str(exc))


def _culprit(
    exc: ArchError, name: lark.Token, positional: list[_Arg], keywords: dict[str, _Arg]
) -> lark.Token:
    """Return the token an error of check_layer is about: its argument's keyword (when the error
    names it) or value, else the layer name."""
    kind = LAYERS.get(str(name))
    by_name = dict(zip((p.name for p in kind.params), positional)) if kind else {}
    arg = keywords.get(exc.argument or "") or by_name.get(exc.argument or "")
    if arg is None:
        return name
    return arg.key if arg.key is not None and exc.token == arg.key else arg.token


def _keywords(args: list[_Arg]) -> list[_Arg]:
    return [a for a in args if a.key is not None]


def _unknown_hparam(name: lark.Token, where: str) -> ArchError:
    known = f"{did_you_mean(name, HPARAMS)}; known: {', '.join(HPARAMS)}"
    reason = f"unknown hyperparameter {str(name)!r}"
    return _fault(where, reason, name, message=f"{where}: {reason}{known}")


@dataclass(frozen=True)
class _Arg:
    """An argument's value, the token that wrote it, and its keyword (None: positional)."""

    value: Value
    token: lark.Token
    key: lark.Token | None = None


class _ToSpec(lark.Transformer[lark.Token, ArchSpec]):
    """Turn the parse tree into an ArchSpec, checking names and values."""

    def number(self, children: list[lark.Token]) -> _Arg:
        raw = str(children[0])
        return _Arg(int(raw) if raw.lstrip("+-").isdigit() else float(raw), children[0])

    def mask(self, children: list[lark.Token]) -> _Arg:
        return _Arg(str(children[1]), children[1], key=children[0])

    def word(self, children: list[lark.Token]) -> _Arg:
        return _Arg(str(children[0]), children[0])

    def keyword(self, children: list[Any]) -> _Arg:
        value: _Arg = children[1]
        return replace(value, key=children[0])

    def args(self, children: list[Any]) -> list[_Arg]:
        return [c for c in children if c is not None]

    @lark.v_args(meta=True)
    def layer(self, meta: Any, children: list[Any]) -> Layer:
        name: lark.Token = children[0]
        args: list[_Arg] = children[1] or []
        where = _where(meta)
        positional = [a for a in args if a.key is None]
        first_keyword = next((i for i, a in enumerate(args) if a.key is not None), len(args))
        late = [a for a in args[first_keyword:] if a.key is None]
        if late:
            reason = f"{name}: a positional argument follows a keyword argument"
            raise _fault(where, reason, late[0].token)
        keywords: dict[str, _Arg] = {}
        for arg in _keywords(args):
            assert arg.key is not None  # a keyword argument
            if arg.key in keywords:
                raise _fault(where, f"{name}: argument {str(arg.key)!r} is given twice", arg.key)
            keywords[str(arg.key)] = arg
        return Layer(str(name), self._checked(name, positional, keywords, where))

    def _checked(
        self, name: lark.Token, positional: list[_Arg], keywords: dict[str, _Arg], where: str
    ) -> tuple[tuple[str, Value], ...]:
        values = {k: a.value for k, a in keywords.items()}
        try:
            return check_layer(str(name), [a.value for a in positional], values, where)
        except ArchError as exc:
            raise _located(exc, where, _culprit(exc, name, positional, keywords)) from None

    def layers(self, children: list[Layer]) -> tuple[Layer, ...]:
        return tuple(children)

    @lark.v_args(meta=True)
    def hparam(self, meta: Any, children: list[Any]) -> tuple[lark.Token, _Arg, str]:
        return (children[0], children[1], _where(meta))

    def hparams(
        self, children: list[tuple[lark.Token, _Arg, str]]
    ) -> tuple[tuple[str, Value], ...]:
        seen: dict[str, Value] = {}
        for name, arg, where in children:
            if name in seen:
                raise _fault(where, f"hyperparameter {str(name)!r} is given twice", name)
            if name not in HPARAMS:
                raise _unknown_hparam(name, where)
            try:
                seen[str(name)] = HPARAMS[name].check(arg.value, where)
            except ArchError as exc:
                raise _located(exc, where, arg.token) from None
        return check_hparams(seen, "phenotype")

    def start(self, children: list[Any]) -> ArchSpec:
        hparams = children[1] if len(children) > 1 else check_hparams({}, "phenotype")
        return ArchSpec(children[0], hparams)
