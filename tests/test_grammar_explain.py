"""Explaining an invalid phenotype with the grammar line that wrote the offending text."""

from __future__ import annotations

import pytest

from ge_nas.arch import parse_arch
from ge_nas.errors import ArchError
from ge_nas.grammar import explain_arch_error, parse_grammar

BNF = """\
<net>    ::= <layers> " | opt=adam batch=" <n>
<layers> ::= <layer> | <layer> <layers>
<layer>  ::= conv(<n>,3) relu
           | bogus(<n>)
           | dense(<n>)
<n>      ::= 0 | 8 | 64
"""
GRAMMAR = parse_grammar(BNF, "x.bnf")


def explain(phenotype: str) -> str:
    with pytest.raises(ArchError) as info:
        parse_arch(phenotype)
    return explain_arch_error(GRAMMAR, info.value, phenotype)


def test_unknown_layer_names_the_line_of_the_alternative_that_wrote_it() -> None:
    assert explain("conv(8,3) relu bogus(8) | opt=adam batch=8") == (
        "unknown layer 'bogus' (x.bnf:4: <layer> ::= bogus(<n>))"
    )


def test_bad_argument_names_the_rule_that_wrote_the_value() -> None:
    assert explain("conv(0,3) relu | opt=adam batch=8") == (
        "conv: filters must be in [1, 4096], got 0 (x.bnf:6: <n> ::= 0)"
    )


def test_text_no_rule_wrote_gives_the_phenotype_position() -> None:
    assert explain("conv(8,3) relu | opt=adma") == (
        "opt must be one of adam, adamw, sgd, rmsprop, got 'adma' (phenotype 1:22)"
    )


def test_text_two_rules_can_have_written_gives_the_phenotype_position() -> None:
    grammar = parse_grammar("<net> ::= <a> | <b>\n<a> ::= bogus\n<b> ::= relu bogus\n", "y.bnf")
    with pytest.raises(ArchError) as info:
        parse_arch("relu bogus")
    assert explain_arch_error(grammar, info.value, "relu bogus") == (
        "unknown layer 'bogus' (phenotype 1:6)"
    )


def test_alternatives_of_one_rule_that_can_have_written_the_text_are_cited_together() -> None:
    assert explain("dense(8)) | opt=adam batch=8").endswith(
        "(x.bnf:4: <layer> ::= bogus(<n>) | dense(<n>))"
    )


def test_error_without_a_position_still_finds_the_one_rule_holding_its_text() -> None:
    error = ArchError("layer 2 'bogus' is odd", reason="bogus is odd", token="bogus")
    assert explain_arch_error(GRAMMAR, error, "dense(8) bogus(8)") == (
        "bogus is odd (x.bnf:4: <layer> ::= bogus(<n>))"
    )
