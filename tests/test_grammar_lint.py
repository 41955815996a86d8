"""Lint: errors and warnings of a grammar that parses, each naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ge_nas.errors import GrammarError
from ge_nas.grammar import check_grammar, load_grammar, parse_grammar

GRAMMARS = Path(__file__).parent / "grammars"


def errors_of(name: str) -> list[str]:
    """Return the errors of a fixture grammar (raising GrammarError on load)."""
    path = GRAMMARS / name
    with pytest.raises(GrammarError) as info:
        load_grammar(path)
    return str(info.value).splitlines()


def test_duplicate_rule_names_both_lines() -> None:
    [message] = errors_of("lint_duplicate.bnf")
    assert message.startswith(f"{GRAMMARS / 'lint_duplicate.bnf'}:5:1: duplicate rule <layer>")
    assert "line 3" in message and "line 5" in message


def test_undefined_nonterminal_has_position_and_suggestion() -> None:
    [message] = errors_of("lint_undefined.bnf")
    assert message.startswith(
        f"{GRAMMARS / 'lint_undefined.bnf'}:2:31: undefined nonterminal <lyer>"
    )
    assert "did you mean 'layer'?" in message


def test_rule_with_no_alternatives() -> None:
    [message] = errors_of("lint_no_alternatives.bnf")
    assert message == f"{GRAMMARS / 'lint_no_alternatives.bnf'}:3:1: rule <act> has no alternatives"


def test_rule_less_and_empty_files() -> None:
    [message] = errors_of("lint_empty.bnf")
    assert message.startswith(f"{GRAMMARS / 'lint_empty.bnf'}: no rules found")
    with pytest.raises(GrammarError, match="^<string>: no rules found"):
        parse_grammar("")


def test_non_terminating_rules_are_named_with_their_cycles() -> None:
    report = check_grammar((GRAMMARS / "lint_nonterminating.bnf").read_text(), "n.bnf")
    assert report.grammar is None
    assert report.errors == (
        "n.bnf:5:1: <loop> can never derive a finite string: every alternative uses <loop>, which cannot finish "
        "(a cycle with no way out)",
        "n.bnf:6:1: <ping> can never derive a finite string: every alternative uses <pong>, which cannot finish "
        "(a cycle with no way out)",
        "n.bnf:7:1: <pong> can never derive a finite string: every alternative uses <ping>, which cannot finish "
        "(a cycle with no way out)",
    )
    assert report.warnings == (
        "n.bnf:4:19: this alternative of <net> can only lead into the non-terminating <loop>",
        "n.bnf:4:28: this alternative of <net> can only lead into the non-terminating <ping>",
    )


def test_unreachable_rule_is_a_warning() -> None:
    grammar = load_grammar(GRAMMARS / "lint_unreachable.bnf")
    assert grammar.warnings == (
        f"{GRAMMARS / 'lint_unreachable.bnf'}:4:1: rule <unused> is unreachable from the start rule <net>",
    )


def test_every_error_is_reported_not_just_the_first() -> None:
    report = check_grammar("<a> ::= <b> | <c>\n<a> ::= x\n<d> ::= <d>", "m.bnf")
    assert [e.split(": ")[0] for e in report.errors] == [
        "m.bnf:2:1",
        "m.bnf:1:9",
        "m.bnf:1:15",
        "m.bnf:3:1",
    ]
