"""The task protocol: both tasks satisfy it, a third task is one class run by the same loop, and the
three segmentation measurements that generic classification rules got wrong: the at-chance rule (an
all-background mask model), time-to-target (IoU, not pixel accuracy) and the pruned-trial row (counted
on the IoU leaderboard)."""

import math

import pytest
import torch

from harness import store
from harness.config import EarlyStoppingConfig, HealthConfig, build_sweep
from harness.data import load_dataset
from harness.monitor import check_epoch
from harness.report.leaderboard import default_metric, leaderboard
from harness.report.results import load_results
from harness.report.targets import time_to_target, trial_times
from harness.sweep.tune import finalize, sweep_metric
from harness.tasks import TASKS, Task, create_task
from harness.tasks.classification import Classification
from harness.tasks.segmentation import Segmentation
from harness.trial import make_accelerator, train
from harness.vocabulary import direction


def seg_sweep(name="seg", grid=None):
    return build_sweep({"name": name, "task": "segmentation", "dataset": {"name": "synthetic_shapes"},
                        "model": {"arch": "unet_mobilenetv2"}, "loss": {"name": "dice"}, "seeds": [0, 1],
                        "grid": grid or {"optimizer.lr": [0.1, 0.01]}})


def test_both_tasks_satisfy_the_protocol_and_name_their_metric():
    assert isinstance(Classification(None), Task) and isinstance(Segmentation(seg_sweep().trials[0].config), Task)
    assert [TASKS.get(n).metric for n in TASKS] == ["val_acc", "val_iou"]
    assert all(direction(TASKS.get(n).metric) == "max" for n in TASKS)
    cfg = seg_sweep().trials[0].config
    assert sweep_metric(cfg) == "val_iou" and isinstance(create_task(cfg), Segmentation)


# ------------------------------------------------------------------------------ at chance, for masks


def test_segmentation_chance_is_the_best_constant_masks_iou():
    task = Segmentation(seg_sweep().trials[0].config)
    masks = torch.zeros(2, 1, 4, 5, dtype=torch.uint8)
    masks[0, 0, :2, :3] = 1  # 6 of 40 pixels foreground
    splits = type("Splits", (), {"val_y": masks})()
    assert task.chance(splits) == 6 / 40  # all foreground: IoU 6/40; all background: 0
    splits.val_y = torch.zeros_like(masks)
    assert task.chance(splits) == 1.0  # nothing to find: the empty prediction is perfect


def test_an_all_background_mask_model_is_flagged_and_an_over_predicting_one_is_not():
    health, es = HealthConfig(stall_epochs=2), EarlyStoppingConfig()
    chance = 0.15  # 15% of the validation pixels are foreground
    background = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.5, "train_acc": 0.85, "val_acc": 0.85,
                  "val_iou": 0.0, "val_fg_share": 0.0, "val_top_class_share": 1.0}
    # the old rule (pixel accuracy <= 1/2 + margin) let it through: 0.85 > 0.55
    assert check_epoch([background], 2, health, es).flags == []
    assert check_epoch([background], 2, health, es, metric="val_iou", chance=chance).flags == ["at_chance@1"]
    v = check_epoch([background, {**background, "epoch": 2}], 2, health, es, metric="val_iou", chance=chance)
    assert (v.stop, v.status, v.flags) == (True, "stalled", ["at_chance@2", "stalled@2"])
    # over-predicting foreground: pixel accuracy 0.5 (the old rule stalled it) but it finds the objects
    eager = {**background, "val_acc": 0.5, "val_iou": 0.3, "val_fg_share": 0.5, "val_top_class_share": 0.5}
    two = [eager, {**eager, "epoch": 2}]
    assert check_epoch(two, 2, health, es).status == "stalled"
    assert check_epoch(two, 2, health, es, metric="val_iou", chance=chance).flags == []
    assert check_epoch([{**eager, "val_iou": 0.2}], 2, health, es, metric="val_iou", chance=chance).flags == [
        "at_chance@1"]  # within the margin (0.05) of chance: at chance


# ------------------------------------------------- a pruned segmentation sweep: leaderboard and time to target


def seg_epochs(trial_id: str, ious: list[float]) -> list[dict]:
    """Pixel accuracy runs well ahead of IoU (0.9 from the first epoch), as on masks with little foreground."""
    return [{"trial_id": trial_id, "epoch": e, "train_loss": 1 - iou, "train_acc": 0.9 + 0.01 * e,
             "val_loss": 1 - iou, "val_acc": 0.9 + 0.01 * e, "val_iou": iou, "val_dice": 2 * iou / (1 + iou),
             "epoch_seconds": 2.0, "lr": 0.01} for e, iou in enumerate(ious, 1)]


@pytest.fixture
def pruned_seg(tmp_path):
    """Four segmentation trials that ASHA pruned: epoch rows, no trials rows, until finalize."""
    sweep = seg_sweep()
    curves = {0.1: [0.3, 0.5, 0.7], 0.01: [0.2, 0.4, 0.6]}
    for t in sweep.trials:
        iou = curves[t.config.optimizer.lr]
        store.write_part(tmp_path, "epochs", t.trial_id, seg_epochs(t.trial_id, [v + 0.01 * t.config.seed for v in iou]))
    statuses = finalize(sweep.trials, tmp_path, {})
    assert set(statuses.values()) == {"early_stopped"}
    return tmp_path, sweep


def test_a_pruned_segmentation_trial_is_counted_on_the_iou_leaderboard(pruned_seg):
    results_dir, sweep = pruned_seg
    rows = store.read_table(results_dir, "trials").set_index("trial_id")
    first = sweep.trials[0]  # lr 0.1 seed 0
    assert rows.loc[first.trial_id, "best_val_iou"] == pytest.approx(0.7)
    assert rows.loc[first.trial_id, "best_val_dice"] == pytest.approx(1.4 / 1.7)
    assert rows.loc[first.trial_id, "best_val_acc"] == pytest.approx(0.93)
    results = load_results(results_dir)
    assert default_metric(results) == "best_val_iou"
    board = leaderboard(results)
    assert list(board["n"]) == [2, 2] and board["metric"].iloc[0] == "best_val_iou"
    assert board["mean"].iloc[0] == pytest.approx(0.705)  # lr 0.1: seeds 0.70, 0.71


def test_a_segmentation_reports_time_to_target_uses_iou(pruned_seg):
    results = load_results(pruned_seg[0])
    # pixel accuracy is >= 0.9 from epoch 1: time to 0.9 "accuracy" would be the first epoch for everyone
    times = trial_times(results, 0.5).set_index("trial_id")
    assert sorted(times["epoch"]) == [2, 2, 3, 3]  # IoU reaches 0.5 at epoch 2 (lr 0.1) or 3 (lr 0.01: 0.6, 0.61)
    frame = time_to_target(results, 0.5)
    assert list(frame["metric"]) == ["val_iou", "val_iou"]
    assert list(frame["median_epoch"]) == [2.0, 3.0] and list(frame["median_seconds"]) == [4.0, 6.0]
    assert math.isinf(time_to_target(results, 0.75)["median_epoch"].iloc[0])  # never reached
    assert list(trial_times(results, 0.9, metric="val_acc")["epoch"]) == [1.0] * 4  # asked for explicitly


# ------------------------------------------------------------------------------ a third task is one class


class TopTwo(Classification):
    """A test-only task: classification scored by top-2 accuracy (counts: [top-2 hits, samples])."""

    name, metric = "top_two", "val_acc"
    columns = {"train": ("acc",), "val": ("acc",), "test": ("acc",), "best_val": ("acc",)}
    num_counts = 2

    def build(self, splits):
        model, loss_fn, uniform = super().build(splits)
        self.num_counts = 2
        return model, loss_fn, uniform

    def counts(self, output, target):
        hits = (output.topk(2, dim=1).indices == target[:, None]).any(1).sum()
        return torch.stack([hits, target.new_tensor(0) + target.shape[0]])

    def scores(self, counts):
        hits, n = counts.tolist()
        return {"acc": hits / n if n else math.nan}

    def test_tables(self, counts, splits, trial_id):
        return [], []


def test_a_third_task_runs_through_the_same_loop(tmp_path):
    cfg = build_sweep({"name": "third", "dataset": {"name": "digits"}, "model": {"arch": "mlp", "widths": [16]},
                       "train": {"epochs": 2}}).trials[0].config
    task = TopTwo(cfg)
    assert isinstance(task, Task)
    out = train(task, cfg, "t", tmp_path, make_accelerator(), None, {"trial_id": "t"})
    assert out.status == "completed" and [r["epoch"] for r in out.epochs] == [1, 2]
    top1 = train(Classification(cfg), cfg, "c", tmp_path, make_accelerator(), None, {"trial_id": "c"})
    for two, one in zip(out.epochs, top1.epochs):  # same seed, same steps: only the counting differs
        assert two["train_loss"] == one["train_loss"] and 1 >= two["val_acc"] >= one["val_acc"]
    assert out.row["test_acc"] >= top1.row["test_acc"] and out.classes == [] and top1.classes
    assert out.row["best_val_acc"] == max(r["val_acc"] for r in out.epochs)
    splits = load_dataset(cfg.dataset)
    assert Classification(cfg).chance(splits) == max(torch.bincount(splits.val_y).tolist()) / len(splits.val_y)
