"""Prediction snapshots: PNG grids of image | true mask | predicted mask for a few fixed validation images.

    results/<sweep>/snapshots/<trial_id>/epoch_<k>.png

The segmentation task writes one every `segmentation.snapshot_every` epochs and at its last epoch; the report
embeds the latest ones of the best trials. Drawn with PIL (no matplotlib), written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from harness.files import atomic_path

SNAPSHOT_DIR = "snapshots"
CELL = 96  # small images are scaled up (nearest) to at least this many pixels a side
_EPOCH = re.compile(r"epoch_(\d+)\.png")


def snapshot_path(results_dir: str | Path, trial_id: str, epoch: int) -> Path:
    return Path(results_dir) / SNAPSHOT_DIR / trial_id / f"epoch_{epoch}.png"


def snapshots(results_dir: str | Path, trial_id: str) -> list[tuple[int, Path]]:
    """(epoch, path) of a trial's snapshots, oldest first."""
    folder = Path(results_dir) / SNAPSHOT_DIR / trial_id
    found = [(int(m.group(1)), p) for p in folder.glob("epoch_*.png") if (m := _EPOCH.fullmatch(p.name))]
    return sorted(found)


def latest_snapshot(results_dir: str | Path, trial_id: str) -> Optional[tuple[int, Path]]:
    found = snapshots(results_dir, trial_id)
    return found[-1] if found else None


def snapshot_grid(images, masks, preds, title: str = ""):
    """A PIL image: one row per sample, columns image | true mask | predicted mask, a title line on top.

    `images` uint8 [K, C, H, W] (1 channel: gray; 3 or more: the first 3 as RGB), `masks` and `preds`
    [K, 1, H, W] with 0/1 values (CPU tensors or arrays)."""
    images, masks, preds = (np.asarray(a) for a in (images, masks, preds))
    k, c, h, w = images.shape
    scale = max(1, -(-CELL // max(h, w)))
    gap, top = 4, 16 if title else 0
    cols = [images[:, :3] if c >= 3 else np.repeat(images[:, :1], 3, axis=1),
            np.repeat(masks[:, :1].astype(bool), 3, axis=1) * np.uint8(255),
            np.repeat(preds[:, :1].astype(bool), 3, axis=1) * np.uint8(255)]
    cw, ch = w * scale, h * scale
    sheet = Image.new("RGB", (3 * cw + 4 * gap, top + k * (ch + gap) + gap), (255, 255, 255))
    for row in range(k):
        for col, tiles in enumerate(cols):
            tile = Image.fromarray(np.ascontiguousarray(tiles[row].transpose(1, 2, 0).astype(np.uint8)))
            sheet.paste(tile.resize((cw, ch), Image.NEAREST), (gap + col * (cw + gap), top + gap + row * (ch + gap)))
    if title:
        ImageDraw.Draw(sheet).text((gap, 2), title, fill=(0, 0, 0))
    return sheet


def write_snapshot(path: str | Path, images, masks, preds, title: str = "") -> Path:
    """Draw the grid and write it to `path` (temp file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        snapshot_grid(images, masks, preds, title).save(tmp, format="PNG")
    return path
