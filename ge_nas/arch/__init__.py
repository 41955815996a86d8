"""The architecture language: phenotype text -> ArchSpec, checked against the layer and hyperparameter signatures."""

from ge_nas.arch.parse import parse_arch
from ge_nas.arch.signatures import HPARAMS, LAYERS, LayerKind, Param, Value
from ge_nas.arch.spec import LANGUAGE_VERSION, ArchSpec, Layer

__all__ = [
    "HPARAMS",
    "LANGUAGE_VERSION",
    "LAYERS",
    "ArchSpec",
    "Layer",
    "LayerKind",
    "Param",
    "Value",
    "parse_arch",
]
