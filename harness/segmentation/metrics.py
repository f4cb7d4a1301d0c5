"""Binary segmentation metrics as pure functions of pixel counts.

The segmentation task (harness.tasks.segmentation) counts `pixel_counts` (true/false positives/negatives, summed over every pixel of
every image) on the device, sums them across processes, and derives the scores once per epoch:
IoU and Dice are dataset-level (total intersection over total union), not means of per-image scores.
An empty prediction of an empty mask scores 1 (nothing to find, nothing found).
"""

from __future__ import annotations

import math

import torch


def pixel_counts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[tp, fp, fn, tn] (int64, exact, on the inputs' device) of boolean/0-1 masks of the same shape."""
    pred, target = pred.bool(), target.bool()
    tp = (pred & target).sum()
    fp = (pred & ~target).sum()
    fn = (~pred & target).sum()
    return torch.stack([tp, fp, fn, pred.numel() - tp - fp - fn])  # numel is a python int: no host-to-device copy


def iou(tp: float, fp: float, fn: float) -> float:
    """Intersection over union of the foreground: tp / (tp + fp + fn)."""
    union = tp + fp + fn
    return tp / union if union else 1.0


def dice(tp: float, fp: float, fn: float) -> float:
    """Dice coefficient (the foreground's F1): 2 tp / (2 tp + fp + fn)."""
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 1.0


def pixel_accuracy(tp: float, fp: float, fn: float, tn: float) -> float:
    total = tp + fp + fn + tn
    return (tp + tn) / total if total else math.nan


def scores(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """Every score of one split from its pixel counts: iou, dice, acc (pixel accuracy), macro_f1
    (mean F1 of foreground and background), fg_share (share of pixels predicted foreground)."""
    total = tp + fp + fn + tn
    return {
        "iou": iou(tp, fp, fn), "dice": dice(tp, fp, fn), "acc": pixel_accuracy(tp, fp, fn, tn),
        "macro_f1": (dice(tp, fp, fn) + dice(tn, fn, fp)) / 2,  # background's F1: its tp is tn
        "fg_share": (tp + fp) / total if total else math.nan,
    }
