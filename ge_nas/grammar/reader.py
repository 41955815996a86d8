"""BNF text -> rules with positions: the lark parse and the dialect's rules for alternatives.

The lark meta-grammar (bnf.lark) tokenises the text and finds the rule heads;
the functions here turn each rule body's tokens into alternatives as the
dialect described in `ge_nas.grammar` says (strip, line breaks, quotes,
escapes, GE_RANGE). Nothing is checked here beyond syntax: that is
`ge_nas.grammar.lint`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import lark
from lark.lark import PostLex

from ge_nas.grammar.syntax import classify_syntax_error, syntax_error, token_at


@dataclass(frozen=True, repr=False)
class Symbol:
    """One symbol of an alternative: terminal text, or a nonterminal's name without brackets.

    A call of a rule with parameters, as read, is a nonterminal with args: each a
    nonterminal (a rule or, in a rule with parameters, one of them) or terminal text.
    A `Grammar` holds no calls: loading expands them (`ge_nas.grammar.parameters`).
    """

    text: str
    is_nt: bool
    args: tuple[Symbol, ...] = ()

    def __repr__(self) -> str:
        args = f", args={self.args!r}" if self.args else ""
        return f"Symbol(text={self.text!r}, is_nt={self.is_nt!r}{args})"


Alternative = tuple[Symbol, ...]


@dataclass
class RawAlt:
    """An alternative as read, with where it starts and the nonterminals it names."""

    symbols: Alternative
    refs: list[tuple[str, int, int]]  # nonterminal name, line, column (parameters left out)
    line: int
    column: int
    calls: list[tuple[Symbol, int, int]] = field(default_factory=list)  # call, line, column


@dataclass
class RawRule:
    """A rule as read: unchecked (it may be a duplicate or name undefined rules)."""

    name: str
    line: int
    column: int
    alternatives: list[RawAlt]
    notes: list[tuple[int, int, str]]  # warnings found while reading: line, column, message
    params: tuple[str, ...] = ()  # the parameters its head declares, in order


def read_rules(text: str, source: str) -> list[RawRule]:
    """Parse normalised BNF text into its rules, in file order.

    Raises:
        GrammarSyntaxError: the text is not BNF.
    """
    try:
        tree = _meta_parser().parse(text)
    except lark.UnexpectedInput as exc:
        raise classify_syntax_error(exc, text, source, _meta_parser().parse) from None
    return [
        _raw_rule(rule.children, text, source)
        for rule in tree.children
        if isinstance(rule, lark.Tree)
    ]


# --- lark: text -> rule heads and body tokens --------------------------------

_ITEMS = frozenset({"TEXT", "BLANK", "NL", "SQ", "DQ", "NT", "CALL", "LT", "BAR", "COMMENT"})
_BAD = ("BAD_HEAD", "BAD_PARAMS", "BAD_QUOTE", "BAD_DEFINE", "BAD_ESCAPE")


class _Body(lark.Token):
    """A rule body: the item tokens between two rule heads."""

    __slots__ = ("items",)
    items: list[lark.Token]


class _GatherBodies(PostLex):
    """Post-lexer that hands the parser one BODY token per rule body."""

    always_accept = tuple(_ITEMS) + _BAD

    def process(self, stream: Iterator[lark.Token]) -> Iterator[lark.Token]:
        body: list[lark.Token] = []
        seen_head = False
        for token in stream:
            if seen_head and token.type in _ITEMS:
                body.append(token)
                continue
            if body:
                yield _body(body)
                body = []
            seen_head = seen_head or token.type == "RULE_HEAD"
            yield token
        if body:
            yield _body(body)


def _body(items: list[lark.Token]) -> _Body:
    first, last = items[0], items[-1]
    token = _Body(
        "BODY",
        "",
        first.start_pos,
        first.line,
        first.column,
        last.end_line,
        last.end_column,
        last.end_pos,
    )
    token.items = items
    return token


@cache
def _meta_parser() -> lark.Lark:
    text = resources.files("ge_nas.grammar").joinpath("bnf.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", lexer="basic", postlex=_GatherBodies())


# --- the dialect: body tokens -> alternatives ---------------------------------


def _raw_rule(
    children: Sequence[lark.Token | lark.Tree[lark.Token]], text: str, source: str
) -> RawRule:
    head, body = children[0], children[-1]
    assert isinstance(head, lark.Token)
    name, params = _head(head, text, source)
    items = body.items if isinstance(body, _Body) else []
    rule = RawRule(name, *token_at(head), [], [], params)
    after_text = False
    for tokens, opened, closed in _split(items):
        after_text = _add_alternative(rule, tokens, opened, closed, after_text, text, source)
    return rule


def _split(
    items: list[lark.Token],
) -> Iterator[tuple[list[lark.Token], lark.Token | None, lark.Token | None]]:
    """Yield each alternative's tokens with the '|' or comment before and after it (None: rule edge)."""
    current: list[lark.Token] = []
    opened: lark.Token | None = None
    for token in items:
        if token.type in ("BAR", "COMMENT"):
            yield current, opened, token
            current, opened = [], token
        else:
            current.append(token)
    yield current, opened, None


def _add_alternative(
    rule: RawRule,
    tokens: list[lark.Token],
    opened: lark.Token | None,
    closed: lark.Token | None,
    after_text: bool,
    text: str,
    source: str,
) -> bool:
    """Add one alternative to rule; return whether it had text (the dialect drops empty ones)."""
    tokens = _strip(tokens)
    if not tokens:
        if (
            _is_bar(opened)
            and (closed is None or _is_bar(closed))
            or opened is None
            and _is_bar(closed)
        ):
            bar = opened or closed
            assert bar is not None
            line, column = token_at(bar)
            rule.notes.append(
                (
                    line,
                    column + bar.index("|"),
                    "empty alternative ignored (write '' for the empty string)",
                )
            )
        return False
    if after_text and opened is not None and opened.type == "COMMENT":
        rule.notes.append(
            (
                *token_at(tokens[0]),
                f"the comment on line {opened.line} ends the alternative before it, so this text is a "
                "new alternative (as in PonyGE2); start it with '|' to say so, or move the comment",
            )
        )
    if tokens[0].type == "TEXT" and tokens[0].startswith("GE_RANGE:"):
        rule.alternatives.extend(_ge_range(tokens, text, source))
    else:
        rule.alternatives.append(_alternative(tokens, rule.params, text, source))
    return True


def _is_bar(token: lark.Token | None) -> bool:
    return token is not None and token.type == "BAR"


def _strip(tokens: list[lark.Token]) -> list[lark.Token]:
    start, end = 0, len(tokens)
    while start < end and tokens[start].type in ("BLANK", "NL"):
        start += 1
    while end > start and tokens[end - 1].type in ("BLANK", "NL"):
        end -= 1
    return tokens[start:end]


def _alternative(
    tokens: list[lark.Token], params: tuple[str, ...], text: str, source: str
) -> RawAlt:
    alt = RawAlt((), [], *token_at(tokens[0]))
    symbols: list[Symbol] = []
    pending: str | None = None
    for i, token in enumerate(tokens):
        if token.type in ("NT", "CALL"):
            if pending is not None:
                symbols.append(Symbol(pending, False))
                pending = None
            symbols.append(_reference(token, params, alt, text, source))
        else:
            piece = _piece(token, i == len(tokens) - 1, text, source)
            pending = piece if pending is None else pending + piece
    if pending is not None:
        symbols.append(Symbol(pending, False))
    alt.symbols = tuple(symbols)
    return alt


def _reference(
    token: lark.Token, params: tuple[str, ...], alt: RawAlt, text: str, source: str
) -> Symbol:
    """Return the symbol of '<name>' or of a call '<name(args)>', noting the names it uses in alt."""
    line, column = token_at(token)
    if token.type == "NT":
        if token[1:-1] not in params:
            alt.refs.append((token[1:-1], line, column))
        return Symbol(token[1:-1], True)
    name, _, inside = token[1:-2].partition("(")
    args = []
    for arg, at in _arguments(inside, line, column + len(name) + 2, text, source):
        if arg.is_nt and arg.text not in params:
            alt.refs.append((arg.text, line, at))
        args.append(arg)
    call = Symbol(name, True, tuple(args))
    alt.calls.append((call, line, column))
    return call


_ARGUMENT = re.compile(
    r"[^\S\n]*(?P<item><(?P<nt>[^<>|\s()]+)>|(?P<word>[^\s<>(),|#'\"]+))[^\S\n]*(?P<sep>,|$)"
)
_PARAMETER = re.compile(r"[^\S\n]*(?P<item>[A-Za-z_][A-Za-z0-9_]*)[^\S\n]*(?P<sep>,|$)")
_PARAMETERISED = re.compile(r"([^<>|\s(]+)\((.*)\)")
_EXPECTED_ARGUMENT = (
    "an argument: a <nonterminal>, a parameter <P>, or text without blanks, quotes or ,()<>|#"
)
_EXPECTED_PARAMETER = (
    "a parameter name (a letter or _, then letters, digits, _): a rule name holds '(' only "
    "to declare parameters, as in <stage(K, A)>"
)


def _arguments(
    inside: str, line: int, column: int, text: str, source: str
) -> Iterator[tuple[Symbol, int]]:
    """Yield each argument of a call, with its column; inside is the text between the parentheses."""
    where = (line, column, text, source)
    for match, at in _items(_ARGUMENT, inside, where, _EXPECTED_ARGUMENT):
        nt = match.group("nt")
        yield (Symbol(nt, True) if nt else Symbol(match.group("word"), False)), at


def _head(head: lark.Token, text: str, source: str) -> tuple[str, tuple[str, ...]]:
    """Return a rule head's name and the parameters it declares ('<name(P, Q)> ::=')."""
    inner = head[1 : head.index(">")]
    match = _PARAMETERISED.fullmatch(inner)
    if match is None:
        return inner, ()
    line, column = token_at(head)
    where = (line, column + len(match.group(1)) + 2, text, source)
    params: list[str] = []
    for found, at in _items(_PARAMETER, match.group(2), where, _EXPECTED_PARAMETER):
        if found.group("item") in params:
            message = f"parameter {found.group('item')} appears twice in <{inner}>"
            raise syntax_error(message, text, source, line, at)
        params.append(found.group("item"))
    return match.group(1), tuple(params)


def _items(
    pattern: re.Pattern[str], inside: str, where: tuple[int, int, str, str], expected: str
) -> Iterator[tuple[re.Match[str], int]]:
    """Yield pattern's comma-separated matches in inside, each with its item's column.

    where: the line and column of inside in the text, the text and its source.
    """
    line, column, text, source = where
    at = 0
    while True:
        match = pattern.match(inside, at)
        if match is None:
            blanks = len(inside[at:]) - len(inside[at:].lstrip())
            raise syntax_error(f"expected {expected}", text, source, line, column + at + blanks)
        yield match, column + match.start("item")
        if not match.group("sep"):
            return
        at = match.end()


def _piece(token: lark.Token, last: bool, text: str, source: str) -> str:
    kind = token.type
    if kind == "TEXT":
        return _decode(_rstrip(token) if last else str(token), token, 0, text, source)
    if kind in ("SQ", "DQ"):
        return _decode(token[1:-1], token, 1, text, source)
    if kind == "NL":
        return "\n"
    return str(token)  # BLANK, or LT: '<'


def _rstrip(raw: str) -> str:
    """Strip trailing whitespace, except a blank escaped by a backslash."""
    stripped = raw.rstrip()
    slashes = len(stripped) - len(stripped.rstrip("\\"))
    return raw[: len(stripped) + 1] if slashes % 2 else stripped


_ESCAPE = re.compile(
    r"\\(?:x[0-9a-fA-F]{0,2}|u[0-9a-fA-F]{0,4}|U[0-9a-fA-F]{0,8}|N(?:\{[^}]*\})?|[0-7]{1,3}|.)",
    re.S,
)
_KNOWN_ESCAPES = frozenset("\\'\"abfnrtv01234567xuUN")


def _decode(raw: str, token: lark.Token, offset: int, text: str, source: str) -> str:
    """Decode backslash escapes as unicode_escape does, leaving all other text alone."""
    if "\\" not in raw:
        return raw

    def one(match: re.Match[str]) -> str:
        escape = match.group()
        if escape[1] not in _KNOWN_ESCAPES:
            return escape  # unknown escapes such as \w stay as written
        try:
            return codecs.decode(escape.encode("ascii"), "unicode_escape")
        except UnicodeDecodeError as exc:
            line, column = token_at(token)
            raise syntax_error(
                f"bad escape {escape!r}: {exc.reason}",
                text,
                source,
                line,
                column + offset + match.start(),
            ) from None

    return _ESCAPE.sub(one, raw)


_GE_RANGE = re.compile(r"GE_RANGE:([0-9]+)")


def _ge_range(tokens: list[lark.Token], text: str, source: str) -> list[RawAlt]:
    token = tokens[0]
    word = _rstrip(token)
    match = _GE_RANGE.fullmatch(word)
    problem = ""
    if len(tokens) > 1 or word.split()[0] != word:
        problem = (
            f"GE_RANGE must be a whole alternative: '{word.split()[0]}' is followed by more text"
        )
    elif match is None:
        hint = (
            " (PonyGE2's dataset_* sizes need its fitness function)" if "dataset_" in word else ""
        )
        problem = f"GE_RANGE needs a positive integer, got '{word}'{hint}"
    elif int(match.group(1)) < 1:
        problem = f"GE_RANGE needs a positive integer, got '{word}'"
    if problem:
        raise syntax_error(problem, text, source, *token_at(token))
    assert match is not None
    return [
        RawAlt((Symbol(str(i), False),), [], *token_at(token)) for i in range(int(match.group(1)))
    ]
