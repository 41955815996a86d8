"""Rules with parameters: choose once, reuse. Their checks, and their expansion into plain rules.

A rule head may declare parameters, and an alternative may call such a rule
with arguments::

    <net>          ::= <stage(<kernel>, <act>)>
    <stage(K, A)>  ::= conv(16, <K>) <A> | conv(16, <K>) <A> <stage(<K>, <A>)>

An argument is a ``<nonterminal>`` (a rule, or in a rule with parameters one
of its parameters) or text without blanks. In the called rule's alternatives
``<K>`` stands for its argument's text. Codon order is the leftmost
derivation's: when a call is the leftmost nonterminal, its nonterminal
arguments are derived first, left to right, each completely, as if written in
place of the call; then the called rule takes its codon like any rule. A
parameter or text argument takes no codon, so the recursive call above reuses
the kernel and activation chosen once.

Loading expands the calls into a plain grammar that maps every genome the same
way, so the mapper, the initialisers and the space count need nothing new:

* ``<stage(3, relu)>``: the called rule with its arguments' texts in place, one
  rule per distinct tuple of texts reached (same alternatives, same codon);
* ``<stage(<kernel>, <act>)>``, ``<stage(3, <act>)>``: one rule per step of
  the arguments' derivation, each with the alternatives of the argument rule it
  expands and one codon, as that rule would take: a step adds a level to the
  tree (for `--max-depth`).

`Grammar.origins` names the rule of the file whose choice each expanded rule
makes (``stage`` for ``<stage(3, relu)>``, ``kernel`` for
``<stage(<kernel>, <act>)>``), so SGE keeps one list per rule of the file.
An argument must derive one of finitely many texts (its rules neither recurse
nor call), so the expansion is finite.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ge_nas.errors import GrammarError
from ge_nas.grammar.reader import Alternative, RawAlt, RawRule, Symbol
from ge_nas.grammar.rule_graph import Code, reachable, recursive_rules

if TYPE_CHECKING:
    from ge_nas.grammar.lint import Lint

MAX_RULES = 100_000  # expanded rules; a search space needs far fewer

Form = tuple[Symbol, ...]  # an argument being derived: texts (merged, non-empty) and nonterminals
Value = str | Form  # an argument's text, or its derivation so far
State = tuple[str, tuple[Value, ...]]  # a rule with parameters and its arguments


# --- checks ------------------------------------------------------------------------------------


def check_parameters(
    lint: Lint,
    rules: Sequence[RawRule],
    defined: Mapping[str, RawRule],
    alternatives: Sequence[Sequence[tuple[Code, ...]]],
) -> None:
    """Add the errors and warnings of parameters and calls to lint.

    alternatives: the first definitions coded as lint codes them (a call: the
    called rule, then its nonterminal arguments).
    """
    start = rules[0]
    if start.params:
        lint.error(
            f"the start rule <{start.name}> cannot have parameters", start.line, start.column
        )
    finite = _Finite(list(defined), alternatives, defined)
    for rule in rules:
        _check_head(lint, rule, defined)
        for alt in rule.alternatives:
            _check_uses(lint, alt, defined, finite)


def _check_head(lint: Lint, rule: RawRule, defined: Mapping[str, RawRule]) -> None:
    used = {s.text for alt in rule.alternatives for s in _flat(alt.symbols) if s.is_nt}
    for param in rule.params:
        other = defined.get(param)
        if other is not None:
            lint.error(
                f"parameter {param} of <{rule.name}> has the name of the rule <{param}> "
                f"(line {other.line}): rename one",
                rule.line,
                rule.column,
            )
        elif param not in used:
            lint.warn(f"parameter {param} of <{rule.name}> is never used", rule.line, rule.column)


def _check_uses(lint: Lint, alt: RawAlt, defined: Mapping[str, RawRule], finite: _Finite) -> None:
    for name, line, column in alt.refs:
        target = defined.get(name)
        if target is not None and target.params:
            lint.error(f"<{name}> has parameters: {_signature(target)}", line, column)
    for call, line, column in alt.calls:
        target = defined.get(call.text)
        if target is None:
            continue  # reported as undefined
        if len(call.args) != len(target.params):
            got = f"{len(call.args)} argument{'s' * (len(call.args) != 1)}"
            lint.error(f"<{call.text}> given {got}: {_signature(target)}", line, column)
        for arg in call.args:
            problem = finite.problem(arg.text) if arg.is_nt else None
            if problem:
                lint.error(f"the argument <{arg.text}> of <{call.text}> {problem}", line, column)


def _signature(rule: RawRule) -> str:
    if not rule.params:
        return f"<{rule.name}> has no parameters (line {rule.line}): write <{rule.name}>"
    n = len(rule.params)
    return (
        f"expected {n} argument{'s' * (n != 1)}, as in <{rule.name}({', '.join(rule.params)})> "
        f"(line {rule.line})"
    )


class _Finite:
    """Whether an argument's rules can derive only finitely many texts."""

    def __init__(
        self,
        names: list[str],
        alternatives: Sequence[Sequence[tuple[Code, ...]]],
        defined: Mapping[str, RawRule],
    ) -> None:
        self.names, self.alternatives, self.defined = names, alternatives, defined
        self.ids = {name: i for i, name in enumerate(names)}
        self.recursive = recursive_rules(alternatives)
        self.found: dict[str, str | None] = {}

    def problem(self, name: str) -> str | None:
        """Return why the rule <name> cannot be an argument, or None (also for unknown names)."""
        if name not in self.found and name in self.ids:
            self.found[name] = self._problem(name)
        return self.found.get(name)

    def _problem(self, name: str) -> str | None:
        seen = reachable(self.alternatives, self.ids[name])
        for i, used in enumerate(seen):
            if used and self.recursive[i]:
                return (
                    f"can derive infinitely many texts (it uses the recursive <{self.names[i]}>), "
                    "so the call would expand to infinitely many rules: an argument's rules "
                    "must not recurse"
                )
        for i, used in enumerate(seen):
            rule = self.defined[self.names[i]]
            if used and (rule.params or any(alt.calls for alt in rule.alternatives)):
                return (
                    f"uses <{rule.name}>, which has or calls rules with parameters: an argument's "
                    "rules must be plain"
                )
        return None


def _flat(symbols: Iterable[Symbol]) -> Iterator[Symbol]:
    """Yield symbols and the arguments of calls among them."""
    for symbol in symbols:
        yield symbol
        yield from symbol.args


# --- expansion ---------------------------------------------------------------------------------


@dataclass
class Expansion:
    """A plain grammar that maps as the rules with parameters do (see the module docstring)."""

    rules: dict[str, tuple[Alternative, ...]] = field(default_factory=dict)
    lines: dict[str, tuple[int, ...]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def expand_parameters(rules: Sequence[RawRule], source: str) -> Expansion:
    """Return the plain grammar of checked rules (lint found no errors): calls become rules.

    Raises:
        GrammarError: the expansion has more than MAX_RULES rules.
    """
    return _Expander(rules, source).run()


class _Expander:
    def __init__(self, rules: Sequence[RawRule], source: str) -> None:
        self.defined: dict[str, RawRule] = {}
        for rule in rules:
            self.defined.setdefault(rule.name, rule)
        self.source = source
        self.names: dict[State, str] = {}
        self.todo: deque[State] = deque()
        self.out = Expansion()

    def run(self) -> Expansion:
        """Return the plain rules, grouped by their origin's place in the file (the start first)."""
        for rule in self.defined.values():
            if not rule.params:
                self._add(rule.name, rule, self._alternatives(rule, {}))
        while self.todo:
            self._specialise(*self.todo.popleft())
        out, order = self.out, {name: i for i, name in enumerate(self.defined)}
        names = sorted(out.rules, key=lambda name: order[out.origins[name]])
        return Expansion(
            {n: out.rules[n] for n in names}, {n: out.lines[n] for n in names}, out.origins
        )

    def _alternatives(self, rule: RawRule, bindings: Mapping[str, str]) -> list[Alternative]:
        return [self._substitute(alt.symbols, bindings) for alt in rule.alternatives]

    def _add(self, name: str, origin: RawRule, alternatives: Sequence[Alternative]) -> None:
        self.out.rules[name] = tuple(alternatives)
        self.out.lines[name] = tuple(alt.line for alt in origin.alternatives)
        self.out.origins[name] = origin.name

    def _specialise(self, callee: str, values: tuple[Value, ...]) -> None:
        """Add the rule of a state: the next step of its arguments, or the callee with their texts."""
        name = self.names[callee, values]
        for i, value in enumerate(values):
            if not isinstance(value, str):
                self._step(name, callee, values, i, value)
                return
        rule = self.defined[callee]
        bindings = {p: v for p, v in zip(rule.params, values) if isinstance(v, str)}  # all are
        self._add(name, rule, self._alternatives(rule, bindings))

    def _step(self, name: str, callee: str, values: tuple[Value, ...], i: int, form: Form) -> None:
        """Add the rule that expands the leftmost nonterminal of argument i, one alternative each."""
        j = next(k for k, symbol in enumerate(form) if symbol.is_nt)
        argument = self.defined[form[j].text]
        steps = []
        for alt in argument.alternatives:
            state = values[:i] + (_form(form[:j] + alt.symbols + form[j + 1 :]),) + values[i + 1 :]
            steps.append((Symbol(self._state(callee, state), True),))
        self._add(name, argument, steps)

    def _substitute(self, symbols: Alternative, bindings: Mapping[str, str]) -> Alternative:
        """Return symbols with parameters replaced by their texts and calls by expanded rules."""
        out: list[Symbol] = []
        pending: str | None = None
        for symbol in symbols:
            if symbol.args or symbol.is_nt and symbol.text not in bindings:
                if pending is not None:
                    out.append(Symbol(pending, False))
                    pending = None
                out.append(self._call(symbol, bindings) if symbol.args else symbol)
                continue
            text = bindings[symbol.text] if symbol.is_nt else symbol.text
            pending = text if pending is None else pending + text
        if pending is not None:
            out.append(Symbol(pending, False))
        return tuple(out)

    def _call(self, call: Symbol, bindings: Mapping[str, str]) -> Symbol:
        values = tuple(
            bindings[a.text] if a.is_nt and a.text in bindings else (a,) if a.is_nt else a.text
            for a in call.args
        )
        return Symbol(self._state(call.text, values), True)

    def _state(self, callee: str, values: tuple[Value, ...]) -> str:
        """Return the name of a state's rule, queueing the rule the first time it is met."""
        name = self.names.get((callee, values))
        if name is None:
            if len(self.names) >= MAX_RULES:
                rule = self.defined[callee]
                raise GrammarError(
                    f"{self.source}:{rule.line}:{rule.column}: the calls of <{callee}> expand "
                    f"to more than {MAX_RULES:,} rules: give its arguments fewer choices"
                )
            name = f"{callee}({', '.join(_shown(v) for v in values)})"
            self.names[callee, values] = name
            self.todo.append((callee, values))
        return name


def _form(symbols: Sequence[Symbol]) -> Value:
    """Return an argument's derivation so far in canonical form, or its text once it is all text."""
    out: list[Symbol] = []
    for symbol in symbols:
        if not symbol.is_nt and out and not out[-1].is_nt:
            out[-1] = Symbol(out[-1].text + symbol.text, False)
        elif symbol.is_nt or symbol.text:
            out.append(symbol)
    if any(symbol.is_nt for symbol in out):
        return tuple(out)
    return out[0].text if out else ""


_PLAIN = re.compile(r"[^\s<>(),|#'\"]+")


def _shown(value: Value) -> str:
    """Return an argument as part of a rule name: its text, quoted unless plain; <nt> for a nonterminal."""
    if not isinstance(value, str):
        return "".join(f"<{s.text}>" if s.is_nt else _shown(s.text) for s in value)
    return value if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)
