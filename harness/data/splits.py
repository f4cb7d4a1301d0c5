"""The seeded train/val/test split: `load_dataset(cfg) -> Splits`.

Validation is a seeded random part of the training pool (torch.Generator seeded with
cfg.split_seed), so the same split_seed gives the same split on every machine and every trial.
`dataset.classes` keeps only the listed classes in every split, relabelled 0..len-1 in the listed
order, before the split (validation is then a fraction of the kept pool). The `--smoke` caps
(max_train, max_eval) subsample after the split, so validation never leaks into training.
`split_info` records what was used (sizes, a hash of the validation indices) and the training
split's per-channel mean/std (the `dataset` normalize preset).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from harness.data.sources import RawDataset, derive_seed
from harness.registry import DATASETS


@dataclass
class Splits:
    train_x: torch.Tensor  # uint8 [N, C, H, W], CPU
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list
    input_shape: tuple  # (C, H, W)
    num_classes: int
    split_info: dict  # dataset, split_seed, num_train, num_val, num_test, split_hash, mean, std


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 [N, C, H, W] images, on the 0..1 scale."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(1024):  # float64 in chunks: exact sums of integers, little memory
        chunk = chunk.double()
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square_().sum(dim=(0, 2, 3))
    count = max(images.numel() // images.shape[1], 1)
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=0).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def select_classes(raw: RawDataset, classes: list[int], name: str) -> RawDataset:
    """Only the samples of `classes` (indices into raw.class_names), relabelled 0..len-1 in that order."""
    count = len(raw.class_names)
    bad = [c for c in classes if not 0 <= c < count]
    if len(classes) < 2 or len(set(classes)) != len(classes) or bad:
        raise ValueError(f"dataset '{name}': classes {classes} must be at least 2 different class indices "
                         f"from 0 to {count - 1}")
    relabel = torch.full((max(count, int(raw.train_y.max()) + 1, int(raw.test_y.max()) + 1),), -1, dtype=torch.int64)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))

    def keep(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = relabel[y]
        kept = new >= 0
        return x[kept], new[kept]

    train_x, train_y = keep(raw.train_x, raw.train_y)
    test_x, test_y = keep(raw.test_x, raw.test_y)
    return RawDataset(train_x, train_y, test_x, test_y, [raw.class_names[c] for c in classes])


def load_dataset(cfg) -> Splits:
    """Load `cfg.name` (a DatasetConfig), keep `cfg.classes` if set, and split its training pool into
    train and val."""
    raw = DATASETS.get(cfg.name)(cfg)
    if getattr(cfg, "classes", None) is not None:
        raw = select_classes(raw, cfg.classes, cfg.name)
    n = len(raw.train_y)
    num_val = cfg.num_val if cfg.num_val is not None else round(cfg.val_fraction * n)
    if num_val >= n:
        raise ValueError(f"dataset '{cfg.name}': a validation split of {num_val} leaves no training images "
                         f"(the training pool holds {n})")

    g = torch.Generator().manual_seed(cfg.split_seed)
    perm = torch.randperm(n, generator=g)
    val_idx, train_idx = perm[:num_val], perm[num_val:]
    test_idx = torch.arange(len(raw.test_y))
    # caps: the index lists are in random order, so their heads are seeded subsamples
    if cfg.max_train is not None:
        train_idx = train_idx[: cfg.max_train]
    if cfg.max_eval is not None:
        val_idx = val_idx[: cfg.max_eval]
        if cfg.max_eval < len(test_idx):
            g_test = torch.Generator().manual_seed(derive_seed(cfg.split_seed, len(test_idx)))
            test_idx = torch.randperm(len(test_idx), generator=g_test)[: cfg.max_eval]
    train_idx, val_idx, test_idx = (idx.sort().values for idx in (train_idx, val_idx, test_idx))

    val_bytes = f"{n}:".encode() + val_idx.numpy().astype("<i8").tobytes()
    train_x = raw.train_x[train_idx]
    mean, std = channel_stats(train_x)
    info = {
        "dataset": cfg.name,
        "split_seed": cfg.split_seed,
        "num_train": len(train_idx),
        "num_val": len(val_idx),
        "num_test": len(test_idx),
        "split_hash": hashlib.sha1(val_bytes).hexdigest()[:12],
        "mean": mean,
        "std": std,
    }
    return Splits(
        train_x=train_x, train_y=raw.train_y[train_idx],
        val_x=raw.train_x[val_idx], val_y=raw.train_y[val_idx],
        test_x=raw.test_x[test_idx], test_y=raw.test_y[test_idx],
        class_names=list(raw.class_names),
        input_shape=tuple(raw.train_x.shape[1:]),
        num_classes=len(raw.class_names),
        split_info=info,
    )
