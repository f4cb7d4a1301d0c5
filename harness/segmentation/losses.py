"""Mask losses: `loss.name` -> a factory () -> fn(logits [B, 1, H, W], masks uint8 [B, 1, H, W]) -> scalar.

Separate from harness.losses.LOSSES (class-label losses); `task: segmentation` runs take these names.
Computed in float32 whatever the autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.registry import Registry

SEG_LOSSES = Registry("segmentation loss")


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) with the mask, per image (smoothed: an empty mask predicted empty
    scores 0 loss), averaged over the batch."""
    p = logits.sigmoid().flatten(1)
    t = masks.flatten(1).to(p.dtype)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


@SEG_LOSSES.register("bce")
def bce():
    return lambda logits, masks: F.binary_cross_entropy_with_logits(logits, masks.to(logits.dtype))


@SEG_LOSSES.register("dice")
def dice():
    return soft_dice_loss


@SEG_LOSSES.register("bce_dice")
def bce_dice():
    return lambda logits, masks: (F.binary_cross_entropy_with_logits(logits, masks.to(logits.dtype))
                                  + soft_dice_loss(logits, masks))


def create_seg_loss(cfg):
    """The mask loss for a LossConfig (`label_smoothing` does not apply to masks)."""
    fn = SEG_LOSSES.get(cfg.name)()
    return lambda logits, masks: fn(logits.float(), masks)
