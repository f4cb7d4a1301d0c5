"""The Parquet results on disk, read by the readers the README names (pandas, pyarrow.dataset, DuckDB
without union_by_name, Polars): one schema per table in every file, whatever is null, with failed,
diverged, overfitting, pruned and clean trials mixed; compaction; forgetting and re-running a trial;
recovery from an interrupted compaction; rows that do not fit the schema."""

import json
import math
import os
import subprocess
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from harness import store
from harness.config import build_sweep
from harness.trial import run_trial

SWEEP = {
    "name": "mixed",
    "dataset": {"name": "synthetic", "num_train": 256, "num_val": 64, "num_test": 64, "shape": [1, 8, 8],
                "num_classes": 4},
    "model": {"arch": "mlp"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 64},
    "health": {"enabled": False},
    "seeds": [0, 1],
    # model options differ per arch; model.dropout mixes an int and a float
    "grid": [{"model.arch": ["mlp"], "model.widths": [[16]], "model.dropout": [0, 0.25]},
             {"model.arch": ["cnn_mnist"], "model.channels": [[4, 8]]}],
}
TRIALS = {t.trial_id: t for t in build_sweep(SWEEP).trials}
FAILED = "arch=cnn_mnist-channels=4x8-seed=0"  # the first part file alphabetically
PRUNED = "arch=cnn_mnist-channels=4x8-seed=1"  # early_stopped by the scheduler: finalize's row
DIVERGED = "arch=mlp-widths=16-dropout=0-seed=0"
OVERFIT = "arch=mlp-widths=16-dropout=0-seed=1"
CLEAN = ["arch=mlp-widths=16-dropout=0.25-seed=0", "arch=mlp-widths=16-dropout=0.25-seed=1"]
NUM_CLASSES = 4

DUCK = {"string": "VARCHAR", "int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN"}
POLARS = {"string": pl.String, "int64": pl.Int64, "double": pl.Float64, "bool": pl.Boolean}


def epoch_row(tid, epoch, train_loss, val_loss, train_acc, val_acc):
    """An epochs row as harness.trial writes it (TrialProgress.record)."""
    return {"trial_id": tid, "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val_loss, "val_acc": val_acc, "lr": 0.01, "grad_norm": 0.8,
            "grad_norm_min_layer": 1e-3, "epoch_seconds": 0.2, "train_seconds": 0.15, "images_per_sec": 1700.0,
            "peak_memory_mb": 412.5, "val_top_class_share": 0.3, "gap_loss": val_loss - train_loss,
            "gap_acc": train_acc - val_acc, "flags": "" if math.isfinite(val_loss) else "diverged"}


def base_row(tid):
    t = TRIALS[tid]
    return {"trial_id": tid, "sweep": "mixed", "point": json.dumps(t.point, sort_keys=True), "device": "cpu",
            "precision": "no", "cuda_visible_devices": None, "attempt": 1, "world_size": 1, "torch_version": "2.5.0",
            "config": t.config.model_dump_json(), "started_at": "2025-01-01T00:00:00+00:00", **t.config.flat()}


def write_finished(results, tid, status, epochs, overfit_epoch=None, health=()):
    """A finished trial's four tables, as run_trial writes them."""
    classes = [{"trial_id": tid, "class_index": c, "class_name": str(c), "precision": 0.8, "recall": 0.7,
                "f1": 0.75, "support": 16} for c in range(NUM_CLASSES)]
    confusion = [{"trial_id": tid, "true": c, "pred": p, "count": 12 if c == p else 2}
                 for c in range(NUM_CLASSES) for p in range(NUM_CLASSES) if c == p or p == (c + 1) % NUM_CLASSES]
    finite = [r for r in epochs if math.isfinite(r["val_loss"])]
    row = {**base_row(tid), "status": status, "params": 1204, "epochs_run": len(epochs),
           "best_epoch": min(finite, key=lambda r: r["val_loss"])["epoch"], "overfit_epoch": overfit_epoch,
           "best_val_loss": min(r["val_loss"] for r in finite), "best_val_acc": max(r["val_acc"] for r in finite),
           "test_loss": 0.9, "test_acc": 0.7, "test_macro_f1": 0.69, "test_micro_f1": 0.7,
           "test_top_class_share": 0.3, "train_images_per_sec": 1700.0, "health": json.dumps(list(health)),
           "error": None, "num_classes": NUM_CLASSES, "input_shape": [1, 8, 8], "split_hash": "0a1b2c3d4e5f",
           "total_seconds": 1.5, "finished_at": "2025-01-01T00:00:02+00:00"}
    store.write_trial(results, tid, row, epochs, classes, confusion)


def build_mixed(results):
    """The sweep's folder as its run leaves it: the driver's schema first, then each trial's parts."""
    store.write_schema(results, [t.config for t in TRIALS.values()])
    # failed while loading data: no epochs, classes or confusion, most columns null
    store.write_part(results, "trials", FAILED, [{
        **base_row(FAILED), "status": "failed", "error": "DatasetUnavailable: no files", "epochs_run": 0,
        "error_detail": "Traceback ...\nDatasetUnavailable: no files", "total_seconds": 0.1,
        "finished_at": "2025-01-01T00:00:01+00:00"}])
    # pruned by ASHA after one epoch: its epochs part, then finalize's trials row
    store.write_part(results, "epochs", PRUNED, [epoch_row(PRUNED, 1, 1.2, 1.25, 0.5, 0.48)])
    t = TRIALS[PRUNED]
    store.write_part(results, "trials", PRUNED, [{
        "trial_id": PRUNED, "sweep": "mixed", "status": "early_stopped", "error": None, "epochs_run": 1,
        "point": json.dumps(t.point, sort_keys=True), "stopped_by": "scheduler", "config": t.config.model_dump_json(),
        **t.config.flat(), "best_val_acc": 0.48, "best_val_loss": 1.25, "best_epoch": 1}])
    nan = math.nan
    write_finished(results, DIVERGED, "diverged", [epoch_row(DIVERGED, 1, 1.3, 1.4, 0.4, 0.38),
                                                   epoch_row(DIVERGED, 2, nan, nan, 0.25, 0.25)],
                   health=["diverged@2"])
    write_finished(results, OVERFIT, "completed", [epoch_row(OVERFIT, e, 1.0 / e, [0.9, 0.7, 0.8, 0.95][e - 1],
                                                             0.5 + 0.1 * e, 0.6) for e in range(1, 5)],
                   overfit_epoch=2)
    for tid in CLEAN:
        write_finished(results, tid, "completed", [epoch_row(tid, e, 1.0 / e, 1.1 / e, 0.5 + 0.1 * e, 0.5 + 0.09 * e)
                                                   for e in range(1, 3)])
    return results


ROWS = {"trials": 6, "epochs": 1 + 2 + 4 + 2 + 2, "classes": 4 * NUM_CLASSES, "confusion": 4 * 2 * NUM_CLASSES}


def check_readers(results, rows=ROWS):
    """Every reader reads every table with every schema column and its type, each trial once."""
    for table in store.TABLES:
        folder = store.table_dir(results, table)
        schema = store.table_schema(results, table)
        names, kinds = schema.names, [str(t) for t in schema.types]
        key = ["trial_id"] + {"trials": [], "epochs": ["epoch"], "classes": ["class_index"],
                              "confusion": ["true", "pred"]}[table]

        data = ds.dataset(folder).to_table()
        assert data.schema.remove_metadata().equals(schema), (table, data.schema)
        assert data.num_rows == rows[table]

        frame = pd.read_parquet(folder)
        assert list(frame.columns) == names
        assert len(frame) == rows[table] and not frame.duplicated(key).any()
        typed = pd.read_parquet(folder, dtype_backend="pyarrow")
        assert [str(typed[c].dtype.pyarrow_dtype).replace("large_string", "string") for c in names] == kinds

        rel = duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet')")
        assert rel.columns == names
        assert [str(t) for t in rel.types] == [DUCK[k] for k in kinds]
        columns = ", ".join(f'"{k}"' for k in key)
        query = f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM read_parquet('{folder}/*.parquet'))"
        [(count,)] = duckdb.sql(query).fetchall()
        assert count == rows[table]

        for source in (f"{folder}/*.parquet", str(folder)):
            lazy = pl.read_parquet(source)
            assert lazy.columns == names and lazy.dtypes == [POLARS[k] for k in kinds]
            assert lazy.height == rows[table] and lazy.select(key).is_unique().all()

        ours = store.read_table(results, table)
        assert list(ours.columns) == names and len(ours) == rows[table] and not ours.duplicated(key).any()
    return store.read_table(results, "trials").set_index("trial_id")


def test_mixed_trials_read_with_every_reader_before_and_after_compaction(tmp_path):
    results = build_mixed(tmp_path / "mixed")
    parts = sorted(os.listdir(store.table_dir(results, "trials")))
    assert parts[0] == f"{FAILED}.parquet" and len(parts) == 6
    schema = store.table_schema(results, "trials")
    for path in store.table_dir(results, "trials").iterdir():  # one schema in every part, whatever is null
        assert pq.read_schema(path).equals(schema), path.name
    types = dict(zip(schema.names, map(str, schema.types)))
    assert {k: types[k] for k in ("overfit_epoch", "model.dropout", "model.channels", "model.widths",
                                  "model.activation", "optimizer.lr", "seed", "train.grad_clip", "dataset.download")} \
        == {"overfit_epoch": "int64", "model.dropout": "double", "model.channels": "string",
            "model.widths": "string", "model.activation": "string", "optimizer.lr": "double", "seed": "int64",
            "train.grad_clip": "double", "dataset.download": "bool"}
    assert len(schema) >= 100

    for stage in ("parts", "compacted"):
        trials = check_readers(results)
        assert list(trials.index) == sorted(TRIALS)  # a stable order: by trial id
        assert trials.loc[OVERFIT, "overfit_epoch"] == 2 and trials["overfit_epoch"].isna().sum() == 5
        assert trials.loc[FAILED, "error"].startswith("DatasetUnavailable")
        assert trials.loc[PRUNED, "stopped_by"] == "scheduler"
        assert trials.loc[CLEAN[0], "model.dropout"] == 0.25 and trials.loc[DIVERGED, "model.dropout"] == 0.0
        assert trials.loc[FAILED, "model.channels"] == "[4, 8]" and pd.isna(trials.loc[FAILED, "model.widths"])
        epochs = store.read_table(results, "epochs")
        diverged = epochs[(epochs["trial_id"] == DIVERGED) & (epochs["epoch"] == 2)]
        assert math.isnan(diverged["val_loss"].iloc[0])  # NaN stays NaN (a diverged loss), not null
        on_disk = pq.read_table(store.table_dir(results, "epochs"))
        assert on_disk.filter(pc.equal(on_disk["trial_id"], DIVERGED))["val_loss"].null_count == 0
        if stage == "parts":
            assert store.compact(results) == 6
            for table in store.TABLES:
                assert os.listdir(store.table_dir(results, table)) == [store.COMPACTED]


def test_compact_forget_and_rerun_never_show_a_trial_twice(tmp_path):
    results = build_mixed(tmp_path / "mixed")
    store.compact(results)
    # a failed trial retried on --resume: the sweep forgets it, then it runs and writes parts again
    assert store.forget_trials(results, [FAILED]) == 1
    check_readers(results, {"trials": 5, **{k: v for k, v in ROWS.items() if k != "trials"}})
    write_finished(results, FAILED, "completed", [epoch_row(FAILED, e, 1.0 / e, 1.1 / e, 0.6, 0.55) for e in (1, 2)])
    more = {"trials": 6, "epochs": ROWS["epochs"] + 2, "classes": ROWS["classes"] + NUM_CLASSES,
            "confusion": ROWS["confusion"] + 2 * NUM_CLASSES}
    assert check_readers(results, more).loc[FAILED, "status"] == "completed"
    assert store.compact(results) == 1
    assert check_readers(results, more).loc[FAILED, "status"] == "completed"
    # forgetting what is a part, not compacted, removes the part; forgetting nothing changes nothing
    store.write_part(results, "epochs", "not-finished", [epoch_row("not-finished", 1, 1.0, 1.0, 0.5, 0.5)])
    assert store.compact(results) == 0  # no trials row: not finished, left as a part
    assert (store.table_dir(results, "epochs") / "not-finished.parquet").exists()
    assert store.forget_trials(results, ["not-finished", "no-such-trial"]) == 0
    check_readers(results, more)

    # a real trial run again in place (run_trial forgets its compacted rows itself): still once everywhere
    tid = CLEAN[1]
    for attempt in (1, 2):
        out = run_trial(TRIALS[tid].config, tid, results, TRIALS[tid].point)
        assert out.status == "completed"
        real = {"trials": 6, "epochs": more["epochs"] - 2 + len(out.epochs), "classes": more["classes"],
                "confusion": more["confusion"] - 2 * NUM_CLASSES + len(out.confusion)}  # the fake rows' counts out
        trials = check_readers(results, real)
        assert trials.loc[tid, "started_at"] == out.row["started_at"] and trials.loc[tid, "split_hash"]
        store.compact(results, [tid])
        check_readers(results, real)
        assert store.table_schema(results, "trials").equals(pq.read_schema(store.compacted_path(results, "trials")))


def test_recorded_statuses_read_parts_first_then_the_compacted_file(tmp_path):
    """What a pack restarted by Tune asks before it runs its members again: a row in a part or in the
    compacted file counts (a trial finished before another process compacted), a newer part wins."""
    results = build_mixed(tmp_path / "mixed")
    everyone = [FAILED, PRUNED, DIVERGED, OVERFIT, *CLEAN, "never-ran"]
    expected = {FAILED: "failed", PRUNED: "early_stopped", DIVERGED: "diverged", OVERFIT: "completed",
                **{tid: "completed" for tid in CLEAN}}
    assert store.recorded_statuses(results, everyone) == expected  # all parts
    store.compact(results)
    assert not store.part_path(results, "trials", OVERFIT).exists()
    assert store.recorded_statuses(results, everyone) == expected  # all compacted
    assert store.recorded_statuses(results, [OVERFIT, "never-ran"]) == {OVERFIT: "completed"}
    write_finished(results, FAILED, "completed", [epoch_row(FAILED, 1, 1.0, 1.1, 0.6, 0.55)])  # rerun: a new part
    assert store.recorded_statuses(results, [FAILED, PRUNED]) == {FAILED: "completed", PRUNED: "early_stopped"}
    assert store.recorded_statuses(tmp_path / "empty", ["x"]) == {}


def test_an_interrupted_compaction_loses_and_duplicates_nothing(tmp_path):
    results = build_mixed(tmp_path / "mixed")
    folder = store.table_dir(results, "epochs")
    hidden = lambda tid: store.taken_path(results, "epochs", tid)  # noqa: E731 - a one-line function, named where it is used
    hidden(FAILED).parent.mkdir(parents=True)

    # crash after taking the parts, before the compacted file was replaced: they are out of the folder, not lost
    for tid in (DIVERGED, OVERFIT):
        os.replace(store.part_path(results, "epochs", tid), hidden(tid))
    assert len(pd.read_parquet(folder)) == ROWS["epochs"] - 6  # other readers miss them for now, never twice
    epochs = store.read_table(results, "epochs")  # ours reads them
    assert len(epochs) == ROWS["epochs"] and not epochs.duplicated(["trial_id", "epoch"]).any()
    store.compact(results)  # the next compaction (or forget_trials) repairs it
    check_readers(results)
    assert os.listdir(folder) == [store.COMPACTED] and not (results / store.TAKEN_DIR).exists()

    # crash after the compacted file was replaced, before the hidden parts were deleted
    rows = pq.read_table(store.compacted_path(results, "epochs"))
    rows = rows.filter(pc.equal(rows["trial_id"], OVERFIT))
    hidden(OVERFIT).parent.mkdir(parents=True)
    pq.write_table(rows, hidden(OVERFIT))
    check_readers(results)  # its rows are in compacted.parquet: read once
    store.forget_trials(results, [FAILED])  # any repair (compact, forget_trials) deletes it
    assert not hidden(OVERFIT).exists()

    # a stale leftover next to a newer part of its trial (run again since): the part wins
    hidden(FAILED).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([epoch_row(FAILED, 1, 2.0, 2.0, 0.3, 0.3)], schema=store.EPOCH_SCHEMA),
                   hidden(FAILED))
    store.write_part(results, "epochs", FAILED, [epoch_row(FAILED, e, 1.0 / e, 1.1 / e, 0.6, 0.55) for e in (1, 2)])
    for _ in range(2):
        epochs = store.read_table(results, "epochs")
        assert list(epochs.loc[epochs["trial_id"] == FAILED, "train_loss"]) == [1.0, 0.5]
        store.compact(results)  # not finished (forgotten): stays a part; the leftover goes
        assert not hidden(FAILED).exists()


def test_rows_that_do_not_fit_the_schema_fail_loudly(tmp_path):
    results = build_mixed(tmp_path / "mixed")
    with pytest.raises(store.SchemaError, match="val_bogus"):
        store.write_part(results, "epochs", "x", [{**epoch_row("x", 1, 1.0, 1.0, 0.5, 0.5), "val_bogus": 1.0}])
    with pytest.raises(store.SchemaError, match="test_bogus"):
        store.write_part(results, "trials", "x", [{**base_row(CLEAN[0]), "trial_id": "x", "status": "completed",
                                                   "test_bogus": 0.5}])
    with pytest.raises(store.SchemaError, match="epoch"):
        store.write_part(results, "epochs", "x", [epoch_row("x", 1.5, 1.0, 1.0, 0.5, 0.5)])
    with pytest.raises(store.SchemaError, match="support"):
        store.write_part(results, "classes", "x", [{"trial_id": "x", "class_index": 0, "support": "many"}])
    # every key either task writes is known: a segmentation epochs row
    store.write_part(tmp_path / "seg", "epochs", "s", [{
        **epoch_row("s", 1, 0.5, 0.6, 0.9, 0.88), "train_iou": 0.5, "val_iou": 0.45, "val_dice": 0.6,
        "val_fg_share": 0.2}])
    # a config key the stored schema lacks (a run with another model option) widens it; older files follow
    tid = "arch=mlp-widths=16-dropout=0-seed=0-momentum"
    store.write_part(results, "trials", tid, [{**base_row(DIVERGED), "trial_id": tid, "status": "completed",
                                               "model.momentum_extra": 0.5, "model.dropout": "high"}])
    schema = store.table_schema(results, "trials")
    assert schema.field("model.momentum_extra").type == pa.float64()
    assert schema.field("model.dropout").type == pa.string()  # int/float and a string: text
    check_readers(results, {**ROWS, "trials": 7})
    trials = store.read_table(results, "trials").set_index("trial_id")
    assert trials.loc[CLEAN[0], "model.dropout"] == "0.25" and trials.loc[tid, "model.momentum_extra"] == 0.5


def test_harness_trial_cli_writes_the_sweeps_schema(tmp_path):
    """`python -m harness.trial` alone (no schema yet), then the sweep's schema (types widened: the
    file written before is rewritten), then the CLI again into the sweep's folder: identical schemas."""
    sweep = tmp_path / "mixed.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    results = tmp_path / "res" / "mixed"
    first = run_trial(TRIALS[DIVERGED].config, DIVERGED, results, TRIALS[DIVERGED].point)  # dropout 0: an int
    assert first.status in ("completed", "diverged")
    assert store.table_schema(results, "trials").field("model.dropout").type == pa.int64()
    schema = store.write_schema(results, [t.config for t in TRIALS.values()])
    assert schema.field("model.dropout").type == pa.float64() and "model.channels" in schema.names
    assert pq.read_schema(store.part_path(results, "trials", DIVERGED)).equals(schema)

    proc = subprocess.run([sys.executable, "-m", "harness.trial", str(sweep), "--results-dir", str(tmp_path / "res"),
                           "--trial-id", CLEAN[0]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert store.table_schema(results, "trials").equals(schema)  # nothing new: the sweep's schema
    for table in store.TABLES:
        want = store.table_schema(results, table)
        for path in store.table_dir(results, table).iterdir():
            assert pq.read_schema(path).equals(want), path
    trials = pd.read_parquet(results / "trials.parquet")
    assert sorted(trials["trial_id"]) == sorted([DIVERGED, CLEAN[0]])
    assert trials.set_index("trial_id").loc[CLEAN[0], "model.dropout"] == 0.25


def test_a_folder_written_before_the_fixed_schemas_reads_and_converts(tmp_path):
    """Parts as pandas wrote them before (each file's types from its own values: a failed trial's
    columns null, overfit_epoch int64 in one file and double in another): store reads them, and the
    sweep's start on --resume (write_schema, compact) gives the folder one schema per table."""
    results = tmp_path / "old"
    new = build_mixed(tmp_path / "new")  # the same rows, through today's writers
    for table in store.TABLES:
        folder = store.table_dir(results, table)
        folder.mkdir(parents=True)
        for path in store.table_dir(new, table).iterdir():
            rows = pq.read_table(path).to_pylist()
            frame = pd.DataFrame([{k: v for k, v in r.items() if v is not None} for r in rows])
            frame.to_parquet(folder / path.name, index=False)
    # the issue: the first file (a failed trial) decides which columns other readers see
    assert len(ds.dataset(results / "trials.parquet").schema) < len(store.table_schema(new, "trials"))
    before = store.read_table(results, "trials").set_index("trial_id")
    assert len(before) == 6 and before.loc[OVERFIT, "overfit_epoch"] == 2 and before.loc[FAILED, "error"]
    store.write_schema(results, [t.config for t in TRIALS.values()])
    store.compact(results)
    check_readers(results)
    for table in store.TABLES:
        assert store.table_schema(results, table).equals(store.table_schema(new, table))
        pd.testing.assert_frame_equal(store.read_table(results, table).sort_values(list(store.COLUMNS[table][:2]))
                                      .reset_index(drop=True),
                                      store.read_table(new, table).sort_values(list(store.COLUMNS[table][:2]))
                                      .reset_index(drop=True))
