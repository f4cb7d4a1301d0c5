"""The segmentation trial: `train_segmentation` is `harness.trial._train` for `task: segmentation`.

Same shape as the classification loop: data on the device as uint8 (masks too), Accelerate,
per-epoch checkpoint and resume, the monitor's health flags and early stopping (val_loss, val_acc,
val_iou or val_dice), the best weights restored and evaluated on the test split, one epochs row
per epoch. What differs: per-pixel logits, mask losses, and metrics from pixel counts
(tp, fp, fn, tn) summed on the device and across processes, read once per epoch: IoU, Dice and
pixel accuracy (`train_acc`/`val_acc`, so generic code keeps working). Every
`segmentation.snapshot_every` epochs, and at the last one, a PNG of a few fixed validation images
with their true and predicted masks goes to results/<sweep>/snapshots/<trial_id>/epoch_<k>.png.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import torch

from harness import monitor
from harness.segmentation import metrics
from harness.segmentation.snapshots import snapshot_path, write_snapshot
from harness.step import Stepper, smallest_layer_grad_norm


def _logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


def train_epoch(model, batches, optimizer, loss_fn, accelerator, threshold: float, scheduler=None, grad_clip=None):
    """One pass. Returns device tensors [loss*n, tp, fp, fn, tn, n, grad_norm, steps] and the smallest
    per-layer gradient norm of the last step (trainable weights only)."""
    model.train()
    stepper = Stepper(model, optimizer, accelerator, scheduler, grad_clip)
    sums = torch.zeros(8, device=accelerator.device, dtype=torch.float64)
    one = torch.ones(1, device=accelerator.device, dtype=torch.float64)  # torch.tensor(n, device=cuda) would sync
    for x, masks in batches:
        logits = model(x)
        loss = loss_fn(logits, masks)
        norm = stepper(loss)
        n = masks.shape[0]
        counts = metrics.pixel_counts(logits.detach() > threshold, masks)
        sums += torch.cat([loss.detach().double().view(1) * n, counts, one * n, norm.double().view(1), one])
    return sums, smallest_layer_grad_norm(model)


@torch.no_grad()
def evaluate(model, batches, loss_fn, accelerator, threshold: float) -> dict:
    """Sample-weighted loss and the pixel-count scores (iou, dice, acc, macro_f1, fg_share), summed across processes."""
    model.eval()
    sums = torch.zeros(6, device=accelerator.device, dtype=torch.float64)
    one = torch.ones(1, device=accelerator.device, dtype=torch.float64)  # new_tensor([n]) would copy (CUDA: sync)
    for x, masks in batches:
        with accelerator.autocast():
            logits = model(x)
        n = masks.shape[0]
        counts = metrics.pixel_counts(logits > threshold, masks)
        sums += torch.cat([loss_fn(logits, masks).double().view(1) * n, counts, one * n])
    loss_n, tp, fp, fn, tn, n = accelerator.reduce(sums, "sum").tolist()
    return {"loss": loss_n / n if n else math.nan, **metrics.scores(tp, fp, fn, tn)}


@torch.no_grad()
def snapshot(model, images: torch.Tensor, masks: torch.Tensor, batches, threshold: float, path: Path, epoch: int):
    """Predict the fixed snapshot images (uint8, CPU) with `model` and write the PNG grid."""
    model.eval()
    x = batches.normalize(images.to(batches.device))
    preds = (model(x) > threshold).cpu()
    tp, fp, fn, _ = metrics.pixel_counts(preds, masks).tolist()
    title = f"epoch {epoch}: image | true | predicted (IoU {metrics.iou(tp, fp, fn):.3f})"
    write_snapshot(path, images, masks, preds, title)


def train_segmentation(cfg, trial_id: str, results_dir: Optional[Path], accelerator, on_epoch, base: dict):
    """Train one segmentation trial; returns a harness.trial.TrialOutcome (no classes/confusion rows)."""
    from accelerate.utils import set_seed

    from harness.data import load_dataset
    from harness.models import count_params
    from harness.optimizers import create_optimizer
    from harness.schedulers import create_scheduler
    from harness.segmentation.batches import MaskBatches
    from harness.segmentation.losses import create_seg_loss
    from harness.segmentation.models import create_seg_model
    from harness.trial import TrialOutcome, TrialProgress, _sync, peak_memory_mb

    set_seed(cfg.seed)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    tc, sc, es = cfg.train, cfg.segmentation, cfg.early_stopping
    threshold = _logit(sc.threshold)  # sigmoid(logit) > t  <=>  logit > logit(t)

    # data: images and masks on the device as uint8; val/test never augmented
    splits = load_dataset(cfg.dataset)
    norm = dict(normalize=cfg.dataset.normalize, mean=splits.split_info.get("mean"), std=splits.split_info.get("std"),
                channels_last=tc.channels_last, device=device, rank=rank, world_size=world)
    train_batches = MaskBatches(splits.train_x, splits.train_y, tc.batch_size, shuffle=True, augment=sc.augment,
                                seed=cfg.seed, **norm)
    val_batches = MaskBatches(splits.val_x, splits.val_y, tc.eval_batch_size, shuffle=False, **norm)
    test_batches = MaskBatches(splits.test_x, splits.test_y, tc.eval_batch_size, shuffle=False, **norm)
    pick = torch.linspace(0, len(splits.val_x) - 1, min(sc.snapshot_images, len(splits.val_x))).round().long()
    snap_images, snap_masks = splits.val_x[pick], splits.val_y[pick]

    # model, optimizer, schedule, loss
    model = create_seg_model(cfg.model.arch, splits.input_shape, splits.num_classes, init=cfg.model.init,
                             **cfg.model.options)
    num_params = count_params(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model = model.to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, cfg.optimizer, device.type)
    raw_optimizer = optimizer
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler, step_on = create_scheduler(raw_optimizer, cfg.scheduler, cfg.optimizer.lr, tc.epochs, len(train_batches))
    unwrapped = accelerator.unwrap_model(model)
    train_model = torch.compile(model) if tc.compile else model
    eval_model = train_model if world == 1 else unwrapped  # DDP forward would sync buffers across ranks
    loss_fn = create_seg_loss(cfg.loss)
    some_masks = splits.train_y[:256]
    uniform_loss = float(loss_fn(torch.zeros(some_masks.shape), some_masks))  # all-zero logits: p = 0.5 everywhere

    # resume from the last checkpoint, if this trial was interrupted
    progress = TrialProgress(cfg, trial_id, results_dir, accelerator, unwrapped, raw_optimizer, scheduler, step_on,
                             splits.num_classes, uniform_loss)
    history, best, start_epoch = progress.history, progress.best, progress.start_epoch

    status = "completed"
    for epoch in range(start_epoch, tc.epochs + 1):
        train_batches.set_epoch(epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        lr = raw_optimizer.param_groups[0]["lr"]
        _sync(device)
        t0 = time.perf_counter()
        sums, layer_min = train_epoch(train_model, train_batches, optimizer, loss_fn, accelerator, threshold,
                                      scheduler if step_on == "batch" else None, tc.grad_clip)
        sums = accelerator.reduce(sums, "sum")
        _sync(device)
        train_seconds = time.perf_counter() - t0
        val = evaluate(eval_model, val_batches, loss_fn, accelerator, threshold)
        epoch_seconds = time.perf_counter() - t0

        loss_n, tp, fp, fn, tn, n, grad_sum, steps = sums.tolist()
        train = metrics.scores(tp, fp, fn, tn)
        row = {
            "trial_id": trial_id, "epoch": epoch,
            "train_loss": loss_n / n if n else math.nan, "train_acc": train["acc"], "train_iou": train["iou"],
            "val_loss": val["loss"], "val_acc": val["acc"], "val_iou": val["iou"], "val_dice": val["dice"], "lr": lr,
            "grad_norm": grad_sum / steps if steps else math.nan,
            "grad_norm_min_layer": float(layer_min) if layer_min is not None else math.nan,
            "epoch_seconds": epoch_seconds, "train_seconds": train_seconds,
            "images_per_sec": n / train_seconds if train_seconds > 0 else math.nan,
            "peak_memory_mb": peak_memory_mb(device), "val_fg_share": val["fg_share"],
            "val_top_class_share": max(val["fg_share"], 1 - val["fg_share"]),
        }
        verdict = progress.record(row)
        snap = sc.snapshot_every and (epoch % sc.snapshot_every == 0 or verdict.stop or epoch == tc.epochs)
        if snap and results_dir is not None and accelerator.is_main_process:
            snapshot(unwrapped, snap_images, snap_masks, val_batches, threshold,
                     snapshot_path(results_dir, trial_id, epoch), epoch)
        if on_epoch is not None:
            on_epoch(row, verdict)
        if verdict.stop:
            status = verdict.status
            break

    # the best weights, on the test split
    progress.restore_best()
    test = evaluate(eval_model, test_batches, loss_fn, accelerator, threshold)
    flags = [f for r in history for f in (r.get("flags") or "").split(",") if f]
    throughput = [r["images_per_sec"] for r in history if math.isfinite(r["images_per_sec"])]

    def best_of(key: str, pick=max) -> float:
        return pick((r[key] for r in history if math.isfinite(r[key])), default=math.nan)

    row = {
        **base, "status": status, "params": num_params, "trainable_params": trainable, "epochs_run": len(history),
        "best_epoch": best["epoch"], "overfit_epoch": monitor.overfit_epoch(history, es.patience, es.min_delta),
        "best_val_loss": best_of("val_loss", min), "best_val_acc": best_of("val_acc"),
        "best_val_iou": best_of("val_iou"), "best_val_dice": best_of("val_dice"),
        "test_loss": test["loss"], "test_acc": test["acc"], "test_iou": test["iou"], "test_dice": test["dice"],
        "test_macro_f1": test["macro_f1"], "test_micro_f1": test["acc"], "test_top_class_share":
            max(test["fg_share"], 1 - test["fg_share"]),
        "train_images_per_sec": sum(throughput) / len(throughput) if throughput else math.nan,
        "health": json.dumps(flags), "error": None, "num_classes": splits.num_classes,
        "input_shape": list(splits.input_shape), "split_hash": splits.split_info.get("split_hash"),
    }
    return TrialOutcome(trial_id, status, row, history)
