"""Facts about a grammar's rules as a graph, each in linear time.

Rules are numbered and each alternative is a tuple of codes: a rule id (int)
for a nonterminal, terminal text (str) otherwise. Both the grammar loader's
lint and `Grammar` itself use these facts.
"""

from __future__ import annotations

from collections.abc import Sequence

Code = int | str  # a rule id, or terminal text


def min_depths(alternatives: Sequence[Sequence[tuple[Code, ...]]]) -> list[int | None]:
    """Return each rule's least derivation depth (None: it never finishes), in linear time.

    A bucket-queue Dijkstra over the rules (Knuth's generalisation to
    superior functions): a rule's depth is 1 + the deepest child of its best
    alternative, with terminals at depth 1, so `<e> ::= x` has depth 2.
    """
    n = len(alternatives)
    owner: list[int] = []  # flat alternative index -> its rule
    pending: list[int] = []  # children not yet given a depth
    value: list[int] = []  # 1 + deepest child so far
    waiting: list[list[int]] = [
        [] for _ in range(n)
    ]  # rule -> alternatives that use it (with repeats)
    buckets: list[list[int]] = [[] for _ in range(n + 3)]
    for r, alts in enumerate(alternatives):
        for alt in alts:
            k = len(owner)
            children = [s for s in alt if isinstance(s, int)]
            owner.append(r)
            pending.append(len(children))
            value.append(2 if len(children) < len(alt) else 0)
            for child in children:
                waiting[child].append(k)
            if not children:
                buckets[2].append(r)
    depths: list[int | None] = [None] * n
    for level in range(2, n + 3):
        for r in buckets[level]:
            if depths[r] is None:
                depths[r] = level
                for k in waiting[r]:
                    pending[k] -= 1
                    value[k] = max(value[k], level + 1)
                    if pending[k] == 0:
                        buckets[value[k]].append(owner[k])
    return depths


def recursive_rules(alternatives: Sequence[Sequence[tuple[Code, ...]]]) -> list[bool]:
    """Return, per rule, whether it lies on a cycle of the refers-to graph (iterative Tarjan)."""
    edges = [
        sorted({s for alt in alts for s in alt if isinstance(s, int)}) for alts in alternatives
    ]
    n = len(edges)
    index: list[int | None] = [None] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    result = [False] * n
    counter = 0
    for root in range(n):
        if index[root] is not None:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            if i < len(edges[v]):
                work.append((v, i + 1))
                w = edges[v][i]
                if index[w] is None:
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w] or 0)
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                _pop_component(v, stack, on_stack, edges, result)
    return result


def _pop_component(
    v: int, stack: list[int], on_stack: list[bool], edges: list[list[int]], result: list[bool]
) -> None:
    component = []
    while True:
        w = stack.pop()
        on_stack[w] = False
        component.append(w)
        if w == v:
            break
    if len(component) > 1 or v in edges[v]:
        for w in component:
            result[w] = True


def reachable(alternatives: Sequence[Sequence[tuple[Code, ...]]], start: int) -> list[bool]:
    """Return, per rule, whether a derivation from start can use it."""
    seen = [False] * len(alternatives)
    seen[start] = True
    todo = [start]
    while todo:
        for alt in alternatives[todo.pop()]:
            for s in alt:
                if isinstance(s, int) and not seen[s]:
                    seen[s] = True
                    todo.append(s)
    return seen
