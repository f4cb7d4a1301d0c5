"""Reading a finished 1,000-trial sweep: one part file per trial and table (as the sweep leaves its
folder while it runs) vs the compacted folder (`store.compact`, what a finished sweep leaves), side by
side. Trials rows are realistic in width (the fixed columns plus a grid's flattened config: ~120
columns), with 10 epoch rows, 10 class rows and ~20 confusion cells each.

    pytest tests/benchmarks/test_store_read.py --benchmark-only

The figures (seconds, medians of the rounds, and the ratios) land in extra_info; the target: the
compacted folder read with store.read_table (all four tables, as the report loads them) in <= 0.5 s.
"""

import math
import random
import shutil
import statistics
import time

import pandas as pd
import pytest

from harness import store
from harness.config import build_sweep

TRIALS = 1000
EPOCHS = 10
CLASSES = 10
TARGET_S = 0.5


def sweep_trials():
    """1,000 trials: activation x optimizer x lr x width x seeds (model options and all)."""
    raw = {"name": "wide", "dataset": {"name": "synthetic", "shape": [3, 32, 32], "num_classes": CLASSES},
           "model": {"arch": "mlp"}, "train": {"epochs": EPOCHS}, "seeds": list(range(10)),
           "grid": {"model.activation": ["relu", "gelu", "tanh", "silu", "elu"], "optimizer.name": ["sgd", "adam"],
                    "optimizer.lr": [0.1, 0.01, 0.001, 0.0001, 0.00001], "model.widths": [[256], [512, 256]]}}
    trials = build_sweep(raw).trials
    assert len(trials) == TRIALS
    return trials


def write_sweep(results, trials):
    rng = random.Random(0)
    store.write_schema(results, [t.config for t in trials])
    for i, t in enumerate(trials):
        tid = t.trial_id
        failed = i % 50 == 7
        epochs = [] if failed else [
            {"trial_id": tid, "epoch": e, "train_loss": rng.random(), "train_acc": rng.random(),
             "val_loss": math.nan if i % 50 == 11 and e > 3 else rng.random(), "val_acc": rng.random(),
             "lr": 0.01, "grad_norm": rng.random(), "grad_norm_min_layer": rng.random() * 1e-3,
             "epoch_seconds": rng.random(), "train_seconds": rng.random(), "images_per_sec": 1e4 * rng.random(),
             "peak_memory_mb": 1e3 * rng.random(), "val_top_class_share": rng.random(),
             "val_largest_class_share": 0.1, "val_classes_never_predicted": rng.randrange(3),
             "gap_loss": rng.random(), "gap_acc": rng.random(), "flags": ""} for e in range(1, EPOCHS + 1)]
        classes = [] if failed else [
            {"trial_id": tid, "class_index": c, "class_name": f"class{c}", "precision": rng.random(),
             "recall": rng.random(), "f1": rng.random(), "support": 100} for c in range(CLASSES)]
        confusion = [] if failed else [
            {"trial_id": tid, "true": c, "pred": p, "count": rng.randrange(100)}
            for c in range(CLASSES) for p in (c, (c + 1) % CLASSES)]
        row = {"trial_id": tid, "sweep": "wide", "point": "{}", "device": "cpu", "precision": "no", "world_size": 1,
               "attempt": 1, "torch_version": "2.5.0", "config": t.config.model_dump_json(),
               "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
               "total_seconds": 60.0, **t.config.flat()}
        if failed:
            row.update(status="failed", error="RuntimeError: boom", error_detail="Traceback ...", epochs_run=0)
        else:
            row.update(status="completed", params=123456, epochs_run=EPOCHS, best_epoch=EPOCHS,
                       overfit_epoch=6 if i % 3 == 0 else None, best_val_loss=rng.random(), best_val_acc=rng.random(),
                       test_loss=rng.random(), test_acc=rng.random(), test_macro_f1=rng.random(),
                       test_micro_f1=rng.random(), test_top_class_share=rng.random(),
                       train_images_per_sec=1e4 * rng.random(), health="[]", error=None, num_classes=CLASSES,
                       input_shape=[3, 32, 32], split_hash="0a1b2c3d4e5f")
        store.write_trial(results, tid, row, epochs, classes, confusion)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(per-part folder, compacted folder, seconds compaction took)."""
    parts = tmp_path_factory.mktemp("store") / "parts"
    write_sweep(parts, sweep_trials())
    compacted = parts.parent / "compacted"
    shutil.copytree(parts, compacted)
    t0 = time.perf_counter()
    assert store.compact(compacted) == TRIALS
    return parts, compacted, time.perf_counter() - t0


def read_all(results):
    """What the report loads: the four tables through store.read_table."""
    return {table: store.read_table(results, table) for table in store.TABLES}


def read_pandas(results):
    """What a user types: pandas.read_parquet on the trials and epochs folders."""
    return {table: pd.read_parquet(store.table_dir(results, table)) for table in ("trials", "epochs")}


def read_per_file(results):
    """How store.read_table read a folder before compaction existed: pandas, one part file at a time."""
    out = {}
    for table in store.TABLES:
        frames = [pd.read_parquet(p) for p in sorted(store.table_dir(results, table).glob("*.parquet"))]
        out[table] = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    return out


def seconds(fn, results, rounds=3):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(results)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_read_a_finished_1000_trial_sweep(benchmark, folders):
    parts, compacted, compact_s = folders
    frames = benchmark.pedantic(read_all, args=(compacted,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(frames["trials"]) == TRIALS and frames["trials"].shape[1] >= 100
    assert len(frames["epochs"]) == (TRIALS - TRIALS // 50) * EPOCHS
    assert frames["trials"]["trial_id"].is_unique

    figures = {"compacted_read_s": seconds(read_all, compacted), "parts_read_s": seconds(read_all, parts),
               "compacted_pandas_s": seconds(read_pandas, compacted), "parts_pandas_s": seconds(read_pandas, parts),
               "parts_per_file_s": seconds(read_per_file, parts, rounds=1), "compact_s": compact_s,
               "trials_columns": frames["trials"].shape[1]}
    figures["parts_vs_compacted"] = figures["parts_read_s"] / figures["compacted_read_s"]
    figures["pandas_parts_vs_compacted"] = figures["parts_pandas_s"] / figures["compacted_pandas_s"]
    figures["per_file_vs_compacted"] = figures["parts_per_file_s"] / figures["compacted_read_s"]
    benchmark.extra_info.update(figures)
    print("\n" + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))
    assert figures["compacted_read_s"] <= TARGET_S, figures
    assert pd.testing.assert_frame_equal(
        read_all(parts)["trials"].sort_values("trial_id", ignore_index=True),
        frames["trials"].sort_values("trial_id", ignore_index=True)) is None
