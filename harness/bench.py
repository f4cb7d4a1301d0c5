"""Training throughput of the trial loop next to its limit and its baseline, on the machine at hand.

    python -m harness.bench                                   # s0_mlp, s4_smallcnn, resnet18
    python -m harness.bench --arch resnet18 --precision bf16 --compile
    python -m harness.bench --ray --parquet                   # + Ray per-trial overhead, Parquet 100k rows

Three contenders train the same model (same init) with the same optimizer (SGD, Nesterov momentum,
torch's fused kernel on CPU and CUDA alike) at the same batch size and precision on CIFAR-shaped (3x32x32,
10 classes) images:

    trial   harness.trial.train_epoch over DeviceBatches: uint8 images on the device, crop + flip and
            normalize there, Accelerate, the on-device metrics a trial records. What a sweep runs.
    bare    a hand-written loop over pre-normalized float tensors already on the device: no
            augmentation, no metrics. The limit.
    seeds   the write-ups' pipeline: torchvision CIFAR10 + PIL transforms (flip, crop pad 4,
            ToTensor, Normalize) + DataLoader(shuffle, num_workers=2). The baseline users have today.

Each `*_epoch` function builds its contender, warms it up (torch.compile's compile time and the
DataLoader's worker start fall there) and returns images/s over a fixed number of images.
`compare` runs the three in rounds, so that ratios are taken side by side under the same load: within
a round, trial and bare take turns on parts of the epoch (t b b t t b ...), the seeds' pipeline runs
one whole epoch. Rates and ratios are medians over the rounds other processes left alone (CpuWatch),
a ratio being taken within each round.
FLOPs come from FlopCounterMode, % of peak from harness.report.devices' table of dense peaks.
On CPU every contender gets all cores (a sweep runs each trial on one: OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import math
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

ARCHS = ("s0_mlp", "s4_smallcnn", "resnet18")
SHAPE, CLASSES = (3, 32, 32), 10
OPTIMIZER = dict(name="sgd", lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """The device a trial would use (harness.trial.make_accelerator's rule)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_images(arch: str, device: torch.device) -> int:
    """Images per timed epoch: a few seconds per contender."""
    if device.type == "cuda":
        return 51_200
    return {"s0_mlp": 16_384, "s4_smallcnn": 8_192}.get(arch, 640)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


@functools.lru_cache(maxsize=4)
def cifar_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n CIFAR-shaped uint8 images [n, 3, 32, 32] and labels from harness's `synthetic` source (CPU)."""
    from harness.config import DatasetConfig
    from harness.data.sources import synthetic

    raw = synthetic(DatasetConfig(name="synthetic", num_train=n, num_test=1, shape=list(SHAPE),
                                  num_classes=CLASSES, split_seed=seed))
    return raw.train_x, raw.train_y


def build_model(arch: str, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    """The harness's model, the same initial weights for every contender."""
    from harness.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, SHAPE, CLASSES).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


class HandStep:
    """The hand-written training step of the bare loop and the seeds' pipeline."""

    def __init__(self, model, device: torch.device, precision: str, compile: bool):
        cfg = {k: v for k, v in OPTIMIZER.items() if k != "name"}
        self.optimizer = torch.optim.SGD(model.parameters(), **cfg, fused=True)
        self.model = torch.compile(model) if compile else model
        self.device, self.dtype = device, AMP_DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            loss = F.cross_entropy(self.model(x).float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


# --------------------------------------------------------------------------------------------------
# The contenders. make_*(...) builds one and warms it up; the function it returns trains one epoch of
# n_images and returns images/s. *_epoch(...) does both: one epoch's images/s.


def make_trial_loop(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, *,
                    channels_last: bool = False, compile: bool = False, augment: str = "standard",
                    warmup_steps: int = 3) -> Callable[[], float]:
    """harness.trial.train_epoch as run_trial calls it (on make_accelerator's device), over DeviceBatches
    with `augment` (crop + flip: the seeds' augmentation) and ImageNet normalization on the device."""
    from harness.config import LossConfig, OptimizerConfig
    from harness.data import DeviceBatches
    from harness.losses import create_loss
    from harness.optimizers import create_optimizer
    from harness.trial import make_accelerator, train_epoch

    accelerator = make_accelerator(precision)
    device = accelerator.device
    n_images -= n_images % batch_size  # equal batches: no partial step, no recompile
    x, y = cifar_like(n_images)
    kw = dict(device=device, shuffle=True, augment=augment, normalize="imagenet", channels_last=channels_last)
    warm = DeviceBatches(x[: warmup_steps * batch_size], y[: warmup_steps * batch_size], batch_size, **kw)
    batches = DeviceBatches(x, y, batch_size, **kw)
    model = build_model(arch, device, channels_last)
    optimizer = create_optimizer(model, OptimizerConfig(**OPTIMIZER), device.type)
    model, optimizer = accelerator.prepare(model, optimizer)
    model = torch.compile(model) if compile else model
    loss_fn = create_loss(LossConfig(name="cross_entropy"))
    train_epoch(model, warm, optimizer, loss_fn, accelerator)[0].tolist()  # warm-up (and compile)
    epochs = itertools.count(1)

    def epoch() -> float:
        batches.set_epoch(next(epochs))
        sync(device)
        t0 = time.perf_counter()
        sums, _, _ = train_epoch(model, batches, optimizer, loss_fn, accelerator)
        images = accelerator.reduce(sums, "sum").tolist()[2]  # the epoch's one host sync, as in run_trial
        return images / (time.perf_counter() - t0)

    return epoch


def make_bare_loop(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192,
                   device: Optional[torch.device] = None, *, channels_last: bool = False, compile: bool = False,
                   warmup_steps: int = 3) -> Callable[[], float]:
    """The limit: the hand-written step over slices of normalized float tensors made beforehand."""
    device = torch.device(device or default_device())
    n_images -= n_images % batch_size
    x_u8, y = cifar_like(n_images)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    x = (x_u8.to(device).float() / 255 - mean) / std
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = y.to(device)
    step = HandStep(build_model(arch, device, channels_last), device, precision, compile)
    for _ in range(warmup_steps):
        step(x[:batch_size], y[:batch_size])

    def epoch() -> float:
        sync(device)
        t0 = time.perf_counter()
        for i in range(0, n_images, batch_size):
            step(x[i : i + batch_size], y[i : i + batch_size])
        sync(device)
        return n_images / (time.perf_counter() - t0)

    return epoch


_FOLDERS: list = []  # the fixtures' TemporaryDirectory objects: removed at exit


@functools.lru_cache(maxsize=2)
def cifar_fixture(n: int) -> str:
    """A folder holding n images as CIFAR-10 in torchvision's pickle format, removed at exit."""
    folder = tempfile.TemporaryDirectory(prefix="bench-cifar-")
    _FOLDERS.append(folder)
    base = Path(folder.name) / "cifar-10-batches-py"
    base.mkdir()
    x, y = cifar_like(n)
    rows = x.reshape(n, -1).numpy()  # a CIFAR row: 1024 red, 1024 green, then 1024 blue values
    for i, part in enumerate(torch.arange(n).chunk(5), 1):
        entry = {"data": rows[part.numpy()], "labels": y[part].tolist()}
        (base / f"data_batch_{i}").write_bytes(pickle.dumps(entry))
    (base / "test_batch").write_bytes(pickle.dumps({"data": rows[:1], "labels": y[:1].tolist()}))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class_{k}" for k in range(CLASSES)]}))
    return folder.name


def seeds_dataset(n: int, transform=None):
    """torchvision's CIFAR10 over cifar_fixture(n), its MD5 check told to accept the fixture."""
    import torchvision.datasets.cifar as cifar

    check, cifar.check_integrity = cifar.check_integrity, lambda *args, **kwargs: True
    try:
        return cifar.CIFAR10(cifar_fixture(n), train=True, download=False, transform=transform)
    finally:
        cifar.check_integrity = check


def make_seeds_pipeline(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192,
                        device: Optional[torch.device] = None, *, channels_last: bool = False, compile: bool = False,
                        num_workers: int = 2, warmup_steps: int = 3) -> Callable[[], float]:
    """The baseline: PIL transforms per image in DataLoader workers, each batch copied to the device.
    Every epoch's first warmup_steps batches (the workers' start) are left out of the timing."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    device = torch.device(device or default_device())
    n_images -= n_images % batch_size
    if n_images <= warmup_steps * batch_size:
        raise ValueError(f"seeds pipeline: {n_images} images leave nothing to time after {warmup_steps} warm-up steps")
    transform = transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, padding=4),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    loader = DataLoader(seeds_dataset(n_images, transform), batch_size=batch_size, shuffle=True,
                        num_workers=num_workers)
    step = HandStep(build_model(arch, device, channels_last), device, precision, compile)

    def epoch() -> float:
        images = 0
        for i, (x, y) in enumerate(loader):
            x, y = x.to(device), y.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step(x, y)
            if i == warmup_steps - 1:
                sync(device)
                t0 = time.perf_counter()
            elif i >= warmup_steps:
                images += len(y)
        sync(device)
        return images / (time.perf_counter() - t0)

    return epoch


MAKERS = {"trial": make_trial_loop, "bare": make_bare_loop, "seeds": make_seeds_pipeline}


def trial_loop_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, **kw) -> float:
    """Images/s of one epoch of the trial loop (after a warm-up)."""
    return make_trial_loop(arch, precision, batch_size, n_images, **kw)()


def bare_loop_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, **kw) -> float:
    """Images/s of one epoch of the bare loop (after a warm-up)."""
    return make_bare_loop(arch, precision, batch_size, n_images, **kw)()


def seeds_pipeline_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192,
                         **kw) -> float:
    """Images/s of one epoch of the seeds' pipeline (after its first batches)."""
    return make_seeds_pipeline(arch, precision, batch_size, n_images, **kw)()


# --------------------------------------------------------------------------------------------------
# FLOPs, peaks, side-by-side comparison


@functools.lru_cache(maxsize=16)
def train_flops_per_image(arch: str) -> float:
    """FLOPs of one forward + backward per image (FlopCounterMode; meta device, CPU as a fallback)."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.models import create_model

    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = create_model(arch, SHAPE, CLASSES).train()
                x = torch.randn(2, *SHAPE)
            counter = FlopCounterMode(display=False)
            with counter:
                model(x).sum().backward()
            return counter.get_total_flops() / 2
        except Exception:  # noqa: BLE001 - a model that cannot run on meta: count on the CPU
            continue
    return math.nan


def device_name(device: torch.device, threads: Optional[int] = None) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {threads or torch.get_num_threads()} threads)"


def peak_tflops(device: torch.device, precision: str) -> float:
    """Dense peak TFLOP/s of this GPU at this precision (harness.report.devices), NaN if unknown or CPU."""
    if device.type != "cuda":
        return math.nan
    try:
        from harness.report.devices import peak_tflops as lookup
    except Exception:  # noqa: BLE001 - % of peak is optional
        return math.nan
    peak = lookup(torch.cuda.get_device_name(device), precision)[2]
    return peak if peak else math.nan


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


class CpuWatch:
    """The share of the machine's CPU time that OTHER processes used while open (Linux; NaN elsewhere).
    This process's threads and its finished children (DataLoader workers) are not counted."""

    @staticmethod
    def _seconds() -> tuple[float, float, float]:
        import resource

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


SPLIT = ("trial", "bare")  # contenders whose epoch cuts into parts at no cost (the data already on the device)


def compare(arch: str, precision: str = "no", batch_size: int = 128, n_images: Optional[int] = None, *,
            rounds: int = 3, max_rounds: Optional[int] = None, max_busy: float = 0.1, parts: int = 8,
            contenders=tuple(MAKERS), channels_last: bool = False, compile: bool = False,
            threads: Optional[int] = None) -> Comparison:
    """Build the contenders, then rounds of n_images each, so that the ratios are taken side by side under
    the same load. Within a round, the SPLIT contenders (trial, bare) run their n_images as `parts` epochs
    of n_images / parts, taking turns and reversing the order every turn (t b b t t b ...): they meet the
    same load within a fraction of a second, and a load that drifts across the round cancels out. The
    seeds' pipeline (worker start each epoch) runs one whole epoch, before them or after them in turn;
    which of them leads after it alternates too.
    A contender's rate in a round is its images over its seconds there.
    A round in which other processes took more than `max_busy` of the CPUs counts as disturbed: rounds go on
    until `rounds` quiet ones (or `max_rounds`, default 3 x rounds, in all), and the medians are over the
    quiet rounds (over all if none was)."""
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
            # t b b t t b ...; who leads after the seeds' epoch (its workers' exit) alternates every other round
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


# --------------------------------------------------------------------------------------------------
# Ray per-trial overhead, Parquet


def ray_trial_overhead(n_trials: int = 12, reports: int = 3) -> dict:
    """Bare Ray Tune: `n_trials` trivial trials of `reports` reports each, on a fresh local Ray.
    Returns init_s (import + ray.init) and per_trial_s (wall seconds of fit() per trial)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner on stdout (as harness.sweep)
    t0 = time.perf_counter()
    import ray
    from ray import tune

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0

    def trivial(config):
        for i in range(reports):
            tune.report({"step": i})

    try:
        with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
            tuner = tune.Tuner(trivial, param_space={"i": tune.grid_search(list(range(n_trials)))},
                               run_config=tune.RunConfig(storage_path=tmp, verbose=0))
            t0 = time.perf_counter()
            tuner.fit()
            fit_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return {"trials": n_trials, "init_s": init_s, "per_trial_s": fit_s / n_trials}


SWEEP_YAML = """\
name: bench-overhead
dataset: {{name: synthetic, num_train: 64, num_val: 32, num_test: 32, shape: [3, 8, 8], num_classes: 10}}
model: {{arch: mlp, widths: [8]}}
optimizer: {{name: sgd, lr: 0.01}}
train: {{epochs: 1, batch_size: 32, eval_batch_size: 64}}
resources: {{cpus_per_trial: 1}}
seeds: {seeds}
"""


def sweep_overhead(n_small: int = 2, n_large: int = 10) -> dict:
    """The real `python -m harness.sweep` on sweeps of near-zero-work trials, n_small then n_large of them.
    Returns startup_s (the fixed part), per_trial_s (marginal wall seconds per trial) and own_s
    (a trial's own total_seconds, as recorded in trials.parquet: data, model, one tiny epoch, writes)."""
    from harness import store

    walls, own = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for n in (n_small, n_large):
            sweep = Path(tmp, f"s{n}.yaml")
            sweep.write_text(SWEEP_YAML.format(seeds=list(range(n))))
            results = Path(tmp, f"r{n}")
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "harness.sweep", str(sweep), "--results-dir", str(results),
                                   "--no-report"], capture_output=True, text=True)
            walls[n] = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"harness.sweep exited {done.returncode}: {done.stderr[-2000:]}")
            own += store.read_table(results / "bench-overhead", "trials")["total_seconds"].tolist()
    per_trial = (walls[n_large] - walls[n_small]) / (n_large - n_small)
    return {"trials": n_large, "startup_s": walls[n_small] - n_small * per_trial, "per_trial_s": per_trial,
            "own_s": statistics.median(own), "wall_s": walls[n_large]}


def epoch_rows(n: int, trials: int = 1) -> list[list[dict]]:
    """n epoch rows like run_trial's (seeded random values), as `trials` trials of n // trials epochs."""
    rng = random.Random(0)
    per = n // trials
    return [[{"trial_id": f"t{t:05d}", "epoch": e + 1, "train_loss": rng.random(), "train_acc": rng.random(),
              "val_loss": rng.random(), "val_acc": rng.random(), "lr": 0.01 * rng.random(), "grad_norm": rng.random(),
              "grad_norm_min_layer": rng.random(), "epoch_seconds": rng.random(), "train_seconds": rng.random(),
              "images_per_sec": 1e4 * rng.random(), "peak_memory_mb": 1e3 * rng.random(),
              "val_top_class_share": rng.random(), "gap_loss": rng.random(), "gap_acc": rng.random(), "flags": ""}
             for e in range(per)] for t in range(trials)]


def parquet_roundtrip(n_rows: int = 100_000, trials: int = 1) -> dict:
    """Seconds to write n_rows epoch rows with store.write_part (one part per trial, as run_trial does)
    and to read them back with store.read_table; the table's size on disk in MB."""
    from harness import store

    parts = epoch_rows(n_rows, trials)
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        t0 = time.perf_counter()
        for rows in parts:
            store.write_part(tmp, "epochs", rows[0]["trial_id"], rows)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        frame = store.read_table(tmp, "epochs")
        read_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in store.table_dir(tmp, "epochs").glob("*.parquet"))
    if len(frame) != sum(map(len, parts)):
        raise RuntimeError(f"read {len(frame)} rows back, wrote {sum(map(len, parts))}")
    return {"rows": len(frame), "parts": trials, "write_s": write_s, "read_s": read_s, "mb": size / 2**20}


# --------------------------------------------------------------------------------------------------
# CLI


def fmt(x: Optional[float], digits: int = 0) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if digits == 0 and abs(x) >= 10_000:
        return f"{x / 1000:.1f}k"
    return f"{x:,.{digits}f}"


COLUMNS = ["arch", "precision", "batch", "trial img/s", "bare img/s", "seeds img/s", "trial/bare", "trial/seeds",
           "step ms", "peak MB", "GFLOP/img", "TFLOP/s", "% peak"]


def table_row(c: Comparison, device: torch.device) -> list[str]:
    peak = peak_tflops(device, c.precision)
    pct = fmt(100 * c.tflops / peak, 1)
    if math.isfinite(c.fwd_bwd) and math.isfinite(peak):
        pct += f" (fwd+bwd {fmt(100 * c.gflop_per_image * c.fwd_bwd / 1e3 / peak, 1)})"
    return [c.arch, c.precision, str(c.batch), fmt(c.median("trial")), fmt(c.median("bare")), fmt(c.median("seeds")),
            fmt(c.ratio("trial", "bare"), 2) + "x" if "bare" in c.rates else "-",
            fmt(c.ratio("trial", "seeds"), 2) + "x" if "seeds" in c.rates else "-",
            fmt(1000 * c.batch / c.median("trial"), 2), fmt(c.peak_mb), fmt(c.gflop_per_image, 3),
            fmt(c.tflops, 3 if c.tflops < 1 else 1), pct]


def markdown(rows: list[list[str]], header: list[str] = COLUMNS) -> str:
    align = ["---"] * 3 + ["--:"] * (len(header) - 3)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *rows])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--arch", nargs="+", default=list(ARCHS), help="models (default: %(default)s)")
    p.add_argument("--precision", nargs="+", choices=["no", "bf16", "fp16"],
                   help="default: bf16 on a GPU, no (fp32) on the CPU")
    p.add_argument("--batch", type=int, default=128, help="train batch size (default: %(default)s)")
    p.add_argument("--images", type=int, help="images per contender per round (default: a few seconds' worth)")
    p.add_argument("--parts", type=int, default=8,
                   help="trial and bare take turns on this many parts of a round's images (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians (default: 3)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="channels_last memory format (default: on a GPU, for CNNs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is warm-up)")
    p.add_argument("--no-seeds", action="store_true", help="leave out the torchvision + DataLoader baseline")
    p.add_argument("--threads", type=int, help="CPU threads for every contender (default: all cores)")
    p.add_argument("--ray", action="store_true", help="also: Ray Tune and harness.sweep per-trial overhead (~1 min)")
    p.add_argument("--parquet", action="store_true", help="also: write + read 100k epoch rows of Parquet")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.models import MODELS

    unknown = [a for a in args.arch if a not in MODELS and not a.startswith("torchvision:")]
    too_few = args.images is not None and args.images < args.batch
    if unknown or min(args.batch, args.rounds, args.parts) < 1 or too_few:
        what = f"unknown --arch {', '.join(unknown)} (e.g. {', '.join(ARCHS)})" if unknown else \
            "--batch, --rounds and --parts must be positive, --images at least one batch"
        print(f"error: {what}", file=sys.stderr)
        return 2
    device = default_device()
    precisions = args.precision or (["bf16"] if device.type == "cuda" else ["no"])
    contenders = ("trial", "bare") if args.no_seeds else tuple(MAKERS)
    threads = args.threads or (os.cpu_count() if device.type == "cpu" else None)
    print(f"harness.bench on {device_name(device, threads)}, torch {torch.__version__}; "
          f"medians of {args.rounds} interleaved rounds", flush=True)
    rows, syncs = [], []
    for arch in args.arch:
        channels_last = args.channels_last if args.channels_last is not None else (
            device.type == "cuda" and arch != "s0_mlp")
        for precision in precisions:
            c = compare(arch, precision, args.batch, args.images, rounds=args.rounds, parts=args.parts,
                        contenders=contenders, channels_last=channels_last, compile=args.compile, threads=threads)
            rows.append(table_row(c, device))
            syncs.append(f"{arch}/{precision} {fmt(c.syncs_per_step, 1)}")
            print(f"  {arch} {precision}{' channels_last' if channels_last else ''}: {c.images} images per round, "
                  + ", ".join(f"{k} " + " ".join(fmt(v) for v in c.rates[k]) for k in c.rates) + " img/s; "
                  f"{len(c.quiet)} of {len(c.busy)} rounds quiet (others' CPU share "
                  + " ".join(fmt(100 * b) + "%" for b in c.busy) + ")", file=sys.stderr, flush=True)
    print(markdown(rows))
    if device.type == "cuda":
        print("host syncs per trial-loop step (should be 0): " + ", ".join(syncs))
    if args.ray:
        ray = ray_trial_overhead()
        sweep = sweep_overhead()
        print(f"Ray Tune, {ray['trials']} trivial trials: {ray['init_s']:.1f} s import + init, "
              f"{ray['per_trial_s']:.2f} s per trial")
        print(f"harness.sweep, near-empty trials: {sweep['startup_s']:.1f} s to start, {sweep['per_trial_s']:.2f} s "
              f"per trial, of which the trial's own work (total_seconds) {sweep['own_s']:.2f} s")
    if args.parquet:
        for trials in (1, 1000):
            r = parquet_roundtrip(100_000, trials)
            print(f"Parquet, {r['rows']:,} epoch rows in {r['parts']} part file(s): write {r['write_s']:.2f} s, "
                  f"read {r['read_s']:.2f} s, {r['mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
