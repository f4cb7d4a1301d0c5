"""Losses, every task, in ONE registry (harness.registry.LOSSES, `task` in each entry's metadata):
`loss.name` -> a factory -> fn(logits, targets) -> scalar, computed in float32 whatever the autocast dtype.

Classification (targets: int64 class labels): every loss takes raw logits, so any loss can sit behind
any model: `nll` applies log_softmax first (NLLLoss on raw logits is S3's bug), and the
regression-style losses (mse, l1) compare softmax probabilities with one-hot targets.
Segmentation (targets: uint8 masks [B, 1, H, W], logits [B, 1, H, W]): bce, dice, bce_dice;
`label_smoothing` does not apply to masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.registry import LOSSES


def _with_per_sample(loss, per_sample):
    """`loss` (the batch mean) carrying `loss.per_sample` (one value per sample): a pack computes every
    member's loss with it in one op, where vmap over `loss` would take twice as long."""
    loss.per_sample = per_sample
    return loss


@LOSSES.register("cross_entropy")
def cross_entropy(label_smoothing: float = 0.0):
    return _with_per_sample(lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing),
                            lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing,
                                                              reduction="none"))


@LOSSES.register("nll")
def nll(label_smoothing: float = 0.0):
    return _with_per_sample(lambda logits, y: F.nll_loss(F.log_softmax(logits, dim=1), y),
                            lambda logits, y: F.nll_loss(F.log_softmax(logits, dim=1), y, reduction="none"))


def _one_hot(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, logits.shape[1]).to(logits.dtype)


@LOSSES.register("mse")
def mse(label_smoothing: float = 0.0):
    return lambda logits, y: F.mse_loss(logits.softmax(dim=1), _one_hot(y, logits))


@LOSSES.register("l1")
def l1(label_smoothing: float = 0.0):
    return lambda logits, y: F.l1_loss(logits.softmax(dim=1), _one_hot(y, logits))


@LOSSES.register("bce_with_logits")
def bce_with_logits(label_smoothing: float = 0.0):
    def loss(logits, y):
        target = _one_hot(y, logits)
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / logits.shape[1]
        return F.binary_cross_entropy_with_logits(logits, target)

    return loss


@LOSSES.register("multi_margin")
def multi_margin(label_smoothing: float = 0.0):
    return lambda logits, y: F.multi_margin_loss(logits, y)


# ------------------------------------------------------------------------------ segmentation (masks)


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) with the mask, per image (smoothed: an empty mask predicted empty
    scores 0 loss), averaged over the batch."""
    p = logits.sigmoid().flatten(1)
    t = masks.flatten(1).to(p.dtype)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


@LOSSES.register("bce", task="segmentation")
def bce():
    return lambda logits, masks: F.binary_cross_entropy_with_logits(logits, masks.to(logits.dtype))


@LOSSES.register("dice", task="segmentation")
def dice():
    return soft_dice_loss


@LOSSES.register("bce_dice", task="segmentation")
def bce_dice():
    return lambda logits, masks: (F.binary_cross_entropy_with_logits(logits, masks.to(logits.dtype))
                                  + soft_dice_loss(logits, masks))


def create_loss(cfg):
    """The loss function for a LossConfig, either task; computed in float32 whatever the autocast dtype."""
    entry = LOSSES.entry(cfg.name)
    fn = entry.factory(label_smoothing=cfg.label_smoothing) if entry.meta["task"] == "classification" else entry.factory()
    loss = lambda logits, y: fn(logits.float(), y)  # noqa: E731
    per_sample = getattr(fn, "per_sample", None)
    if per_sample is not None:
        loss = _with_per_sample(loss, lambda logits, y: per_sample(logits.float(), y))
    return loss
