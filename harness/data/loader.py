"""Device-resident batching: `DeviceBatches` holds one split on the device as uint8 and yields
normalized float batches, with shuffling, rank sharding and augmentation all done by tensor ops there.

    train = DeviceBatches(splits.train_x, splits.train_y, 128, device=dev, shuffle=True,
                          augment="standard", normalize="imagenet", seed=seed, rank=rank, world_size=ws)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for x, y in train: ...

Shuffling: one permutation per epoch from a generator seeded by (seed, epoch), the same on every
rank; rank r takes positions r, r + world_size, ... of it. Training loaders (shuffle=True) drop
the remainder so that every rank runs the same number of steps; evaluation loaders
(shuffle=False) keep every sample in order, ranks sharing them out as rank::world_size.
Augmentation draws from a generator seeded by (seed, epoch, rank) on the device.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import torch

from harness.data.augment import PRESETS
from harness.data.sources import derive_seed

NORMALIZATIONS = ("none", "imagenet", "half", "dataset")
AUGMENTATIONS = tuple(PRESETS)  # ("none", "standard", "heavy", "s4")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization(preset: str, channels: int, mean=None, std=None) -> tuple[list[float], list[float]]:
    """(mean, std) per channel on the 0..1 scale for a NORMALIZATIONS preset."""
    if preset == "none":
        return [0.0] * channels, [1.0] * channels
    if preset == "half":
        return [0.5] * channels, [0.5] * channels
    if preset == "imagenet":
        if channels == 3:
            return list(IMAGENET_MEAN), list(IMAGENET_STD)
        return [sum(IMAGENET_MEAN) / 3] * channels, [sum(IMAGENET_STD) / 3] * channels  # grayscale: the average
    if preset == "dataset":
        if mean is None or std is None:
            raise ValueError("normalize 'dataset' needs the training split's mean and std (splits.split_info)")
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"normalize 'dataset': {len(mean)} means / {len(std)} stds for {channels} channels")
        return mean, [max(s, 1e-8) for s in std]
    raise ValueError(f"unknown normalize preset '{preset}'; allowed: {', '.join(NORMALIZATIONS)}")


class DeviceBatches:
    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        device,
        shuffle: bool,
        augment: str = "none",
        normalize: str = "none",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if augment not in PRESETS:
            raise ValueError(f"unknown augment preset '{augment}'; allowed: {', '.join(AUGMENTATIONS)}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)  # the whole split, once, as uint8
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last, self.dtype = channels_last, dtype
        self.epoch = 0
        # x / 255 normalized is x * scale + shift, per channel
        mean, std = normalization(normalize, images.shape[1], mean, std)
        mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / std, -mean / std

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        n = len(self.labels)
        if self.shuffle:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in the order they are yielded."""
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=g, device=self.device)
            order = order[: self.num_samples * self.world_size]  # equal shares for every rank
        else:
            order = torch.arange(n, device=self.device)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self.indices()
        augment = PRESETS[self.augment]
        g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch, self.rank))
        for i in range(len(self)):
            batch = idx[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[batch].float().div_(255)
            x = augment(x, g)
            x = (x * self.scale + self.shift).to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[batch]
