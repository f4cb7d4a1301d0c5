"""The loop every task runs: `train_epoch` (one pass of optimization steps) and `evaluate` (one pass
without gradients). A task only says what to count per batch (`count(output, target)` -> an int64
tensor of fixed length: a confusion matrix, pixel tp/fp/fn/tn); the counts are summed here, on the
device, and turned into scores by the task once per epoch.

The hot loop keeps everything on the device: no .item() or host sync per step. Per step, the loss
and gradient norm go into that step's row of a preallocated tensor (one op) and the task's counts
are added to one accumulator (one op); both are read once per epoch, after the caller's reduce.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch

from harness.engine.device import sync
from harness.engine.step import Stepper, smallest_layer_grad_norm

Count = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) -> int64 counts of one batch

# train_epoch's sums: [loss x n, grad norm, samples, steps, *counts]
LOSS, GRAD, SAMPLES, STEPS, COUNTS = 0, 1, 2, 3, 4


def train_epoch(model, batches, optimizer, loss_fn, accelerator, scheduler=None, grad_clip=None,
                skip_first: bool = False, count: Optional[Count] = None, num_counts: int = 0,
                start_step: int = 0, stop: Optional[Callable[[], bool]] = None):
    """One pass over the training batches. Returns a float64 device tensor [loss x n, grad norm, samples,
    steps, *counts] summed over the steps (not yet across processes), the smallest per-layer gradient
    norm of the last step, and the seconds spent on the first step when `skip_first` (compile warm-up,
    which the caller leaves out of throughput).

    `start_step`: the steps that ran before an interruption are passed over (their batches are still
    drawn, so that augmentation's random draws stay where they were); `stop()` is asked before every
    step, and the pass ends early when it says so (harness.engine.stop; the sums count the steps run)."""
    model.train()
    device = accelerator.device
    stepper = Stepper(model, optimizer, accelerator, scheduler, grad_clip)
    rows = torch.zeros(len(batches), 2, device=device)  # float32 [loss x n, grad norm] per step, summed in float64
    counts = torch.zeros(num_counts, device=device, dtype=torch.int64)
    samples = steps = 0
    first_step_seconds = 0.0
    for step, (x, y) in enumerate(batches):
        if step < start_step:
            continue
        if stop is not None and stop():
            break
        if skip_first and step == start_step:
            t0 = time.perf_counter()
        output = model(x)
        loss = loss_fn(output, y)
        norm = stepper(loss)
        n = y.shape[0]
        torch.stack([loss.detach().float() * n, norm.float()], out=rows[step])
        if count is not None:
            counts += count(output.detach(), y)
        samples, steps = samples + n, steps + 1
        if skip_first and step == start_step:
            sync(device)
            first_step_seconds = time.perf_counter() - t0
    loss_n, grad_sum = rows.double().sum(0)  # the steps not run are zeros
    fill = lambda value: loss_n.new_full((1,), value)  # noqa: E731 - a fill on the device: no copy, no sync
    sums = torch.cat([torch.stack([loss_n, grad_sum]), fill(samples), fill(steps), counts.double()])
    return sums, smallest_layer_grad_norm(model), first_step_seconds


@torch.no_grad()
def evaluate(model, batches, loss_fn, accelerator, count: Count, num_counts: int) -> tuple[float, torch.Tensor]:
    """The exact sample-weighted loss and the summed counts (int64, on the CPU), both summed across
    processes (one host sync, at the end)."""
    model.eval()
    device = accelerator.device
    loss_n = torch.zeros((), device=device, dtype=torch.float64)
    counts = torch.zeros(num_counts, device=device, dtype=torch.int64)
    samples = 0
    for x, y in batches:
        with accelerator.autocast():
            output = model(x)
        loss_n += loss_fn(output, y).double() * y.shape[0]
        counts += count(output, y)
        samples += y.shape[0]
    loss_n, samples = accelerator.reduce(torch.stack([loss_n, loss_n.new_full((), samples)]), "sum").tolist()
    return (loss_n / samples if samples else math.nan), accelerator.reduce(counts, "sum").cpu()
