"""Tiny dataset fixtures in torchvision's real on-disk formats (CIFAR pickles, MNIST-family IDX files),
so that the dataset sources, and whole sweeps, run offline exactly as they do on the real files.

    root = write_all_datasets(tmp_path / "data")   # cifar10, cifar100, mnist, fashion_mnist, emnist_letters
    python -m harness.sweep ... --set dataset.data_dir=<root> --set dataset.download=false

torchvision checks the MD5s of the CIFAR files: in-process tests patch that with `trust_cifar_files`
(tests/test_data.py); processes started by Ray read `write_trust_cifar_hook(dir)`, a sitecustomize
module found through PYTHONPATH.
"""

from __future__ import annotations

import pickle
import string
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_idx(path, array: np.ndarray):
    """An IDX (MNIST) file: magic 0x0000_08_<ndim> then big-endian int32 sizes, then uint8 data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _images_and_labels(rng, n: int, size: int, num_classes: int, first_label: int = 0):
    """Random uint8 images (flattened) with balanced labels, each class a little brighter than the last."""
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 192, (n, size)) + (labels[:, None] * 63 // max(num_classes - 1, 1))
    return images.astype(np.uint8), labels + first_label


def write_cifar10(root, num_train: int = 400, num_test: int = 200, seed: int = 0) -> Path:
    """root/cifar-10-batches-py/: data_batch_1..5 (num_train images in all), test_batch, batches.meta."""
    rng, folder = np.random.default_rng(seed), Path(root) / "cifar-10-batches-py"
    data, labels = _images_and_labels(rng, num_train, 3072, 10)
    for i, (d, y) in enumerate(zip(np.array_split(data, 5), np.array_split(labels, 5)), 1):
        write_pickle(folder / f"data_batch_{i}", {"data": d, "labels": y.tolist()})
    data, labels = _images_and_labels(rng, num_test, 3072, 10)
    write_pickle(folder / "test_batch", {"data": data, "labels": labels.tolist()})
    write_pickle(folder / "batches.meta", {"label_names": CIFAR10_CLASSES})
    return Path(root)


def write_cifar100(root, num_train: int = 400, num_test: int = 200, seed: int = 1) -> Path:
    """root/cifar-100-python/: train, test, meta."""
    rng, folder = np.random.default_rng(seed), Path(root) / "cifar-100-python"
    for split, n in (("train", num_train), ("test", num_test)):
        data, labels = _images_and_labels(rng, n, 3072, 100)
        write_pickle(folder / split, {"data": data, "fine_labels": labels.tolist(),
                                      "coarse_labels": (labels // 5).tolist()})
    write_pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                                   "coarse_label_names": [f"c{i}" for i in range(20)]})
    return Path(root)


def write_mnist(root, folder: str = "MNIST", num_train: int = 400, num_test: int = 200, seed: int = 2) -> Path:
    """root/<folder>/raw/: the four IDX files of MNIST (folder MNIST) or FashionMNIST (folder FashionMNIST)."""
    rng, raw = np.random.default_rng(seed), Path(root) / folder / "raw"
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        images, labels = _images_and_labels(rng, n, 28 * 28, 10)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images.reshape(n, 28, 28))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return Path(root)


def write_emnist_letters(root, num_train: int = 416, num_test: int = 208, seed: int = 3) -> Path:
    """root/EMNIST/raw/: the letters split's IDX files, labels 1-26 as on disk (0 is the unused N/A class)."""
    rng, raw = np.random.default_rng(seed), Path(root) / "EMNIST" / "raw"
    for split, n in (("train", num_train), ("test", num_test)):
        images, labels = _images_and_labels(rng, n, 28 * 28, len(string.ascii_lowercase), first_label=1)
        write_idx(raw / f"emnist-letters-{split}-images-idx3-ubyte", images.reshape(n, 28, 28))
        write_idx(raw / f"emnist-letters-{split}-labels-idx1-ubyte", labels)
    return Path(root)


def write_all_datasets(root) -> Path:
    """Every torchvision dataset the harness reads, a few hundred images per split, under one data_dir."""
    write_cifar10(root)
    write_cifar100(root)
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST", seed=4)
    write_emnist_letters(root)
    return Path(root)


TRUST_CIFAR_HOOK = '''\
"""Test-only: torchvision's CIFAR checks the MD5s of the real files; accept the small fixtures."""
import importlib.abc
import importlib.util
import sys


class _TrustCifar(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.cifar":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def patched(module):
            exec_module(module)
            module.check_integrity = lambda *args, **kwargs: True

        spec.loader.exec_module = patched
        return spec


sys.meta_path.insert(0, _TrustCifar())
'''


def write_trust_cifar_hook(folder) -> Path:
    """A sitecustomize.py in `folder`; put `folder` on PYTHONPATH so that every Python process (Ray's
    workers included) accepts the CIFAR fixtures. torchvision is not imported until something asks."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(TRUST_CIFAR_HOOK)
    return folder
