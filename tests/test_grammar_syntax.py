"""Syntax errors: file:line:col, the line, a caret, and the likely mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ge_nas.errors import GrammarSyntaxError
from ge_nas.grammar import check_grammar, load_grammar, parse_grammar

GRAMMARS = Path(__file__).parent / "grammars"


def syntax_error(text: str) -> GrammarSyntaxError:
    """Return the GrammarSyntaxError that parsing text raises."""
    with pytest.raises(GrammarSyntaxError) as info:
        parse_grammar(text, "x.bnf")
    return info.value


def test_head_typo_in_a_later_rule() -> None:
    path = GRAMMARS / "syntax_head_typo.bnf"
    with pytest.raises(GrammarSyntaxError) as info:
        load_grammar(path)
    assert (
        str(info.value)
        == f"{path}:4:9: expected '::=' after <layer>\n    <layer> := conv\n            ^"
    )


def test_missing_define_in_a_later_rule_is_one_syntax_error_with_a_caret() -> None:
    path = GRAMMARS / "syntax_head_missing.bnf"
    report = check_grammar(path.read_text(), str(path))
    assert report.errors == (
        f"{path}:3:9: expected '::=' after <layer>\n    <layer> conv(8) | pool\n            ^",
    )


@pytest.mark.parametrize("text", ["<layer> := conv", "# c\n<layer> = conv", "<layer> : conv"])
def test_head_typo_in_the_first_rule(text: str) -> None:
    error = syntax_error(text)
    assert error.message == "expected '::=' after <layer>"
    assert (error.line, error.column) == (text.count("\n") + 1, 9)


def test_unclosed_quote() -> None:
    path = GRAMMARS / "syntax_unclosed_quote.bnf"
    with pytest.raises(GrammarSyntaxError) as info:
        load_grammar(path)
    assert str(info.value).startswith(f"{path}:2:11: unclosed quote: expected a closing '")
    assert str(info.value).endswith("    <net> ::= 'conv | dense\n              ^")


def test_unclosed_angle_in_a_rule_head() -> None:
    path = GRAMMARS / "syntax_unclosed_angle.bnf"
    with pytest.raises(GrammarSyntaxError) as info:
        load_grammar(path)
    assert (
        str(info.value).splitlines()[0]
        == f"{path}:3:1: unclosed '<' in a rule head: expected '>' after <layer"
    )


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("conv\n<a> ::= x", (1, 1), "expected a rule '<name> ::= ...' before 'conv'"),
        ("<a> ::= x ::= y", (1, 11), "'::=' without a rule name"),
        ("<a> ::= x\\\n  | y", (1, 10), "a backslash ends the line"),
        ("<z> ::= z\n<a> ::='x", (2, 8), "unclosed quote"),
        ("<a> ::= \\x4g", (1, 9), "bad escape"),
    ],
)
def test_syntax_errors_are_classified(text: str, where: tuple[int, int], words: str) -> None:
    error = syntax_error(text)
    assert (error.line, error.column) == where
    assert words in error.message
    assert str(error).startswith(f"x.bnf:{where[0]}:{where[1]}: ")
    assert str(error).splitlines()[-1].endswith("^")
