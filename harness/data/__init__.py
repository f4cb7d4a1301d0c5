"""Datasets: sources (ONE registry, harness.registry.DATASETS, with task/shape/classes metadata), the
seeded train/val split, device batching.

    sources.py       classification sources (digits, mnist_5k, synthetic, cifar10, cifar100, mnist,
                     fashion_mnist, emnist_letters), RawDataset, DatasetUnavailable
    segmentation.py  image/mask sources, task segmentation (synthetic_shapes, segmentation_folder)
    splits.py        load_dataset(cfg) -> Splits: `classes` kept, seeded train/val split of the pool, caps, split_info
    spec.py          dataset_spec(cfg) -> (shape, classes), train_pool(cfg): from metadata, without loading
    loader.py        DeviceBatches: the split on the device as uint8, shuffled/sharded/normalized batches
    augment.py       batched on-device augmentation presets (none, standard, heavy, s4)
    download.py      `python -m harness.data download SWEEP.yaml` (fetch a sweep's datasets), missing_datasets(trials)

    splits = load_dataset(cfg.dataset)           # Splits: uint8 NCHW tensors + int64 labels, on CPU
    batches = DeviceBatches(splits.train_x, splits.train_y, batch_size=128, device=dev, ...)
"""

from __future__ import annotations

from harness.data import segmentation  # noqa: F401  (its decorators register the segmentation sources)
from harness.data.loader import AUGMENTATIONS, NORMALIZATIONS, DeviceBatches
from harness.data.sources import DatasetUnavailable, RawDataset
from harness.data.spec import dataset_spec, train_pool
from harness.data.splits import Splits, load_dataset
from harness.registry import DATASETS

__all__ = ["DATASETS", "AUGMENTATIONS", "NORMALIZATIONS", "DeviceBatches", "DatasetUnavailable", "RawDataset",
           "Splits", "load_dataset", "dataset_spec", "train_pool"]
