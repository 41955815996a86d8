"""Syntax errors in BNF text, named from a table of known-bad examples.

lark reports where the parser stopped; `UnexpectedInput.match_examples`
matches that parser state against small wrong grammars to say what the user
most likely meant, as lark's own load_grammar.py does with GRAMMAR_ERRORS.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import lark

from ge_nas.errors import GrammarSyntaxError, caret_context

# Each mistake is tried after every kind of text that can precede it: lark matches
# an error by parser state, and layout or an earlier rule changes the state.
_CONTEXTS = ("", "\n", "\t", "\n\n", "\n\t", "# note\n", "<z> ::= z\n", "\n<z> ::= z\n<y> ::= y\n")
_MISTAKES: dict[str, tuple[str, ...]] = {
    "head": ("<layer> := conv", "<layer> = conv", "<layer> conv", "<layer>"),
    "text": ("conv\n<a> ::= x", "'conv'\n<a> ::= x", '"conv"', "| x", "< x"),
    "quote": ("'x", "<a> ::= 'x", '<a> ::= "x', "<a> ::= x | 'y", "<a> ::='x", '<a> ::=<b>"x'),
    "angle": ("<a ::= x", "<a> ::= x\n<b ::= y", "<a> ::=<b ::= y", "<a> ::= x <b ::= y"),
    "define": ("::= x", "<a> ::= x ::= y", "a ::= x", "<a> ::=::= x", "<a> ::=<b>::= y"),
    "escape": ("\\", "<a> ::= x\\", "<a> ::= x \\\n| y", "<a> ::=\\", "<a> ::= <b>\\"),
    "params": ("<f(<a>)> ::= x", "<a> ::= x <f(<b>, c)> ::= y", "<a> ::=<f(K, <b>)>::= y"),
}

_MESSAGES: dict[str, Callable[[lark.Token], str]] = {
    "text": lambda t: f"expected a rule '<name> ::= ...' before {str(t).strip()!r}",
    "quote": lambda t: (
        f"unclosed quote: expected a closing {t[0]} on the same line (quoted text cannot span lines)"
    ),
    "angle": lambda t: (
        f"unclosed '<' in a rule head: expected '>' after {t.split()[0].removesuffix('::=')}"
    ),
    "define": lambda t: "'::=' without a rule name: expected '<name> ::='",
    "escape": lambda t: "a backslash ends the line: write \\\\ for a backslash, or quote it",
    "params": lambda t: (
        "a rule head declares parameter names, not nonterminals: write <name(K)> ::= ... <K> "
        "..., and call it as <name(<rule>)>"
    ),
}


def token_at(token: lark.Token) -> tuple[int, int]:
    """Return a token's 1-based line and column (lark types them as optional)."""
    return token.line or 1, token.column or 1


def syntax_error(
    message: str, text: str, source: str, line: int, column: int
) -> GrammarSyntaxError:
    """Return a GrammarSyntaxError at line:column of text, with the line and a caret."""
    return GrammarSyntaxError(
        message, source=source, line=line, column=column, context=caret_context(text, line, column)
    )


def classify_syntax_error(
    exc: lark.UnexpectedInput, text: str, source: str, parse: Callable[[str], lark.Tree[lark.Token]]
) -> GrammarSyntaxError:
    """Turn lark's error into one that names the likely mistake; parse is the parser that failed."""
    label: str | None = exc.match_examples(parse, _examples(), token_type_match_fallback=True)
    token = getattr(exc, "token", None)
    line, column = exc.line, exc.column
    if not isinstance(token, lark.Token) or label is None:
        message = f"unexpected {str(token)!r}" if token is not None else "unexpected input"
    elif label == "head":
        line, column = _after(text, token)
        message = f"expected '::=' after {token}"
    else:
        message = _MESSAGES[label](token)
    return syntax_error(message, text, source, line, column)


@cache
def _examples() -> dict[str, list[str]]:
    return {
        label: [context + bad for context in _CONTEXTS for bad in bads]
        for label, bads in _MISTAKES.items()
    }


def _after(text: str, token: lark.Token) -> tuple[int, int]:
    """Return the line and column of the first non-blank character after token on its line."""
    line, column = token_at(token)
    end = column - 1 + len(token)
    rest = text.split("\n")[line - 1][end:]
    return line, end + len(rest) - len(rest.lstrip()) + 1
