"""Rules with parameters: mapping against a hand-expanded grammar, codon order, SGE, errors.

params.bnf's expansion into plain rules is written by hand in
params_expanded.bnf, by the codon order README states; the loader's own
expansion must map every genome as that file does.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ge_nas.arch import parse_arch
from ge_nas.errors import ArchError, GrammarError
from ge_nas.grammar import (
    Grammar,
    check_grammar,
    count_derivations,
    explain_arch_error,
    initial_genomes,
    load_grammar,
    map_genome,
    parse_grammar,
)
from ge_nas.grammar.reader import RawRule, Symbol, read_rules
from ge_nas.grammar.sge import map_sge, ramped_sge, sge_from_genome

ROOT = Path(__file__).parent.parent
GRAMMARS = ROOT / "tests" / "grammars"
PARAMS = load_grammar(GRAMMARS / "params.bnf")
EXPANDED = load_grammar(GRAMMARS / "params_expanded.bnf")
CIFAR = ROOT / "grammars" / "cnnga_cifar.bnf"
GENOMES = st.lists(st.integers(0, 2**40), max_size=16)


# --- the map: against the hand-expanded grammar, and by hand ------------------------------------


@settings(max_examples=500, deadline=None)
@given(GENOMES, st.booleans(), st.integers(0, 2), st.one_of(st.none(), st.integers(1, 9)))
def test_maps_every_genome_as_the_hand_expanded_grammar(
    genome: list[int], single: bool, wraps: int, depth: int | None
) -> None:
    options = {"consume_single": single, "max_wraps": wraps, "max_depth": depth}
    assert map_genome(PARAMS, genome, **options) == map_genome(EXPANDED, genome, **options)


def test_random_genomes_map_validly_and_alike() -> None:
    rng = random.Random(3)
    genomes = [[rng.randrange(1000) for _ in range(rng.randrange(3, 12))] for _ in range(2000)]
    mapped = [map_genome(PARAMS, g) for g in genomes]
    assert [d.phenotype for d in mapped] == [map_genome(EXPANDED, g).phenotype for g in genomes]
    assert sum(d.valid for d in mapped) > 1000  # the comparison is mostly of phenotypes


def test_arguments_take_their_codons_before_the_called_rule() -> None:
    # net 0: <layer(<width>, <act>)>; width 0: <digit><digit>; digits 1, 0: "21"; act 0: relu;
    # layer 1: recurse with the same arguments (no codon for them); layer 0: stop.
    d = map_genome(PARAMS, [0, 0, 1, 0, 0, 1, 0])
    assert (d.phenotype, d.codons_used) == ("conv(21)relu conv(21)relu", 7)
    # net 1: <stack(<act>)>; act 1: ''; stack 1: <A>+<pair(<A>, <digit>)>; digit 1; pair 0: <X><Y>
    assert map_genome(PARAMS, [1, 1, 1, 1, 0]).phenotype == "+2"


def test_an_argument_with_one_alternative_takes_a_codon_only_with_consume_single() -> None:
    # net 2: <pair(<one>, <digit>)>; one: 7 (a codon unless consume_single=False); digit 0; pair 0
    assert map_genome(PARAMS, [2, 5, 0, 0]).phenotype == "71"
    assert map_genome(PARAMS, [2, 0, 0], consume_single=False).phenotype == "71"


def test_the_space_counts_as_the_hand_expanded_grammar() -> None:
    assert [count_derivations(PARAMS, d) for d in range(1, 10)] == [
        count_derivations(EXPANDED, d) for d in range(1, 10)
    ]


class RanOut(Exception):
    """The genome has no codon left."""


def derive(rules: list[RawRule], genome: list[int]) -> tuple[str, int] | None:
    """Map by the semantics README states, straight from the rules as read (no expansion)."""
    defined = {rule.name: rule for rule in rules}
    used = 0

    def expand(name: str, bindings: dict[str, str]) -> str:
        nonlocal used
        if used == len(genome):
            raise RanOut
        alternatives = defined[name].alternatives
        alt, used = alternatives[genome[used] % len(alternatives)], used + 1
        return "".join(text(symbol, bindings) for symbol in alt.symbols)

    def text(symbol: Symbol, bindings: dict[str, str]) -> str:
        if not symbol.is_nt:
            return symbol.text
        if symbol.text in bindings and not symbol.args:
            return bindings[symbol.text]
        args = [text(arg, bindings) for arg in symbol.args]  # left to right, before the body
        return expand(symbol.text, dict(zip(defined[symbol.text].params, args)))

    try:
        return expand(rules[0].name, {}), used
    except RanOut:
        return None


@pytest.mark.parametrize("path", [GRAMMARS / "params.bnf", CIFAR], ids=["params", "cnnga_cifar"])
def test_the_expansion_maps_as_the_rules_read(path: Path) -> None:
    grammar, rules = load_grammar(path), read_rules(path.read_text(encoding="utf-8"), str(path))
    rng = random.Random(5)
    for _ in range(2000):
        genome = [rng.randrange(1000) for _ in range(rng.randrange(0, 14))]
        d = map_genome(grammar, genome)
        assert derive(rules, genome) == (
            None if d.phenotype is None else (d.phenotype, d.codons_used)
        )


# --- SGE and initialisation --------------------------------------------------------------------


def test_sge_keeps_one_list_per_rule_of_the_file() -> None:
    assert PARAMS.codes.row_names == (
        "net",
        "width",
        "digit",
        "act",
        "one",
        "layer",
        "stack",
        "pair",
    )
    genotype = {"net": [0], "width": [1], "act": [0], "layer": [1, 0]}
    assert map_sge(PARAMS, genotype, max_depth=20).phenotype == "conv(8)relu conv(8)relu"
    genotype["layer"] = [1]
    assert map_sge(PARAMS, genotype, max_depth=20).reason == "ran out of choices for <layer>"


@settings(max_examples=200, deadline=None)
@given(GENOMES, st.integers(0, 1))
def test_a_ge_genome_and_its_sge_genotype_derive_the_same_phenotype(
    genome: list[int], wraps: int
) -> None:
    d = map_genome(PARAMS, genome, max_wraps=wraps, max_depth=12)
    genotype = sge_from_genome(PARAMS, genome, max_wraps=wraps, max_depth=12)
    if d.valid:
        assert map_sge(PARAMS, genotype, max_depth=12).phenotype == d.phenotype


@pytest.mark.parametrize("init", ["sensible", "pi_grow", "random"])
def test_initialisers_give_distinct_valid_genomes(init: str) -> None:
    genomes = initial_genomes(
        PARAMS, random.Random(1), 12, init=init, codon_size=1000, max_depth=12, init_max_depth=9
    )
    phenotypes = [map_genome(PARAMS, g, max_depth=12).phenotype for g in genomes]
    assert None not in phenotypes and len(set(phenotypes)) == 12


def test_ramped_sge_genotypes_are_valid() -> None:
    for genotype in ramped_sge(PARAMS, random.Random(2), 10, max_depth=10):
        assert map_sge(PARAMS, genotype, max_depth=10).valid


# --- what the loader makes of them ------------------------------------------------------------


def test_calls_become_rules_named_by_their_arguments() -> None:
    grammar = parse_grammar("<s> ::= <f(<a>, x)>\n<f(K, B)> ::= c(<K>, <B>)\n<a> ::= 1 | ''\n")
    assert list(grammar.rules) == ["s", "f(1, x)", 'f("", x)', "a", "f(<a>, x)"]
    assert grammar.rules["f(1, x)"] == ((Symbol("c(1, x)", False),),)
    assert grammar.origin("f(<a>, x)") == "a" and grammar.origin("f(1, x)") == "f"


def test_a_grammar_without_parameters_is_unchanged() -> None:
    grammar = parse_grammar("<s> ::= <a>(<a>)\n<a> ::= x | y\n")
    assert grammar.origins == {} and grammar.codes.row_names == grammar.codes.names


def test_explain_cites_the_line_of_the_rule_with_parameters() -> None:
    grammar = parse_grammar(
        "<net> ::= <s(<k>)> '| opt=adam'\n<s(K)> ::= conv(8, <K>) bogus\n<k> ::= 3 | 5\n", "x.bnf"
    )
    phenotype = map_genome(grammar, [0, 1, 0]).phenotype
    assert phenotype is not None
    with pytest.raises(ArchError) as info:
        parse_arch(phenotype)
    assert explain_arch_error(grammar, info.value, phenotype).endswith(
        "(x.bnf:2: <s(5)> ::= conv(8, 5) bogus)"
    )


# --- errors -------------------------------------------------------------------------------------

ERRORS = {
    "<s> ::= <f(<a>)>\n<f(K, A)> ::= <K><A>\n<a> ::= 1\n": (
        "g.bnf:1:9: <f> given 1 argument: expected 2 arguments, as in <f(K, A)> (line 2)"
    ),
    "<s> ::= <f(<a>)>\n<f(K)> ::= <K><Q>\n<a> ::= 1\n": (
        "g.bnf:2:15: undefined nonterminal <Q> (neither a rule nor a parameter of <f>)"
    ),
    "<s> ::= <f(<a>)> <K>\n<f(K)> ::= <K>\n<a> ::= 1\n": (
        "g.bnf:1:18: <K> is a parameter of <f> (line 2): a parameter is known only in its own "
        "rule's alternatives"
    ),
    "<s> ::= <f(<a>)>\n<f(K)> ::= <K>\n<a> ::= 1 | 1<a>\n": (
        "g.bnf:1:9: the argument <a> of <f> can derive infinitely many texts (it uses the "
        "recursive <a>), so the call would expand to infinitely many rules: an argument's rules "
        "must not recurse"
    ),
    "<s> ::= <f(<a>)>\n<f(K)> ::= <K>\n<a> ::= <f(1)>\n": (
        "g.bnf:1:9: the argument <a> of <f> uses <f>, which has or calls rules with parameters: "
        "an argument's rules must be plain"
    ),
    "<s> ::= <f>\n<f(K)> ::= <K>\n": (
        "g.bnf:1:9: <f> has parameters: expected 1 argument, as in <f(K)> (line 2)"
    ),
    "<s> ::= <a(1)>\n<a> ::= 1\n": (
        "g.bnf:1:9: <a> given 1 argument: <a> has no parameters (line 2): write <a>"
    ),
    "<s(K)> ::= <K>\n": "g.bnf:1:1: the start rule <s> cannot have parameters",
    "<s> ::= <f(<a>)>\n<f(a)> ::= <a>\n<a> ::= 1\n": (
        "g.bnf:2:1: parameter a of <f> has the name of the rule <a> (line 3): rename one"
    ),
}


@pytest.mark.parametrize("text", ERRORS)
def test_misuse_is_one_error_naming_file_line_and_what_was_expected(text: str) -> None:
    assert check_grammar(text, "g.bnf").errors == (ERRORS[text],)


SYNTAX_ERRORS = {
    "<s> ::= <f(1)>\n<f(3)> ::= x\n": "g.bnf:2:4: expected a parameter name",
    "<s> ::= <f(1, 2)>\n<f(K, K)> ::= x\n": "g.bnf:2:7: parameter K appears twice in <f(K, K)>",
    "<s> ::= <f(a b)>\n<f(K)> ::= x\n": "g.bnf:1:12: expected an argument",
    "<s> ::= <f()>\n<f(K)> ::= x\n": "g.bnf:1:12: expected an argument",
    "<s> ::= x\n<f(<a>)> ::= x\n": "g.bnf:2:1: a rule head declares parameter names, not",
}


@pytest.mark.parametrize("text", SYNTAX_ERRORS)
def test_malformed_heads_and_calls_are_syntax_errors_with_a_caret(text: str) -> None:
    [message] = check_grammar(text, "g.bnf").errors
    assert message.startswith(SYNTAX_ERRORS[text]) and message.endswith("^")


def test_an_unused_parameter_is_a_warning() -> None:
    report = check_grammar("<s> ::= <f(1)>\n<f(K)> ::= x\n", "g.bnf")
    assert report.warnings == ("g.bnf:2:1: parameter K of <f> is never used",)


def test_a_huge_expansion_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ge_nas.grammar.parameters.MAX_RULES", 10)
    text = "<s> ::= <f(<d><d>)>\n<f(K)> ::= <K>\n<d> ::= 0 | 1 | 2 | 3\n"
    with pytest.raises(
        GrammarError, match=r"^g\.bnf:2:1: the calls of <f> expand to more than 10 rules"
    ):
        parse_grammar(text.replace("<d><d>", "<dd>") + "<dd> ::= <d><d>\n", "g.bnf")


def test_a_grammar_holds_no_calls() -> None:
    with pytest.raises(GrammarError, match="expands calls"):
        Grammar("s", {"s": ((Symbol("f", True, (Symbol("x", False),)),),)})
