"""What a dataset config gives, known without loading it: input shape and number of classes
(`dataset_spec`), images in the training pool (`train_pool`), read from the DATASETS metadata."""

from __future__ import annotations

from typing import Optional

from harness.data.splits import load_dataset
from harness.registry import DATASETS, FROM_CONFIG


def _value(cfg, key: str):
    """A metadata value, FROM_CONFIG resolved against the dataset config."""
    value = DATASETS.meta(cfg.name)[key]
    if value != FROM_CONFIG:
        return value
    if key == "shape":
        return tuple(cfg.shape)
    if key == "classes":
        return cfg.num_classes
    return cfg.num_train + (cfg.num_val or 0)  # train_pool


def dataset_spec(cfg) -> tuple[tuple[int, int, int], int]:
    """(input shape C x H x W, number of classes) of a DatasetConfig; a dataset registered without them is
    loaded to learn them."""
    shape, classes = _value(cfg, "shape"), _value(cfg, "classes")
    if getattr(cfg, "classes", None):  # dataset.classes keeps only these
        classes = len(set(cfg.classes))
    if shape is None or classes is None:
        splits = load_dataset(cfg)
        shape = shape or splits.input_shape
        classes = classes or splits.num_classes
    return tuple(int(d) for d in shape), int(classes)


def train_pool(cfg) -> Optional[int]:
    """Images in the training pool (train + val) of a DatasetConfig where known without loading, else None."""
    if getattr(cfg, "classes", None):  # a subset of the classes: known once loaded
        return None
    return _value(cfg, "train_pool")
