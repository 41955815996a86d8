"""BNF text -> rules: every point of the dialect, GE_RANGE, and a written grammar read back.

Expected phenotypes are worked out by hand from PonyGE2's reading of a grammar
(one codon per expansion, leftmost first, choice = codon % alternatives).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ge_nas.errors import GrammarSyntaxError
from ge_nas.grammar import Symbol, load_grammar, parse_grammar
from ge_nas.grammar.mapper import map_genome

GRAMMARS = Path(__file__).parent / "grammars"


def phenotype(text: str, genome: list[int]) -> str | None:
    """Return the phenotype that genome maps to in the grammar text."""
    return map_genome(parse_grammar(text), genome).phenotype


def texts(text: str, name: str) -> list[str]:
    """Return rule name's alternatives as plain text (nonterminals in brackets)."""
    alts = parse_grammar(text).rules[name]
    return ["".join(f"<{s.text}>" if s.is_nt else s.text for s in alt) for alt in alts]


# --- the dialect, point by point ----------------------------------------------------------------


def test_first_rule_is_the_start_and_names_may_have_dashes_dots_digits() -> None:
    text = "<elementary-RE> ::= <a.b> <x1>\n<a.b> ::= p\n<x1> ::= q\n"
    assert parse_grammar(text).start == "elementary-RE"
    assert phenotype(text, [0, 0, 0]) == "p q"


def test_alternatives_choose_by_codon_modulo() -> None:
    text = "<a> ::= x | y | z"
    assert [phenotype(text, [c]) for c in (0, 1, 2, 3, 7)] == ["x", "y", "z", "x", "y"]


def test_comment_runs_to_end_of_line_outside_quotes() -> None:
    text = "# header\n<a> ::= x # y | z\n      | w  # tail <b> ::= v\n"
    assert texts(text, "a") == ["x", "w"]
    assert list(parse_grammar(text).rules) == ["a"]


def test_quotes_are_removed_and_protect_bar_hash_and_angle() -> None:
    text = """<a> ::= '|' | "#" | '<b>' | "it's" | 'say "hi"' | 'a' 'b' | 'a''b'"""
    assert texts(text, "a") == ["|", "#", "<b>", "it's", 'say "hi"', "a b", "ab"]


def test_bare_text_keeps_inner_spaces() -> None:
    rules = "<a> ::= p\n<b> ::= q\n"
    assert phenotype("<s> ::= <a> <b>\n" + rules, [0, 0, 0]) == "p q"
    assert phenotype("<s> ::= <a><b>\n" + rules, [0, 0, 0]) == "pq"
    assert phenotype("<s> ::= conv( <a> ,  3 )\n" + rules, [0, 0]) == "conv( p ,  3 )"


def test_angle_that_opens_no_name_is_literal() -> None:
    assert texts("<a> ::= x < y | a<=b | < | <<", "a") == ["x < y", "a<=b", "<", "<<"]


def test_each_alternative_is_stripped() -> None:
    assert texts("<a> ::=    x y    |   z   \t\n", "a") == ["x y", "z"]


def test_alternatives_continue_after_bar_on_following_lines() -> None:
    assert texts("<a> ::= x\n     | y\n\n     |\n       z\n<b> ::= w", "a") == ["x", "y", "z"]


def test_line_break_inside_an_alternative_is_a_newline() -> None:
    grammar = load_grammar(GRAMMARS / "multiline.bnf")
    assert map_genome(grammar, [1, 0, 1]).phenotype == "x = 1\nif x:\npass"


def test_spaces_around_a_line_break_follow_ponyge2() -> None:
    # Spaces after a line break always go; spaces before one go unless they end bare text.
    assert texts("<a> ::= <b>   \n   <b>\n<b> ::= q", "a") == ["<b>\n<b>"]
    assert texts("<a> ::= x   \n   y", "a") == ["x   \ny"]
    assert texts("<a> ::= x\n\ty", "a") == ["x\n\ty"]  # a tab is not a space: kept
    assert texts("<a> ::= x\n\n   y", "a") == ["x\n\ny"]


def test_backslash_escapes_decode_like_unicode_escape() -> None:
    text = r"""<a> ::= a\tb | "c\nd" | e\\f | 'g\"h' | \w | \101\x41 | 'tab\'s'"""
    assert texts(text, "a") == ["a\tb", "c\nd", "e\\f", 'g"h', "\\w", "AA", "tab's"]


def test_non_ascii_text_is_not_mangled_by_escapes() -> None:
    assert texts(r"<a> ::= é\u00e9 | 'ü\t' | 日本", "a") == ["éé", "ü\t", "日本"]


def test_two_quotes_are_the_empty_string() -> None:
    text = "<a> ::= x<b>y\n<b> ::= ''"
    assert phenotype(text, [0, 0]) == "xy"
    assert map_genome(parse_grammar(text), [0, 0]).nodes == 5  # a, x, b, '', y


def test_ge_range_expands_and_mixes_with_other_alternatives() -> None:
    text = "<a> ::= GE_RANGE:3 | z"
    assert texts(text, "a") == ["0", "1", "2", "z"]
    assert [phenotype(text, [c]) for c in (3, 2, 4)] == ["z", "2", "0"]


def test_quoted_or_inner_ge_range_is_literal() -> None:
    assert texts("<a> ::= 'GE_RANGE:3' | x GE_RANGE:2", "a") == ["GE_RANGE:3", "x GE_RANGE:2"]


def test_crlf_bom_and_non_ascii_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.bnf"
    path.write_bytes(
        "\ufeff<a> ::= héllo | 'wörld'\r\n     | x\r\n       y\r\n<b> ::= z\r\n".encode()
    )
    grammar = load_grammar(path)
    assert grammar.start == "a"
    assert [map_genome(grammar, [c]).phenotype for c in range(3)] == ["héllo", "wörld", "x\ny"]


def test_rule_heads_allow_whitespace_and_start_anywhere() -> None:
    assert texts("<a>::=x", "a") == ["x"]
    assert texts("<a>   \n  ::=   x", "a") == ["x"]
    grammar = parse_grammar("<a> ::= x <b> | y <b> ::= z")
    assert [texts("<a> ::= x <b> | y <b> ::= z", n) for n in ("a", "b")] == [["x <b>", "y"], ["z"]]
    assert grammar.rules["b"] == ((Symbol("z", False),),)


def test_empty_alternatives_are_dropped_with_a_warning() -> None:
    grammar = parse_grammar("<a> ::= x | | y |", "e.bnf")
    assert texts("<a> ::= x | | y |", "a") == ["x", "y"]
    assert map_genome(grammar, [1]).phenotype == "y"
    assert grammar.warnings and all(
        w.startswith("e.bnf:1:") and "''" in w for w in grammar.warnings
    )


def test_comment_ends_the_alternative_it_is_on() -> None:
    grammar = parse_grammar("<a> ::= x # note\n        y\n", "c.bnf")
    assert texts("<a> ::= x # note\n        y\n", "a") == ["x", "y"]
    assert any(w.startswith("c.bnf:2:9:") and "comment on line 1" in w for w in grammar.warnings)


def test_symbols_merge_adjacent_terminals() -> None:
    alt = parse_grammar("<a> ::= 'x' y <b> \"z\"\n<b> ::= q").rules["a"][0]
    assert alt == (Symbol("x y ", False), Symbol("b", True), Symbol(" z", False))


# --- GE_RANGE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arg", ["0", "x", "", "3.5", "dataset_n_vars"])
def test_ge_range_needs_a_positive_integer(arg: str) -> None:
    with pytest.raises(
        GrammarSyntaxError,
        match=f"^r.bnf:1:9: GE_RANGE needs a positive integer, got 'GE_RANGE:{arg}'",
    ):
        parse_grammar(f"<a> ::= GE_RANGE:{arg}", "r.bnf")


def test_ge_range_fixture_and_trailing_text() -> None:
    with pytest.raises(
        GrammarSyntaxError, match=r"lint_ge_range.bnf:3:11: GE_RANGE needs a positive integer"
    ):
        load_grammar(GRAMMARS / "lint_ge_range.bnf")
    with pytest.raises(GrammarSyntaxError, match="must be a whole alternative"):
        parse_grammar("<a> ::= GE_RANGE:3 x")


# --- property: any grammar written out as BNF reads back as the same rules -----------------------

_WORDS = st.text(st.sampled_from("abcxyz019(),.=+-_ "), min_size=1, max_size=6)


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, list[list[tuple[str, bool]]]]:
    """Draw rules r0..rk; each has a terminal-only alternative so every rule finishes."""
    names = [f"r{i}" for i in range(draw(st.integers(1, 5)))]
    symbol = st.one_of(
        _WORDS.map(lambda w: (w, False)), st.sampled_from(names).map(lambda n: (n, True))
    )
    return {
        name: [[(draw(_WORDS), False)]]
        + draw(st.lists(st.lists(symbol, min_size=1, max_size=4), max_size=3))
        for name in names
    }


def _bnf(rules: dict[str, list[list[tuple[str, bool]]]]) -> str:
    def alt(symbols: list[tuple[str, bool]]) -> str:
        return " ".join(f"<{t}>" if nt else f"'{t}'" for t, nt in symbols)

    return "".join(
        f"<{name}> ::= {' | '.join(alt(a) for a in alts)}  # {name}\n"
        for name, alts in rules.items()
    )


def _merged(symbols: list[tuple[str, bool]]) -> tuple[Symbol, ...]:
    """Return the symbols the loader should make: a blank between symbols, adjacent terminals merged."""
    pieces: list[tuple[str, bool]] = []
    for i, symbol in enumerate(symbols):
        pieces += [(" ", False), symbol] if i else [symbol]
    out: list[Symbol] = []
    for text, is_nt in pieces:
        if not is_nt and out and not out[-1].is_nt:
            out[-1] = Symbol(out[-1].text + text, False)
        else:
            out.append(Symbol(text, is_nt))
    return tuple(out)


@settings(max_examples=150, deadline=None)
@given(rule_sets())
def test_written_bnf_reads_back(rules: dict[str, list[list[tuple[str, bool]]]]) -> None:
    grammar = parse_grammar(_bnf(rules))
    assert grammar.start == "r0"
    assert {n: list(a) for n, a in grammar.rules.items()} == {
        n: [_merged(s) for s in a] for n, a in rules.items()
    }
