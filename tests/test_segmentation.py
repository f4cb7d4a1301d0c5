"""Segmentation (`task: segmentation`): IoU/Dice and mask losses on hand-made masks, the U-Net, image/mask
batches, the two datasets, config checks, a tiny run that learns, early stopping with the best weights
restored, resume, snapshots, and the sweep CLI's smoke run down to the report."""

import math
import re
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
import torch

from harness import store
from harness.config import ConfigError, DatasetConfig, LossConfig, build_sweep, load_sweep
from harness.data import DATASETS, DatasetUnavailable, load_dataset
from harness.data.loader import MaskBatches
from harness.losses import create_loss, soft_dice_loss
from harness.models import WeightsUnavailable, create_model
from harness.registry import LOSSES
from harness.segmentation import metrics
from harness.segmentation.snapshots import latest_snapshot, snapshot_grid, snapshots
from harness.trial import run_trial

REPO = Path(__file__).resolve().parents[1]
SMALL_MODEL = {"arch": "unet_mobilenetv2", "encoder_depth": 3, "decoder_widths": [64, 32, 16]}


def seg_config(**sections):
    raw = {"name": "seg", "task": "segmentation",
           "dataset": {"name": "synthetic_shapes", "shape": [3, 32, 32], "num_train": 640, "num_val": 128,
                       "num_test": 128, "normalize": "imagenet"},
           "model": dict(SMALL_MODEL), "loss": {"name": "bce_dice"}, "optimizer": {"name": "adam", "lr": 0.003},
           "train": {"epochs": 3, "batch_size": 32, "eval_batch_size": 128},
           "segmentation": {"snapshot_every": 2, "augment": "hflip"}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_sweep(raw).trials[0].config


# ------------------------------------------------------------------------------------------- metrics


def masks(*rows):
    return torch.tensor(rows, dtype=torch.uint8).view(1, 1, len(rows), -1)


def test_pixel_counts_iou_and_dice_on_hand_made_masks():
    target = masks([1, 1, 0, 0], [1, 1, 0, 0])  # 4 foreground pixels
    pred = masks([1, 0, 0, 0], [1, 1, 1, 0])  # 3 right, 1 missed, 1 extra
    tp, fp, fn, tn = metrics.pixel_counts(pred, target).tolist()
    assert (tp, fp, fn, tn) == (3, 1, 1, 3)
    assert metrics.iou(tp, fp, fn) == 3 / 5
    assert metrics.dice(tp, fp, fn) == 6 / 8
    s = metrics.scores(tp, fp, fn, tn)
    assert s["acc"] == 6 / 8 and s["fg_share"] == 4 / 8
    assert s["macro_f1"] == (6 / 8 + 6 / 8) / 2  # background: 3 right, 1 missed, 1 extra too
    # perfect, disjoint, and empty-vs-empty (nothing to find, nothing found: 1)
    assert metrics.iou(*metrics.pixel_counts(target, target).tolist()[:3]) == 1.0
    assert metrics.iou(*metrics.pixel_counts(1 - target, target).tolist()[:3]) == 0.0
    empty = torch.zeros(1, 1, 3, 3, dtype=torch.uint8)
    assert metrics.iou(0, 0, 0) == metrics.dice(0, 0, 0) == 1.0
    assert metrics.pixel_counts(empty, empty).tolist() == [0, 0, 0, 9]
    # dice = 2 iou / (1 + iou) on any counts
    for tp, fp, fn in [(5, 2, 3), (1, 0, 9), (7, 7, 0)]:
        i = metrics.iou(tp, fp, fn)
        assert math.isclose(metrics.dice(tp, fp, fn), 2 * i / (1 + i))


def test_counts_sum_over_batches_like_one_big_batch():
    g = torch.Generator().manual_seed(0)
    pred, target = (torch.rand(6, 1, 5, 5, generator=g) > 0.5 for _ in range(2))
    whole = metrics.pixel_counts(pred, target)
    parts = metrics.pixel_counts(pred[:2], target[:2]) + metrics.pixel_counts(pred[2:], target[2:])
    assert torch.equal(whole, parts) and whole.dtype == torch.int64 and whole.sum() == 150


# -------------------------------------------------------------------------------------------- losses


def test_mask_losses_exact_values():
    logits = torch.tensor([2.0, -1.0, 0.0, 3.0]).view(1, 1, 2, 2)
    target = masks([1, 0], [1, 0])
    p = logits.sigmoid().flatten()
    t = target.flatten().float()
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    fns = {name: create_loss(LossConfig(name=name)) for name in ("bce", "dice", "bce_dice")}
    assert torch.isclose(fns["bce"](logits, target), bce)
    assert torch.isclose(fns["dice"](logits, target), dice)
    assert torch.isclose(fns["bce_dice"](logits, target), bce + dice)
    # confident and right: ~0; confident and wrong: 1 - smooth / (2 + 2 + smooth)
    right = (target.float() * 2 - 1) * 30
    assert fns["bce_dice"](right, target) < 1e-6
    assert torch.isclose(fns["dice"](-right, target), torch.tensor(1 - 1 / 5))


def test_dice_loss_is_per_image_and_every_loss_has_gradients():
    a, b = masks([1, 1], [0, 0]), masks([0, 0], [0, 0])
    logits = torch.randn(2, 1, 2, 2, requires_grad=True)
    both = soft_dice_loss(logits, torch.cat([a, b]))
    assert torch.isclose(both, (soft_dice_loss(logits[:1], a) + soft_dice_loss(logits[1:], b)) / 2)
    for name in LOSSES.names(task="segmentation"):
        loss = create_loss(LossConfig(name=name))(logits.bfloat16(), torch.cat([a, b]))
        assert loss.dtype == torch.float32 and loss.shape == () and torch.isfinite(loss)
        loss.backward()
    assert LOSSES.names(task="segmentation") == ["bce", "bce_dice", "dice"]


# --------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("shape, depth", [((3, 32, 32), 5), ((1, 37, 45), 3), ((4, 16, 24), 1)])
def test_unet_gives_one_logit_per_pixel_on_any_input(shape, depth):
    model = create_model("unet_mobilenetv2", shape, 2, encoder_depth=depth, width_mult=0.5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 1, *shape[1:]) and out.dtype == torch.float32


def test_frozen_encoder_does_not_train_and_unfrozen_does():
    options = {k: v for k, v in SMALL_MODEL.items() if k != "arch"}
    frozen = create_model("unet_mobilenetv2", (3, 32, 32), 2, **options)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert all(p.requires_grad for p in frozen.decoder.parameters())
    frozen(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for p in frozen.encoder.parameters())
    free = create_model("unet_mobilenetv2", (3, 32, 32), 2, freeze_encoder=False, encoder_depth=2,
                            decoder_widths=[8, 8])
    assert all(p.requires_grad for p in free.parameters())
    assert set(free.param_groups()) == {"encoder", "decoder"}


def test_unet_option_errors():
    with pytest.raises(ValueError, match="decoder_widths needs 3 positive widths"):
        create_model("unet_mobilenetv2", (3, 32, 32), 2, encoder_depth=3, decoder_widths=[8, 8])
    with pytest.raises(ValueError, match="encoder_depth must be 1..5"):
        create_model("unet_mobilenetv2", (3, 32, 32), 2, encoder_depth=6)
    with pytest.raises(ValueError, match="binary masks"):
        create_model("unet_mobilenetv2", (3, 32, 32), 5)
    with pytest.raises(ValueError, match="width_mult 1.0"):
        create_model("unet_mobilenetv2", (3, 32, 32), 2, pretrained=True, width_mult=0.5)


def test_pretrained_encoder_offline_is_a_one_line_error(monkeypatch, tmp_path):
    def no_network(url, dst, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailable) as info:
        create_model("unet_mobilenetv2", (3, 32, 32), 2, pretrained=True)
    message = str(info.value)
    assert "\n" not in message and "(no network)" in message
    assert str(tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth") in message


# ------------------------------------------------------------------------------------------ batches


def test_mask_batches_keep_masks_uint8_and_flip_image_and_mask_together():
    n = 64
    images = torch.arange(4, dtype=torch.uint8).repeat(n, 3, 4, 1)  # every row reads 0 1 2 3
    mask = torch.tensor([1, 1, 0, 0], dtype=torch.uint8).repeat(n, 1, 4, 1)
    batches = MaskBatches(images, mask, 16, device="cpu", shuffle=True, augment="hflip", seed=3)
    flipped = 0
    for x, m in batches:
        assert m.dtype == torch.uint8 and x.dtype == torch.float32
        is_flipped = x[:, 0, 0, 0] > x[:, 0, 0, -1]
        assert torch.equal(m[:, 0, 0, 0] == 0, is_flipped)  # the mask flipped exactly when the image did
        flipped += int(is_flipped.sum())
    assert 10 < flipped < 54
    plain = MaskBatches(images, mask, 100, device="cpu", shuffle=False)
    x, m = next(iter(plain))
    assert torch.equal(m, mask) and torch.allclose(x, images.float() / 255)


def test_mask_batches_shard_over_ranks():
    images, mask = torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.zeros(10, 1, 2, 2, dtype=torch.uint8)
    eval_parts = [MaskBatches(images, mask, 3, device="cpu", shuffle=False, rank=r, world_size=3).indices()
                  for r in range(3)]
    assert sorted(torch.cat(eval_parts).tolist()) == list(range(10))
    train_parts = [MaskBatches(images, mask, 3, device="cpu", shuffle=True, rank=r, world_size=3).indices()
                   for r in range(3)]
    assert [len(p) for p in train_parts] == [3, 3, 3] and len(set(torch.cat(train_parts).tolist())) == 9
    with pytest.raises(ValueError, match="masks must be uint8"):
        MaskBatches(images, mask.long(), 3, device="cpu", shuffle=False)


# ------------------------------------------------------------------------------------------ datasets


def test_synthetic_shapes_is_seeded_and_its_masks_mark_the_bright_shapes():
    cfg = DatasetConfig(name="synthetic_shapes", shape=[3, 24, 40], num_train=50, num_test=20)
    raw = DATASETS.get("synthetic_shapes")(cfg)
    assert raw.train_x.shape == (50, 3, 24, 40) and raw.train_y.shape == (50, 1, 24, 40)
    assert raw.train_x.dtype == raw.train_y.dtype == torch.uint8 and set(raw.train_y.unique().tolist()) == {0, 1}
    assert raw.test_x.shape == (20, 3, 24, 40) and raw.class_names == ["background", "foreground"]
    assert (raw.train_y.flatten(1).sum(1) > 0).all()  # at least one shape each
    again = DATASETS.get("synthetic_shapes")(cfg)
    assert torch.equal(raw.train_x, again.train_x) and torch.equal(raw.train_y, again.train_y)
    other = DATASETS.get("synthetic_shapes")(cfg.model_copy(update={"split_seed": 1}))
    assert not torch.equal(raw.train_y, other.train_y)
    brightness = raw.train_x.float().mean(1, keepdim=True)
    fg, bg = brightness[raw.train_y == 1].mean(), brightness[raw.train_y == 0].mean()
    assert fg > bg + 80
    splits = load_dataset(cfg.model_copy(update={"num_val": 10, "max_train": 30}))
    assert splits.train_y.shape == (30, 1, 24, 40) and splits.val_y.shape == (10, 1, 24, 40)
    assert splits.num_classes == 2 and splits.input_shape == (3, 24, 40)


def write_folder(root: Path, names, size=(20, 12)):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, name in enumerate(names):
        image = np.full((size[1], size[0], 3), 10 * i, dtype=np.uint8)
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[: size[1] // 2] = 255  # top half foreground
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_segmentation_folder_reads_resizes_and_holds_out_a_test_split(tmp_path):
    write_folder(tmp_path / "data", [f"img{i:02d}" for i in range(10)])
    cfg = DatasetConfig(name="segmentation_folder", data_dir=str(tmp_path / "data"), shape=[3, 8, 10])
    raw = DATASETS.get("segmentation_folder")(cfg)
    assert raw.train_x.shape == (8, 3, 8, 10) and raw.test_x.shape == (2, 3, 8, 10)
    assert raw.train_y.shape == (8, 1, 8, 10) and raw.train_y.dtype == torch.uint8
    assert raw.train_y[:, :, :4].eq(1).all() and raw.train_y[:, :, 4:].eq(0).all()  # nearest resize, 255 -> 1
    values = sorted(raw.train_x[:, 0, 0, 0].tolist() + raw.test_x[:, 0, 0, 0].tolist())
    assert values == [10 * i for i in range(10)]  # every pair used once
    gray = DATASETS.get("segmentation_folder")(cfg.model_copy(update={"shape": [1, 6, 6]}))
    assert gray.train_x.shape == (8, 1, 6, 6)


def test_segmentation_folder_errors_name_the_problem(tmp_path):
    cfg = DatasetConfig(name="segmentation_folder", data_dir=str(tmp_path / "nothing"), shape=[3, 8, 8])
    with pytest.raises(DatasetUnavailable, match="no folder"):
        DATASETS.get("segmentation_folder")(cfg)
    write_folder(tmp_path / "data", ["a", "b"])
    (tmp_path / "data" / "masks" / "b.png").unlink()
    with pytest.raises(DatasetUnavailable, match=r"1 image\(s\) .* have no mask .* e\.g\. b\.png"):
        DATASETS.get("segmentation_folder")(cfg.model_copy(update={"data_dir": str(tmp_path / "data")}))


# ------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("change, message", [
    ({"loss": {"name": "cross_entropy"}}, "loss.name: 'cross_entropy' is not for task segmentation*; allowed: bce"),
    ({"model": {"arch": "mlp", "encoder_depth": None}}, None),
    ({"dataset": {"name": "digits"}}, "dataset.name: 'digits' is not for task segmentation"),
    ({"dataset": {"augment": "standard"}}, "set segmentation.augment"),
    ({"model": {"activation": "gelu"}}, "model 'unet_mobilenetv2' has no option 'activation'"),
    ({"segmentation": {"augment": "rotate"}}, "'rotate' is not allowed; allowed: none, hflip"),
    ({"model": {"init_from": "x.pt"}}, "model.init_from / model.finetune: not supported for task segmentation"),
])
def test_config_checks_segmentation_runs(change, message):
    raw = {"name": "s", "task": "segmentation", "dataset": {"name": "synthetic_shapes"},
           "model": {"arch": "unet_mobilenetv2"}, "loss": {"name": "dice"}}
    for key, value in change.items():
        raw[key] = {**raw.get(key, {}), **value}
    if message is None:  # a classifier arch with a segmentation option: the option is the first problem
        raw["model"] = {"arch": "mlp"}
        message = "model.arch: 'mlp' is not for task segmentation*; allowed: unet_mobilenetv2"
    # `*`: whatever the message adds there (which task the name needs)
    with pytest.raises(ConfigError, match=".*".join(map(re.escape, message.split("*")))):
        build_sweep(raw)


def test_config_keeps_segmentation_names_out_of_classification():
    base = {"name": "c", "dataset": {"name": "digits"}, "model": {"arch": "mlp"}}
    for key, value, name in [("loss", {"name": "bce_dice"}, "loss.name: 'bce_dice'"),
                             ("early_stopping", {"monitor": "val_iou"}, "early_stopping.monitor: 'val_iou'"),
                             ("dataset", {"name": "synthetic_shapes"}, "dataset.name: 'synthetic_shapes'"),
                             ("model", {"arch": "unet_mobilenetv2"}, "model.arch: 'unet_mobilenetv2'")]:
        with pytest.raises(ConfigError, match=re.escape(name) + ".*needs task: segmentation"):
            build_sweep({**base, key: value})
    cfg = build_sweep(base).trials[0].config
    assert cfg.task == "classification" and cfg.segmentation.snapshot_every == 5


def test_the_sweep_file_loads():
    sweep = load_sweep(REPO / "sweeps" / "s4_segmentation.yaml")
    cfg = sweep.config
    assert len(sweep.trials) == 9 and cfg.task == "segmentation"
    assert cfg.model.options["freeze_encoder"] is True and cfg.early_stopping.patience == 4
    assert cfg.early_stopping.monitor == "val_iou" and cfg.segmentation.snapshot_every == 5
    assert cfg.dataset.num_train + cfg.dataset.num_test == 859


# ------------------------------------------------------------------------------------------ training


def test_tiny_run_learns_well_above_trivial_iou_and_writes_rows_and_snapshots(tmp_path):
    cfg = seg_config(train={"epochs": 4})
    out = run_trial(cfg, "learn", tmp_path)
    assert out.status == "completed", out.row.get("error_detail")
    history = out.epochs
    fg = load_dataset(cfg.dataset).val_y.float().mean()  # IoU of predicting all foreground; all background: 0
    target = store.read_table(tmp_path, "trials").iloc[0]
    assert target["best_val_iou"] > 0.75 and target["test_iou"] > 0.75 and fg < 0.3, history
    assert target["test_dice"] >= target["test_iou"] and target["best_val_iou"] == max(r["val_iou"] for r in history)
    epochs = store.read_table(tmp_path, "epochs")
    assert list(epochs["epoch"]) == [1, 2, 3, 4]
    for col in [*store.EPOCH_COLUMNS, "val_iou", "val_dice", "train_iou"]:
        assert epochs[col].notna().all(), col
    assert store.read_table(tmp_path, "classes").empty and store.read_table(tmp_path, "confusion").empty
    shots = sorted(p.name for p in (tmp_path / "snapshots" / "learn").iterdir())
    assert shots == ["epoch_2.png", "epoch_4.png"]
    assert latest_snapshot(tmp_path, "learn")[0] == 4
    assert not (tmp_path / "checkpoints" / "learn").exists()


def test_early_stopping_on_val_iou_restores_the_best_weights(tmp_path):
    # 64 images are too few to learn from in 3 epochs: the model predicts background everywhere, IoU 0, at
    # chance (and stalled, were stop_on_stall on); what is tested here is the early stop
    cfg = seg_config(dataset={"max_train": 64, "max_eval": 64}, train={"epochs": 10, "save_model": True},
                     early_stopping={"enabled": True, "monitor": "val_iou", "patience": 2, "min_delta": 1.0},
                     segmentation={"snapshot_every": 5}, health={"stop_on_stall": False})
    out = run_trial(cfg, "stop", tmp_path)  # nothing can improve IoU by 1.0: stops 2 epochs after the first
    assert out.status == "early_stopped" and out.row["epochs_run"] == 3 and out.row["best_epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "snapshots" / "stop").iterdir()) == ["epoch_3.png"]  # the last one
    # the kept (best) weights are epoch 1's: they reproduce epoch 1's validation IoU exactly
    from harness.engine.loop import evaluate
    from harness.tasks.segmentation import Segmentation
    from harness.trial import make_accelerator

    model = create_model("unet_mobilenetv2", (3, 32, 32), 2, **cfg.model.options)
    model.load_state_dict(torch.load(tmp_path / "models" / "stop.pt", weights_only=False))
    splits = load_dataset(cfg.dataset)
    val = MaskBatches(splits.val_x, splits.val_y, 128, device="cpu", shuffle=False, normalize="imagenet")
    task = Segmentation(cfg)
    loss, counts = evaluate(model, val, create_loss(cfg.loss), make_accelerator(), task.counts, task.num_counts)
    assert loss == out.epochs[0]["val_loss"] != out.epochs[-1]["val_loss"]
    assert task.scores(counts)["iou"] == out.epochs[0]["val_iou"]


def test_resume_reproduces_the_run(tmp_path):
    cfg = seg_config(dataset={"max_train": 96, "max_eval": 64}, train={"epochs": 2},
                     segmentation={"snapshot_every": 1})
    whole = run_trial(cfg, "r", tmp_path / "a")

    def interrupt(row, verdict):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, "r", tmp_path / "b", on_epoch=interrupt)
    resumed = run_trial(cfg, "r", tmp_path / "b")
    keys = ["train_loss", "val_loss", "val_iou", "val_dice", "train_acc"]
    assert [[r[k] for k in keys] for r in resumed.epochs] == [[r[k] for k in keys] for r in whole.epochs]
    assert resumed.row["test_iou"] == whole.row["test_iou"]
    assert [epoch for epoch, _ in snapshots(tmp_path / "b", "r")] == [1, 2]


def test_snapshot_grid_layout():
    images = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    m = torch.zeros(3, 1, 16, 16, dtype=torch.uint8)
    sheet = snapshot_grid(images, m, 1 - m, "epoch 5")
    assert sheet.mode == "RGB" and sheet.size == (3 * 96 + 16, 16 + 3 * (96 + 4) + 4)  # scaled x6, 3 columns
    pixels = np.asarray(sheet)
    assert (pixels[16 + 4 + 10, 4 + 96 + 4 + 10] == 0).all() and (pixels[16 + 4 + 10, 4 + 2 * 100 + 10] == 255).all()


# ------------------------------------------------------------------------------------------ end to end


def test_smoke_sweep_through_the_cli_writes_iou_rows_and_the_report_embeds_a_snapshot(tmp_path):
    cmd = [sys.executable, "-m", "harness.sweep", str(REPO / "sweeps" / "s4_segmentation.yaml"), "--smoke",
           "--results-dir", str(tmp_path), "--set", "dataset.shape=[3,32,32]", "--set", "grid.loss.name=[bce_dice]",
           "--set", "model.encoder_depth=3", "--set", "model.decoder_widths=[64,32,16]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = tmp_path / "s4-segmentation"
    epochs = pd.read_parquet(results / "epochs.parquet")
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 1 and trials["status"].iloc[0] == "completed"
    assert list(epochs["epoch"]) == [1] and epochs["val_iou"].notna().all() and "val_dice" in epochs
    assert trials["test_iou"].notna().all() and trials["dataset.max_train"].iloc[0] == 256
    tid = trials["trial_id"].iloc[0]
    assert (results / "snapshots" / tid / "epoch_1.png").exists()
    page = (results / "report" / "index.html").read_text()
    assert "Metric <code>best_val_iou</code>" in page
    section = page[page.index('<section id="snapshots">'):]
    section = section[: section.index("</section>")]
    assert "data:image/png;base64," in section and f"trial <code>{tid}</code>, epoch 1" in section
