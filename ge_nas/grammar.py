"""BNF text -> Grammar: the search space, checked, with the facts GE needs.

The dialect is the one GE users write for PonyGE2 [Fenton2017], and a grammar
maps genomes to exactly PonyGE2's phenotypes:

* ``<name> ::= alt | alt``; the first rule is the start symbol; a definition
  starts wherever ``<name> ::=`` appears.
* ``#`` starts a comment outside quotes. As in PonyGE2 a comment also ends the
  alternative it is on; text on the next lines before a ``|`` is a further
  alternative (the loader warns about that).
* ``'...'`` and ``"..."`` are literal text without the quotes; bare text is
  kept as written, inner blanks included; a ``<`` that does not open a
  ``<name>`` is literal.
* Each alternative is stripped. Inside one, a line break is a newline; spaces
  (not tabs) after it are dropped, and so are spaces before it unless they
  follow bare text (PonyGE2 keeps those). Empty alternatives are dropped: write
  ``''`` for the empty string.
* Backslash escapes decode as Python's ``unicode_escape`` codec decodes them;
  other text (non-ASCII included) is left alone. ``GE_RANGE:n`` as a whole
  alternative stands for the alternatives ``0 | 1 | ... | n-1``.

Where PonyGE2's regular expressions crash or misread text (a backslash before a
closing quote, ``<a> ::=`` inside quotes), quotes and escapes win here; text
PonyGE2 would silently drop (an unclosed quote, text before the first rule,
``GE_RANGE:3 x``) is an error.

Loading parses with lark (bnf.lark), then lints in linear time: undefined and
duplicate rules, rules that can never finish, unreachable rules.

[Fenton2017] M. Fenton, J. McDermott, D. Fagan, S. Forstenlechner, E. Hemberg,
M. O'Neill. PonyGE2: Grammatical Evolution in Python. GECCO 2017 Companion.
"""

from __future__ import annotations

import codecs
import gc
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import lark
from lark.lark import PostLex

from ge_nas.errors import ConfigError, GrammarError, GrammarSyntaxError, caret_context, did_you_mean

logger = logging.getLogger(__name__)

Code = int | str  # a rule id, or terminal text


@dataclass(frozen=True)
class Symbol:
    """One symbol of an alternative: terminal text, or a nonterminal's name without brackets."""

    text: str
    is_nt: bool


Alternative = tuple[Symbol, ...]


Production = tuple[Code, tuple[Code, ...]]


class ItemTable(dict[int, tuple[int, tuple[Production, ...]]]):
    """Productions keyed by (depth, rule) items, built on first use; the mapper's hot table.

    An item is ``depth * n_rules + rule`` (the root is depth 0). Its value is
    the number of alternatives and each alternative as ``(first, rest)``: the
    first symbol, and the others reversed for a stack, with nonterminals as
    items one level deeper and terminals as text.
    """

    def __init__(self, alternatives: tuple[tuple[tuple[Code, ...], ...], ...]) -> None:
        super().__init__()
        self.alternatives = alternatives
        self.n_rules = len(alternatives)

    def __missing__(self, item: int) -> tuple[int, tuple[Production, ...]]:
        depth, rule = divmod(item, self.n_rules)
        offset = (depth + 1) * self.n_rules
        alternatives = self.alternatives[rule]
        entry = len(alternatives), tuple(_production(alt, offset) for alt in alternatives)
        self[item] = entry
        return entry

    def __reduce__(self) -> tuple[type[ItemTable], tuple[tuple[tuple[tuple[Code, ...], ...], ...]]]:
        return ItemTable, (self.alternatives,)  # the cache is rebuilt, not shipped


def _production(alt: tuple[Code, ...], offset: int) -> Production:
    coded = [s + offset if isinstance(s, int) else s for s in alt]
    return coded[0], tuple(reversed(coded[1:]))


@dataclass(frozen=True)
class RuleCodes:
    """The grammar as integers: rule ids in file order, and per-rule facts."""

    names: tuple[str, ...]
    alternatives: tuple[tuple[tuple[Code, ...], ...], ...]
    min_depths: tuple[int, ...]
    alt_min_depths: tuple[tuple[int, ...], ...]
    recursive: tuple[bool, ...]
    items: ItemTable = field(compare=False, repr=False)
    ids: Mapping[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", {name: i for i, name in enumerate(self.names)})


@dataclass(frozen=True)
class Grammar:
    """A checked BNF grammar: rules in file order plus precomputed facts."""

    start: str
    rules: Mapping[str, tuple[Alternative, ...]] = field(hash=False)
    source: str = "<string>"
    warnings: tuple[str, ...] = ()
    codes: RuleCodes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rules = {name: tuple(tuple(alt) for alt in alts) for name, alts in self.rules.items()}
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "codes", _encode(self.start, rules, self.source))

    def min_depth(self, name: str) -> int:
        """Return the least depth of a derivation tree rooted at <name> (terminals are a level)."""
        return self.codes.min_depths[self._id(name)]

    def is_recursive(self, name: str) -> bool:
        """Return whether <name> can derive a string containing itself."""
        return self.codes.recursive[self._id(name)]

    def _id(self, name: str) -> int:
        try:
            return self.codes.ids[name]
        except KeyError:
            raise KeyError(f"no rule <{name}> in {self.source}{did_you_mean(name, self.rules)}") from None


@dataclass(frozen=True)
class GrammarReport:
    """The outcome of checking grammar text: the grammar if usable, and every message."""

    grammar: Grammar | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def load_grammar(path: str | os.PathLike[str]) -> Grammar:
    """Read and parse a BNF file.

    Raises:
        ConfigError: the file is missing, unreadable or not UTF-8 text.
        GrammarSyntaxError: the text is not BNF; the message has file:line:col.
        GrammarError: the grammar parses but cannot be used.
    """
    return parse_grammar(read_grammar_text(path), source=os.fspath(path))


def read_grammar_text(path: str | os.PathLike[str]) -> str:
    """Return the text of a grammar file, or raise ConfigError naming the path."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read grammar file {os.fspath(path)}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"grammar file {os.fspath(path)} is not UTF-8 text (byte {exc.start})") from None


def parse_grammar(text: str, source: str = "<string>") -> Grammar:
    """Parse BNF text into a Grammar.

    Raises:
        GrammarSyntaxError: the text is not BNF; the message has file:line:col,
            the line and a caret.
        GrammarError: every problem found (one per line) in a grammar that parses.
    """
    report = check_grammar(text, source, raise_syntax=True)
    if report.grammar is None:
        raise GrammarError("\n".join(report.errors))
    return report.grammar


def check_grammar(text: str, source: str = "<string>", *, raise_syntax: bool = False) -> GrammarReport:
    """Parse and lint BNF text, collecting every error and warning instead of raising."""
    text = normalise_text(text)
    try:
        with _gc_paused():
            rules = _read_rules(text, source)
            lint = _Lint(source, text)
            lint.check(rules)
    except GrammarSyntaxError as exc:
        if raise_syntax:
            raise
        return GrammarReport(None, (str(exc),), ())
    if lint.errors:
        return GrammarReport(None, tuple(lint.errors), tuple(lint.warnings))
    merged = {rule.name: tuple(alt.symbols for alt in rule.alternatives) for rule in rules}
    with _gc_paused():
        grammar = Grammar(rules[0].name, merged, source, tuple(lint.warnings))
    return GrammarReport(grammar, (), grammar.warnings)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: loading allocates many small acyclic objects,
    and collections triggered by them would scan the whole heap (doubling load time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def normalise_text(text: str) -> str:
    """Drop a byte-order mark and turn CRLF / CR line ends into LF."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


# --- lark: text -> rule heads and body tokens --------------------------------

_ITEMS = frozenset({"TEXT", "BLANK", "NL", "SQ", "DQ", "NT", "LT", "BAR", "COMMENT"})
_BAD = ("BAD_HEAD", "BAD_QUOTE", "BAD_DEFINE", "BAD_ESCAPE")


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


def _at(token: lark.Token) -> tuple[int, int]:
    """Return a token's 1-based line and column (lark types them as optional)."""
    return token.line or 1, token.column or 1


def _syntax(message: str, text: str, source: str, line: int, column: int) -> GrammarSyntaxError:
    return GrammarSyntaxError(message, source=source, line=line, column=column,
                              context=caret_context(text, line, column))


def _body(items: list[lark.Token]) -> _Body:
    first, last = items[0], items[-1]
    token = _Body("BODY", "", first.start_pos, first.line, first.column, last.end_line, last.end_column, last.end_pos)
    token.items = items
    return token


@cache
def _meta_parser() -> lark.Lark:
    text = resources.files("ge_nas").joinpath("bnf.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", lexer="basic", postlex=_GatherBodies())


@dataclass
class _RawAlt:
    symbols: Alternative
    refs: list[tuple[str, int, int]]  # nonterminal name, line, column
    line: int
    column: int


@dataclass
class _RawRule:
    name: str
    line: int
    column: int
    alternatives: list[_RawAlt]
    notes: list[tuple[int, int, str]]  # warnings found while reading: line, column, message


def _read_rules(text: str, source: str) -> list[_RawRule]:
    try:
        tree = _meta_parser().parse(text)
    except lark.UnexpectedInput as exc:
        raise _syntax_error(exc, text, source) from None
    return [_raw_rule(rule.children, text, source) for rule in tree.children if isinstance(rule, lark.Tree)]


def _raw_rule(children: Sequence[lark.Token | lark.Tree[lark.Token]], text: str, source: str) -> _RawRule:
    head, body = children[0], children[-1]
    assert isinstance(head, lark.Token)
    name = head[1 : head.index(">")]
    items = body.items if isinstance(body, _Body) else []
    rule = _RawRule(name, *_at(head), [], [])
    after_text = False
    for tokens, opened, closed in _split(items):
        after_text = _add_alternative(rule, tokens, opened, closed, after_text, text, source)
    return rule


def _split(items: list[lark.Token]) -> Iterator[tuple[list[lark.Token], lark.Token | None, lark.Token | None]]:
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


def _add_alternative(rule: _RawRule, tokens: list[lark.Token], opened: lark.Token | None,
                     closed: lark.Token | None, after_text: bool, text: str, source: str) -> bool:
    """Add one alternative to rule; return whether it had text (the dialect drops empty ones)."""
    tokens = _strip(tokens)
    if not tokens:
        if _is_bar(opened) and (closed is None or _is_bar(closed)) or opened is None and _is_bar(closed):
            bar = opened or closed
            assert bar is not None
            line, column = _at(bar)
            rule.notes.append((line, column + bar.index("|"), "empty alternative ignored (write '' for the empty string)"))
        return False
    if after_text and opened is not None and opened.type == "COMMENT":
        rule.notes.append((*_at(tokens[0]),
                           f"the comment on line {opened.line} ends the alternative before it, so this text is a "
                           "new alternative (as in PonyGE2); start it with '|' to say so, or move the comment"))
    if tokens[0].type == "TEXT" and tokens[0].startswith("GE_RANGE:"):
        rule.alternatives.extend(_ge_range(tokens, text, source))
    else:
        rule.alternatives.append(_alternative(tokens, text, source))
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


def _alternative(tokens: list[lark.Token], text: str, source: str) -> _RawAlt:
    symbols: list[Symbol] = []
    refs: list[tuple[str, int, int]] = []
    pending: str | None = None
    for i, token in enumerate(tokens):
        if token.type == "NT":
            if pending is not None:
                symbols.append(Symbol(pending, False))
                pending = None
            symbols.append(Symbol(token[1:-1], True))
            refs.append((token[1:-1], *_at(token)))
        else:
            piece = _piece(token, i == len(tokens) - 1, text, source)
            pending = piece if pending is None else pending + piece
    if pending is not None:
        symbols.append(Symbol(pending, False))
    return _RawAlt(tuple(symbols), refs, *_at(tokens[0]))


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


_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{0,2}|u[0-9a-fA-F]{0,4}|U[0-9a-fA-F]{0,8}|N(?:\{[^}]*\})?|[0-7]{1,3}|.)", re.S)
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
            line, column = _at(token)
            raise _syntax(f"bad escape {escape!r}: {exc.reason}", text, source, line,
                          column + offset + match.start()) from None

    return _ESCAPE.sub(one, raw)


_GE_RANGE = re.compile(r"GE_RANGE:([0-9]+)")


def _ge_range(tokens: list[lark.Token], text: str, source: str) -> list[_RawAlt]:
    token = tokens[0]
    word = _rstrip(token)
    match = _GE_RANGE.fullmatch(word)
    problem = ""
    if len(tokens) > 1 or word.split()[0] != word:
        problem = f"GE_RANGE must be a whole alternative: '{word.split()[0]}' is followed by more text"
    elif match is None:
        hint = " (PonyGE2's dataset_* sizes need its fitness function)" if "dataset_" in word else ""
        problem = f"GE_RANGE needs a positive integer, got '{word}'{hint}"
    elif int(match.group(1)) < 1:
        problem = f"GE_RANGE needs a positive integer, got '{word}'"
    if problem:
        raise _syntax(problem, text, source, *_at(token))
    assert match is not None
    return [_RawAlt((Symbol(str(i), False),), [], *_at(token)) for i in range(int(match.group(1)))]


# --- syntax errors, classified by example ------------------------------------

# Each mistake is tried after every kind of text that can precede it: lark matches
# an error by parser state, and layout or an earlier rule changes the state.
_CONTEXTS = ("", "\n", "\t", "\n\n", "\n\t", "# note\n", "<z> ::= z\n", "\n<z> ::= z\n<y> ::= y\n")
_MISTAKES: dict[str, tuple[str, ...]] = {
    "head": ("<layer> := conv", "<layer> = conv", "<layer> conv", "<layer>"),
    "text": ("conv\n<a> ::= x", "'conv'\n<a> ::= x", '"conv"', "| x", "< x"),
    "quote": ("'x", "<a> ::= 'x", '<a> ::= "x', "<a> ::= x | 'y", "<a> ::='x", '<a> ::=<b>"x'),
    "angle": ("<a ::= x", "<a> ::= x\n<b ::= y", "<a> ::=<b ::= y", "<a> ::= x <b ::= y"),
    "define": ("::= x", "<a> ::= x ::= y", "a ::= x", "<a> ::=::= x", "<a> ::=<b>::= y"),
    "escape": ("\\", "<a> ::= x\\", "<a> ::= x \\\n| y", "<a> ::=\\", "<a> ::= <b>\\"),
}


@cache
def _examples() -> dict[str, list[str]]:
    return {label: [context + bad for context in _CONTEXTS for bad in bads] for label, bads in _MISTAKES.items()}


def _syntax_error(exc: lark.UnexpectedInput, text: str, source: str) -> GrammarSyntaxError:
    label: str | None = exc.match_examples(_meta_parser().parse, _examples(), token_type_match_fallback=True)
    token = getattr(exc, "token", None)
    line, column = exc.line, exc.column
    if not isinstance(token, lark.Token) or label is None:
        message = f"unexpected {str(token)!r}" if token is not None else "unexpected input"
    elif label == "head":
        line, column = _after(text, token)
        message = f"expected '::=' after {token}"
    else:
        message = _MESSAGES[label](token)
    return _syntax(message, text, source, line, column)


_MESSAGES: dict[str, Callable[[lark.Token], str]] = {
    "text": lambda t: f"expected a rule '<name> ::= ...' before {str(t).strip()!r}",
    "quote": lambda t: f"unclosed quote: expected a closing {t[0]} on the same line (quoted text cannot span lines)",
    "angle": lambda t: f"unclosed '<' in a rule head: expected '>' after {t.split()[0].removesuffix('::=')}",
    "define": lambda t: "'::=' without a rule name: expected '<name> ::='",
    "escape": lambda t: "a backslash ends the line: write \\\\ for a backslash, or quote it",
}


def _after(text: str, token: lark.Token) -> tuple[int, int]:
    """Return the line and column of the first non-blank character after token on its line."""
    line, column = _at(token)
    end = column - 1 + len(token)
    rest = text.split("\n")[line - 1][end:]
    return line, end + len(rest) - len(rest.lstrip()) + 1


# --- lint ---------------------------------------------------------------------

_HEAD_TYPO = re.compile(r"[ \t]*(:=|::|:|=|->)")
_MAX_UNDEFINED = 50


class _Lint:
    """Collect every error and warning of a parsed grammar, each naming the file."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.lines = text.split("\n")  # as lark counts lines (str.splitlines also splits at \f, \x85, ...)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.errors.append(self._where(line, column) + message)

    def warn(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.warnings.append(self._where(line, column) + message)

    def _where(self, line: int | None, column: int | None) -> str:
        if line is None:
            return f"{self.source}: "
        return f"{self.source}:{line}:{column}: " if column is not None else f"{self.source}:{line}: "

    def check(self, rules: list[_RawRule]) -> None:
        if not rules:
            self.error("no rules found: a grammar needs at least one line '<name> ::= alternative | ...'")
            return
        defined = self._definitions(rules)
        for rule in rules:
            for line, column, note in rule.notes:
                self.warn(note, line, column)
            if not rule.alternatives:
                self.error(f"rule <{rule.name}> has no alternatives", rule.line, rule.column)
        self._undefined(rules, defined)
        self._termination(rules, defined)

    def _definitions(self, rules: list[_RawRule]) -> dict[str, _RawRule]:
        defined: dict[str, _RawRule] = {}
        for rule in rules:
            first = defined.setdefault(rule.name, rule)
            if first is not rule:
                self.error(f"duplicate rule <{rule.name}>: first defined at line {first.line}, again at line "
                           f"{rule.line}", rule.line, rule.column)
        return defined

    def _undefined(self, rules: list[_RawRule], defined: Mapping[str, _RawRule]) -> None:
        missing = [ref for rule in rules for alt in rule.alternatives for ref in alt.refs if ref[0] not in defined]
        for name, line, column in missing[:_MAX_UNDEFINED]:  # suggestions cost O(rules) each: report a few
            self._head_typo(name, line, column)
            self.error(f"undefined nonterminal <{name}>{did_you_mean(name, defined)}", line, column)
        if len(missing) > _MAX_UNDEFINED:
            self.error(f"{len(missing) - _MAX_UNDEFINED} more uses of undefined nonterminals, "
                       f"{len({name for name, *_ in missing})} names in all")

    def _head_typo(self, name: str, line: int, column: int) -> None:
        """Raise a syntax error for '<name> :=' at the start of a line: a misspelt rule head."""
        line_text = self.lines[line - 1]
        after = column - 1 + len(name) + 2
        typo = _HEAD_TYPO.match(line_text, after)
        if line_text[: column - 1].strip() or typo is None:
            return
        at = typo.start(1) + 1
        raise GrammarSyntaxError(f"expected '::=' after <{name}>", source=self.source, line=line, column=at,
                                 context=caret_context(self.text, line, at))

    def _termination(self, rules: list[_RawRule], defined: Mapping[str, _RawRule]) -> None:
        firsts = list(defined.values())
        ids = {rule.name: i for i, rule in enumerate(firsts)}
        # A rule without alternatives (reported already) counts as finishing, so it causes no more errors.
        alternatives = [tuple(_lint_codes(alt.symbols, ids) for alt in rule.alternatives) or (("",),)
                        for rule in firsts]
        depths = min_depths(alternatives)
        for i, rule in enumerate(firsts):
            if depths[i] is None and rule.alternatives:
                needs = sorted({f"<{s}>" for alt in rule.alternatives for s, *_ in alt.refs
                                if s in ids and depths[ids[s]] is None})
                self.error(f"<{rule.name}> can never derive a finite string: every alternative uses "
                           f"{', '.join(needs)}, which cannot finish (a cycle with no way out)",
                           rule.line, rule.column)
            elif depths[i] is not None:
                self._dead_alternatives(rule, ids, depths)
        if not self.errors:
            self._unreachable(firsts, ids, alternatives)

    def _dead_alternatives(self, rule: _RawRule, ids: Mapping[str, int], depths: Sequence[int | None]) -> None:
        for alt in rule.alternatives:
            dead = sorted({f"<{s}>" for s, *_ in alt.refs if s in ids and depths[ids[s]] is None})
            if dead:
                self.warn(f"this alternative of <{rule.name}> can only lead into the non-terminating "
                          f"{', '.join(dead)}", alt.line, alt.column)

    def _unreachable(self, rules: list[_RawRule], ids: Mapping[str, int],
                     alternatives: Sequence[Sequence[tuple[Code, ...]]]) -> None:
        seen = reachable(alternatives, 0)
        for i, rule in enumerate(rules):
            if not seen[i]:
                self.warn(f"rule <{rule.name}> is unreachable from the start rule <{rules[0].name}>",
                          rule.line, rule.column)


def _lint_codes(symbols: Alternative, ids: Mapping[str, int]) -> tuple[Code, ...]:
    """Code an alternative for lint; an undefined name (reported already) counts as a terminal."""
    return tuple(ids[s.text] if s.is_nt and s.text in ids else s.text for s in symbols)


# --- facts: min depths, recursion, reachability, all linear ------------------


def _encode(start: str, rules: Mapping[str, tuple[Alternative, ...]], source: str) -> RuleCodes:
    if start not in rules:
        raise GrammarError(f"{source}: start rule <{start}> is not defined{did_you_mean(start, rules)}")
    ids = {name: i for i, name in enumerate(rules)}
    coded = tuple(tuple(_codes(alt, ids, name, source) for alt in alts) for name, alts in rules.items())
    for name, alts in zip(rules, coded):
        if not alts or not all(alts):
            raise GrammarError(f"{source}: rule <{name}> has no alternatives, or an empty one")
    if ids[start] != 0:  # the start rule gets id 0, so the root item is 0
        order = [start] + [n for n in rules if n != start]
        return _encode(start, {n: rules[n] for n in order}, source)
    depths = min_depths(coded)
    stuck = [f"<{n}>" for n, d in zip(rules, depths) if d is None]
    if stuck:
        raise GrammarError(f"{source}: {', '.join(stuck)} can never derive a finite string")
    final = tuple(d for d in depths if d is not None)
    alt_depths = tuple(tuple(_alt_depth(alt, final) for alt in alts) for alts in coded)
    return RuleCodes(tuple(rules), coded, final, alt_depths, tuple(recursive_rules(coded)), ItemTable(coded))


def _codes(alt: Alternative, ids: Mapping[str, int], rule: str, source: str) -> tuple[Code, ...]:
    try:
        return tuple(ids[s.text] if s.is_nt else s.text for s in alt)
    except KeyError as exc:
        raise GrammarError(f"{source}: rule <{rule}> uses undefined nonterminal <{exc.args[0]}>") from None


def _alt_depth(alt: tuple[Code, ...], depths: Sequence[int]) -> int:
    return 1 + max(depths[s] if isinstance(s, int) else 1 for s in alt)


def min_depths(alternatives: Sequence[Sequence[tuple[Code, ...]]]) -> list[int | None]:
    """Return each rule's least derivation depth (None: it never finishes), in linear time.

    A bucket-queue Dijkstra over the rules (Knuth's generalisation to
    superior functions): a rule's depth is 1 + the deepest child of its best
    alternative, with terminals at depth 1, so `<e> ::= x` has depth 2.
    """
    n = len(alternatives)
    owner: list[int] = []  # flat alternative index -> its rule
    pending: list[int] = []  # children not yet given a depth
    value: list[int] = []  # 1 + deepest child so far
    waiting: list[list[int]] = [[] for _ in range(n)]  # rule -> alternatives that use it (with repeats)
    buckets: list[list[int]] = [[] for _ in range(n + 3)]
    for r, alts in enumerate(alternatives):
        for alt in alts:
            k = len(owner)
            children = [s for s in alt if isinstance(s, int)]
            owner.append(r)
            pending.append(len(children))
            value.append(2 if len(children) < len(alt) else 0)
            for child in children:
                waiting[child].append(k)
            if not children:
                buckets[2].append(r)
    depths: list[int | None] = [None] * n
    for level in range(2, n + 3):
        for r in buckets[level]:
            if depths[r] is None:
                depths[r] = level
                for k in waiting[r]:
                    pending[k] -= 1
                    value[k] = max(value[k], level + 1)
                    if pending[k] == 0:
                        buckets[value[k]].append(owner[k])
    return depths


def recursive_rules(alternatives: Sequence[Sequence[tuple[Code, ...]]]) -> list[bool]:
    """Return, per rule, whether it lies on a cycle of the refers-to graph (iterative Tarjan)."""
    edges = [sorted({s for alt in alts for s in alt if isinstance(s, int)}) for alts in alternatives]
    n = len(edges)
    index: list[int | None] = [None] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    result = [False] * n
    counter = 0
    for root in range(n):
        if index[root] is not None:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            if i < len(edges[v]):
                work.append((v, i + 1))
                w = edges[v][i]
                if index[w] is None:
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w] or 0)
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                _pop_component(v, stack, on_stack, edges, result)
    return result


def _pop_component(v: int, stack: list[int], on_stack: list[bool], edges: list[list[int]], result: list[bool]) -> None:
    component = []
    while True:
        w = stack.pop()
        on_stack[w] = False
        component.append(w)
        if w == v:
            break
    if len(component) > 1 or v in edges[v]:
        for w in component:
            result[w] = True


def reachable(alternatives: Sequence[Sequence[tuple[Code, ...]]], start: int) -> list[bool]:
    """Return, per rule, whether a derivation from start can use it."""
    seen = [False] * len(alternatives)
    seen[start] = True
    todo = [start]
    while todo:
        for alt in alternatives[todo.pop()]:
            for s in alt:
                if isinstance(s, int) and not seen[s]:
                    seen[s] = True
                    todo.append(s)
    return seen
