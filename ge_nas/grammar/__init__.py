"""Search-space grammars: BNF text -> Grammar (read, syntax errors, lint, rule graph); genomes: initialisation and mapping; the space's size; invalid phenotypes explained by grammar line."""

from ge_nas.grammar.explain import explain_arch_error
from ge_nas.grammar.grammar import (
    Grammar,
    GrammarReport,
    check_grammar,
    load_grammar,
    parse_grammar,
    read_grammar_text,
)
from ge_nas.grammar.initialise import initial_genomes
from ge_nas.grammar.mapper import Derivation, map_genome
from ge_nas.grammar.reader import Symbol
from ge_nas.grammar.space import count_derivations

__all__ = [
    "Derivation",
    "Grammar",
    "GrammarReport",
    "Symbol",
    "check_grammar",
    "count_derivations",
    "explain_arch_error",
    "initial_genomes",
    "load_grammar",
    "map_genome",
    "parse_grammar",
    "read_grammar_text",
]
