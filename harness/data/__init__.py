"""Datasets: sources (registry: name -> raw uint8 tensors), the seeded train/val split, device batching.

    sources.py  DATASETS registry (digits, synthetic, cifar10, cifar100, mnist, fashion_mnist, emnist_letters)
    segmentation.py  image/mask sources for `task: segmentation` (synthetic_shapes, segmentation_folder)
    splits.py   load_dataset(cfg) -> Splits: seeded train/val split of the training pool, caps, split_info
    loader.py   DeviceBatches: the split on the device as uint8, shuffled/sharded/normalized batches
    augment.py  batched on-device augmentation presets (none, standard, heavy, s4)

    splits = load_dataset(cfg.dataset)           # Splits: uint8 NCHW tensors + int64 labels, on CPU
    batches = DeviceBatches(splits.train_x, splits.train_y, batch_size=128, device=dev, ...)
"""

from __future__ import annotations

from harness.data.sources import DATASETS, DatasetUnavailable, RawDataset  # noqa: F401
from harness.data.segmentation import SEGMENTATION_DATASETS  # noqa: F401  (registers its sources)
from harness.data.splits import Splits, load_dataset  # noqa: F401
from harness.data.loader import DeviceBatches, NORMALIZATIONS, AUGMENTATIONS  # noqa: F401
