"""The mapper's item table: items carry depth and the text before them, terminals are negative codes."""

from __future__ import annotations

import pickle

from ge_nas.grammar import parse_grammar
from ge_nas.grammar.item_table import ItemTable


def table_of(text: str) -> ItemTable:
    """Return the item table of the grammar text."""
    return parse_grammar(text).codes.items


def test_text_before_a_nonterminal_rides_on_its_item() -> None:
    table = table_of("<a> ::= x <b> y <b> z\n<b> ::= q")
    k, [(first, rest)], text = table.entry(0)
    assert (k, text) == (1, None)  # the root has no text before it
    assert (
        rest is not None and len(rest) == 2
    )  # 'z', then <b> with ' y ' before it (reversed for a stack)
    assert table.terms[rest[0]] == " z"
    assert [table.entry(item)[2] for item in (first, rest[1])] == ["x ", " y "]
    assert all(
        table.per_level <= item < 2 * table.per_level for item in (first, rest[1])
    )  # depth 1


def test_terminals_are_negative_codes_and_leaves_have_no_rest() -> None:
    table = table_of("<a> ::= <b>\n<b> ::= p | q")
    _, [(b, _)], _ = table.entry(0)
    k, productions, _ = table.entry(b)
    assert k == 2 and all(code < 0 and rest is None for code, rest in productions)
    assert [table.terms[code] for code, _ in productions] == ["p", "q"]


def test_an_empty_terminal_keeps_its_own_entry() -> None:
    table = table_of("<a> ::= ''<b>\n<b> ::= q")
    _, [(first, rest)], _ = table.entry(0)
    assert table.terms[first] == "" and rest is not None and table.entry(rest[0])[2] is None


def test_symbols_counts_an_item_with_text_twice() -> None:
    table = table_of("<a> ::= x <b> <b>\n<b> ::= q")
    _, [(first, rest)], _ = table.entry(0)
    assert rest is not None
    assert table.symbols([first, *rest, table.terms.index("q") - len(table.terms)]) == 5


def test_pickles_without_its_entries() -> None:
    table = table_of("<a> ::= x <a> | y")
    table.entry(0)
    copy = pickle.loads(pickle.dumps(table))
    assert copy.entries == {} and copy.entry(0) == table.entry(0)
