"""BNF text -> Grammar: files, facts, round trips, speed, and any text loads or fails cleanly."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ge_nas.errors import ConfigError, GrammarError
from ge_nas.grammar import Grammar, Symbol, check_grammar, load_grammar, parse_grammar
from ge_nas.grammar.mapper import map_genome

GRAMMARS = Path(__file__).parent / "grammars"


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
    assert (grammar.is_recursive("a"), grammar.is_recursive("b"), grammar.is_recursive("c")) == (
        True,
        True,
        False,
    )


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


def test_grammar_knows_the_line_of_each_alternative() -> None:
    grammar = parse_grammar("<a> ::= <b> | x\n\n<b> ::= y\n     | z | GE_RANGE:2\n")
    assert grammar.alt_lines == {"a": (1, 1), "b": (3, 4, 4, 4)}


# --- large grammars (their load times are measured by benchmarks/grammar_speed.py) ----------------


def big_grammar(n: int) -> str:
    """Return a grammar of n rules, three alternatives each, with comments."""
    return "".join(
        f"<r{i}> ::= <r{(i + 1) % n}> x{i} | 'y' <r{(i + 7) % n}> | z{i}  # comment {i}\n"
        for i in range(n)
    )


def test_a_5000_rule_grammar_loads() -> None:
    assert len(parse_grammar(big_grammar(5000)).rules) == 5000


def test_long_chains_and_cycles_get_depths_and_errors() -> None:
    chain = "".join(f"<r{i}> ::= <r{i + 1}>\n" for i in range(5000)) + "<r5000> ::= end\n"
    cycle = "".join(f"<r{i}> ::= <r{(i + 1) % 5000}>\n" for i in range(5000))
    assert parse_grammar(chain).min_depth("r0") == 5002
    assert len(check_grammar(cycle).errors) == 5000


def test_many_undefined_names_are_summarised() -> None:
    text = "".join(f"<r{i}> ::= <missing{i}> | x\n" for i in range(5000))
    report = check_grammar(text, "u.bnf")
    assert len(report.errors) == 51
    assert report.errors[-1] == "u.bnf: 4950 more uses of undefined nonterminals, 5000 names in all"
