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
* The one addition: ``<name(P, Q)> ::= ...`` declares a rule with parameters,
  ``<name(<rule>, text)>`` calls it, and ``<P>`` in its alternatives is the
  argument's text (`ge_nas.grammar.parameters`; loading expands the calls into
  plain rules). PonyGE2 would read ``<name(P)>`` as a plain rule name.

Where PonyGE2's regular expressions crash or misread text (a backslash before a
closing quote, ``<a> ::=`` inside quotes), quotes and escapes win here; text
PonyGE2 would silently drop (an unclosed quote, text before the first rule,
``GE_RANGE:3 x``) is an error.

Loading reads the text with lark (bnf.lark, `ge_nas.grammar.reader`), names syntax
errors from known-bad examples (`ge_nas.grammar.syntax`), then lints in linear time
(`ge_nas.grammar.lint`): undefined and duplicate rules, rules that can never
finish, unreachable rules, misused parameters. `ge_nas.grammar.rule_graph` holds the graph facts (min
depths, recursion, reachability) that lint and `Grammar` share.

[Fenton2017] M. Fenton, J. McDermott, D. Fagan, S. Forstenlechner, E. Hemberg,
M. O'Neill. PonyGE2: Grammatical Evolution in Python. GECCO 2017 Companion.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ge_nas.errors import ConfigError, GrammarError, GrammarSyntaxError, did_you_mean
from ge_nas.grammar.item_table import ItemTable
from ge_nas.grammar.lint import Lint
from ge_nas.grammar.parameters import Expansion, expand_parameters
from ge_nas.grammar.reader import Alternative, Symbol, read_rules
from ge_nas.grammar.rule_graph import Code, min_depths, recursive_rules

__all__ = [
    "Alternative",
    "Code",
    "Grammar",
    "GrammarReport",
    "ItemTable",
    "RuleCodes",
    "Symbol",
    "check_grammar",
    "load_grammar",
    "min_depths",
    "normalise_text",
    "parse_grammar",
    "read_grammar_text",
    "recursive_rules",
]


@dataclass(frozen=True)
class RuleCodes:
    """The grammar as integers: rule ids in file order, and per-rule facts."""

    names: tuple[str, ...]
    alternatives: tuple[tuple[tuple[Code, ...], ...], ...]
    min_depths: tuple[int, ...]
    alt_min_depths: tuple[tuple[int, ...], ...]
    recursive: tuple[bool, ...]
    # SGE's lists: one per rule of the file, in file order; rows[rule id] is the rule's list
    row_names: tuple[str, ...]
    rows: tuple[int, ...]
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
    # the line of each alternative in the source, by rule (empty: not read from text)
    alt_lines: Mapping[str, tuple[int, ...]] = field(
        default_factory=dict, hash=False, compare=False
    )
    # the rule of the file whose choice each rule makes, for rules expanded from rules with
    # parameters (`ge_nas.grammar.parameters`); a rule not named is its own
    origins: Mapping[str, str] = field(default_factory=dict, hash=False)
    codes: RuleCodes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rules = {name: tuple(tuple(alt) for alt in alts) for name, alts in self.rules.items()}
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "codes", _encode(self.start, rules, self.source, self.origins))

    def origin(self, name: str) -> str:
        """Return the rule of the file whose choice <name> makes (name itself unless expanded)."""
        return self.origins.get(name, name)

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
            raise KeyError(
                f"no rule <{name}> in {self.source}{did_you_mean(name, self.rules)}"
            ) from None


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


# A search space is a page of BNF; the cap stops /dev/zero and stray binaries.
MAX_GRAMMAR_BYTES = 1 << 20


def read_grammar_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_GRAMMAR_BYTES) -> str:
    """Return the text of a grammar file, or raise ConfigError naming the path."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ConfigError(
                f"grammar file {os.fspath(path)} is larger than {max_bytes:,} bytes; "
                "a grammar is a text file of BNF rules (is this the right path?)"
            )
        return data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read grammar file {os.fspath(path)}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"grammar file {os.fspath(path)} is not UTF-8 text (byte {exc.start})"
        ) from None


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


def check_grammar(
    text: str, source: str = "<string>", *, raise_syntax: bool = False
) -> GrammarReport:
    """Parse and lint BNF text, collecting every error and warning instead of raising."""
    text = normalise_text(text)
    try:
        with _gc_paused():
            rules = read_rules(text, source)
            lint = Lint(source, text)
            lint.check(rules)
    except GrammarSyntaxError as exc:
        if raise_syntax:
            raise
        return GrammarReport(None, (str(exc),), ())
    warnings = tuple(lint.warnings)
    if lint.errors:
        return GrammarReport(None, tuple(lint.errors), warnings)
    if any(rule.params for rule in rules):
        try:
            plain = expand_parameters(rules, source)
        except GrammarError as exc:
            return GrammarReport(None, (str(exc),), warnings)
    else:
        plain = Expansion(
            {rule.name: tuple(alt.symbols for alt in rule.alternatives) for rule in rules},
            {rule.name: tuple(alt.line for alt in rule.alternatives) for rule in rules},
        )
    with _gc_paused():
        grammar = Grammar(rules[0].name, plain.rules, source, warnings, plain.lines, plain.origins)
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


# --- the grammar as integers: rule ids and per-rule facts -------------------


def _encode(
    start: str,
    rules: Mapping[str, tuple[Alternative, ...]],
    source: str,
    origins: Mapping[str, str],
) -> RuleCodes:
    if start not in rules:
        raise GrammarError(
            f"{source}: start rule <{start}> is not defined{did_you_mean(start, rules)}"
        )
    ids = {name: i for i, name in enumerate(rules)}
    coded = tuple(
        tuple(_codes(alt, ids, name, source) for alt in alts) for name, alts in rules.items()
    )
    for name, alts in zip(rules, coded):
        if not alts or not all(alts):
            raise GrammarError(f"{source}: rule <{name}> has no alternatives, or an empty one")
    if ids[start] != 0:  # the start rule gets id 0, so the root item is 0
        order = [start] + [n for n in rules if n != start]
        return _encode(start, {n: rules[n] for n in order}, source, origins)
    depths = min_depths(coded)
    stuck = [f"<{n}>" for n, d in zip(rules, depths) if d is None]
    if stuck:
        raise GrammarError(f"{source}: {', '.join(stuck)} can never derive a finite string")
    final = tuple(d for d in depths if d is not None)
    alt_depths = tuple(tuple(_alt_depth(alt, final) for alt in alts) for alts in coded)
    row_names = tuple(dict.fromkeys(origins.get(name, name) for name in rules))
    row_ids = {name: i for i, name in enumerate(row_names)}
    return RuleCodes(
        tuple(rules),
        coded,
        final,
        alt_depths,
        tuple(recursive_rules(coded)),
        row_names,
        tuple(row_ids[origins.get(name, name)] for name in rules),
        ItemTable(coded),
    )


def _codes(alt: Alternative, ids: Mapping[str, int], rule: str, source: str) -> tuple[Code, ...]:
    if any(s.args for s in alt):
        raise GrammarError(
            f"{source}: rule <{rule}> calls a rule with parameters: parse_grammar expands "
            "calls, a Grammar holds plain rules"
        )
    try:
        return tuple(ids[s.text] if s.is_nt else s.text for s in alt)
    except KeyError as exc:
        raise GrammarError(
            f"{source}: rule <{rule}> uses undefined nonterminal <{exc.args[0]}>"
        ) from None


def _alt_depth(alt: tuple[Code, ...], depths: Sequence[int]) -> int:
    return 1 + max(depths[s] if isinstance(s, int) else 1 for s in alt)
