"""Classification: one label per image. Counts are the confusion matrix of each batch (true x predicted,
flattened), so every score (accuracy, the shares the monitor's collapse rule reads, macro F1) and the
per-class test tables come from one summed matrix. Chance is the largest class's share of the
validation samples: what predicting that class everywhere scores."""

from __future__ import annotations

from typing import Optional

import torch

from harness import metrics
from harness.data import DeviceBatches
from harness.losses import create_loss
from harness.models import create_model
from harness.models.transfer import apply_transfer


def confusion_counts(output: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One batch's confusion matrix, flattened (true x classes + predicted), int64 on the device: outputs
    [B, classes] and targets [B] -> [classes^2], or a pack's [K, B, classes] and [K, B] -> [K, classes^2]
    (each member's cells offset into its own matrix). index_add_ rather than bincount, which syncs with
    the host on CUDA."""
    cells = torch.add(output.argmax(-1), target, alpha=num_classes)
    size = num_classes * num_classes
    if target.dim() == 1:
        return target.new_zeros(size).index_add_(0, cells, target.new_ones(()).expand_as(cells))
    k = target.shape[0]
    cells = (cells + torch.arange(k, device=target.device).view(k, 1) * size).flatten()
    return target.new_zeros(k * size).index_add_(0, cells, target.new_ones(()).expand_as(cells)).view(k, size)


class Classification:
    name = "classification"
    metric = "val_acc"
    columns = {
        "train": ("acc",),
        "val": ("acc", "top_class_share", "largest_class_share", "classes_never_predicted"),
        "test": ("acc", "macro_f1", "micro_f1", "top_class_share"),
        "best_val": ("acc",),
    }

    def __init__(self, cfg):
        self.cfg = cfg
        self.num_classes = self.num_counts = 0

    def batches(self, splits, **device_kwargs) -> tuple:
        cfg, tc = self.cfg, self.cfg.train
        norm = dict(normalize=cfg.dataset.normalize, mean=splits.split_info.get("mean"),
                    std=splits.split_info.get("std"), channels_last=tc.channels_last, **device_kwargs)
        return (DeviceBatches(splits.train_x, splits.train_y, tc.batch_size, shuffle=True, augment=cfg.dataset.augment,
                              seed=cfg.seed, **norm),
                DeviceBatches(splits.val_x, splits.val_y, tc.eval_batch_size, shuffle=False, **norm),
                DeviceBatches(splits.test_x, splits.test_y, tc.eval_batch_size, shuffle=False, **norm))

    def build(self, splits) -> tuple:
        cfg, c = self.cfg, splits.num_classes
        self.num_classes, self.num_counts = c, c * c
        model = create_model(cfg.model.arch, splits.input_shape, c, init=cfg.model.init, **cfg.model.options)
        model = apply_transfer(model, cfg.model)  # init_from / finetune: before the optimizer sees the parameters
        loss_fn = create_loss(cfg.loss)
        uniform_loss = float(loss_fn(torch.zeros(len(splits.train_y), c), splits.train_y))
        return model, loss_fn, uniform_loss

    def counts(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return confusion_counts(output, target, self.num_classes)

    def pack_counts(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`counts` of K members at once: outputs [K, B, classes], targets [K, B] -> [K, classes^2]."""
        return confusion_counts(output, target, self.num_classes)

    def scores(self, counts: torch.Tensor) -> dict[str, float]:
        c = self.num_classes
        cm = counts.view(c, c)
        n = float(cm.sum())
        predicted, support = cm.sum(0), cm.sum(1)
        summary = metrics.summary(cm)
        return {
            "acc": float(cm.diag().sum()) / n if n else float("nan"),
            "top_class_share": float(predicted.max()) / n if n else float("nan"),
            # for the monitor's collapse rule: the largest class's share (what a perfect model's top share is)
            # and the classes that have samples here but are never predicted
            "largest_class_share": float(support.max()) / n if n else float("nan"),
            "classes_never_predicted": int(((predicted == 0) & (support > 0)).sum()),
            "macro_f1": summary["macro_f1"], "micro_f1": summary["micro_f1"],
        }

    def chance(self, splits) -> float:
        labels = splits.val_y
        if len(labels) == 0:
            return float("nan")
        return float(torch.bincount(labels.long()).max()) / len(labels)

    def test_tables(self, counts: torch.Tensor, splits, trial_id: str) -> tuple[list[dict], list[dict]]:
        c = self.num_classes
        cm = counts.view(c, c)
        per_class = metrics.per_class(cm)
        classes = [{"trial_id": trial_id, "class_index": i, "class_name": splits.class_names[i],
                    "precision": per_class["precision"][i], "recall": per_class["recall"][i],
                    "f1": per_class["f1"][i], "support": per_class["support"][i]} for i in range(c)]
        cells = cm.tolist()
        confusion = [{"trial_id": trial_id, "true": t, "pred": p, "count": n}
                     for t, row in enumerate(cells) for p, n in enumerate(row) if n > 0]
        return classes, confusion

    def after_epoch(self, model, row: dict, verdict, results_dir: Optional[object]) -> None:
        pass  # nothing to do between epochs
