"""A fake sweep's results directory with known numbers, for report tests (and any test that needs results).

Grid: model.activation {relu, gelu, tanh} x optimizer.name {sgd, adam} x optimizer.lr {0.1, 0.01},
seeds {0, 1, 2}: 36 trials of 5 epochs (epochs 1..5) on synthetic 3x32x32 images, 10 classes.
A trial's best_val_acc is MEANS[config] + OFFSETS[seed]; test_acc is 0.01 lower. Special trials:

    relu/adam/0.01 seed 0   overfits: val acc peaks at epoch 3 (best_epoch 3), overfit_epoch 4
    gelu/adam/0.01 seed 2   early_stopped (counted)
    gelu/sgd/0.01  seed 1   failed (no epochs, error set); that configuration's seed 0 is 0.02 low
    tanh/sgd/0.1   seed 2   diverged: NaN losses from epoch 3, best_val_acc 0.35 (excluded)
    tanh/adam/0.1  seed 1   stalled at chance: val acc 0.10 for 3 epochs (counted)

Normal validation curves are best - (0.21, 0.11, 0.045, 0.015, 0) over the 5 epochs, training
accuracy runs (0, 0.01, 0.02, 0.03, 0.04) above, epochs take (3, 2, 2, 2, 2) seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness.config import RunConfig, trial_id
from harness.report.leaderboard import leaderboard
from harness.report.results import load_results
from harness.store import part_path, write_trial

SWEEP = "fake-activations"
ACTIVATIONS = ("relu", "gelu", "tanh")
OPTIMIZERS = ("sgd", "adam")
LRS = (0.1, 0.01)
SEEDS = (0, 1, 2)
MEANS = {
    ("relu", "adam", 0.01): 0.95,
    ("gelu", "adam", 0.01): 0.94,
    ("relu", "sgd", 0.1): 0.91,
    ("tanh", "adam", 0.01): 0.90,
    ("gelu", "sgd", 0.1): 0.89,
    ("relu", "sgd", 0.01): 0.87,
    ("gelu", "sgd", 0.01): 0.86,
    ("relu", "adam", 0.1): 0.85,
    ("gelu", "adam", 0.1): 0.84,
    ("tanh", "sgd", 0.01): 0.82,
    ("tanh", "sgd", 0.1): 0.80,
    ("tanh", "adam", 0.1): 0.70,
}
OFFSETS = {0: -0.01, 1: 0.0, 2: 0.01}
OVERFIT = (("relu", "adam", 0.01), 0)
EARLY_STOPPED = (("gelu", "adam", 0.01), 2)
FAILED = (("gelu", "sgd", 0.01), 1)
LOW_SEED0 = ("gelu", "sgd", 0.01)  # seed 0 two points below its mean instead of one
DIVERGED = (("tanh", "sgd", 0.1), 2)
STALLED = (("tanh", "adam", 0.1), 1)
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DEVICE = "NVIDIA H100 80GB HBM3"
PARAM_COUNT = 3 * 32 * 32 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10  # the default mlp
IMAGES_PER_SEC = 4500.0
EPOCH_SECONDS = (3.0, 2.0, 2.0, 2.0, 2.0)
VAL_BEHIND = (0.21, 0.11, 0.045, 0.015, 0.0)
TRAIN_AHEAD = (0.0, 0.01, 0.02, 0.03, 0.04)


def best_val_acc(config: tuple, seed: int, shift: float = 0.0) -> float:
    if (config, seed) == STALLED:
        return 0.10
    if (config, seed) == DIVERGED:
        return 0.35
    offset = -0.02 if config == LOW_SEED0 and seed == 0 else OFFSETS[seed]
    return MEANS[config] + shift + offset


def _epoch(epoch, train_acc, val_acc, train_loss, val_loss, seconds=2.0, ips=IMAGES_PER_SEC):
    return {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
            "val_acc": val_acc, "lr": 0.01, "grad_norm": 1.0, "epoch_seconds": seconds,
            "images_per_sec": ips, "peak_memory_mb": 512.0}


def epochs_for(config: tuple, seed: int, best: float) -> list[dict]:
    if (config, seed) == OVERFIT:
        val = [0.73, 0.83, 0.94, 0.92, 0.90]
        train = [0.74, 0.86, 0.96, 0.98, 0.99]
        val_loss = [0.60, 0.40, 0.25, 0.30, 0.38]
        train_loss = [0.70, 0.40, 0.15, 0.08, 0.04]
        return [_epoch(e + 1, train[e], val[e], train_loss[e], val_loss[e], EPOCH_SECONDS[e]) for e in range(5)]
    if (config, seed) == DIVERGED:
        nan = math.nan
        rows = [(0.24, 0.25, 2.0, 2.1), (0.36, 0.35, 1.6, 1.7), (0.10, 0.10, nan, nan), (0.10, 0.10, nan, nan)]
        return [_epoch(e + 1, *row, seconds=EPOCH_SECONDS[e]) for e, row in enumerate(rows)]
    if (config, seed) == STALLED:
        return [_epoch(e + 1, 0.10, 0.10, 2.30, 2.31, EPOCH_SECONDS[e]) for e in range(3)]
    rows = []
    for e in range(5):
        val = best - VAL_BEHIND[e]
        train = val + TRAIN_AHEAD[e]
        rows.append(_epoch(e + 1, train, val, 2 * (1 - train) + 0.05, 2 * (1 - val) + 0.1, EPOCH_SECONDS[e]))
    return rows


def classes_for(test_acc: float) -> tuple[list[dict], list[dict]]:
    """Per-class rows (cat weakest) and a confusion matrix of 100 test images per class."""
    classes, confusion = [], []
    for c, name in enumerate(CLASS_NAMES):
        recall = max(0.0, min(1.0, test_acc - (0.15 if name == "cat" else 0.0) + 0.01 * (c % 3)))
        right = round(100 * recall)
        wrong = 100 - right
        classes.append({"class_index": c, "class_name": name, "precision": recall, "recall": recall,
                        "f1": recall, "support": 100})
        confusion.append({"true": c, "pred": c, "count": right})
        if wrong:
            confusion.append({"true": c, "pred": (c + 1) % len(CLASS_NAMES), "count": wrong})
    return classes, confusion


def run_config(activation: str, optimizer: str, lr: float, seed: int, sweep: str = SWEEP) -> RunConfig:
    return RunConfig.model_validate({
        "name": sweep,
        "dataset": {"name": "synthetic", "shape": [3, 32, 32], "num_classes": 10},
        "model": {"arch": "mlp", "activation": activation},
        "optimizer": {"name": optimizer, "lr": lr},
        "train": {"epochs": 5, "batch_size": 128, "precision": "bf16"},
        "seed": seed,
    })


def build_fake_sweep(results_dir: str | Path, *, seeds=SEEDS, configs=None, grid: bool = True,
                     classes: bool = True, all_failed: bool = False, shift: float = 0.0,
                     sweep: str = SWEEP, point_column: str = "point") -> Path:
    """Write the fake sweep into `results_dir`; variants: fewer seeds or configurations, no grid (the point
    holds only the seed), no classes/confusion rows, every trial failed, every accuracy shifted by `shift`
    (the overfitting trial's curve excepted), another sweep name.

    The grid point goes where harness.trial writes it, `point` (JSON), with `params` the model's parameter
    count; point_column="params" puts it in `params` instead, as design.md names it (a trials part file
    written with pandas, as another tool would: store's trials schema has `params` as the parameter count)."""
    results_dir = Path(results_dir)
    for config in configs or list(MEANS):
        activation, optimizer, lr = config
        for seed in seeds:
            point = {"model.activation": activation, "optimizer.name": optimizer, "optimizer.lr": lr} if grid else {}
            tid = trial_id(point, seed)
            cfg = run_config(activation, optimizer, lr, seed, sweep)
            best = best_val_acc(config, seed, shift)
            status = {OVERFIT: "completed", EARLY_STOPPED: "early_stopped", FAILED: "failed",
                      DIVERGED: "diverged", STALLED: "stalled"}.get((config, seed), "completed")
            if all_failed:
                status = "failed"
            failed = status == "failed"
            epochs = [] if failed else epochs_for(config, seed, best)
            best_epoch = max(epochs, key=lambda r: r["val_acc"])["epoch"] if epochs else None
            test_acc = None if failed else best - 0.01
            trial = {
                "trial_id": tid, "sweep": sweep, "status": status, "params": PARAM_COUNT,
                point_column: {**point, "seed": seed}, "input_shape": [3, 32, 32], "num_classes": 10,
                "epochs_run": len(epochs), "best_epoch": best_epoch,
                "overfit_epoch": 4 if (config, seed) == OVERFIT and not all_failed else None,
                "best_val_loss": None if failed else min(r["val_loss"] for r in epochs if math.isfinite(r["val_loss"])),
                "best_val_acc": None if failed else best,
                "test_loss": None if failed else 2 * (1 - test_acc), "test_acc": test_acc,
                "test_macro_f1": None if failed else test_acc - 0.005,
                "test_micro_f1": test_acc,
                "train_images_per_sec": None if failed else IMAGES_PER_SEC,
                "total_seconds": None if failed else sum(r["epoch_seconds"] for r in epochs),
                "device": DEVICE, "precision": "bf16", "world_size": 1, "torch_version": "2.5.0",
                "health": ["at_chance"] if status == "stalled" else (["nan_loss"] if status == "diverged" else []),
                "error": "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" if failed else None,
                "config": cfg.model_dump(mode="json"),
                "started_at": "2024-01-01T00:00:00", "finished_at": "2024-01-01T00:01:00",
                **cfg.flat(),
            }
            class_rows, confusion_rows = classes_for(test_acc) if classes and not failed else ([], [])
            write_trial(results_dir, tid,
                        trial if point_column == "point" else {**trial, "params": PARAM_COUNT},
                        [{"trial_id": tid, **r} for r in epochs],
                        [{"trial_id": tid, **r} for r in class_rows],
                        [{"trial_id": tid, **r} for r in confusion_rows])
            if point_column != "point":  # not what store writes (params is the parameter count): another tool's file
                part = part_path(results_dir, "trials", tid)
                pd.DataFrame([{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in trial.items()}]
                             ).to_parquet(part, index=False)
    return results_dir


def write_standins(results_dir: str | Path, means: dict, seeds: int, sd: float = 0.01, rng_seed: int = 0,
                   sweep: str = "standin", test_size: int = 10_000) -> Path:
    """Stand-in trials rows (real Parquet through harness.store) for statistics tests: `means` maps a grid
    point (a tuple of (dotted key, value) pairs) to the mean best_val_acc of its seeds. Point p's seed s
    scores means[p] + shared_s + own_{p,s}, each with half the variance sd^2 (seeds correlate 0.5 across
    configurations, as one seed's data order and init help or hurt every configuration a little).
    test_acc is 0.005 lower; the classes table gives `test_size` test examples per trial."""
    import numpy as np

    results_dir = Path(results_dir)
    rng = np.random.default_rng(rng_seed)
    shared = rng.normal(0, sd / np.sqrt(2), seeds)
    for items, mean in means.items():
        point = dict(items)
        own = rng.normal(0, sd / np.sqrt(2), seeds)
        for seed in range(seeds):
            acc = float(np.clip(mean + shared[seed] + own[seed], 0, 1))
            raw = {"name": sweep, "dataset": {"name": "synthetic", "shape": [3, 32, 32], "num_classes": 10},
                   "model": {"arch": "mlp"}, "seed": seed}
            for key, value in point.items():
                section, _, name = key.partition(".")
                raw.setdefault(section, {})[name] = value
            cfg = RunConfig.model_validate(raw)
            tid = trial_id(point, seed)
            row = {"trial_id": tid, "sweep": sweep, "status": "completed", "point": {**point, "seed": seed},
                   "best_val_acc": acc, "test_acc": acc - 0.005, "epochs_run": 10,
                   "config": cfg.model_dump(mode="json"), **cfg.flat()}
            classes = [{"trial_id": tid, "class_index": k, "class_name": str(k), "precision": acc, "recall": acc,
                        "f1": acc, "support": test_size // 10} for k in range(10)]
            write_trial(results_dir, tid, row, [], classes, [])
    return results_dir


def hand_results(tmp_path, rows, axes, metric="best_val_acc"):
    """Results (in memory, no files) from (point, seed, score[, status]) rows."""
    from harness.report.results import Results

    records = []
    for row in rows:
        point, seed, score = row[:3]
        status = row[3] if len(row) > 3 else "completed"
        records.append({"trial_id": f"t{len(records)}", "sweep": "hand",
                        "config_key": json.dumps(point, sort_keys=True),
                        "label": " ".join(f"{k}={v}" for k, v in point.items()), "seed": seed, "status": status,
                        **point, metric: score})
    return Results(tmp_path, pd.DataFrame(records), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), axes=axes)


# Module-scoped fixtures of the fake sweep, for the report tests that import them


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return load_results(build_fake_sweep(tmp_path_factory.mktemp("sweep")))


@pytest.fixture(scope="module")
def board(results):
    return leaderboard(results, "best_val_acc")
