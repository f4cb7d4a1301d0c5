"""Classification metrics from a confusion matrix: per-class precision/recall/F1, macro and micro averages.

The trial accumulates the confusion matrix on the device (`add_to_confusion`, no host sync), sums it
across processes, and everything else is derived here, in pure functions of that matrix.
"""

from __future__ import annotations

import torch


def add_to_confusion(confusion: torch.Tensor, target: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """Add one batch's [true, pred] counts to `confusion` [C, C] in place, on its device. index_add_ rather
    than bincount (which syncs with the host on CUDA) or torchmetrics (whose import costs seconds)."""
    c = confusion.shape[0]
    confusion.view(-1).index_add_(0, target * c + preds, torch.ones_like(target, dtype=confusion.dtype))
    return confusion


def per_class(confusion: torch.Tensor) -> dict[str, list[float]]:
    """Precision, recall, F1 and support per class; a class never predicted has precision 0."""
    cm = confusion.double()
    tp = cm.diag()
    predicted = cm.sum(0)
    support = cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.long().tolist(),
    }


def summary(confusion: torch.Tensor) -> dict[str, float]:
    """Accuracy, macro-averaged P/R/F1 (over classes with support) and micro F1 (= accuracy)."""
    stats = per_class(confusion)
    present = [i for i, s in enumerate(stats["support"]) if s > 0]
    total = float(confusion.sum())
    accuracy = float(confusion.diag().sum()) / total if total else float("nan")

    def macro(key: str) -> float:
        return sum(stats[key][i] for i in present) / len(present) if present else float("nan")

    return {
        "accuracy": accuracy,
        "macro_precision": macro("precision"),
        "macro_recall": macro("recall"),
        "macro_f1": macro("f1"),
        "micro_f1": accuracy,  # single-label multiclass: micro P = micro R = micro F1 = accuracy
    }
