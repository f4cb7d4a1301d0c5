"""Overfitting, early stopping and health rules on hand-written histories (exact expected values)."""

import math

from harness.config import EarlyStoppingConfig, HealthConfig
from harness.monitor import (best_epoch, check_epoch, generalization_gap, overfit_epoch, should_stop_early)


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
