"""Device-resident batching: `DeviceBatches` holds one split on the device as uint8 and yields
normalized float batches, with shuffling, rank sharding and augmentation all done by tensor ops there.
`MaskBatches` does the same for segmentation (images and uint8 masks); `SplitBatches` is what the two
share (epoch order, normalization).

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

Where the work goes: `none` and `standard` (crop + flip) only move bytes, so each epoch's images
are gathered in one op, into a buffer kept from pass to pass, and batches are slices of it
(`standard` keeps the split padded and mirrored for it, ~3.1x the split's uint8 memory: 0.43 GB
for CIFAR-10's 45k training images); `heavy` and `s4` resample each batch in float (grid_sample).
Normalization is one multiply-add on the way out, in the model's dtype and memory format.
"""

from __future__ import annotations

import copy
import math
from typing import Iterator, Optional, Sequence

import torch

from harness import registry
from harness.data.augment import PRESETS, PaddedCrops
from harness.data.sources import derive_seed

NORMALIZATIONS = ("none", "imagenet", "half", "dataset")
AUGMENTATIONS = tuple(PRESETS)  # ("none", "standard", "heavy", "s4")
for _name in AUGMENTATIONS:  # the names sweep files may use (harness.registry: config checks them)
    registry.AUGMENTATIONS.register(_name)(_name)
for _name in NORMALIZATIONS:
    registry.NORMALIZATIONS.register(_name)(_name)
SEG_AUGMENTATIONS = ("none", "hflip")  # MaskBatches: hflip flips image and mask together

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


class SplitBatches:
    """What every device-resident batcher shares: one split of n samples on the device, the epoch's
    sample order (shuffled, rank-sharded) and the uint8 -> normalized float conversion. Subclasses
    say what a batch holds (`__iter__`)."""

    def __init__(self, n: int, channels: int, batch_size: int, *, device, shuffle: bool, normalize: str = "none",
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_last: bool = False, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.n, self.batch_size = n, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last, self.dtype = channels_last, dtype
        self.epoch = 0
        # normalized = x * scale + shift per channel, x on the 0..1 scale; scale_u8 takes x as 0..255
        mean, std = normalization(normalize, channels, mean, std)
        mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / std, -mean / std
        self.scale_u8 = self.scale / 255

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def with_seed(self, seed: int) -> "SplitBatches":
        """The same batcher with another seed (its own order and augmentation draws), sharing the split held
        on the device: a pack's members of different seeds, without a copy of the data each."""
        other = copy.copy(self)
        other.seed = seed
        if hasattr(other, "_spare"):
            other._spare = None  # the epoch buffer between passes is one batcher's own
        return other

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        if self.shuffle:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in the order they are yielded."""
        if self.shuffle:
            g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g, device=self.device)
            order = order[: self.num_samples * self.world_size]  # equal shares for every rank
        else:
            order = torch.arange(self.n, device=self.device)
        return order[self.rank :: self.world_size]

    def batch_slices(self) -> Iterator[slice]:
        """Each batch's positions in `indices()` (the last one short unless drop_last)."""
        for i in range(len(self)):
            yield slice(i * self.batch_size, (i + 1) * self.batch_size)

    def batch_indices(self) -> Iterator[torch.Tensor]:
        idx = self.indices()
        for batch in self.batch_slices():
            yield idx[batch]

    def generator(self) -> torch.Generator:
        """The augmentation draws' generator for this epoch and rank."""
        return torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, self.epoch, self.rank))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) images -> the model's input: normalized, in dtype and layout."""
        if x.dtype == torch.uint8:
            x = x.float().mul_(self.scale_u8)  # in place: half the time of (x / 255) * scale + shift
        else:
            x = x * self.scale
        x = x.add_(self.shift).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class DeviceBatches(SplitBatches):
    """Batches (images, labels) of a classification split; see the module docstring."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, device, shuffle: bool,
                 augment: str = "none", **kwargs):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if augment not in PRESETS:
            raise ValueError(f"unknown augment preset '{augment}'; allowed: {', '.join(AUGMENTATIONS)}")
        super().__init__(len(images), images.shape[1], batch_size, device=device, shuffle=shuffle, **kwargs)
        self.augment = augment
        self.labels = labels.to(self.device, torch.int64)
        images = images.to(self.device)  # the whole split, once, as uint8
        # `standard` crops straight from the split kept padded and mirrored; the others take whole images
        self.crops = PaddedCrops(images) if augment == "standard" else None
        self.images = None if self.crops else images
        self._spare = None  # the epoch buffer between passes (see __iter__)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx, g = self.indices(), self.generator()
        labels = self.labels.index_select(0, idx)
        # `none` and `standard` only move bytes: the epoch's uint8 images are gathered (and cropped) in ONE
        # op, in order, and each batch is a slice of them (on a GPU, no kernel launches per batch; on the
        # CPU, 3-5% of a small model's step). `heavy` and `s4` warp each batch in float.
        warp, epoch_images, buffer = None, None, None
        in_order = not self.shuffle and self.world_size == 1  # evaluation on one process: the split as it is
        if self.augment == "none" and in_order:
            epoch_images = self.images
        elif self.augment in ("none", "standard"):
            # The gather fills a buffer kept from the last pass: a fresh one costs the CPU more than the gather
            # itself (a split-sized malloc is a new mmap, page-faulted in). Batches never alias it (normalize
            # copies), and a pass running beside this one finds no spare and takes its own.
            buffer, self._spare = self._spare, None
            shape = (len(idx), *(self.crops.shape if self.crops is not None else self.images.shape[1:]))
            if buffer is None or buffer.shape != shape:
                buffer = torch.empty(shape, dtype=torch.uint8, device=self.device)
            if self.crops is not None:
                epoch_images = self.crops(idx, g, out=buffer)
            else:
                epoch_images = torch.index_select(self.images, 0, idx, out=buffer)
        else:
            warp = PRESETS[self.augment]
        try:
            for batch in self.batch_slices():
                if warp is None:
                    x = epoch_images[batch]
                else:
                    x = warp(self.images.index_select(0, idx[batch]).float().div_(255), g)
                yield self.normalize(x), labels[batch]
        finally:
            if buffer is not None:
                self._spare = buffer


class MaskBatches(SplitBatches):
    """Batches (images, masks) of a segmentation split: images and masks live on the device as uint8
    [N, C, H, W] / [N, 1, H, W] (masks stay uint8 in the batches too); order and sharding as
    DeviceBatches. `hflip` flips image and mask together, per sample, from the epoch's generator."""

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
