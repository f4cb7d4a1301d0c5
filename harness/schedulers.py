"""Learning-rate schedules (`scheduler.name`): none, step, cosine, onecycle, plateau, staged.

`create_scheduler` returns the torch scheduler and when to step it ('epoch', 'batch' or 'plateau',
the last stepped with the validation loss). `staged` continues ONE model through stages of fixed
learning rates (S0's MLP: 10 epochs each at 1e-1, 1e-2, 1e-3, 1e-4); with `optimizer.group_lr`
every group is scaled by the same factor.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def staged_factor(stages, base_lr: float, epoch: int) -> float:
    """The lr multiplier in (0-based) `epoch`: the stage's lr over the optimizer's base lr."""
    end = 0
    for stage in stages:
        end += stage.epochs
        if epoch < end:
            return stage.lr / base_lr
    return stages[-1].lr / base_lr


def cosine_factor(epoch: int, epochs: int, warmup: int) -> float:
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / max(1, epochs - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def create_scheduler(optimizer: torch.optim.Optimizer, cfg, base_lr: float, epochs: int,
                     steps_per_epoch: int) -> tuple[Optional[object], str]:
    name = cfg.name
    if name == "none":
        return None, "epoch"
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: cosine_factor(e, epochs, cfg.warmup_epochs)), "epoch"
    if name == "staged":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: staged_factor(cfg.stages, base_lr, e)), "epoch"
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], epochs=epochs,
            steps_per_epoch=max(1, steps_per_epoch), pct_start=cfg.pct_start), "batch"
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.factor, patience=cfg.patience), "plateau"
    raise ValueError(f"unknown scheduler '{name}'")
