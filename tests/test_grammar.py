"""BNF text -> Grammar: every point of the dialect, lint, syntax errors, facts, speed.

Expected phenotypes are worked out by hand from PonyGE2's reading of a grammar
(one codon per expansion, leftmost first, choice = codon % alternatives).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ge_nas.errors import ConfigError, GrammarError, GrammarSyntaxError
from ge_nas.grammar import Grammar, Symbol, check_grammar, load_grammar, parse_grammar
from ge_nas.mapper import map_genome

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
    path.write_bytes("\ufeff<a> ::= héllo | 'wörld'\r\n     | x\r\n       y\r\n<b> ::= z\r\n".encode())
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
    assert grammar.warnings and all(w.startswith("e.bnf:1:") and "''" in w for w in grammar.warnings)


def test_comment_ends_the_alternative_it_is_on() -> None:
    grammar = parse_grammar("<a> ::= x # note\n        y\n", "c.bnf")
    assert texts("<a> ::= x # note\n        y\n", "a") == ["x", "y"]
    assert any(w.startswith("c.bnf:2:9:") and "comment on line 1" in w for w in grammar.warnings)


def test_symbols_merge_adjacent_terminals() -> None:
    alt = parse_grammar("<a> ::= 'x' y <b> \"z\"\n<b> ::= q").rules["a"][0]
    assert alt == (Symbol("x y ", False), Symbol("b", True), Symbol(" z", False))


# --- lint: errors and warnings, each naming the file --------------------------------------------


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
    assert message.startswith(f"{GRAMMARS / 'lint_undefined.bnf'}:2:31: undefined nonterminal <lyer>")
    assert "did you mean 'layer'?" in message


def test_rule_with_no_alternatives() -> None:
    [message] = errors_of("lint_no_alternatives.bnf")
    assert message == f"{GRAMMARS / 'lint_no_alternatives.bnf'}:3:1: rule <act> has no alternatives"


def test_rule_less_and_empty_files() -> None:
    [message] = errors_of("lint_empty.bnf")
    assert message.startswith(f"{GRAMMARS / 'lint_empty.bnf'}: no rules found")
    with pytest.raises(GrammarError, match="^<string>: no rules found"):
        parse_grammar("")


@pytest.mark.parametrize("arg", ["0", "x", "", "3.5", "dataset_n_vars"])
def test_ge_range_needs_a_positive_integer(arg: str) -> None:
    with pytest.raises(GrammarSyntaxError, match=f"^r.bnf:1:9: GE_RANGE needs a positive integer, got 'GE_RANGE:{arg}'"):
        parse_grammar(f"<a> ::= GE_RANGE:{arg}", "r.bnf")


def test_ge_range_fixture_and_trailing_text() -> None:
    with pytest.raises(GrammarSyntaxError, match=r"lint_ge_range.bnf:3:11: GE_RANGE needs a positive integer"):
        load_grammar(GRAMMARS / "lint_ge_range.bnf")
    with pytest.raises(GrammarSyntaxError, match="must be a whole alternative"):
        parse_grammar("<a> ::= GE_RANGE:3 x")


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
        f"{GRAMMARS / 'lint_unreachable.bnf'}:4:1: rule <unused> is unreachable from the start rule <net>",)


def test_every_error_is_reported_not_just_the_first() -> None:
    report = check_grammar("<a> ::= <b> | <c>\n<a> ::= x\n<d> ::= <d>", "m.bnf")
    assert [e.split(": ")[0] for e in report.errors] == ["m.bnf:2:1", "m.bnf:1:9", "m.bnf:1:15", "m.bnf:3:1"]


# --- syntax errors: file:line:col, the line, a caret, a hint -------------------------------------


def syntax_error(text: str) -> GrammarSyntaxError:
    """Return the GrammarSyntaxError that parsing text raises."""
    with pytest.raises(GrammarSyntaxError) as info:
        parse_grammar(text, "x.bnf")
    return info.value


def test_head_typo_in_a_later_rule() -> None:
    path = GRAMMARS / "syntax_head_typo.bnf"
    with pytest.raises(GrammarSyntaxError) as info:
        load_grammar(path)
    assert str(info.value) == f"{path}:4:9: expected '::=' after <layer>\n    <layer> := conv\n            ^"


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
    assert str(info.value).splitlines()[0] == f"{path}:3:1: unclosed '<' in a rule head: expected '>' after <layer"


@pytest.mark.parametrize(("text", "where", "words"), [
    ("conv\n<a> ::= x", (1, 1), "expected a rule '<name> ::= ...' before 'conv'"),
    ("<a> ::= x ::= y", (1, 11), "'::=' without a rule name"),
    ("<a> ::= x\\\n  | y", (1, 10), "a backslash ends the line"),
    ("<z> ::= z\n<a> ::='x", (2, 8), "unclosed quote"),
    ("<a> ::= \\x4g", (1, 9), "bad escape"),
])
def test_syntax_errors_are_classified(text: str, where: tuple[int, int], words: str) -> None:
    error = syntax_error(text)
    assert (error.line, error.column) == where
    assert words in error.message
    assert str(error).startswith(f"x.bnf:{where[0]}:{where[1]}: ")
    assert str(error).splitlines()[-1].endswith("^")


# --- files, facts, round trips --------------------------------------------------------------------


def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read grammar file .*nope.bnf"):
        load_grammar(tmp_path / "nope.bnf")
    (tmp_path / "latin1.bnf").write_bytes(b"<a> ::= \xe9")
    with pytest.raises(ConfigError, match="latin1.bnf is not UTF-8"):
        load_grammar(tmp_path / "latin1.bnf")


def test_min_depth_and_recursion_facts() -> None:
    grammar = load_grammar(GRAMMARS / "expr.bnf")
    assert [grammar.min_depth(n) for n in ("expr", "op", "var")] == [3, 2, 2]
    assert [grammar.is_recursive(n) for n in ("expr", "op", "var")] == [True, False, False]
    assert grammar.min_depth(grammar.start) == map_genome(grammar, [2, 0]).depth
    with pytest.raises(KeyError, match="did you mean 'expr'"):
        grammar.min_depth("exp")


def test_mutual_recursion_is_recursive() -> None:
    grammar = parse_grammar("<a> ::= <b> | x\n<b> ::= <a> y\n<c> ::= <a>")
    assert (grammar.is_recursive("a"), grammar.is_recursive("b"), grammar.is_recursive("c")) == (True, True, False)


def test_grammar_pickles_and_compares_equal() -> None:
    grammar = load_grammar(GRAMMARS / "expr.bnf")
    map_genome(grammar, [0, 2, 0, 1, 2, 1])  # fill the mapper's cache first
    copy = pickle.loads(pickle.dumps(grammar))
    assert copy == grammar and hash(copy) == hash(grammar)
    assert map_genome(copy, [0, 2, 0, 1, 2, 1]) == map_genome(grammar, [0, 2, 0, 1, 2, 1])
    assert copy == load_grammar(GRAMMARS / "expr.bnf")


def test_grammar_can_be_built_directly() -> None:
    x, e = Symbol("x", False), Symbol("e", True)
    direct = Grammar("e", {"e": ((e, Symbol("+", False), e), (x,))})
    assert direct == parse_grammar("<e> ::= <e>+<e> | x")
    with pytest.raises(GrammarError, match="undefined nonterminal <f>"):
        Grammar("e", {"e": ((Symbol("f", True),),)})
    with pytest.raises(GrammarError, match="never derive"):
        Grammar("e", {"e": ((e,),)})


def big_grammar(n: int) -> str:
    """Return a grammar of n rules, three alternatives each, with comments."""
    return "".join(f"<r{i}> ::= <r{(i + 1) % n}> x{i} | 'y' <r{(i + 7) % n}> | z{i}  # comment {i}\n"
                   for i in range(n))


def test_5000_rule_grammar_loads_well_under_a_second() -> None:
    text = big_grammar(5000)
    best = min(_seconds(lambda: parse_grammar(text)) for _ in range(3))
    assert best < 1.0
    assert len(parse_grammar(text).rules) == 5000


def test_lint_is_linear_on_long_chains_and_cycles() -> None:
    chain = "".join(f"<r{i}> ::= <r{i + 1}>\n" for i in range(5000)) + "<r5000> ::= end\n"
    cycle = "".join(f"<r{i}> ::= <r{(i + 1) % 5000}>\n" for i in range(5000))
    assert _seconds(lambda: parse_grammar(chain)) < 2.0
    assert parse_grammar(chain).min_depth("r0") == 5002
    report = check_grammar(cycle)
    assert len(report.errors) == 5000


def _seconds(work: Callable[[], object]) -> float:
    """Return the CPU seconds work takes (wall time would count other processes on a shared machine)."""
    start = time.process_time()
    work()
    return time.process_time() - start


# --- property: any grammar written out as BNF reads back as the same rules -----------------------

_WORDS = st.text(st.sampled_from("abcxyz019(),.=+-_ "), min_size=1, max_size=6)


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, list[list[tuple[str, bool]]]]:
    """Draw rules r0..rk; each has a terminal-only alternative so every rule finishes."""
    names = [f"r{i}" for i in range(draw(st.integers(1, 5)))]
    symbol = st.one_of(_WORDS.map(lambda w: (w, False)), st.sampled_from(names).map(lambda n: (n, True)))
    return {name: [[(draw(_WORDS), False)]] + draw(st.lists(st.lists(symbol, min_size=1, max_size=4), max_size=3))
            for name in names}


def _bnf(rules: dict[str, list[list[tuple[str, bool]]]]) -> str:
    def alt(symbols: list[tuple[str, bool]]) -> str:
        return " ".join(f"<{t}>" if nt else f"'{t}'" for t, nt in symbols)

    return "".join(f"<{name}> ::= {' | '.join(alt(a) for a in alts)}  # {name}\n" for name, alts in rules.items())


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
    assert {n: list(a) for n, a in grammar.rules.items()} == {n: [_merged(s) for s in a] for n, a in rules.items()}


_BNF_CHARS = st.sampled_from(list("<>|:=#'\"\\ \n\t\rxyz01_-.") + ["::=", "<a>", "<b>", " ::= ", "GE_RANGE:", "''", "é"])


@settings(max_examples=250, deadline=None)
@given(st.lists(_BNF_CHARS, max_size=40).map("".join))
def test_any_text_loads_or_raises_a_grammar_error(text: str) -> None:
    try:
        grammar = parse_grammar(text, "f.bnf")
    except (GrammarSyntaxError, GrammarError) as exc:
        assert str(exc).startswith("f.bnf")
        assert ": unexpected " not in str(exc)  # every syntax error is classified
    else:
        assert grammar.start in grammar.rules
        map_genome(grammar, [0, 1, 2, 3])


def test_many_undefined_names_are_summarised_quickly() -> None:
    text = "".join(f"<r{i}> ::= <missing{i}> | x\n" for i in range(5000))
    seconds = _seconds(lambda: check_grammar(text, "u.bnf"))
    report = check_grammar(text, "u.bnf")
    assert seconds < 2.0
    assert len(report.errors) == 51
    assert report.errors[-1] == "u.bnf: 4950 more uses of undefined nonterminals, 5000 names in all"
