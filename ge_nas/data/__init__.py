"""Data sets -> in-memory tensors and splits; each file format has its own reader module."""

from ge_nas.data.arrays import Arrays
from ge_nas.data.datasets import (
    DATASET_NAMES,
    NPZ_PREFIX,
    SYSTEM_DATA_DIR,
    Dataset,
    Splits,
    load_dataset,
    load_raw,
    load_splits,
    run_splits,
    split_dataset,
)
from ge_nas.data.standardization import Standardization, Standardize

__all__ = [
    "DATASET_NAMES",
    "Arrays",
    "NPZ_PREFIX",
    "SYSTEM_DATA_DIR",
    "Dataset",
    "Splits",
    "Standardization",
    "Standardize",
    "load_dataset",
    "load_raw",
    "load_splits",
    "run_splits",
    "split_dataset",
]
