"""The exception hierarchy of ge_nas.

Expected per-individual failures (an invalid mapping, a network over budget, a
NaN loss) are not exceptions: they come back as `Metrics` with a status. These
classes are for mistakes a user must fix: a bad grammar, a bad phenotype typed
by hand, a bad option.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GeNasError(Exception):
    """Base class of every error ge_nas raises on purpose."""


class ConfigError(GeNasError, ValueError):
    """A run option, a data set name or a file path is wrong."""


class DatasetError(ConfigError):
    """A data set is missing, unreadable or malformed."""


class GrammarSyntaxError(GeNasError, ValueError):
    """A BNF file cannot be parsed; carries its position and the offending line."""

    def __init__(
        self, message: str, *, source: str, line: int, column: int, context: str = ""
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.context = context
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}:{self.line}:{self.column}: {self.message}"
        return f"{head}\n{self.context}" if self.context else head


class GrammarError(GeNasError, ValueError):
    """A BNF file parses but cannot be used: undefined rule, no terminating path."""


class ArchError(GeNasError, ValueError):
    """A phenotype is not a valid sentence of the architecture language or cannot be built.

    Besides the message, it carries what is known of the fault: reason, the message
    without position or hints (short enough to count failures by); line and column
    in the phenotype (1-based); token, the offending text; argument, the name of the
    argument or hyperparameter at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        line: int | None = None,
        column: int | None = None,
        token: str | None = None,
        argument: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason or message.split("\n")[0]
        self.line = line
        self.column = column
        self.token = token
        self.argument = argument


class SearchError(GeNasError):
    """A search cannot go on: its initial generation has no valid network."""


class ExportError(GeNasError):
    """An exported model does not reproduce the torch model's outputs."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest of choices, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def caret_context(text: str, line: int, column: int) -> str:
    """Return the 1-based line of text and a caret under the 1-based column."""
    lines = text.split("\n")  # lark counts lines at \n only
    if not 1 <= line <= len(lines):
        return ""
    src = lines[line - 1].expandtabs(1)
    return f"    {src}\n    {' ' * (column - 1)}^"
