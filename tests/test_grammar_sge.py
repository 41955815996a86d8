"""Structured GE (DSGE): the map against a reference, repair, initialisation, variation, JSON."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grammar_mapper import CODONS, grammars

from ge_nas.errors import ConfigError
from ge_nas.grammar import Grammar, load_grammar, map_genome, parse_grammar
from ge_nas.grammar.initialise import Mode
from ge_nas.grammar.mapper import Derivation
from ge_nas.grammar.sge import (
    Genotype,
    change_one_gene,
    crossover_sge,
    grow_sge,
    map_sge,
    mutate_sge,
    ramped_sge,
    random_sge,
    sge_from_genome,
    sge_from_json,
)

ROOT = Path(__file__).parent.parent
EXPR = load_grammar(ROOT / "tests" / "grammars" / "expr.bnf")
DEPTHS = st.integers(2, 8)  # every generated grammar has trees of depth 2
SEEDS = st.integers(0, 2**32)
MODES = st.sampled_from(["grow", "full", "pi"])


def genotypes(grammar: Grammar) -> st.SearchStrategy[dict[str, list[int]]]:
    """Draw any genotype: short, long, out-of-range choices and missing rules included."""
    choices = st.lists(st.integers(-1, 4), max_size=8)
    return st.fixed_dictionaries({}, optional={name: choices for name in grammar.rules})


# --- golden cases ---------------------------------------------------------------------------------


def test_each_rule_reads_its_own_list_in_leftmost_order() -> None:
    genotype = {"expr": [0, 2, 2], "op": [2], "var": [1, 0]}
    assert map_sge(EXPR, genotype, max_depth=9) == Derivation("y * x", 6, 0, 4, 11)
    assert map_sge(EXPR, genotype, max_depth=9) == map_genome(EXPR, [0, 2, 1, 5, 5, 4])


def test_a_short_list_is_invalid_and_names_its_rule() -> None:
    d = map_sge(EXPR, {"expr": [0, 2], "op": [2], "var": [1, 0]}, max_depth=9)
    assert (d.phenotype, d.reason) == (None, "ran out of choices for <expr>")


def test_out_of_range_and_too_deep_choices_are_invalid() -> None:
    assert map_sge(EXPR, {"expr": [2], "var": [2]}, max_depth=9).reason == (
        "choice 2 for <var> is out of range 0..1"
    )
    assert map_sge(EXPR, {"expr": [1, 2], "var": [0]}, max_depth=3).reason == (
        "exceeded max depth 3"
    )


def test_unknown_rule_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="<exp>.*did you mean 'expr'"):
        map_sge(EXPR, {"exp": [2]}, max_depth=9)


def test_grow_replaces_too_deep_choices_appends_missing_ones_and_trims() -> None:
    genotype, d = grow_sge(EXPR, {"expr": [0, 1]}, random.Random(0), max_depth=3)
    assert genotype["expr"] == [2] and len(genotype["var"]) == 1 and genotype["op"] == []
    assert d.valid and d.depth == 3
    trimmed, _ = grow_sge(
        EXPR, {"expr": [2, 1], "op": [1], "var": [0, 1]}, random.Random(0), max_depth=9
    )
    assert trimmed == {"expr": [2], "op": [], "var": [0]}


def test_depths_the_grammar_cannot_meet_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_depth 2 is below the least tree depth 3"):
        grow_sge(EXPR, {}, random.Random(0), max_depth=2)
    with pytest.raises(ConfigError, match="min_depth 7 is above max_depth 5"):
        random_sge(EXPR, random.Random(0), max_depth=5, min_depth=7)
    with pytest.raises(ConfigError, match="did you mean 'full'"):
        random_sge(EXPR, random.Random(0), max_depth=5, mode="ful")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["full", "pi"])
def test_full_and_pi_trees_reach_the_target_depth(mode: Mode) -> None:
    rng = random.Random(1)
    for depth in range(3, 9):
        genotype = random_sge(EXPR, rng, max_depth=depth, min_depth=depth, mode=mode)
        assert map_sge(EXPR, genotype, max_depth=depth).depth == depth


def test_ramped_half_and_half_covers_the_depth_range() -> None:
    population = ramped_sge(EXPR, random.Random(2), 20, min_depth=3, max_depth=7)
    depths = [map_sge(EXPR, g, max_depth=7).depth for g in population]
    assert all(3 <= d <= 7 for d in depths) and max(depths) == 7


def test_crossover_swaps_whole_lists_per_rule() -> None:
    grammar = parse_grammar("<s> ::= <a><b><c>\n<a> ::= x | y\n<b> ::= u | v\n<c> ::= p | q")
    a, b = {"s": [0], "a": [0], "b": [0], "c": [0]}, {"s": [0], "a": [1], "b": [1], "c": [1]}
    seen = set()
    for seed in range(60):
        first, second = crossover_sge(grammar, a, b, random.Random(seed), max_depth=3)
        assert all({tuple(first[r]), tuple(second[r])} == {(0,), (1,)} for r in "abc")
        seen.add(map_sge(grammar, first, max_depth=3).phenotype)
    assert len(seen) == 8


@pytest.mark.parametrize("kind", ["one-point", "two-point"])
def test_point_crossovers_swap_a_run_of_rules(kind: str) -> None:
    grammar = parse_grammar(
        "<s> ::= <a><b><c><d>\n<a> ::= x | y\n<b> ::= u | v\n<c> ::= p | q\n<d> ::= m | n"
    )
    a = {r: [0] for r in "sabcd"}
    b = {"s": [0], **{r: [1] for r in "abcd"}}
    seen = set()
    for seed in range(80):
        first, _ = crossover_sge(grammar, a, b, random.Random(seed), max_depth=3, kind=kind)
        taken = "".join(str(first[r][0]) for r in "sabcd")
        assert taken.strip("0").count("0") == 0, f"{kind} swaps one run of rules, got {taken}"
        if kind == "one-point":
            assert taken.endswith("1"), "one-point swaps every rule from its cut on"
        seen.add(taken)
    assert len(seen) > 2


def test_unknown_crossover_kind_is_a_config_error() -> None:
    grammar = parse_grammar("<s> ::= <a><b>\n<a> ::= x | y\n<b> ::= u | v")
    a = {"s": [0], "a": [0], "b": [0]}
    with pytest.raises(ConfigError, match="expected one-point, two-point or uniform"):
        crossover_sge(grammar, a, a, random.Random(0), max_depth=3, kind="three-point")


def test_json_errors_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        sge_from_json(EXPR, [[0]])
    with pytest.raises(ConfigError, match="choice 1 of <var> is 2, expected an int in 0..1"):
        sge_from_json(EXPR, {"var": [0, 2]})
    with pytest.raises(ConfigError, match="choice 0 of <op> is True"):
        sge_from_json(EXPR, {"op": [True]})
    with pytest.raises(ConfigError, match="<op> needs a list"):
        sge_from_json(EXPR, {"op": 1})


@pytest.mark.parametrize("name", ["cnn_small.bnf", "cnn_fmnist.bnf", "cnn_wide.bnf"])
def test_shipped_grammars_map_200_random_genotypes_validly(name: str) -> None:
    grammar = load_grammar(ROOT / "grammars" / name)
    rng, least = random.Random(3), grammar.min_depth(grammar.start)
    previous = random_sge(grammar, rng, max_depth=40)
    for i in range(200):
        max_depth = rng.randint(least, 40)
        genotype = random_sge(grammar, rng, max_depth=max_depth, mode=("grow", "full", "pi")[i % 3])
        child = mutate_sge(grammar, genotype, rng, max_depth=max_depth)
        crossed = crossover_sge(grammar, genotype, previous, rng, max_depth=max_depth)
        for g in (genotype, child, *crossed):
            assert_complete(grammar, g, max_depth)
        previous = genotype


# --- properties -----------------------------------------------------------------------------------


class Stop(Exception):
    """The reference derivation stopped; args[0] is the reason."""


def reference_sge(
    grammar: Grammar, genotype: Mapping[str, Sequence[int]], max_depth: int
) -> Derivation:
    """Map recursively over grammar.rules, as the SGE papers describe the map."""
    position = dict.fromkeys(grammar.rules, 0)
    out: list[str] = []
    count = {"used": 0, "depth": 1, "nodes": 1}

    def expand(name: str, level: int) -> None:
        row, alternatives = genotype.get(name, []), grammar.rules[name]
        if position[name] >= len(row):
            raise Stop(f"ran out of choices for <{name}>")
        choice = row[position[name]]
        position[name] += 1
        if not 0 <= choice < len(alternatives):
            raise Stop(f"choice {choice} for <{name}> is out of range 0..{len(alternatives) - 1}")
        if level + 1 > max_depth:
            raise Stop(f"exceeded max depth {max_depth}")
        count["used"] += 1
        count["nodes"] += len(alternatives[choice])
        count["depth"] = max(count["depth"], level + 1)
        for symbol in alternatives[choice]:
            expand(symbol.text, level + 1) if symbol.is_nt else out.append(symbol.text)

    try:
        expand(grammar.start, 1)
    except Stop as stop:
        return Derivation(None, count["used"], 0, count["depth"], count["nodes"], stop.args[0])
    return Derivation("".join(out), count["used"], 0, count["depth"], count["nodes"])


def assert_complete(grammar: Grammar, genotype: Genotype, max_depth: int) -> None:
    """Assert a genotype has every rule, maps validly within max_depth and uses every choice."""
    d = map_sge(grammar, genotype, max_depth=max_depth)
    assert d.valid and d.depth <= max_depth
    assert list(genotype) == list(grammar.codes.names)
    assert d.codons_used == sum(len(row) for row in genotype.values())


@settings(max_examples=300, deadline=None)
@given(grammars(), st.data(), st.integers(1, 8))
def test_matches_the_reference_map(grammar: Grammar, data: st.DataObject, max_depth: int) -> None:
    genotype = data.draw(genotypes(grammar))
    assert map_sge(grammar, genotype, max_depth=max_depth) == reference_sge(
        grammar, genotype, max_depth
    )


@settings(max_examples=200, deadline=None)
@given(grammars(), st.data(), DEPTHS, SEEDS)
def test_grow_completes_any_genotype_and_keeps_a_complete_one(
    grammar: Grammar, data: st.DataObject, max_depth: int, seed: int
) -> None:
    rng, given = random.Random(seed), data.draw(genotypes(grammar))
    before = json.dumps(given)
    genotype, derivation = grow_sge(grammar, given, rng, max_depth=max_depth)
    assert json.dumps(given) == before  # the input is left alone
    assert_complete(grammar, genotype, max_depth)
    assert derivation == map_sge(grammar, genotype, max_depth=max_depth)
    state = rng.getstate()
    assert grow_sge(grammar, genotype, rng, max_depth=max_depth) == (genotype, derivation)
    assert rng.getstate() == state  # nothing drawn for a complete genotype


@settings(max_examples=200, deadline=None)
@given(grammars(), DEPTHS, st.integers(1, 8), MODES, SEEDS)
def test_random_genotypes_are_complete_and_within_depth(
    grammar: Grammar, max_depth: int, min_depth: int, mode: Mode, seed: int
) -> None:
    rng = random.Random(seed)
    low = min(min_depth, max_depth)
    genotype = random_sge(grammar, rng, max_depth=max_depth, min_depth=low, mode=mode)
    assert_complete(grammar, genotype, max_depth)
    assert_complete(grammar, random_sge(grammar, rng, max_depth=max_depth), max_depth)


@settings(max_examples=200, deadline=None)
@given(grammars(), st.data(), DEPTHS, SEEDS)
def test_mutation_and_crossover_give_complete_genotypes(
    grammar: Grammar, data: st.DataObject, max_depth: int, seed: int
) -> None:
    rng = random.Random(seed)
    a, b = data.draw(genotypes(grammar)), data.draw(genotypes(grammar))
    assert_complete(grammar, mutate_sge(grammar, a, rng, max_depth=max_depth), max_depth)
    for child in crossover_sge(grammar, a, b, rng, max_depth=max_depth):
        assert_complete(grammar, child, max_depth)


@settings(max_examples=300, deadline=None)
@given(grammars(), CODONS, st.integers(0, 2), st.one_of(st.none(), DEPTHS), st.booleans())
def test_a_ge_genome_and_its_genotype_derive_the_same_tree(
    grammar: Grammar, genome: list[int], wraps: int, depth: int | None, single: bool
) -> None:
    ge = map_genome(grammar, genome, max_wraps=wraps, max_depth=depth, consume_single=single)
    genotype = sge_from_genome(
        grammar, genome, max_wraps=wraps, max_depth=depth, consume_single=single
    )
    sge = map_sge(grammar, genotype, max_depth=depth or 10**6)
    assert sge.phenotype == ge.phenotype
    if ge.valid:
        assert (sge.depth, sge.nodes) == (ge.depth, ge.nodes)
        assert_complete(grammar, genotype, depth or 10**6)


@settings(max_examples=200, deadline=None)
@given(grammars(), st.data(), DEPTHS, SEEDS)
def test_json_round_trip(grammar: Grammar, data: st.DataObject, max_depth: int, seed: int) -> None:
    genotype, _ = grow_sge(
        grammar, data.draw(genotypes(grammar)), random.Random(seed), max_depth=max_depth
    )
    assert sge_from_json(grammar, json.loads(json.dumps(genotype))) == genotype


@settings(max_examples=200, deadline=None)
@given(grammars(), DEPTHS, SEEDS)
def test_mutation_changes_exactly_one_used_choice_before_repair(
    grammar: Grammar, max_depth: int, seed: int
) -> None:
    rng = random.Random(seed)
    parent = random_sge(grammar, rng, max_depth=max_depth)
    state = rng.getstate()
    child = change_one_gene(grammar, parent, rng, max_depth=max_depth)
    changed = [
        (name, i)
        for name, row in parent.items()
        for i, (x, y) in enumerate(zip(row, child[name]))
        if x != y
    ]
    assert all(len(row) == len(child[name]) for name, row in parent.items())
    if changed:
        assert len(changed) == 1
        (name, i), repaired = changed[0], grow_sge(grammar, child, rng, max_depth=max_depth)[0]
        assert repaired[name][i] == child[name][i]  # the repair keeps the mutation
        rng.setstate(state)
        assert mutate_sge(grammar, parent, rng, max_depth=max_depth) == repaired
    else:
        assert no_choice_can_change(grammar, parent, max_depth)


def no_choice_can_change(grammar: Grammar, genotype: Genotype, max_depth: int) -> bool:
    """Return whether every one-choice change of a complete genotype is undone by repair."""
    for name, row in genotype.items():
        for i, current in enumerate(row):
            for other in range(len(grammar.rules[name])):
                changed = {**genotype, name: row[:i] + [other] + row[i + 1 :]}
                grown, _ = grow_sge(grammar, changed, random.Random(0), max_depth=max_depth)
                if other != current and grown[name][i] == other:
                    return False
    return True
