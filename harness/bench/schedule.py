"""The bench's schedule: the contenders built once, then rounds in which they meet the same load, so that
their ratios are taken side by side. Within a round, trial and bare take turns on parts of the epoch
(t b b t t b ...); the torchvision pipeline runs one whole epoch, before them or after them in turn."""

from __future__ import annotations

import os
import statistics
from typing import Optional

import torch

from harness.bench.contenders import MAKERS, default_device
from harness.bench.measure import Comparison, CpuWatch, cpu_threads, fwd_bwd_rate, host_syncs_per_step

SPLIT = ("trial", "bare")  # contenders whose epoch cuts into parts at no cost (the data already on the device)


def default_images(arch: str, device: torch.device) -> int:
    """Images per timed epoch: a few seconds per contender."""
    if device.type == "cuda":
        return 51_200
    return {"s0_mlp": 16_384, "s4_smallcnn": 8_192}.get(arch, 640)


def compare(arch: str, precision: str = "no", batch_size: int = 128, n_images: Optional[int] = None, *,
            rounds: int = 3, max_rounds: Optional[int] = None, max_busy: float = 0.1, parts: int = 8,
            contenders=tuple(MAKERS), channels_last: bool = False, compile: bool = False,
            threads: Optional[int] = None) -> Comparison:
    """Build the contenders, then rounds of n_images each, so that the ratios are taken side by side under
    the same load. Within a round, the SPLIT contenders (trial, bare) run their n_images as `parts` epochs
    of n_images / parts, taking turns and reversing the order every turn (t b b t t b ...): they meet the
    same load within a fraction of a second, and a load that drifts across the round cancels out. The
    torchvision pipeline (worker start each epoch) runs one whole epoch, before them or after them in turn;
    which of them leads after it alternates too.
    A contender's rate in a round is its images over its seconds there.
    A round in which other processes took more than `max_busy` of the CPUs counts as disturbed: rounds go on
    until `rounds` quiet ones (or `max_rounds`, default 3 x rounds, in all), and the medians are over the
    quiet rounds (over all if none was). On CPU every contender gets all cores unless `threads` says."""
    device = default_device()
    n_images = n_images or default_images(arch, device)
    parts = max(1, min(parts, n_images // batch_size))
    part = n_images // parts - n_images // parts % batch_size
    split = [name for name in contenders if name in SPLIT]
    whole = [name for name in contenders if name not in SPLIT]
    out = Comparison(arch, precision, batch_size, part * parts if split else n_images,
                     {name: [] for name in contenders}, max_busy=max_busy)
    kw = dict(channels_last=channels_last, compile=compile)
    with cpu_threads(threads or (os.cpu_count() if device.type == "cpu" else None)):
        epochs = {}
        for name in contenders:
            epochs[name] = MAKERS[name](arch, precision, batch_size, part if name in SPLIT else n_images, **kw)
            if name == "trial" and device.type == "cuda":  # alone on the GPU: its peak memory
                torch.cuda.reset_peak_memory_stats(device)
                epochs[name]()
                out.peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
        for r in range(max_rounds or 3 * rounds):
            # t b b t t b ...; who leads after the whole epoch (its workers' exit) alternates every other round
            turns = [name for turn in range(parts) for name in (split if (turn + r // 2) % 2 == 0 else split[::-1])]
            order = whole + turns if r % 2 == 0 else turns + whole
            rates = {name: [] for name in contenders}
            with CpuWatch() as watch:
                for name in order:
                    rates[name].append(epochs[name]())
            for name, measured in rates.items():  # images over seconds: the harmonic mean of equal-sized parts
                out.rates[name].append(statistics.harmonic_mean(measured))
            out.busy.append(watch.others)
            if len(out.quiet) >= rounds:
                break
        del epochs
        if device.type == "cuda":
            out.fwd_bwd = fwd_bwd_rate(arch, precision, batch_size, **kw)
            out.syncs_per_step = host_syncs_per_step(arch, precision, batch_size, **kw)
    return out
