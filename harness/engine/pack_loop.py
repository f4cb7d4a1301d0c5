"""The loop a pack runs (harness.engine.loop's twin for K members at once): `train_pack_epoch` and
`evaluate_pack`, each member with its own batches, loss, gradient norm, clipping and counts, all on
the device with one host sync per epoch. `PackBatches` zips the members' training batches: members
that share a seed share one batcher (same order, same augmentation), and when all do, the batch is
handed to every member without a copy.

What one member computes never reaches another: each loss is its own batch's mean, the pack's
backward is of their sum (so each member's gradient is its own loss's), norms and clipping are per
member, and the optimizer's rules are elementwise per member. A NaN stays where it started.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from torch.func import vmap

PackCount = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ([K, B, ...] outputs, [K, B] targets) -> [K, n]


class PackBatches:
    """The training batches of every active member, stacked: (x [K, B, ...], y [K, B], shared)."""

    def __init__(self, batchers: Sequence, member_batcher: Sequence[int]):
        self.batchers, self.member_batcher = list(batchers), list(member_batcher)
        self.active = list(range(len(member_batcher)))

    def set_epoch(self, epoch: int) -> None:
        for b in self.batchers:
            b.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batchers[0])

    def __iter__(self):
        used = [self.member_batcher[k] for k in self.active]
        distinct = sorted(set(used))
        slot = {b: i for i, b in enumerate(distinct)}
        for batches in zip(*(self.batchers[b] for b in distinct)):
            if len(distinct) == 1:
                x, y = batches[0]
                yield x, y.expand(len(used), -1), True
            else:
                index = torch.tensor([slot[b] for b in used], device=batches[0][0].device)
                xs = torch.stack([x for x, _ in batches]).index_select(0, index)
                ys = torch.stack([y for _, y in batches]).index_select(0, index)
                yield xs, ys, False


def pack_losses(loss_fn) -> Callable:
    """loss_fn over every member: ([K, B, ...] outputs, [K, B] targets) -> [K] losses. A loss that carries
    `per_sample` (harness.losses: cross_entropy, nll) is one op over all members' samples; others, vmap."""
    per_sample = getattr(loss_fn, "per_sample", None)
    if per_sample is None:
        return vmap(loss_fn)
    return lambda output, target: per_sample(output.flatten(0, 1), target.flatten()).view(output.shape[0], -1).mean(1)


def member_counts(count) -> PackCount:
    """A task's per-batch `count`, one member at a time (for tasks without a packed count)."""
    return lambda output, target: torch.stack([count(o, t) for o, t in zip(output, target)])


def grad_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each member's global gradient norm [K] from the stacked gradients."""
    squares = [g.flatten(1).pow(2).sum(1) for g in grads.values()]
    return torch.stack(squares).sum(0).sqrt()


def smallest_layer_norms(grads: dict[str, torch.Tensor]) -> Optional[torch.Tensor]:
    """Each member's smallest gradient norm over its weight matrices/kernels [K] (None without any)."""
    norms = [g.flatten(1).norm(dim=1) for g in grads.values() if g.dim() > 2]
    return torch.stack(norms).amin(0) if norms else None


def train_pack_epoch(pack, batches: PackBatches, optimizer, loss_fn, accelerator, schedulers: Sequence = (),
                     grad_clip: Optional[torch.Tensor] = None, count: Optional[PackCount] = None, num_counts: int = 0,
                     start_step: int = 0, stop: Optional[Callable[[], bool]] = None):
    """One pass over the training batches for every active member. Returns a float64 device tensor
    [K, 4 + num_counts]: per member [loss x n, grad norm, samples, steps, *counts] (harness.engine.loop's
    layout, LOSS ... COUNTS) summed over the
    steps, and each member's smallest per-layer gradient norm of the last step ([K] or None).
    `schedulers`: the active members' per-batch schedulers (OneCycle), stepped after each step; `grad_clip`:
    each active member's max gradient norm [K] (inf: no clipping), None when no member clips. `start_step` and
    `stop`: harness.engine.loop.train_epoch's (a pack resumed mid-epoch; a stop request)."""
    pack.train()
    device, k = accelerator.device, len(pack)
    losses_of = pack_losses(loss_fn)
    rows = torch.zeros(len(batches), 2, k, device=device)  # [loss x n, grad norm] per step and member
    counts = torch.zeros(k, num_counts, device=device, dtype=torch.int64)
    samples = steps = 0
    layer_min = None
    for step, (x, y, shared) in enumerate(batches):
        if step < start_step:
            continue  # ran before an interruption; its batch is drawn all the same (augmentation's draws)
        if stop is not None and stop():
            break
        with accelerator.autocast():
            output = pack(x, shared=shared)  # shared: every member's batch is the same one, broadcast
            losses = losses_of(output, y)
        pack.zero_grad()
        losses.sum().backward()
        grads = pack.grads()
        norms = grad_norms(grads)
        if grad_clip is not None:  # torch.nn.utils.clip_grad_norm_'s rule, per member
            coef = torch.where(grad_clip.isinf(), 1.0, (grad_clip / (norms + 1e-6)).clamp(max=1.0))
            for g in grads.values():
                g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))
        optimizer.step()
        for s in schedulers:
            s.step()
        n = y.shape[1]
        torch.stack([losses.detach().float() * n, norms.float()], out=rows[step])
        if count is not None:
            counts += count(output.detach(), y)
        samples, steps = samples + n, steps + 1
        if step == len(batches) - 1:
            layer_min = smallest_layer_norms(grads)
    sums = rows.double().sum(0).T  # [K, 2]; the steps not run are zeros
    fill = lambda value: sums.new_full((k, 1), value)  # noqa: E731
    return torch.cat([sums, fill(samples), fill(steps), counts.double()], dim=1), layer_min


@torch.no_grad()
def evaluate_pack(pack, batches, loss_fn, accelerator, count: PackCount, num_counts: int):
    """Every active member on the same (unshuffled) batches: the exact sample-weighted loss [K] (a list
    of floats) and the summed counts [K, num_counts] (int64, CPU), with one host sync at the end."""
    pack.eval()
    device, k = accelerator.device, len(pack)
    losses_of = pack_losses(loss_fn)
    loss_n = torch.zeros(k, device=device, dtype=torch.float64)
    counts = torch.zeros(k, num_counts, device=device, dtype=torch.int64)
    samples = 0
    for x, y in batches:
        with accelerator.autocast():
            output = pack(x, shared=True)
        loss_n += losses_of(output, y.expand(k, -1)).double() * y.shape[0]
        counts += count(output, y.expand(k, -1))
        samples += y.shape[0]
    losses = (loss_n / samples).tolist() if samples else [math.nan] * k
    return losses, counts.cpu()
