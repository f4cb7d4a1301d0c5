"""Packed vs solo: K trials run back to back by the trial loop (harness.trial) against one pack of the
same K (harness.packed_trial): same data, same steps, the images per second of all members together
(training time only, from the epoch rows), interleaved rounds, the ratio per round.

    python -m harness.bench --packed
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from harness.config import load_sweep
from harness.packed_trial import run_pack
from harness.trial import run_trial

BASE = """
name: packed_bench
dataset: {name: digits, val_fraction: 0.15, split_seed: 43}
model: {arch: mlp}
optimizer: {name: sgd, lr: 0.1}
train: {epochs: 1, batch_size: 64, eval_batch_size: 512, checkpoint: false}
early_stopping: {enabled: false}
health: {enabled: false}
"""
# (name, overrides of BASE, K): members differ in seed and lr, as a grid's slice does
CASES = [
    ("s3_mlp K=12 (mnist_5k)", ["model.arch=s3_mlp", "dataset.name=mnist_5k", "train.batch_size=128"], 12),
    ("s3_mlp K=36 (mnist_5k)", ["model.arch=s3_mlp", "dataset.name=mnist_5k", "train.batch_size=128"], 36),
    ("mlp K=24 (digits)", ["model.widths=[64,32]"], 24),
    ("s4_smallcnn K=8 (32x32)", ["model.arch=s4_smallcnn", "dataset.name=synthetic", "dataset.num_train=2000",
                                "train.batch_size=64"], 8),
]


def trials_for(overrides: list[str], k: int):
    lrs = [0.1, 0.05, 0.02, 0.01, 0.005, 0.002]
    seeds = list(range(max(1, -(-k // len(lrs)))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "packed_bench.yaml")
        path.write_text(BASE)
        sweep = load_sweep(str(path), overrides)
    base = sweep.trials[0]
    out = []
    for i in range(k):
        cfg = base.config.model_copy(update={"seed": seeds[i // len(lrs)],
                                             "optimizer": base.config.optimizer.model_copy(update={"lr": lrs[i % len(lrs)]})})
        out.append(type(base)(trial_id=f"m{i}", point={}, config=cfg))
    return out


def images_per_sec_solo(trials) -> float:
    images = seconds = 0.0
    for t in trials:
        row = run_trial(t.config, t.trial_id).epochs[0]
        images += row["images_per_sec"] * row["train_seconds"]
        seconds += row["train_seconds"]
    return images / seconds


def images_per_sec_pack(trials) -> float:
    rows = [o.epochs[0] for o in run_pack(trials, None)]
    return sum(r["images_per_sec"] for r in rows)


def run(rounds: int = 3, cases=CASES) -> list[dict]:
    torch.set_num_threads(1)
    results = []
    for name, overrides, k in cases:
        trials = trials_for(overrides, k)
        run_pack(trials[:2], None)  # warm-up
        ratios, solo, packed = [], [], []
        for _ in range(rounds):
            s, p = images_per_sec_solo(trials), images_per_sec_pack(trials)
            solo.append(s)
            packed.append(p)
            ratios.append(p / s)
        results.append({"case": name, "solo_img_s": statistics.median(solo), "pack_img_s": statistics.median(packed),
                        "ratio": statistics.median(ratios), "ratios": ratios})
        print(f"{name:<26} solo {statistics.median(solo):>9,.0f} img/s  pack {statistics.median(packed):>9,.0f} img/s"
              f"  pack/solo {statistics.median(ratios):.2f}x  (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
              flush=True)
    return results
