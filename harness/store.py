"""Parquet results: the table schemas, atomic per-trial writes, and readers.

Layout of a results directory (one per sweep, `results/<sweep-name>/`):

    trials.parquet/<trial_id>.parquet      one row per trial (status, flattened config, test metrics)
    epochs.parquet/<trial_id>.parquet      one row per trial x epoch
    classes.parquet/<trial_id>.parquet     one row per trial x class (precision, recall, f1, support)
    confusion.parquet/<trial_id>.parquet   one row per trial x (true, pred) with count

Each table is a directory of part files, one per trial, so concurrent trials never write the same
file, a crash never leaves a half-written one (write to a dot-file, then rename: readers skip
dot-files), and re-running a trial replaces its rows instead of duplicating them.
`pandas.read_parquet("results/x/epochs.parquet")` reads a table as it is; DuckDB reads it with
`read_parquet('results/x/epochs.parquet/*.parquet', union_by_name=true)`; `read_table` here also
copes with parts whose columns differ (a grid over architectures with different options).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

TABLES = ("trials", "epochs", "classes", "confusion")

# Columns every trial row has; the flattened config (`model.activation`, `optimizer.lr`, ...) and
# the grid point come on top.
TRIAL_COLUMNS = [
    "trial_id", "sweep", "status", "params", "epochs_run", "best_epoch", "overfit_epoch",
    "best_val_loss", "best_val_acc", "test_loss", "test_acc", "test_macro_f1", "test_micro_f1",
    "train_images_per_sec", "total_seconds", "device", "precision", "world_size", "torch_version",
    "health", "error", "config", "started_at", "finished_at",
]
EPOCH_COLUMNS = [
    "trial_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm",
    "epoch_seconds", "images_per_sec", "peak_memory_mb",
]
CLASS_COLUMNS = ["trial_id", "class_index", "class_name", "precision", "recall", "f1", "support"]
CONFUSION_COLUMNS = ["trial_id", "true", "pred", "count"]
COLUMNS = {"trials": TRIAL_COLUMNS, "epochs": EPOCH_COLUMNS, "classes": CLASS_COLUMNS, "confusion": CONFUSION_COLUMNS}

# Terminal statuses: a trial with one of these in trials.parquet is finished and not rerun on resume.
FINISHED = ("completed", "early_stopped", "diverged", "stalled", "failed")


def table_dir(results_dir: str | Path, table: str) -> Path:
    if table not in TABLES:
        raise ValueError(f"unknown table '{table}'; tables: {', '.join(TABLES)}")
    return Path(results_dir) / f"{table}.parquet"


def part_path(results_dir: str | Path, table: str, trial_id: str) -> Path:
    return table_dir(results_dir, table) / f"{trial_id}.parquet"


def _cell(value: Any) -> Any:
    """Parquet-friendly cell: lists and dicts as JSON text, everything else as is."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def to_frame(rows: Iterable[dict[str, Any]], table: str) -> pd.DataFrame:
    rows = [{k: _cell(v) for k, v in row.items()} for row in rows]
    frame = pd.DataFrame(rows)
    leading = [c for c in COLUMNS[table] if c in frame.columns]
    return frame[leading + [c for c in frame.columns if c not in leading]]


def write_part(results_dir: str | Path, table: str, trial_id: str, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one trial's rows of one table atomically (temp file in the same folder, then rename)."""
    path = part_path(results_dir, table, trial_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{trial_id}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        to_frame(rows, table).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_trial(results_dir: str | Path, trial_id: str, trial: dict[str, Any], epochs: list[dict[str, Any]],
                classes: list[dict[str, Any]] = (), confusion: list[dict[str, Any]] = ()) -> None:
    """All of one finished trial's tables; the trials row goes last, so it marks the trial finished."""
    for table, rows in (("epochs", epochs), ("classes", classes), ("confusion", confusion)):
        if rows:
            write_part(results_dir, table, trial_id, rows)
    write_part(results_dir, "trials", trial_id, [trial])


def read_table(results_dir: str | Path, table: str) -> pd.DataFrame:
    """One table as a DataFrame (empty, with the schema's columns, when nothing is written yet)."""
    folder = table_dir(results_dir, table)
    parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []
    frames = [pd.read_parquet(p) for p in parts]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=COLUMNS[table])
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def finished_trial_ids(results_dir: str | Path) -> set[str]:
    trials = read_table(results_dir, "trials")
    if trials.empty:
        return set()
    return set(trials.loc[trials["status"].isin(FINISHED), "trial_id"])


def trial_configs(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """The full config stored with each trial row, as dicts."""
    return [json.loads(c) for c in trials["config"]]
