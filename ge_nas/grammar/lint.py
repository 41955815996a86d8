"""Lint a grammar as read: every error and warning, each naming the file and line.

Errors: no rules, duplicate rules, rules without alternatives, undefined
nonterminals (with a suggestion, and a syntax error for a misspelt '::='),
rules that can never derive a finite string, misused parameters and calls
(`ge_nas.grammar.parameters`). Warnings: the reader's notes, alternatives that
lead only into such rules, rules unreachable from the start, unused parameters.
All checks are linear in the size of the grammar, but for one pass per rule
used as an argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ge_nas.errors import did_you_mean
from ge_nas.grammar.parameters import check_parameters
from ge_nas.grammar.reader import Alternative, RawAlt, RawRule
from ge_nas.grammar.rule_graph import Code, min_depths, reachable
from ge_nas.grammar.syntax import syntax_error

_HEAD_TYPO = re.compile(r"[ \t]*(:=|::|:|=|->)")
_MAX_UNDEFINED = 50


class Lint:
    """Collect every error and warning of a parsed grammar, each naming the file."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.lines = text.split(
            "\n"
        )  # as lark counts lines (str.splitlines also splits at \f, \x85, ...)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str, line: int | None = None, column: int | None = None) -> None:
        """Record an error at line:column of the file (or of the whole file)."""
        self.errors.append(self._where(line, column) + message)

    def warn(self, message: str, line: int | None = None, column: int | None = None) -> None:
        """Record a warning at line:column of the file (or of the whole file)."""
        self.warnings.append(self._where(line, column) + message)

    def _where(self, line: int | None, column: int | None) -> str:
        if line is None:
            return f"{self.source}: "
        return (
            f"{self.source}:{line}:{column}: " if column is not None else f"{self.source}:{line}: "
        )

    def check(self, rules: list[RawRule]) -> None:
        """Add the errors and warnings of rules; raise GrammarSyntaxError for a misspelt '::='."""
        if not rules:
            self.error(
                "no rules found: a grammar needs at least one line '<name> ::= alternative | ...'"
            )
            return
        defined = self._definitions(rules)
        for rule in rules:
            for line, column, note in rule.notes:
                self.warn(note, line, column)
            if not rule.alternatives:
                self.error(f"rule <{rule.name}> has no alternatives", rule.line, rule.column)
        self._undefined(rules, defined)
        firsts = list(defined.values())
        ids = {rule.name: i for i, rule in enumerate(firsts)}
        # A rule without alternatives (reported already) counts as finishing, so it causes no more errors.
        alternatives = [
            tuple(_lint_codes(alt.symbols, ids) for alt in rule.alternatives) or (("",),)
            for rule in firsts
        ]
        check_parameters(self, rules, defined, alternatives)
        self._termination(firsts, ids, alternatives)

    def _definitions(self, rules: list[RawRule]) -> dict[str, RawRule]:
        defined: dict[str, RawRule] = {}
        for rule in rules:
            first = defined.setdefault(rule.name, rule)
            if first is not rule:
                self.error(
                    f"duplicate rule <{rule.name}>: first defined at line {first.line}, again at line "
                    f"{rule.line}",
                    rule.line,
                    rule.column,
                )
        return defined

    def _undefined(self, rules: list[RawRule], defined: Mapping[str, RawRule]) -> None:
        missing = [
            (name, line, column, rule)
            for rule in rules
            for alt in rule.alternatives
            for name, line, column in _uses(alt)
            if name not in defined
        ]
        owners = {param: rule for rule in rules for param in rule.params}
        # suggestions cost O(rules) each: report a few
        for name, line, column, rule in missing[:_MAX_UNDEFINED]:
            self._head_typo(name, line, column)
            self.error(_undefined_message(name, rule, owners.get(name), defined), line, column)
        if len(missing) > _MAX_UNDEFINED:
            self.error(
                f"{len(missing) - _MAX_UNDEFINED} more uses of undefined nonterminals, "
                f"{len({name for name, *_ in missing})} names in all"
            )

    def _head_typo(self, name: str, line: int, column: int) -> None:
        """Raise a syntax error for a misspelt rule head: '<name> :=' at the start of a line, or
        '<name> text' without '::=' at its very start (a continued alternative is indented)."""
        line_text = self.lines[line - 1]
        after = column - 1 + len(name) + 2
        typo = _HEAD_TYPO.match(line_text, after)
        if line_text[: column - 1].strip() or (typo is None and column > 1):
            return
        rest = line_text[after:]
        at = typo.start(1) + 1 if typo else after + len(rest) - len(rest.lstrip()) + 1
        raise syntax_error(f"expected '::=' after <{name}>", self.text, self.source, line, at)

    def _termination(
        self,
        firsts: list[RawRule],
        ids: Mapping[str, int],
        alternatives: Sequence[Sequence[tuple[Code, ...]]],
    ) -> None:
        depths = min_depths(alternatives)
        for i, rule in enumerate(firsts):
            if depths[i] is None and rule.alternatives:
                needs = sorted(
                    {
                        f"<{s}>"
                        for alt in rule.alternatives
                        for s, *_ in _uses(alt)
                        if s in ids and depths[ids[s]] is None
                    }
                )
                self.error(
                    f"<{rule.name}> can never derive a finite string: every alternative uses "
                    f"{', '.join(needs)}, which cannot finish (a cycle with no way out)",
                    rule.line,
                    rule.column,
                )
            elif depths[i] is not None:
                self._dead_alternatives(rule, ids, depths)
        if not self.errors:
            self._unreachable(firsts, ids, alternatives)

    def _dead_alternatives(
        self, rule: RawRule, ids: Mapping[str, int], depths: Sequence[int | None]
    ) -> None:
        for alt in rule.alternatives:
            dead = sorted({f"<{s}>" for s, *_ in _uses(alt) if s in ids and depths[ids[s]] is None})
            if dead:
                self.warn(
                    f"this alternative of <{rule.name}> can only lead into the non-terminating "
                    f"{', '.join(dead)}",
                    alt.line,
                    alt.column,
                )

    def _unreachable(
        self,
        rules: list[RawRule],
        ids: Mapping[str, int],
        alternatives: Sequence[Sequence[tuple[Code, ...]]],
    ) -> None:
        seen = reachable(alternatives, 0)
        for i, rule in enumerate(rules):
            if not seen[i]:
                self.warn(
                    f"rule <{rule.name}> is unreachable from the start rule <{rules[0].name}>",
                    rule.line,
                    rule.column,
                )


def _uses(alt: RawAlt) -> list[tuple[str, int, int]]:
    """Return the names an alternative uses with their positions: references, then called rules."""
    return [*alt.refs, *((call.text, line, column) for call, line, column in alt.calls)]


def _undefined_message(
    name: str, rule: RawRule, owner: RawRule | None, defined: Mapping[str, RawRule]
) -> str:
    if owner is not None:
        return (
            f"<{name}> is a parameter of <{owner.name}> (line {owner.line}): a parameter is "
            "known only in its own rule's alternatives"
        )
    known = [*defined, *rule.params]
    neither = f" (neither a rule nor a parameter of <{rule.name}>)" if rule.params else ""
    return f"undefined nonterminal <{name}>{neither}{did_you_mean(name, known)}"


def _lint_codes(symbols: Alternative, ids: Mapping[str, int]) -> tuple[Code, ...]:
    """Code an alternative for lint; an undefined name (reported already) or a parameter counts
    as a terminal, a call as the called rule followed by its arguments."""
    flat = [a for s in symbols for a in (s, *s.args)]
    return tuple(ids[s.text] if s.is_nt and s.text in ids else s.text for s in flat)
