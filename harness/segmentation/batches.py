"""Device-resident image/mask batches: `MaskBatches` is DeviceBatches for segmentation.

Images and masks live on the device as uint8 [N, C, H, W] / [N, 1, H, W] (masks stay uint8 in the
batches too); shuffling and rank sharding follow DeviceBatches exactly (one permutation per epoch
seeded by (seed, epoch), rank r takes r::world_size; training drops the remainder). Augmentation
`hflip` flips image and mask together, per sample, from a generator seeded by (seed, epoch, rank).
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import torch

from harness.data.loader import normalization
from harness.data.sources import derive_seed

SEG_AUGMENTATIONS = ("none", "hflip")


class MaskBatches:
    def __init__(self, images: torch.Tensor, masks: torch.Tensor, batch_size: int, *, device, shuffle: bool,
                 augment: str = "none", normalize: str = "none", mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, dtype: torch.dtype = torch.float32):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if masks.dtype != torch.uint8 or masks.shape != (len(images), 1, *images.shape[2:]):
            raise ValueError(f"masks must be uint8 [N, 1, H, W] matching the images {tuple(images.shape)}, "
                             f"got {masks.dtype} {tuple(masks.shape)}")
        if augment not in SEG_AUGMENTATIONS:
            raise ValueError(f"unknown segmentation augment '{augment}'; allowed: {', '.join(SEG_AUGMENTATIONS)}")
        self.device = torch.device(device)
        self.images, self.masks = images.to(self.device), masks.to(self.device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last, self.dtype = channels_last, dtype
        self.epoch = 0
        mean, std = normalization(normalize, images.shape[1], mean, std)
        mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / std, -mean / std

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        n = len(self.images)
        return n // self.world_size if self.shuffle else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> torch.Tensor:
        n = len(self.images)
        if self.shuffle:
            g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=g, device=self.device)[: self.num_samples * self.world_size]
        else:
            order = torch.arange(n, device=self.device)
        return order[self.rank :: self.world_size]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the model's float input (0..1, then the normalize preset)."""
        x = (images.float().div_(255) * self.scale + self.shift).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self.indices()
        g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch, self.rank))
        for i in range(len(self)):
            batch = idx[i * self.batch_size : (i + 1) * self.batch_size]
            x, m = self.images[batch], self.masks[batch]
            if self.augment == "hflip":
                flip = (torch.rand(len(batch), generator=g, device=self.device) < 0.5).view(-1, 1, 1, 1)
                x, m = torch.where(flip, x.flip(3), x), torch.where(flip, m.flip(3), m)
            yield self.normalize(x), m
