"""The three contenders of the bench, each training the same model (fixtures.py) with the same optimizer
(SGD, Nesterov momentum, torch's fused kernel on CPU and CUDA alike) at the same batch size and precision:

    trial        harness.engine.loop.train_epoch over DeviceBatches: uint8 images on the device, crop + flip and
                 normalize there, Accelerate, the on-device metrics a trial records. What a sweep runs.
    bare         a hand-written loop over pre-normalized float tensors already on the device: no
                 augmentation, no metrics. The limit.
    torchvision  the usual pipeline: torchvision CIFAR10 + PIL transforms (flip, crop pad 4, ToTensor,
                 Normalize) + DataLoader(shuffle, num_workers=2). The baseline users have today.

make_*(...) builds one and warms it up (torch.compile's compile time falls there); the function it returns
trains one epoch of n_images and returns images/s. *_epoch(...) does both: one epoch's images/s.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms

from harness.bench.fixtures import CLASSES, IMAGENET_MEAN, IMAGENET_STD, build_model, cifar_like, torchvision_dataset
from harness.config import LossConfig, OptimizerConfig
from harness.data import DeviceBatches
from harness.engine.device import make_accelerator
from harness.engine.loop import train_epoch
from harness.losses import create_loss
from harness.optimizers import create_optimizer
from harness.tasks.classification import confusion_counts

OPTIMIZER = dict(name="sgd", lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """The device a trial would use (harness.trial.make_accelerator's rule)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work: the timing's start and end points (a host sync on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HandStep:
    """The hand-written training step of the bare loop and the torchvision pipeline."""

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


def make_trial_loop(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, *,
                    channels_last: bool = False, compile: bool = False, augment: str = "standard",
                    warmup_steps: int = 3) -> Callable[[], float]:
    """harness.engine.loop.train_epoch as run_trial calls it (on make_accelerator's device), over DeviceBatches
    with `augment` (crop + flip: the torchvision pipeline's augmentation) and ImageNet normalization on
    the device."""
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
    classes = CLASSES  # cifar_like
    counts = dict(count=functools.partial(confusion_counts, num_classes=classes), num_counts=classes * classes)
    train_epoch(model, warm, optimizer, loss_fn, accelerator, **counts)[0].tolist()  # warm-up (and compile)
    epochs = itertools.count(1)

    def epoch() -> float:
        batches.set_epoch(next(epochs))
        sync(device)
        t0 = time.perf_counter()
        sums, _, _ = train_epoch(model, batches, optimizer, loss_fn, accelerator, **counts)  # the confusion matrix too
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


def make_torchvision_pipeline(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192,
                              device: Optional[torch.device] = None, *, channels_last: bool = False,
                              compile: bool = False, num_workers: int = 2,
                              warmup_steps: int = 3) -> Callable[[], float]:
    """The baseline: PIL transforms per image in DataLoader workers, each batch copied to the device.
    Every epoch's first warmup_steps batches (the workers' start) are left out of the timing."""
    device = torch.device(device or default_device())
    n_images -= n_images % batch_size
    if n_images <= warmup_steps * batch_size:
        raise ValueError(f"torchvision pipeline: {n_images} images leave nothing to time after {warmup_steps} "
                         "warm-up steps")
    transform = transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, padding=4),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    loader = DataLoader(torchvision_dataset(n_images, transform), batch_size=batch_size, shuffle=True,
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


MAKERS = {"trial": make_trial_loop, "bare": make_bare_loop, "torchvision": make_torchvision_pipeline}


def trial_loop_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, **kw) -> float:
    """Images/s of one epoch of the trial loop (after a warm-up)."""
    return make_trial_loop(arch, precision, batch_size, n_images, **kw)()


def bare_loop_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192, **kw) -> float:
    """Images/s of one epoch of the bare loop (after a warm-up)."""
    return make_bare_loop(arch, precision, batch_size, n_images, **kw)()


def torchvision_pipeline_epoch(arch: str, precision: str = "no", batch_size: int = 128, n_images: int = 8192,
                               **kw) -> float:
    """Images/s of one epoch of the torchvision pipeline (after its first batches)."""
    return make_torchvision_pipeline(arch, precision, batch_size, n_images, **kw)()
