"""Overfitting, early stopping and health rules on hand-written histories (exact expected values)."""

import math

from harness.config import EarlyStoppingConfig, HealthConfig
from harness.monitor import (
    at_chance,
    best_epoch,
    chance_accuracy,
    check_epoch,
    generalization_gap,
    is_collapsed,
    overfit_epoch,
    should_stop_early,
)


def hist(train, val, acc=None):
    acc = acc or [0.9] * len(train)
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "train_acc": 0.95, "val_acc": a}
            for i, (t, v, a) in enumerate(zip(train, val, acc))]


def test_best_epoch_min_and_max_with_min_delta():
    h = hist([1, 0.9, 0.8, 0.7], [1.0, 0.8, 0.79, 0.85], acc=[0.5, 0.7, 0.7, 0.72])
    assert best_epoch(h, "val_loss", "min") == 3
    assert best_epoch(h, "val_loss", "min", min_delta=0.05) == 2  # 0.79 is not 0.05 better than 0.8
    assert best_epoch(h, "val_acc", "max") == 4
    assert best_epoch(hist([math.nan], [math.nan])) is None


def test_overfit_epoch_s3_rule_and_patience():
    # S3: validation loss rises above the previous best while training loss keeps falling
    h = hist([1.0, 0.8, 0.6, 0.5, 0.4], [0.9, 0.7, 0.75, 0.8, 0.9])
    assert overfit_epoch(h, patience=1) == 2
    assert overfit_epoch(h, patience=3) == 2
    assert overfit_epoch(h, patience=4) is None  # not enough epochs after the best
    # validation rises but training loss rises too: not overfitting (e.g. lr too high)
    assert overfit_epoch(hist([1.0, 0.8, 0.9, 1.0], [0.9, 0.7, 0.8, 0.9]), patience=1) is None
    # a dip that recovers within patience is not overfitting
    assert overfit_epoch(hist([1, 0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.85, 0.7, 0.65]), patience=2) is None


def test_generalization_gap():
    assert generalization_gap({"train_loss": 0.25, "val_loss": 0.75, "train_acc": 0.9, "val_acc": 0.8}) == \
        {"gap_loss": 0.5, "gap_acc": 0.9 - 0.8}


def test_early_stopping_after_patience_epochs_without_improvement():
    h = hist([1, 0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.81, 0.82, 0.83])
    assert not should_stop_early(h[:4], "val_loss", "min", patience=3)
    assert should_stop_early(h, "val_loss", "min", patience=3)
    es = EarlyStoppingConfig(enabled=True, patience=3)
    assert check_epoch(h, 10, HealthConfig(), es).status == "early_stopped"
    assert not check_epoch(h, 10, HealthConfig(), EarlyStoppingConfig(enabled=False, patience=3)).stop


def test_divergence_stops_at_once():
    v = check_epoch(hist([1.0, math.inf], [0.9, math.nan]), 10, HealthConfig(), EarlyStoppingConfig())
    assert (v.stop, v.status, v.flags) == (True, "diverged", ["diverged@2"])


def test_exploding_but_finite_loss_is_divergence():
    h = hist([250.0], [300.0], acc=[0.1])
    v = check_epoch(h, 10, HealthConfig(divergence_factor=100), EarlyStoppingConfig(), uniform_loss=2.302585)
    assert (v.stop, v.status) == (True, "diverged")
    assert not check_epoch(h, 10, HealthConfig(divergence_factor=200), EarlyStoppingConfig(), uniform_loss=2.302585).stop


def test_stalled_at_chance_after_k_epochs():
    health = HealthConfig(stall_epochs=3, stall_margin=0.05)
    h = hist([2.3, 2.2, 2.1], [2.3, 2.3, 2.3], acc=[0.10, 0.12, 0.14])  # S2: loss falls, accuracy at chance
    assert check_epoch(h[:2], 10, health, EarlyStoppingConfig()).flags == ["at_chance@2"]
    v = check_epoch(h, 10, health, EarlyStoppingConfig())
    assert (v.stop, v.status, v.flags) == (True, "stalled", ["at_chance@3", "stalled@3"])
    healthy = hist([2.3, 1.2, 0.8], [2.3, 1.0, 0.7], acc=[0.2, 0.6, 0.8])
    assert check_epoch(healthy, 10, health, EarlyStoppingConfig()) .flags == []


def test_gradient_flags():
    h = hist([1.0], [1.0], acc=[0.9])
    h[0].update(grad_norm=5e3, grad_norm_min_layer=1e-9)
    assert check_epoch(h, 10, HealthConfig(), EarlyStoppingConfig()).flags == ["vanishing_grad@1", "exploding_grad@1"]


# --------------------------------------------------------------------------------------------------
# Collapsed predictions and the chance level (the validation fields the classification loop records)


def row(epoch=1, acc=0.12, top=None, largest=None, never=None, train_loss=2.2, val_loss=2.25):
    """One epoch row; the prediction fields only where given (segmentation rows have none of them)."""
    r = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "train_acc": acc, "val_acc": acc}
    for key, value in (("val_top_class_share", top), ("val_largest_class_share", largest),
                       ("val_classes_never_predicted", never)):
        if value is not None:
            r[key] = value
    return r


def flags(history, num_classes=10, **health):
    v = check_epoch(history, num_classes, HealthConfig(**health), EarlyStoppingConfig())
    return v.flags, v.stop, v.status


S2_HEALTH = {"stall_epochs": 1, "stop_on_stall": False}  # sweeps/s2_heavy_aug.yaml


def test_s2_is_flagged_at_chance_and_collapsed_in_epoch_1():
    # S2: 10 classes, six never predicted, 31% of the predictions on one class, accuracy 12%; a 5,000-image
    # validation split whose largest class holds 10.5% of it
    s2 = row(acc=0.12, top=0.31, largest=0.105, never=6)
    assert flags([s2]) == (["at_chance@1", "collapsed@1"], False, "running")  # defaults: stalled after 3 epochs
    assert flags([s2], **S2_HEALTH) == (["at_chance@1", "collapsed@1", "stalled@1"], False, "running")
    # either sign alone is a collapse while accuracy is near chance
    both = (["at_chance@1", "collapsed@1"], False, "running")
    assert flags([row(acc=0.12, top=0.2, largest=0.105, never=6)]) == both
    assert flags([row(acc=0.12, top=0.31, largest=0.105, never=0)]) == both


def test_s2_stand_in_above_the_old_margin_is_still_flagged():
    # the synthetic stand-in (200 validation images, largest class 12.5%): 17% accuracy, 48.5% of the
    # predictions on one class, three classes never predicted. 1/10 + 0.05 missed it; a constant
    # prediction scores 12.5% here, so at chance is <= 0.175, and the collapse is caught by its share
    s = row(acc=0.17, top=0.485, largest=0.125, never=3)
    assert flags([s], **S2_HEALTH) == (["at_chance@1", "collapsed@1", "stalled@1"], False, "running")
    del s["val_largest_class_share"]  # without the field: chance is 1/classes, and the share is not judged
    assert flags([s], **S2_HEALTH) == ([], False, "running")


def test_chance_is_what_a_constant_prediction_scores():
    assert chance_accuracy(row(largest=0.125), 10) == 0.125
    assert chance_accuracy(row(), 10) == 0.1  # no field (segmentation, older rows): 1/classes
    assert chance_accuracy(row(largest=math.nan), 4) == 0.25  # nothing evaluated
    assert at_chance(row(acc=0.175), 0.125, 0.05)
    assert not at_chance(row(acc=0.176), 0.125, 0.05)
    assert not at_chance(row(acc=0.16), 0.1, 0.05)
    assert at_chance({"val_iou": 0.2}, 0.15, 0.05, metric="val_iou")  # the task's score, against the task's chance
    assert not at_chance({"val_iou": 0.2001}, 0.15, 0.05, metric="val_iou")
    assert not at_chance({"val_iou": math.nan}, 0.15, 0.05, metric="val_iou")  # nothing evaluated: not judged


def test_collapse_thresholds_exactly():
    args = dict(num_classes=10, unpredicted=0.5, top_share=2.5, margin=0.1)
    assert is_collapsed(row(acc=0.2, largest=0.125, top=0.2, never=5), **args)  # half the classes never predicted
    assert not is_collapsed(row(acc=0.2, largest=0.125, top=0.2, never=4), **args)
    assert is_collapsed(row(acc=0.2, largest=0.125, top=0.3125, never=0), **args)  # exactly 2.5 x 0.125
    assert not is_collapsed(row(acc=0.2, largest=0.125, top=0.3124, never=0), **args)
    assert is_collapsed(row(acc=0.225, largest=0.125, top=0.9, never=9), **args)  # accuracy at chance + 0.1
    assert not is_collapsed(row(acc=0.226, largest=0.125, top=0.9, never=9), **args)  # learning, however skewed
    assert is_collapsed(row(acc=0.2, largest=0.125, top=0.2, never=4), **{**args, "unpredicted": 0.4})
    assert not is_collapsed(row(acc=0.2, largest=0.125, top=0.3125, never=0), **{**args, "top_share": 3.0})


def test_skewed_but_learning_runs_are_not_collapsed():
    # measured first epochs of healthy runs (tests/test_health_flags.py): predictions still pile onto one
    # class, but accuracy is far above chance
    digits_tanh_adam = row(acc=0.556, top=0.417, largest=0.130, never=0)  # quickstart, tanh/adam/0.1
    s3_stand_in = row(acc=0.475, top=0.531, largest=0.117, never=0)  # s3 relu/CE/SGD on a synthetic stand-in
    s1_init_stand_in = row(acc=0.283, top=0.355, largest=0.129, never=3)  # s1_init default, 256 steps
    for r in (digits_tanh_adam, s3_stand_in, s1_init_stand_in):
        assert flags([r]) == ([], False, "running"), r
    healthy = [row(1, 0.759, 0.185, 0.130, 0), row(2, 0.884, 0.139, 0.130, 0), row(3, 0.926, 0.125, 0.130, 0)]
    assert flags(healthy) == ([], False, "running")


def test_collapsed_only_flags_and_stalled_still_stops():
    # accuracy 0.2: above at chance (0.175) but within the collapse margin; four epochs of it never stop the run
    h = [row(e, acc=0.2, top=0.6, largest=0.125, never=6) for e in range(1, 5)]
    assert flags(h, stall_epochs=3) == (["collapsed@4"], False, "running")
    h = [row(e, acc=0.12, top=0.6, largest=0.125, never=6) for e in range(1, 4)]
    three = ["at_chance@3", "collapsed@3", "stalled@3"]
    assert flags(h, stall_epochs=3) == (three, True, "stalled")
    assert flags(h, stall_epochs=3, stop_on_stall=False) == (three, False, "running")
    assert flags(h, enabled=False) == ([], False, "running")


def test_binary_and_rows_without_prediction_fields():
    # two classes: the share rule cannot fire (2.5 x a half is over 1); one class never predicted is a collapse
    assert flags([row(acc=0.5, top=1.0, largest=0.5, never=1)], num_classes=2) == (
        ["at_chance@1", "collapsed@1"], False, "running")
    assert flags([row(acc=0.6, top=0.9, largest=0.5, never=0)], num_classes=2) == ([], False, "running")
    # a segmentation row: pixel accuracy, no largest-class share or never-predicted count: never collapsed
    seg = row(acc=0.85, top=1.0)
    assert flags([seg], num_classes=2) == ([], False, "running")
    assert not is_collapsed(row(acc=0.1, top=0.9), 10, 0.5, 2.5, 0.1)  # share without the largest class's
    assert not is_collapsed(row(acc=math.nan, top=math.nan, largest=math.nan, never=0), 10, 0.5, 2.5, 0.1)
