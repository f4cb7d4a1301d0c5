"""What every bench contender trains: CIFAR-shaped (3x32x32, 10 classes) synthetic images, the same
model with the same initial weights, and the same images as a CIFAR-10 folder in torchvision's format
(for the torchvision DataLoader pipeline). Also the model's training FLOPs per image."""

from __future__ import annotations

import functools
import math
import pickle
import tempfile
from pathlib import Path

import torch
import torchvision.datasets.cifar as cifar

from harness import perf
from harness.config import DatasetConfig
from harness.data.sources import synthetic
from harness.models import create_model

ARCHS = ("s0_mlp", "s4_smallcnn", "resnet18")
SHAPE, CLASSES = (3, 32, 32), 10
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=4)
def cifar_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n CIFAR-shaped uint8 images [n, 3, 32, 32] and labels from harness's `synthetic` source (CPU)."""
    raw = synthetic(DatasetConfig(name="synthetic", num_train=n, num_test=1, shape=list(SHAPE),
                                  num_classes=CLASSES, split_seed=seed))
    return raw.train_x, raw.train_y


def build_model(arch: str, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    """The harness's model, the same initial weights for every contender."""
    torch.manual_seed(0)
    model = create_model(arch, SHAPE, CLASSES).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def train_flops_per_image(arch: str) -> float:
    """FLOPs of one forward + backward per image of the bench's model (harness.perf's counter); NaN when
    the model can't be counted."""
    flops = perf.train_flops_per_image(create_model, arch, SHAPE, CLASSES)
    return math.nan if flops is None else flops


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


def torchvision_dataset(n: int, transform=None):
    """torchvision's CIFAR10 over cifar_fixture(n), its MD5 check told to accept the fixture."""
    check, cifar.check_integrity = cifar.check_integrity, lambda *args, **kwargs: True
    try:
        return cifar.CIFAR10(cifar_fixture(n), train=True, download=False, transform=transform)
    finally:
        cifar.check_integrity = check
