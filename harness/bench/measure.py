"""How the bench measures: the CPU share other processes take while it runs (CpuWatch), medians and
ratios over the rounds they left alone (Comparison), host syncs per trial-loop step (CUDA's sync debug
mode), the forward + backward rate alone (the % of peak figure), and the CPU threads every contender
gets."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch

try:
    import resource
except ImportError:  # not POSIX: CpuWatch reports NaN
    resource = None

from harness.bench.contenders import AMP_DTYPES, default_device, make_trial_loop, sync
from harness.bench.fixtures import SHAPE, build_model, train_flops_per_image


@contextlib.contextmanager
def cpu_threads(n: Optional[int]):
    """torch's intra-op threads set to n (None: leave as is) for the duration."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class CpuWatch:
    """The share of the machine's CPU time that OTHER processes used while open (Linux; NaN elsewhere).
    This process's threads and its finished children (DataLoader workers) are not counted."""

    @staticmethod
    def _seconds() -> tuple[float, float, float]:
        if resource is None:
            raise OSError("no resource module")
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.perf_counter(), busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __enter__(self) -> "CpuWatch":
        self.others = math.nan
        try:
            self.start = self._seconds()
        except (OSError, ValueError):
            self.start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.start is not None:
            wall, busy, mine = (b - a for a, b in zip(self.start, self._seconds()))
            share = (busy - mine) / (wall * (os.cpu_count() or 1)) if wall > 0 else math.nan
            self.others = min(1.0, max(0.0, share))  # /proc/stat counts in ticks of 10 ms


@dataclass
class Comparison:
    """The contenders' rates round by round, and what is read from them: medians and ratios over the
    rounds other processes left alone, FLOP/s."""

    arch: str
    precision: str
    batch: int
    images: int  # per contender per round
    rates: dict[str, list[float]] = field(default_factory=dict)  # contender -> images/s, one per round
    busy: list[float] = field(default_factory=list)  # per round: CPU share other processes took (CpuWatch)
    max_busy: float = 0.1  # rounds busier than this are left out of the medians (if any round is not)
    peak_mb: float = math.nan  # CUDA: peak memory allocated during a trial-loop epoch
    fwd_bwd: float = math.nan  # CUDA: images/s of forward + backward alone
    syncs_per_step: float = math.nan  # CUDA: host syncs per trial-loop step

    @property
    def quiet(self) -> list[int]:
        """Rounds undisturbed by other processes (all rounds when busyness is unknown)."""
        return [r for r, b in enumerate(self.busy) if not b > self.max_busy] if self.busy else []

    def median(self, name: str) -> float:
        rates = self.rates.get(name) or []
        kept = [rates[r] for r in self.quiet if r < len(rates)] or rates
        return statistics.median(kept) if kept else math.nan

    def ratio(self, a: str, b: str) -> float:
        """Median over the quiet rounds of a's rate / b's rate in the same round: whatever slows a whole
        round (a busy neighbour, a slower CPU clock) cancels out."""
        pairs = list(zip(self.rates.get(a) or [], self.rates.get(b) or []))
        kept = [pairs[r] for r in self.quiet if r < len(pairs)] or pairs
        return statistics.median(x / y for x, y in kept) if kept else math.nan

    @property
    def gflop_per_image(self) -> float:
        return train_flops_per_image(self.arch) / 1e9

    @property
    def tflops(self) -> float:
        return self.gflop_per_image * self.median("trial") / 1e3


def fwd_bwd_rate(arch: str, precision: str = "bf16", batch_size: int = 128, steps: int = 50, *,
                 channels_last: bool = True, compile: bool = False, device=None) -> float:
    """Images/s of the forward + backward pass alone (no data, no optimizer): the % of peak figure."""
    device = torch.device(device or default_device())
    model = build_model(arch, device, channels_last).train()
    model = torch.compile(model) if compile else model
    x = torch.randn(batch_size, *SHAPE, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    dtype = AMP_DTYPES.get(precision)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            model(x).float().sum().backward()

    for _ in range(3):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def host_syncs_per_step(arch: str, precision: str = "bf16", batch_size: int = 128, steps: int = 8, **kw) -> float:
    """CUDA only: host syncs per step of the trial loop (should be 0), counted by torch.cuda's sync debug
    mode over epochs of `steps` and 2 x `steps` steps (the per-epoch read-out cancels out)."""
    counts = []
    for n in (steps, 2 * steps):
        epoch = make_trial_loop(arch, precision, batch_size, n * batch_size, **kw)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                epoch()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return (counts[1] - counts[0]) / steps
