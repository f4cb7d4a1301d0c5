"""Watching a run: best epoch, overfitting, early stopping and health flags, as pure functions.

Every function takes the epoch history (a list of per-epoch dicts with `epoch` counted from 1,
`train_loss`, `val_loss`, `val_acc`, ...) and returns a verdict, so each rule is tested with exact
values and no training. The trial loop calls `check_epoch` once per epoch.

"At chance" compares the task's score (`metric`: val_acc for classification, val_iou for segmentation)
with what a constant prediction scores on it (`chance`, from the task: the largest class's share of
the validation samples; the IoU of predicting every pixel foreground). Without a `chance`, the rules
read it from the row: `val_largest_class_share` (classification records it), else 1/classes.
The collapse rule reads classification's fields when a row has them: `val_top_class_share` (the
share of predictions on the most predicted class) and `val_classes_never_predicted` (classes with
validation samples that the model never predicts); rows without them are not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from harness.vocabulary import Status


def improved(value: float, best: float, direction: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than min_delta ('min': lower is better, 'max': higher)."""
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value < best - min_delta if direction == "min" else value > best + min_delta


def best_epoch(history: Sequence[dict], monitor: str = "val_loss", direction: str = "min",
               min_delta: float = 0.0) -> Optional[int]:
    """The epoch with the best monitored value (the first one, on ties); None if none is finite."""
    best, best_at = math.nan, None
    for row in history:
        if improved(row[monitor], best, direction, min_delta if best_at is not None else 0.0):
            best, best_at = row[monitor], row["epoch"]
    return best_at


def epochs_without_improvement(history: Sequence[dict], monitor: str = "val_loss", direction: str = "min",
                               min_delta: float = 0.0) -> int:
    at = best_epoch(history, monitor, direction, min_delta)
    if at is None:
        return len(history)
    return history[-1]["epoch"] - at


def should_stop_early(history: Sequence[dict], monitor: str, direction: str, patience: int,
                      min_delta: float = 0.0) -> bool:
    """Early stopping: no improvement of the monitored value for `patience` epochs."""
    return epochs_without_improvement(history, monitor, direction, min_delta) >= patience


def overfit_epoch(history: Sequence[dict], patience: int = 1, min_delta: float = 0.0) -> Optional[int]:
    """The first epoch after which validation loss fails to improve by min_delta for `patience`
    epochs while the training loss keeps falling (lower at the end of that window than at its start).

    With patience=1 this is S3's rule: overfitting shows when validation loss rises above the
    best so far while training loss still falls.
    """
    best, best_at = math.nan, None
    for i, row in enumerate(history):
        if improved(row["val_loss"], best, "min", min_delta if best_at is not None else 0.0):
            best, best_at = row["val_loss"], i
        elif best_at is not None and i - best_at >= patience:
            window = history[best_at : i + 1]
            falling = all(b["train_loss"] < a["train_loss"] for a, b in zip(window, window[1:]))
            if falling:
                return history[best_at]["epoch"]
    return None


def generalization_gap(row: dict) -> dict[str, float]:
    """Validation minus training loss, training minus validation accuracy, for one epoch."""
    return {"gap_loss": row["val_loss"] - row["train_loss"], "gap_acc": row["train_acc"] - row["val_acc"]}


def is_diverged(row: dict, uniform_loss: Optional[float] = None, factor: float = 100.0) -> bool:
    """A non-finite training or validation loss, or a training loss `factor` times that of a
    uniform prediction (the loss of all-zero logits): the weights have blown up."""
    if not (math.isfinite(row["train_loss"]) and math.isfinite(row.get("val_loss", 0.0))):
        return True
    return uniform_loss is not None and row["train_loss"] > factor * uniform_loss


def _field(row: dict, key: str) -> Optional[float]:
    """A row's optional numeric field; None when absent or not finite (NaN: nothing was evaluated)."""
    try:
        value = float(row.get(key))
    except (TypeError, ValueError):  # absent (None), or a null read back from Parquet (pandas.NA)
        return None
    return value if math.isfinite(value) else None


def chance_accuracy(row: dict, num_classes: int) -> float:
    """What a constant prediction scores on validation: the largest class's share of the validation
    samples (`val_largest_class_share`), 1/classes where the row does not record it. On a balanced
    set the two agree; on a small or unbalanced one the constant prediction scores more than 1/classes,
    and a model collapsed onto the largest class scores exactly that."""
    share = _field(row, "val_largest_class_share")
    return share if share is not None else 1.0 / num_classes


def at_chance(row: dict, chance: float, margin: float, metric: str = "val_acc") -> bool:
    """The score `metric` within `margin` of `chance` (what a constant prediction scores on it)."""
    score = _field(row, metric)
    return score is not None and score <= chance + margin


def is_collapsed(row: dict, num_classes: int, unpredicted: float, top_share: float, margin: float) -> bool:
    """Validation predictions collapsed onto a few classes while accuracy stays near chance (S2: six of
    ten classes never predicted, 31% of the predictions on one class, accuracy 10-14%).

    Collapsed: validation accuracy within `margin` of chance (`chance_accuracy`), and either at least a
    fraction `unpredicted` of the classes never predicted (`val_classes_never_predicted`) or the most
    predicted class taking at least `top_share` times the largest class's share of the samples
    (`val_top_class_share` over `val_largest_class_share`: a perfect model's top share is the latter).
    The accuracy condition keeps a run that is learning but still skewed (digits after one epoch: 56%
    accuracy, 42% of the predictions on one class) from being called collapsed. A rule whose fields
    the row lacks is not judged: segmentation rows are never collapsed.
    """
    acc = _field(row, "val_acc")
    if acc is None or acc > chance_accuracy(row, num_classes) + margin:
        return False
    never = _field(row, "val_classes_never_predicted")
    if never is not None and never >= unpredicted * num_classes:
        return True
    top, largest = _field(row, "val_top_class_share"), _field(row, "val_largest_class_share")
    return top is not None and largest is not None and largest > 0 and top >= top_share * largest


def is_stalled(history: Sequence[dict], chance: float, after_epochs: int, margin: float, metric: str = "val_acc") -> bool:
    """The score `metric` still within `margin` of `chance` after `after_epochs` epochs."""
    return len(history) >= after_epochs and at_chance(history[-1], chance, margin, metric)


@dataclass
class Verdict:
    """What the monitor says after an epoch: stop or go on, with which status, and the flags raised."""

    stop: bool = False
    status: str = Status.RUNNING
    flags: list[str] = field(default_factory=list)


def check_epoch(history: Sequence[dict], num_classes: int, health, early_stopping,
                uniform_loss: Optional[float] = None, metric: str = "val_acc", chance: Optional[float] = None) -> Verdict:
    """Health flags and the stop decision after the last epoch of `history`.

    `health` is a HealthConfig, `early_stopping` an EarlyStoppingConfig, `uniform_loss` the loss of
    a uniform prediction (for the divergence rule), `metric` the task's score and `chance` what a
    constant prediction scores on it (None: `chance_accuracy` of the row, for val_acc). Flags, in this order: at_chance, collapsed,
    vanishing_grad, exploding_grad, stalled; at_chance, collapsed and the gradient flags never stop a
    run. Order of precedence: diverged (stop at once) > stalled (stop when health.stop_on_stall) >
    early stop.
    """
    row = history[-1]
    epoch = row["epoch"]
    verdict = Verdict()
    level = chance if chance is not None else chance_accuracy(row, num_classes)
    if health.enabled:
        if is_diverged(row, uniform_loss, health.divergence_factor):
            return Verdict(stop=True, status=Status.DIVERGED, flags=[f"diverged@{epoch}"])
        if at_chance(row, level, health.stall_margin, metric):
            verdict.flags.append(f"at_chance@{epoch}")
        if is_collapsed(row, num_classes, health.collapse_unpredicted, health.collapse_top_share,
                        health.collapse_margin):
            verdict.flags.append(f"collapsed@{epoch}")
        grad_min = row.get("grad_norm_min_layer")
        if grad_min is not None and math.isfinite(grad_min) and grad_min < health.vanishing_grad:
            verdict.flags.append(f"vanishing_grad@{epoch}")
        grad = row.get("grad_norm")
        if grad is not None and (not math.isfinite(grad) or grad > health.exploding_grad):
            verdict.flags.append(f"exploding_grad@{epoch}")
        if is_stalled(history, level, health.stall_epochs, health.stall_margin, metric):
            verdict.flags.append(f"stalled@{epoch}")
            if health.stop_on_stall:
                verdict.stop, verdict.status = True, Status.STALLED
                return verdict
    if early_stopping.enabled and should_stop_early(
        history, early_stopping.monitor, early_stopping.direction, early_stopping.patience, early_stopping.min_delta
    ):
        verdict.stop, verdict.status = True, Status.EARLY_STOPPED
    return verdict
