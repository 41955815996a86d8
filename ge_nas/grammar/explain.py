"""Why a phenotype is invalid, told with the grammar line that wrote the offending text.

The architecture parser says where in the phenotype it failed and which text
(`ArchError.line`, `.column`, `.token`). A phenotype is the concatenation of the
terminal texts of its derivation, so the terminal that wrote the offending
token holds it at an offset that lines up with the phenotype around it. The
alternatives with such a terminal are the candidates: when they all belong to
one rule of the file (a rule with parameters counts once, whatever its
arguments), the reason cites that rule's line; otherwise it gives the position
in the phenotype.
"""

from __future__ import annotations

from ge_nas.errors import ArchError
from ge_nas.grammar.grammar import Grammar
from ge_nas.grammar.reader import Alternative

_MAX_ALTERNATIVES = 60  # characters of the cited alternatives


def explain_arch_error(grammar: Grammar, error: ArchError, phenotype: str) -> str:
    """Return the error's reason and where to fix it, on one line.

    For example ``unknown layer 'bogus' (grammars/x.bnf:7: <layer> ::= bogus(<n>))``
    (every alternative of the rule that can have written the text, from the first one's line),
    or ``unexpected ')', expected a name (phenotype 1:12)`` when no single rule
    wrote the offending text.
    """
    where = cite_rule(grammar, error, phenotype) or _position(error)
    return f"{error.reason} ({where})" if where else error.reason


def cite_rule(grammar: Grammar, error: ArchError, phenotype: str) -> str | None:
    """Return 'file:line: <rule> ::= alternative' of the one rule that wrote the error's token, or None."""
    if not error.token:
        return None
    offset = None if error.line is None else _offset(phenotype, error.line, error.column or 1)
    found = writers(grammar, error.token, phenotype, offset)
    if len({grammar.origin(rule) for rule, _ in found}) != 1:  # one rule of the file
        return None
    rule, first = found[0]
    lines = grammar.alt_lines.get(rule, ())
    at = f"{grammar.source}:{lines[first]}" if first < len(lines) else grammar.source
    shown = _shown([grammar.rules[rule][i] for r, i in found if r == rule])
    return f"{at}: <{rule}> ::= {shown}"


def writers(
    grammar: Grammar, token: str, phenotype: str, offset: int | None
) -> list[tuple[str, int]]:
    """Return (rule, alternative index) of each alternative that can have written token.

    With an offset, a terminal qualifies when it holds token where it lines up
    with the phenotype at offset; without one, when it holds token and occurs in
    the phenotype.
    """
    found = []
    for rule, alternatives in grammar.rules.items():
        for index, alternative in enumerate(alternatives):
            terminals = (s.text for s in alternative if not s.is_nt)
            if any(_wrote(text, token, phenotype, offset) for text in terminals):
                found.append((rule, index))
    return found


def _wrote(text: str, token: str, phenotype: str, offset: int | None) -> bool:
    at = text.find(token)
    if offset is None:
        return at >= 0 and text in phenotype
    while at >= 0:
        if offset - at >= 0 and phenotype.startswith(text, offset - at):
            return True
        at = text.find(token, at + 1)
    return False


def _offset(phenotype: str, line: int, column: int) -> int:
    """Return the 0-based offset of a 1-based line and column (lines end at \\n, as lark counts)."""
    lines = phenotype.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + column - 1


def _position(error: ArchError) -> str:
    if error.line is None:
        return ""
    return f"phenotype {error.line}:{error.column}"


def _shown(alternatives: list[Alternative]) -> str:
    """Return alternatives as BNF on one line, shortened."""
    text = " | ".join(_bnf(alternative) for alternative in alternatives)
    return text if len(text) <= _MAX_ALTERNATIVES else text[: _MAX_ALTERNATIVES - 3] + "..."


def _bnf(alternative: Alternative) -> str:
    text = "".join(f"<{s.text}>" if s.is_nt else _terminal(s.text) for s in alternative)
    return text.replace("\n", "\\n")


def _terminal(text: str) -> str:
    """Return terminal text as BNF: quoted when it holds a character that bare text cannot."""
    if text and not any(c in text for c in "|<#'\""):
        return text
    return f"'{text}'" if '"' in text else f'"{text}"'
