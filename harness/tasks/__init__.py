"""What differs between tasks, behind one small protocol; the loop that runs any of them is
harness.trial with the parts in harness.engine. Classification and segmentation are the two tasks;
a third is one file with a class like theirs, registered here.

    task = create_task(cfg)                       # TASKS.get(cfg.task)(cfg)
    train, val, test = task.batches(splits, device=..., rank=0, world_size=1)
    model, loss_fn, uniform_loss = task.build(splits)
    counts = task.counts(output, target)          # one batch; the engine sums them on the device
    scores = task.scores(summed_counts)           # {"acc": ...} | {"iou": ..., "dice": ..., ...}

The task's score `metric` (val_acc, val_iou) ranks trials in the sweep, the leaderboard and
time-to-target, and the monitor's at-chance rule compares it with `chance(splits)`; which way it
improves is harness.vocabulary.direction(metric).
"""

from __future__ import annotations

from typing import ClassVar, Optional, Protocol, runtime_checkable

import torch

from harness.registry import Registry
from harness.tasks.classification import Classification
from harness.tasks.segmentation import Segmentation


@runtime_checkable
class Task(Protocol):
    name: ClassVar[str]  # the config's `task`
    metric: ClassVar[str]  # the per-epoch score that ranks trials: val_acc, val_iou
    # which `scores` go into the rows: epochs row (train_<k>, val_<k>), trials row (test_<k>, best_val_<k>)
    columns: ClassVar[dict[str, tuple[str, ...]]]
    num_counts: int  # the length of `counts` (known after `build`)

    def __init__(self, cfg) -> None: ...

    def batches(self, splits, **device_kwargs) -> tuple:
        """(train, val, test) device batches; device_kwargs: device, rank, world_size."""

    def build(self, splits) -> tuple:
        """(model on the CPU, loss_fn, uniform_loss: the loss of all-zero outputs, for the divergence rule)."""

    def counts(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One batch's counts, int64 [num_counts], on the device, without a host sync."""

    def scores(self, counts: torch.Tensor) -> dict[str, float]:
        """Every score of one split from its summed counts (CPU)."""

    def chance(self, splits) -> float:
        """What the best constant prediction scores on `metric` over the validation split."""

    def test_tables(self, counts: torch.Tensor, splits, trial_id: str) -> tuple[list[dict], list[dict]]:
        """(classes rows, confusion rows) of the test split; empty where the task has none."""

    def after_epoch(self, model, row: dict, verdict, results_dir: Optional[object]) -> None:
        """After an epoch closes (snapshots); results_dir None: write nothing (not the main process)."""


TASKS = Registry("task")
TASKS.register("classification")(Classification)
TASKS.register("segmentation")(Segmentation)


def create_task(cfg) -> Task:
    """The task object for one run's config (`cfg.task`)."""
    return TASKS.get(cfg.task)(cfg)
