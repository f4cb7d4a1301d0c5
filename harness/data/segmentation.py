"""Segmentation dataset sources: images with binary masks, registered in DATASETS like any other.

A segmentation source returns a RawDataset whose `*_y` are uint8 masks [N, 1, H, W] (0 background,
1 foreground) instead of labels, and class_names ["background", "foreground"]; `load_dataset`
splits and caps them as usual. They are registered with task segmentation, so only
`task: segmentation` runs may use them.

    synthetic_shapes     random circles and rectangles on a noisy background, seeded, any cfg.shape
    segmentation_folder  data_dir/images/*.png + data_dir/masks/*.png (same file names), resized to cfg.shape;
                         data_dir/train/{images,masks} + data_dir/test/{images,masks} when there is a test split,
                         else a seeded 20% of the pairs is the test set
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.data.sources import DatasetUnavailable, RawDataset, derive_seed
from harness.registry import DATASETS, FROM_CONFIG

MASK_CLASSES = ["background", "foreground"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def draw_shapes(n: int, shape, g: torch.Generator, max_shapes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """n images uint8 [n, C, H, W] with 1..max_shapes filled circles or rectangles each, and their masks.

    Background: a dark random colour, a gentle gradient and noise; shapes: a bright random colour
    each, plus noise. The mask is the union of the shapes.
    """
    c, h, w = shape
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
    size = min(h, w)
    dark = torch.rand(n, c, 1, 1, generator=g) * 90
    slope = (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 40
    img = dark + slope * (ys / h).unsqueeze(1)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    count = torch.randint(1, max_shapes + 1, (n,), generator=g)
    for k in range(max_shapes):
        cy = torch.rand(n, 1, 1, generator=g) * h
        cx = torch.rand(n, 1, 1, generator=g) * w
        ry = (0.1 + 0.15 * torch.rand(n, 1, 1, generator=g)) * size
        rx = (0.1 + 0.15 * torch.rand(n, 1, 1, generator=g)) * size
        circle = torch.rand(n, 1, 1, generator=g) < 0.5
        inside = torch.where(circle, ((ys - cy) ** 2 + (xs - cx) ** 2) <= ry**2,
                             ((ys - cy).abs() <= ry) & ((xs - cx).abs() <= rx))
        inside &= (k < count).view(n, 1, 1)
        colour = 140 + torch.rand(n, c, 1, 1, generator=g) * 115
        img = torch.where(inside.unsqueeze(1), colour, img)
        mask |= inside
    img = img + torch.randn(n, c, h, w, generator=g) * 12
    return img.round().clamp(0, 255).to(torch.uint8), mask.unsqueeze(1).to(torch.uint8)


@DATASETS.register("synthetic_shapes", task="segmentation", shape=FROM_CONFIG, classes=2,
                   train_pool=FROM_CONFIG)
def synthetic_shapes(cfg) -> RawDataset:
    """Binary segmentation of random shapes, deterministic in cfg.split_seed: num_train (+ num_val)
    training images and num_test test images of cfg.shape (e.g. [3, 64, 64])."""
    def sample(n: int, stream: int):
        g = torch.Generator().manual_seed(derive_seed(cfg.split_seed, stream, 7))
        parts = [draw_shapes(min(512, n - i), cfg.shape, g) for i in range(0, n, 512)]  # small float buffers
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    train_x, train_y = sample(cfg.num_train + (cfg.num_val or 0), 1)
    test_x, test_y = sample(cfg.num_test, 2)
    return RawDataset(train_x, train_y, test_x, test_y, list(MASK_CLASSES))


# --------------------------------------------------------------------------------------------------
# A folder of image / mask pairs


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DatasetUnavailable(f"dataset 'segmentation_folder': expected {images}/ and {masks}/ "
                                 "(image and mask files with the same names)")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs, missing = [], []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in by_stem:
            pairs.append((p, by_stem[p.stem]))
        else:
            missing.append(p.name)
    if missing:
        raise DatasetUnavailable(f"dataset 'segmentation_folder': {len(missing)} image(s) in {images} have no mask "
                                 f"of the same name in {masks}, e.g. {missing[0]}")
    if not pairs:
        raise DatasetUnavailable(f"dataset 'segmentation_folder': no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    return pairs


def read_pairs(pairs: list[tuple[Path, Path]], shape) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, C, H, W] (bilinear resize to shape) and 0/1 masks [N, 1, H, W] (nearest; any
    non-zero pixel is foreground)."""
    c, h, w = shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise ValueError(f"dataset 'segmentation_folder' reads 1- or 3-channel images; dataset.shape is {list(shape)}")
    images = torch.empty(len(pairs), c, h, w, dtype=torch.uint8)
    masks = torch.empty(len(pairs), 1, h, w, dtype=torch.uint8)
    for i, (image_path, mask_path) in enumerate(pairs):
        with Image.open(image_path) as im:
            im = im.convert(mode).resize((w, h), Image.BILINEAR)
            images[i] = torch.from_numpy(np.array(im).reshape(h, w, c)).permute(2, 0, 1)
        with Image.open(mask_path) as m:
            m = m.convert("L").resize((w, h), Image.NEAREST)
            masks[i, 0] = torch.from_numpy(np.array(m) > 0)
    return images, masks


@DATASETS.register("segmentation_folder", task="segmentation", shape=FROM_CONFIG, classes=2)
def segmentation_folder(cfg) -> RawDataset:
    """Image/mask pairs from cfg.data_dir, resized to cfg.shape (e.g. 859 pairs: data_dir/images/0001.png
    with data_dir/masks/0001.png ...)."""
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise DatasetUnavailable(f"dataset 'segmentation_folder': no folder {os.path.abspath(root)} "
                                 "(set dataset.data_dir to a folder holding images/ and masks/)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_x, train_y = read_pairs(_pairs(root / "train"), cfg.shape)
        test_x, test_y = read_pairs(_pairs(root / "test"), cfg.shape)
        return RawDataset(train_x, train_y, test_x, test_y, list(MASK_CLASSES))
    images, masks = read_pairs(_pairs(root), cfg.shape)
    n = len(images)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(cfg.split_seed, n)))
    num_test = round(0.2 * n)
    test, train = perm[:num_test].sort().values, perm[num_test:].sort().values
    return RawDataset(images[train], masks[train], images[test], masks[test], list(MASK_CLASSES))
