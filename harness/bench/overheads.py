"""The costs around the training loop: Ray Tune's per-trial overhead, `python -m harness.sweep`'s
startup and per-trial cost on near-empty trials, and writing + reading epoch rows as Parquet through
harness.store."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import store


def ray_trial_overhead(n_trials: int = 12, reports: int = 3) -> dict:
    """Bare Ray Tune: `n_trials` trivial trials of `reports` reports each, on a fresh local Ray.
    Returns init_s (import + ray.init) and per_trial_s (wall seconds of fit() per trial)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner on stdout (as harness.sweep)
    t0 = time.perf_counter()
    import ray  # here: its import time is part of what is measured
    from ray import tune

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0

    def trivial(config):
        for i in range(reports):
            tune.report({"step": i})

    try:
        with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
            tuner = tune.Tuner(trivial, param_space={"i": tune.grid_search(list(range(n_trials)))},
                               run_config=tune.RunConfig(storage_path=tmp, verbose=0))
            t0 = time.perf_counter()
            tuner.fit()
            fit_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return {"trials": n_trials, "init_s": init_s, "per_trial_s": fit_s / n_trials}


SWEEP_YAML = """\
name: bench-overhead
dataset: {{name: synthetic, num_train: 64, num_val: 32, num_test: 32, shape: [3, 8, 8], num_classes: 10}}
model: {{arch: mlp, widths: [8]}}
optimizer: {{name: sgd, lr: 0.01}}
train: {{epochs: 1, batch_size: 32, eval_batch_size: 64}}
resources: {{cpus_per_trial: 1}}
seeds: {seeds}
"""


def sweep_overhead(n_small: int = 2, n_large: int = 10) -> dict:
    """The real `python -m harness.sweep` on sweeps of near-zero-work trials, n_small then n_large of them.
    Returns startup_s (the fixed part), per_trial_s (marginal wall seconds per trial) and own_s
    (a trial's own total_seconds, as recorded in trials.parquet: data, model, one tiny epoch, writes)."""
    walls, own = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for n in (n_small, n_large):
            sweep = Path(tmp, f"s{n}.yaml")
            sweep.write_text(SWEEP_YAML.format(seeds=list(range(n))))
            results = Path(tmp, f"r{n}")
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "harness.sweep", str(sweep), "--results-dir", str(results),
                                   "--no-report"], capture_output=True, text=True)
            walls[n] = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"harness.sweep exited {done.returncode}: {done.stderr[-2000:]}")
            own += store.read_table(results / "bench-overhead", "trials")["total_seconds"].tolist()
    per_trial = (walls[n_large] - walls[n_small]) / (n_large - n_small)
    return {"trials": n_large, "startup_s": walls[n_small] - n_small * per_trial, "per_trial_s": per_trial,
            "own_s": statistics.median(own), "wall_s": walls[n_large]}


def epoch_rows(n: int, trials: int = 1) -> list[list[dict]]:
    """n epoch rows like run_trial's (seeded random values), as `trials` trials of n // trials epochs."""
    rng = random.Random(0)
    per = n // trials
    return [[{"trial_id": f"t{t:05d}", "epoch": e + 1, "train_loss": rng.random(), "train_acc": rng.random(),
              "val_loss": rng.random(), "val_acc": rng.random(), "lr": 0.01 * rng.random(), "grad_norm": rng.random(),
              "grad_norm_min_layer": rng.random(), "epoch_seconds": rng.random(), "train_seconds": rng.random(),
              "images_per_sec": 1e4 * rng.random(), "peak_memory_mb": 1e3 * rng.random(),
              "val_top_class_share": rng.random(), "gap_loss": rng.random(), "gap_acc": rng.random(), "flags": ""}
             for e in range(per)] for t in range(trials)]


def parquet_roundtrip(n_rows: int = 100_000, trials: int = 1) -> dict:
    """Seconds to write n_rows epoch rows with store.write_part (one part per trial, as run_trial does)
    and to read them back with store.read_table; the table's size on disk in MB."""
    parts = epoch_rows(n_rows, trials)
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        t0 = time.perf_counter()
        for rows in parts:
            store.write_part(tmp, "epochs", rows[0]["trial_id"], rows)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        frame = store.read_table(tmp, "epochs")
        read_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in store.table_dir(tmp, "epochs").glob("*.parquet"))
    if len(frame) != sum(map(len, parts)):
        raise RuntimeError(f"read {len(frame)} rows back, wrote {sum(map(len, parts))}")
    return {"rows": len(frame), "parts": trials, "write_s": write_s, "read_s": read_s, "mb": size / 2**20}
