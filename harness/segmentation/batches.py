"""Device-resident image/mask batches: `MaskBatches` is DeviceBatches for segmentation.

Images and masks live on the device as uint8 [N, C, H, W] / [N, 1, H, W] (masks stay uint8 in the
batches too); shuffling and rank sharding follow DeviceBatches exactly (one permutation per epoch
seeded by (seed, epoch), rank r takes r::world_size; training drops the remainder). Augmentation
`hflip` flips image and mask together, per sample, from a generator seeded by (seed, epoch, rank).
"""

from __future__ import annotations

from typing import Iterator

import torch

from harness.data.loader import SplitBatches

SEG_AUGMENTATIONS = ("none", "hflip")


class MaskBatches(SplitBatches):
    def __init__(self, images: torch.Tensor, masks: torch.Tensor, batch_size: int, *, device, shuffle: bool,
                 augment: str = "none", **kwargs):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if masks.dtype != torch.uint8 or masks.shape != (len(images), 1, *images.shape[2:]):
            raise ValueError(f"masks must be uint8 [N, 1, H, W] matching the images {tuple(images.shape)}, "
                             f"got {masks.dtype} {tuple(masks.shape)}")
        if augment not in SEG_AUGMENTATIONS:
            raise ValueError(f"unknown segmentation augment '{augment}'; allowed: {', '.join(SEG_AUGMENTATIONS)}")
        super().__init__(len(images), images.shape[1], batch_size, device=device, shuffle=shuffle, **kwargs)
        self.augment = augment
        self.images, self.masks = images.to(self.device), masks.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self.generator()
        for batch in self.batch_indices():
            x, m = self.images.index_select(0, batch), self.masks.index_select(0, batch)
            if self.augment == "hflip":
                flip = (torch.rand(len(batch), generator=g, device=self.device) < 0.5).view(-1, 1, 1, 1)
                x, m = torch.where(flip, x.flip(3), x), torch.where(flip, m.flip(3), m)
            yield self.normalize(x), m
