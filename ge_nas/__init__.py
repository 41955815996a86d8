"""ge_nas: grammatical-evolution neural architecture search."""

from ge_nas.arch import ArchSpec, Layer, parse_arch
from ge_nas.build import build_model, measure
from ge_nas.config import RunConfig
from ge_nas.errors import ArchError, ConfigError, DatasetError, GeNasError, GrammarError, GrammarSyntaxError
from ge_nas.export import load_model
from ge_nas.metrics import Metrics

__version__ = "0.1.0"

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
