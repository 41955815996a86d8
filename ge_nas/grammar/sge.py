"""Structured GE, dynamic variant: one list of choices per nonterminal, bounded by a tree depth.

An SGE genotype [Lourenco2015] holds, for each rule, the list of alternatives
its expansions take, read in leftmost derivation order: the k-th expansion of
<R> takes alternative ``genotype["R"][k]``. Changing one choice changes one
node of the tree and leaves the choices of every other rule where they were,
which gives SGE its locality and low redundancy [Lourenco2016]. In the dynamic
variant (DSGE) [Lourenco2018] the lists grow as the derivation needs them and
a depth limit keeps recursive grammars finite: a missing choice, or one whose
subtree cannot finish within ``max_depth``, is replaced with a random choice
that can (the grammar's least depths tell which). Fast-DENSER [Assuncao2019]
uses the same representation for network architectures.

Depth counts as in `ge_nas.grammar.mapper`, and the derivation loop is
`ge_nas.grammar.derive`'s: the phenotype of a tree is the one the GE mapper
gives for a genome deriving the same tree.

A rule with parameters keeps one list whatever its arguments, and so does a
rule used as an argument (`Grammar.origins`): the lists are those of the
rules of the file (`RuleCodes.row_names`).

The JSON form of a genotype is itself: a ``dict[str, list[int]]`` of rule name
(without brackets or parameters) -> choices, each in ``range(number of
alternatives)``. Write it with ``json.dumps(genotype)``; read it back with
`sge_from_json`, which checks it against the grammar. Functions that return a
genotype give every list a key (in `row_names` order), trimmed to the choices
the derivation reads; inputs may leave rules out (an empty list).

Public functions (all randomness comes from the rng passed in; inputs are
never modified):

* ``map_sge(grammar, genotype, *, max_depth) -> Derivation``: pure map.
* ``grow_sge(grammar, genotype, rng, *, max_depth) -> (Genotype, Derivation)``:
  repair and complete a genotype; the Derivation is always valid.
* ``random_sge(grammar, rng, *, max_depth, min_depth=None, mode="grow") -> Genotype``
* ``ramped_sge(grammar, rng, n, *, max_depth, min_depth=None) -> list[Genotype]``:
  ramped half-and-half.
* ``sge_from_genome(grammar, genome, *, max_wraps=0, max_depth=None,
  consume_single=True) -> Genotype``: the choices a GE genome's derivation
  makes, so GE initialisers (`ge_nas.grammar.initialise`) can seed SGE.
* ``change_one_gene(grammar, genotype, rng, *, max_depth) -> Genotype``: the
  point mutation before repair; ``mutate_sge`` (same signature) repairs it.
* ``crossover_sge(grammar, a, b, rng, *, max_depth) -> (Genotype, Genotype)``
* ``sge_from_json(grammar, data) -> Genotype``

[Lourenco2015] N. Lourenco, F. B. Pereira, E. Costa. SGE: A Structured
Representation for Grammatical Evolution. EA 2015, LNCS 9554.
[Lourenco2016] N. Lourenco, F. B. Pereira, E. Costa. Unveiling the properties of
structured grammatical evolution. Genetic Programming and Evolvable Machines 17(3), 2016.
[Lourenco2018] N. Lourenco, F. Assuncao, F. B. Pereira, E. Costa, P. Machado.
Structured Grammatical Evolution: A Dynamic Approach. In Handbook of Grammatical
Evolution, Springer 2018.
[Assuncao2019] F. Assuncao, N. Lourenco, P. Machado, B. Ribeiro. Fast DENSER:
Efficient Deep NeuroEvolution. EuroGP 2019.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from ge_nas.errors import ConfigError, did_you_mean
from ge_nas.grammar.derive import Chooser, derive, ge_choices
from ge_nas.grammar.grammar import Grammar, RuleCodes
from ge_nas.grammar.initialise import Mode, _TreeBuilder
from ge_nas.grammar.mapper import Derivation

__all__ = [
    "Genotype",
    "change_one_gene",
    "crossover_sge",
    "grow_sge",
    "map_sge",
    "mutate_sge",
    "ramped_sge",
    "random_sge",
    "sge_from_genome",
    "sge_from_json",
]

Genotype = dict[str, list[int]]
MODES: tuple[Mode, ...] = ("grow", "full", "pi")


def map_sge(
    grammar: Grammar, genotype: Mapping[str, Sequence[int]], *, max_depth: int
) -> Derivation:
    """Map a genotype to its derivation without changing it; never raises on a bad choice.

    Invalid when a list is short ('ran out of choices for <R>'), a choice is out of
    range, or the tree would be deeper than max_depth. codons_used counts the
    choices read (up to the failure, for an invalid one); wraps is 0.

    Raises:
        ConfigError: the genotype names a rule the grammar does not have.
    """
    return derive(grammar.codes, _reader(grammar.codes, _rows(grammar, genotype), max_depth))


def grow_sge(
    grammar: Grammar, genotype: Mapping[str, Sequence[int]], rng: random.Random, *, max_depth: int
) -> tuple[Genotype, Derivation]:
    """Repair and complete a genotype as DSGE does; return it, trimmed, with its valid derivation.

    A choice that is missing, out of range or whose subtree cannot finish within
    max_depth becomes a random choice among those that can. A genotype that
    already maps validly comes back unchanged but for trimming, with no draw made.

    Raises:
        ConfigError: max_depth is below the start rule's least depth, or an unknown rule.
    """
    _check_max_depth(grammar, max_depth)
    rows = _copy_rows(grammar, genotype)
    derivation, _ = _grow(grammar.codes, rows, rng, max_depth)
    return _genotype(grammar.codes, rows), derivation


def random_sge(
    grammar: Grammar,
    rng: random.Random,
    *,
    max_depth: int,
    min_depth: int | None = None,
    mode: Mode = "grow",
) -> Genotype:
    """Return the genotype of a random tree no deeper than a target depth.

    The target is max_depth, or drawn from min_depth..max_depth when min_depth is
    given. grow picks each choice uniformly among those that fit the target (DSGE's
    initialisation); full and pi (position-independent grow) trees reach it, if the
    grammar has a tree of exactly that depth (else the deepest below), as the
    sensible and PI-grow initialisers of `ge_nas.grammar.initialise` build them.

    Raises:
        ConfigError: an unknown mode, or depths the grammar cannot meet.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown SGE initialisation mode {mode!r}{did_you_mean(mode, MODES)}")
    target = _target_depth(grammar, rng, max_depth, min_depth)
    if mode == "grow":
        return grow_sge(grammar, {}, rng, max_depth=target)[0]
    choices, _ = _TreeBuilder(grammar, target, rng).tree(target, mode)
    return sge_from_genome(grammar, [choice for choice, _ in choices])


def ramped_sge(
    grammar: Grammar, rng: random.Random, n: int, *, max_depth: int, min_depth: int | None = None
) -> list[Genotype]:
    """Return n genotypes, ramped half-and-half: depths min_depth..max_depth in turn, grow and full."""
    depths = range(_least_depth(grammar, max_depth, min_depth), max_depth + 1)
    population = []
    for i in range(n):
        depth, mode = depths[(i // 2) % len(depths)], MODES[i % 2]
        population.append(random_sge(grammar, rng, max_depth=depth, mode=mode))
    return population


def sge_from_genome(
    grammar: Grammar,
    genome: Sequence[int],
    *,
    max_wraps: int = 0,
    max_depth: int | None = None,
    consume_single: bool = True,
) -> Genotype:
    """Return the genotype of the tree a GE genome derives under `map_genome`'s options.

    A rule with one alternative gets choice 0 whether or not it consumed a codon.
    For an invalid genome, the choices made before the mapping stopped (grow_sge
    completes them).
    """
    rows: list[list[int]] = [[] for _ in grammar.codes.row_names]
    for rule, choice in ge_choices(
        grammar, genome, max_wraps=max_wraps, max_depth=max_depth, consume_single=consume_single
    ):
        rows[grammar.codes.rows[rule]].append(choice)
    return _genotype(grammar.codes, rows)


def change_one_gene(
    grammar: Grammar, genotype: Mapping[str, Sequence[int]], rng: random.Random, *, max_depth: int
) -> Genotype:
    """Return the genotype, completed by grow_sge, with one used choice changed (not repaired).

    The rule is drawn uniformly among used rules that have a choice to change, then
    one of its used choices, then a different alternative that fits the depth left at
    that node (so the repair keeps it). Unchanged when no choice can change.
    """
    _check_max_depth(grammar, max_depth)
    codes = grammar.codes
    rows = _copy_rows(grammar, genotype)
    _, levels = _grow(codes, rows, rng, max_depth)
    options = _switches(codes, rows, levels, max_depth)
    if options:
        at = rng.choice(list(options))
        index, others = rng.choice(options[at])
        rows[at][index] = rng.choice(others)
    return _genotype(codes, rows)


def mutate_sge(
    grammar: Grammar, genotype: Mapping[str, Sequence[int]], rng: random.Random, *, max_depth: int
) -> Genotype:
    """Return DSGE's mutant: change_one_gene, then grow_sge to repair and complete it."""
    child = change_one_gene(grammar, genotype, rng, max_depth=max_depth)
    return grow_sge(grammar, child, rng, max_depth=max_depth)[0]


def crossover_sge(
    grammar: Grammar,
    a: Mapping[str, Sequence[int]],
    b: Mapping[str, Sequence[int]],
    rng: random.Random,
    *,
    max_depth: int,
    kind: str = "uniform",
) -> tuple[Genotype, Genotype]:
    """Return two children that swap whole rules' lists of choices, each repaired by grow_sge.

    Rules are taken in rule id order. uniform: a fair coin per rule says whether
    the children swap it; one-point: every rule from a random cut on; two-point:
    the rules between two random cuts. The first child takes the rest from a, the
    second from b.
    """
    _check_max_depth(grammar, max_depth)
    first, second = _copy_rows(grammar, a), _copy_rows(grammar, b)
    for rule in _swapped_rules(len(first), rng, kind):
        first[rule], second[rule] = second[rule], first[rule]
    _grow(grammar.codes, first, rng, max_depth)
    _grow(grammar.codes, second, rng, max_depth)
    return _genotype(grammar.codes, first), _genotype(grammar.codes, second)


def _swapped_rules(rules: int, rng: random.Random, kind: str) -> range | list[int]:
    """Return the rule ids a crossover of this kind swaps."""
    if kind == "uniform":
        return [rule for rule in range(rules) if rng.random() < 0.5]
    if rules < 2:
        return []
    if kind == "one-point":
        return range(rng.randint(1, rules - 1), rules)
    if kind == "two-point":
        start, end = sorted(rng.sample(range(rules + 1), 2))
        return range(start, end)
    raise ConfigError(f"unknown crossover {kind!r}; expected one-point, two-point or uniform")


def sge_from_json(grammar: Grammar, data: object) -> Genotype:
    """Check a decoded JSON genotype against the grammar and return it with every rule.

    Raises:
        ConfigError: not an object of rule name -> list of choices in range, or an unknown rule.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"an SGE genotype is a JSON object of rule name -> list of choices, "
            f"got {type(data).__name__}"
        )
    rows = _rows(grammar, data)
    for name, row in data.items():
        _check_row(grammar, name, row)
    return _genotype(grammar.codes, [list(row) for row in rows])


# --- choosers: a genotype's choices, read as they are or repaired ------------------------------


def _reader(codes: RuleCodes, rows: Sequence[Sequence[int]], max_depth: int) -> Chooser:
    """Read the choices as they are; stop at a missing, out-of-range or too deep one."""
    position = [0] * len(rows)

    def choose(rule: int, level: int) -> int | str:
        at = codes.rows[rule]
        row, k = rows[at], position[at]
        if k >= len(row):
            return f"ran out of choices for <{codes.row_names[at]}>"
        position[at] = k + 1
        choice, n = row[k], len(codes.alternatives[rule])
        if not 0 <= choice < n:
            return f"choice {choice} for <{codes.row_names[at]}> is out of range 0..{n - 1}"
        return f"exceeded max depth {max_depth}" if level >= max_depth else choice

    return choose


def _grower(
    codes: RuleCodes,
    rows: list[list[int]],
    max_depth: int,
    rng: random.Random,
    levels: list[list[tuple[int, int]]],
) -> Chooser:
    """Read the choices, replacing or appending any that cannot finish within max_depth.

    levels: per list, the (rule, level) of each choice read, appended to.
    """

    def choose(rule: int, level: int) -> int:
        at = codes.rows[rule]
        row, k, fits = rows[at], len(levels[at]), codes.alt_min_depths[rule]
        budget = max_depth - level + 1  # the deepest subtree this node may have
        levels[at].append((rule, level))
        if k < len(row) and 0 <= row[k] < len(fits) and fits[row[k]] <= budget:
            return row[k]
        choice = rng.choice([a for a, least in enumerate(fits) if least <= budget])
        if k < len(row):
            row[k] = choice
        else:
            row.append(choice)
        return choice

    return choose


def _grow(
    codes: RuleCodes, rows: list[list[int]], rng: random.Random, max_depth: int
) -> tuple[Derivation, list[list[tuple[int, int]]]]:
    """Repair and complete rows in place, trim them; return the derivation and each choice's
    rule and level."""
    levels: list[list[tuple[int, int]]] = [[] for _ in rows]
    derivation = derive(codes, _grower(codes, rows, max_depth, rng, levels))
    for row, used in zip(rows, levels):
        del row[len(used) :]
    return derivation, levels


def _switches(
    codes: RuleCodes,
    rows: list[list[int]],
    levels: list[list[tuple[int, int]]],
    max_depth: int,
) -> dict[int, list[tuple[int, list[int]]]]:
    """Return list -> [(index, other alternatives that fit there)] for the choices that can change."""
    found: dict[int, list[tuple[int, list[int]]]] = {}
    for at, (row, where) in enumerate(zip(rows, levels)):
        genes = []
        for index, (current, (rule, level)) in enumerate(zip(row, where)):
            budget = max_depth - level + 1
            fits = codes.alt_min_depths[rule]
            others = [a for a, least in enumerate(fits) if a != current and least <= budget]
            if others:
                genes.append((index, others))
        if genes:
            found[at] = genes
    return found


# --- genotypes: rule names <-> rows by rule id, checks -------------------------------------------


def _rows(grammar: Grammar, genotype: Mapping[str, Sequence[int]]) -> list[Sequence[int]]:
    """Return the genotype's lists in list order (empty for rules it leaves out)."""
    names = grammar.codes.row_names
    for name in genotype:
        if name not in names:
            raise ConfigError(
                f"SGE genotype has choices for <{name}>, which {grammar.source} does not "
                f"define{did_you_mean(str(name), names)}"
            )
    return [genotype.get(name, ()) for name in names]


def _copy_rows(grammar: Grammar, genotype: Mapping[str, Sequence[int]]) -> list[list[int]]:
    return [list(row) for row in _rows(grammar, genotype)]


def _genotype(codes: RuleCodes, rows: list[list[int]]) -> Genotype:
    return dict(zip(codes.row_names, rows))


def _check_row(grammar: Grammar, name: str, row: object) -> None:
    codes = grammar.codes
    first = codes.rows.index(codes.row_names.index(name))  # a rule whose choices the list holds
    n = len(codes.alternatives[first])
    if not isinstance(row, list):
        raise ConfigError(f"SGE genotype: <{name}> needs a list of choices, got {row!r}")
    for i, choice in enumerate(row):
        if type(choice) is not int or not 0 <= choice < n:
            raise ConfigError(
                f"SGE genotype: choice {i} of <{name}> is {choice!r}, expected an int in 0..{n - 1}"
            )


def _check_max_depth(grammar: Grammar, max_depth: int) -> None:
    least = grammar.min_depth(grammar.start)
    if max_depth < least:
        raise ConfigError(
            f"max_depth {max_depth} is below the least tree depth {least} of {grammar.source} "
            f"(start rule <{grammar.start}>)"
        )


def _target_depth(
    grammar: Grammar, rng: random.Random, max_depth: int, min_depth: int | None
) -> int:
    """Return max_depth, or a depth drawn from min_depth..max_depth."""
    low = _least_depth(grammar, max_depth, min_depth)
    return max_depth if min_depth is None else rng.randint(low, max_depth)


def _least_depth(grammar: Grammar, max_depth: int, min_depth: int | None) -> int:
    """Return min_depth raised to the start rule's least depth, after checking both depths."""
    _check_max_depth(grammar, max_depth)
    if min_depth is not None and min_depth > max_depth:
        raise ConfigError(f"min_depth {min_depth} is above max_depth {max_depth}")
    return max(min_depth or 0, grammar.min_depth(grammar.start))
