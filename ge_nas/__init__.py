"""ge_nas: grammatical-evolution neural architecture search.

The names that need torch (build_model, measure, load_model) are imported on
first use, so `import ge_nas` and the command line's help start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ge_nas.arch import ArchSpec, Layer, parse_arch
from ge_nas.config import RunConfig
from ge_nas.errors import (
    ArchError,
    ConfigError,
    DatasetError,
    GeNasError,
    GrammarError,
    GrammarSyntaxError,
)
from ge_nas.metrics import Metrics

if TYPE_CHECKING:
    from ge_nas.export import load_model
    from ge_nas.network import build_model, measure

__version__ = "0.1.0"

_LAZY = {
    "build_model": "ge_nas.network",
    "measure": "ge_nas.network",
    "load_model": "ge_nas.export",
}

__all__ = [
    "ArchError",
    "ArchSpec",
    "ConfigError",
    "DatasetError",
    "GeNasError",
    "GrammarError",
    "GrammarSyntaxError",
    "Layer",
    "Metrics",
    "RunConfig",
    "build_model",
    "load_model",
    "measure",
    "parse_arch",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ge_nas' has no attribute {name!r}")
