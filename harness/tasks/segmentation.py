"""Segmentation: a binary mask per image (`task: segmentation`). Counts are pixel tp, fp, fn, tn at
`segmentation.threshold`; scores are IoU, Dice and pixel accuracy of the whole split (total
intersection over total union). The score that ranks trials is IoU, and chance is what the best
constant mask scores on it: predicting every pixel foreground (IoU = the foreground's share), or
every pixel background where the validation masks are empty. So an all-background model is at
chance, and a model that over-predicts foreground is judged by the overlap it finds.

Every `segmentation.snapshot_every` epochs, and at the last one, a PNG of a few fixed validation
images with their true and predicted masks goes to results/<sweep>/snapshots/<trial_id>/epoch_<k>.png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from harness.data.loader import MaskBatches
from harness.losses import create_loss
from harness.models import create_model
from harness.segmentation import metrics
from harness.segmentation.snapshots import snapshot_path, write_snapshot


def logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


class Segmentation:
    name = "segmentation"
    metric = "val_iou"
    columns = {
        "train": ("acc", "iou"),
        "val": ("acc", "iou", "dice", "fg_share", "top_class_share"),
        "test": ("acc", "iou", "dice", "macro_f1", "micro_f1", "top_class_share"),
        "best_val": ("acc", "iou", "dice"),
    }
    num_counts = 4  # tp, fp, fn, tn

    def __init__(self, cfg):
        self.cfg = cfg
        self.threshold = logit(cfg.segmentation.threshold)  # sigmoid(logit) > t  <=>  logit > logit(t)
        self.val_batches = self.snap_images = self.snap_masks = None

    def batches(self, splits, **device_kwargs) -> tuple:
        cfg, tc, sc = self.cfg, self.cfg.train, self.cfg.segmentation
        norm = dict(normalize=cfg.dataset.normalize, mean=splits.split_info.get("mean"),
                    std=splits.split_info.get("std"), channels_last=tc.channels_last, **device_kwargs)
        train = MaskBatches(splits.train_x, splits.train_y, tc.batch_size, shuffle=True, augment=sc.augment,
                            seed=cfg.seed, **norm)
        self.val_batches = MaskBatches(splits.val_x, splits.val_y, tc.eval_batch_size, shuffle=False, **norm)
        test = MaskBatches(splits.test_x, splits.test_y, tc.eval_batch_size, shuffle=False, **norm)
        # the snapshots' fixed validation images (uint8, CPU)
        pick = torch.linspace(0, len(splits.val_x) - 1, min(sc.snapshot_images, len(splits.val_x))).round().long()
        self.snap_images, self.snap_masks = splits.val_x[pick], splits.val_y[pick]
        return train, self.val_batches, test

    def build(self, splits) -> tuple:
        cfg = self.cfg
        model = create_model(cfg.model.arch, splits.input_shape, splits.num_classes, init=cfg.model.init,
                                 **cfg.model.options)
        loss_fn = create_loss(cfg.loss)
        some_masks = splits.train_y[:256]
        uniform_loss = float(loss_fn(torch.zeros(some_masks.shape), some_masks))  # all-zero logits: p = 0.5 everywhere
        return model, loss_fn, uniform_loss

    def counts(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return metrics.pixel_counts(output > self.threshold, target)

    def scores(self, counts: torch.Tensor) -> dict[str, float]:
        tp, fp, fn, tn = counts.tolist()
        s = metrics.scores(tp, fp, fn, tn)
        # the trials row's shared columns: micro F1 of single-label pixels is pixel accuracy; the most
        # predicted class's share of the pixels
        return {**s, "micro_f1": s["acc"], "top_class_share": max(s["fg_share"], 1 - s["fg_share"])}

    def chance(self, splits) -> float:
        masks = splits.val_y
        fg = int(masks.bool().sum())
        bg = masks.numel() - fg
        if not masks.numel():
            return math.nan
        # the best constant mask: all background (IoU 0, or 1 when there is nothing to find) or all foreground
        return max(metrics.iou(0, 0, fg), metrics.iou(fg, bg, 0))

    def test_tables(self, counts: torch.Tensor, splits, trial_id: str) -> tuple[list[dict], list[dict]]:
        return [], []  # no per-class tables for masks

    @torch.no_grad()
    def after_epoch(self, model, row: dict, verdict, results_dir: Optional[Path]) -> None:
        """A snapshot every `snapshot_every` epochs and at the last one (the trial's last epoch, or a stop)."""
        sc, epoch = self.cfg.segmentation, row["epoch"]
        due = sc.snapshot_every and (epoch % sc.snapshot_every == 0 or verdict.stop or epoch == self.cfg.train.epochs)
        if not due or results_dir is None:
            return
        model.eval()
        x = self.val_batches.normalize(self.snap_images.to(self.val_batches.device))
        preds = (model(x) > self.threshold).cpu()
        tp, fp, fn, _ = metrics.pixel_counts(preds, self.snap_masks).tolist()
        title = f"epoch {epoch}: image | true | predicted (IoU {metrics.iou(tp, fp, fn):.3f})"
        write_snapshot(snapshot_path(results_dir, row["trial_id"], epoch), self.snap_images, self.snap_masks, preds,
                       title)
