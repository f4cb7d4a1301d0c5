"""The words every layer shares: what a trial's status can be, which metrics are minimized, and how
numbers and durations are written for people. Nothing here imports from the rest of the harness.

    Status.COMPLETED == "completed"          # a str enum: compares equal to the strings in Parquet
    direction("val_loss") == "min"; direction("val_iou") == "max"
    metric_range("test_acc") == (0.0, 1.0)
    format_seconds(3725) == "1h02m"
"""

from __future__ import annotations

import enum
import math
from typing import Any, Literal


class Status(str, enum.Enum):
    """A trial's status as stored in trials.parquet (and `running` while it trains)."""

    RUNNING = "running"
    COMPLETED = "completed"  # ran every epoch
    EARLY_STOPPED = "early_stopped"  # early stopping, or pruned by a Tune scheduler (stopped_by: scheduler)
    DIVERGED = "diverged"  # a non-finite or exploding loss: stopped at once
    STALLED = "stalled"  # at chance after health.stall_epochs: stopped
    FAILED = "failed"  # raised, or its worker was lost; `error` says why

    def __str__(self) -> str:
        return self.value


# A trial with one of these in trials.parquet is finished and not run again on --resume.
FINISHED = tuple(s.value for s in Status if s is not Status.RUNNING)


LOWER_IS_BETTER = ("loss", "error", "seconds", "time", "memory_mb")  # metric name endings that go down


def direction(metric: str) -> Literal["min", "max"]:
    """The one rule for which way a metric improves: losses, errors, times and memory go down, scores
    (accuracy, IoU, F1, images/s) go up."""
    name = metric.rsplit(".", 1)[-1]
    lower = name.endswith(LOWER_IS_BETTER) or name.startswith("time_to")
    return "min" if lower else "max"


SHARES = ("acc", "f1", "iou", "dice", "share")  # metric name endings that are fractions in [0, 1]
NON_NEGATIVE = ("loss", "seconds", "time", "memory_mb", "per_sec", "params")


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: [0, 1] for accuracies, F1, IoU, Dice and shares; [0, inf) for
    losses, times, memory and rates; anything otherwise. Intervals are clipped to it."""
    name = metric.rsplit(".", 1)[-1]
    if name.endswith(SHARES):
        return 0.0, 1.0
    if name.endswith(NON_NEGATIVE) or name.startswith("time_to"):
        return 0.0, math.inf
    return -math.inf, math.inf


def lower_is_better(metric: str) -> bool:
    return direction(metric) == "min"


def format_seconds(seconds: float) -> str:
    """A duration for a progress line: 1h02m, 3m05s; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_number(x: Any, digits: int = 4) -> str:
    """A metric for a table: fixed digits, '-' for missing or non-finite values."""
    if x is None or isinstance(x, str):
        return "-" if x is None else x
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"
