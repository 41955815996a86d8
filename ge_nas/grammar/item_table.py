"""The mapper's hot table: each (depth, nonterminal) item's productions, built on first use.

An item is ``depth * per_level + slot`` (the root is item 0, at depth 0), so
one int carries a node's depth and the deepest item gives the tree's depth. A
slot is a rule together with the terminal text written just before it in its
alternative ('' if none): that text is emitted when the item is expanded, so
it never takes a stack entry of its own.

An item's entry is ``(number of alternatives, productions, text)``, text None
if there is none. Each production is ``(first, rest)``: the stack entries of
an alternative, first and then the others reversed, ready to push (None if
there are no others). A stack entry is an item (an int >= 0) or a terminal (an
int < 0, its text at ``terms[code]``): a terminal after an alternative's last
nonterminal, an alternative without nonterminals, or an empty-string terminal
(kept as its own entry so that it is counted as a node). Terminals are ints so
that the mapper tells them from items with one compare; None in place of ''
and () makes its other tests cheap too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ge_nas.grammar.rule_graph import Code

Production = tuple[int, tuple[int, ...] | None]
Entry = tuple[int, tuple[Production, ...], str | None]
Alternatives = tuple[tuple[tuple[Code, ...], ...], ...]


class ItemTable:
    """Productions keyed by item; `entries` is a plain dict so that the mapper's lookup stays fast."""

    __slots__ = (
        "alternatives",
        "entries",
        "per_level",
        "terms",
        "texted",
        "_slots",
        "_slot_ids",
        "_term_codes",
        "_productions",
        "_items",
    )

    def __init__(self, alternatives: Alternatives) -> None:
        self.alternatives = alternatives
        found = {e for alts in alternatives for alt in alts for e in _stack_entries(alt)}
        self._slots = sorted(
            {(0, "")} | {e for e in found if isinstance(e, tuple)}
        )  # the root (0, '') sorts first
        self._slot_ids = {slot: i for i, slot in enumerate(self._slots)}
        self.per_level = len(self._slots)
        self.terms = sorted(e for e in found if isinstance(e, str))
        self._term_codes = {text: i - len(self.terms) for i, text in enumerate(self.terms)}
        self.entries: dict[int, Entry] = {}
        self.texted: set[int] = set()  # the items with text met so far: each stands for two symbols
        # Built once per (depth, rule), whatever the text before it, and each item is one int object,
        # as the dict's key and in every production: the table stays small and lookups hit on identity.
        self._productions: dict[tuple[int, int], tuple[Production, ...]] = {}
        self._items: dict[int, int] = {}

    def entry(self, item: int) -> Entry:
        """Return item's entry, building and keeping it on first use."""
        found = self.entries.get(item)
        if found is None:
            depth, slot = divmod(item, self.per_level)
            rule, text = self._slots[slot]
            productions = self._productions.get((depth, rule))
            if productions is None:
                offset = (depth + 1) * self.per_level
                productions = tuple(
                    self._production(alt, offset) for alt in self.alternatives[rule]
                )
                self._productions[depth, rule] = productions
            found = len(productions), productions, text or None
            self.entries[self._item(item)] = found
        return found

    def symbols(self, codes: Sequence[int]) -> int:
        """Return how many grammar symbols stack entries stand for (map and sum: no bytecode per entry)."""
        return len(codes) + sum(map(self.texted.__contains__, codes))

    def _production(self, alt: tuple[Code, ...], offset: int) -> Production:
        codes = [
            self._term_codes[e] if isinstance(e, str) else self._item(offset + self._slot_ids[e])
            for e in _stack_entries(alt)
        ]
        self.texted.update(c for c in codes if c >= 0 and self._slots[c - offset][1])
        return codes[0], tuple(reversed(codes[1:])) or None

    def _item(self, item: int) -> int:
        return self._items.setdefault(item, item)

    def __reduce__(self) -> tuple[type[ItemTable], tuple[Alternatives]]:
        return ItemTable, (self.alternatives,)  # the entries are rebuilt, not shipped


def _stack_entries(alt: Sequence[Code]) -> Iterator[str | tuple[int, str]]:
    """Yield alt's stack entries in order: terminal text, or a nonterminal's (rule, text before it) slot."""
    text = ""
    for symbol in alt:
        if isinstance(symbol, int):
            yield symbol, text
            text = ""
            continue
        if text:
            yield text  # not right before a nonterminal: its own entry
        text = symbol
        if not symbol:
            yield symbol  # '' stays an entry, to be counted
    if text:
        yield text
