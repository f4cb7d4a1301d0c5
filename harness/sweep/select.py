"""Choosing which trials run (pure): `--smoke` shrinking, `--shard I/N`, and `search: random`
subsets of the grid. No Ray, no training, no I/O."""

from __future__ import annotations

import json
import random

from harness.config import ConfigError, Sweep, Trial


def smoke_overrides(sweep: Sweep) -> list[str]:
    """Overrides that shrink any sweep to seconds: one epoch, a few hundred samples, one seed.
    A staged schedule shrinks to one 1-epoch stage at its first learning rate."""
    cfg = sweep.config
    out = ["dataset.max_train=256", "dataset.max_eval=128", "train.eval_batch_size=128",
           "early_stopping.enabled=false", "health.enabled=false", "train.epochs=1", f"seeds=[{sweep.seeds[0]}]"]
    if cfg.dataset.name == "synthetic":
        out += [f"dataset.num_train={min(cfg.dataset.num_train, 256)}", f"dataset.num_test={min(cfg.dataset.num_test, 128)}"]
        if cfg.dataset.num_val:
            out.append(f"dataset.num_val={min(cfg.dataset.num_val, 128)}")
    if sweep.adaptive:  # Tune's searcher samples while the sweep runs: two configurations
        out.append(f"tune.num_samples={min(cfg.tune.num_samples, 2)}")
    staged = [t.config.scheduler for t in sweep.trials if t.config.scheduler.name == "staged"]
    if staged:
        out.append(f"scheduler.stages={json.dumps([{'epochs': 1, 'lr': staged[0].stages[0].lr}])}")
    return out


def smoke_trials(trials: list[Trial], most: int = 4) -> list[Trial]:
    """At most `most` trials spread evenly over the grid."""
    if len(trials) <= most:
        return trials
    step = (len(trials) - 1) / (most - 1)
    return [trials[round(i * step)] for i in range(most)]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text}: expected I/N, e.g. --shard 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: I must be in 0..N-1 and N >= 1")
    return index, count


def shard(trials: list[Trial], index: int, count: int) -> list[Trial]:
    return [t for i, t in enumerate(trials) if i % count == index]


def random_subset(trials: list[Trial], num_samples: int, seeds: list[int], seed: int = 0) -> list[Trial]:
    """`search: random`: num_samples grid points drawn without replacement (all seeds of each)."""
    points: dict[str, list[Trial]] = {}
    for t in trials:
        key = json.dumps({k: v for k, v in t.point.items() if k != "seed"}, sort_keys=True)
        points.setdefault(key, []).append(t)
    keys = list(points)
    chosen = sorted(random.Random(seed).sample(range(len(keys)), min(num_samples, len(keys))))
    return [t for i in chosen for t in points[keys[i]]]
