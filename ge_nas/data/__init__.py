"""Data sets -> in-memory tensors and splits; each file format has its own reader module."""

from ge_nas.data.datasets import (
    DATASET_NAMES,
    NPZ_PREFIX,
    SYSTEM_DATA_DIR,
    Dataset,
    Splits,
    load_dataset,
    load_splits,
    split_dataset,
)

__all__ = [
    "DATASET_NAMES",
    "NPZ_PREFIX",
    "SYSTEM_DATA_DIR",
    "Dataset",
    "Splits",
    "load_dataset",
    "load_splits",
    "split_dataset",
]
