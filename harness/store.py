"""Parquet results: one fixed schema per table, crash-safe per-trial writes, compaction, and readers.

Layout of a results directory (one per sweep, `results/<sweep-name>/`):

    trials.parquet/      one row per trial (status, test metrics, flattened config, ...)
    epochs.parquet/      one row per trial x epoch
    classes.parquet/     one row per trial x class (precision, recall, f1, support)
    confusion.parquet/   one row per trial x (true, pred) with count
    trials.schema.json   the sweep's config columns and their types (the variable part of trials)
    .tmp/  .compacting/  .store.lock    files being written, parts being compacted, the lock

While a sweep runs, each table folder holds one `<trial_id>.parquet` part file per trial: concurrent
trials never write the same file; a part is written under .tmp/ and renamed into place, so a crash
never leaves a half-written one, and a trial's later write replaces its part. Once the sweep is done
(`compact`: at the end of `python -m harness.sweep`, and at the start of a `--resume`), each folder
holds one `compacted.parquet` with the finished trials' rows, plus any part written since: a
finished sweep reads as four files. The table folders only ever contain Parquet files of the
table's schema.

Every file of a table has the identical Arrow schema, whatever is null in it. EPOCH_SCHEMA,
CLASS_SCHEMA and CONFUSION_SCHEMA are fixed and list every column either task writes. The trials
schema is TRIAL_SCHEMA (fixed columns) followed by the sweep's flattened config columns
(`model.activation`, `optimizer.lr`, `seed`, model options ...), typed from RunConfig's field
annotations, else from the values (bool, int64, double, string; int and float mixed: double; lists,
dicts, other mixes: JSON text), and stored in trials.schema.json by `write_schema` (the sweep
driver, from all of the sweep's trials, before any trial runs) or by the first trials row written
(`python -m harness.trial` alone). A row with a column its table does not know raises SchemaError;
a trials row's new *config* key (or a value its column's type cannot hold) widens the stored schema
instead, and the files written so far are rewritten to it. So every reader reads a folder as it is,
with every column and its type:

    pandas.read_parquet("results/x/trials.parquet")
    pyarrow.dataset.dataset("results/x/trials.parquet").to_table()
    duckdb: SELECT * FROM read_parquet('results/x/trials.parquet/*.parquet')   (no union_by_name)
    polars.read_parquet("results/x/trials.parquet")      (or ".../*.parquet")

No reader ever sees a trial twice:
- `compact` moves the parts it takes out of the folder (to .compacting/<table>/), replaces
  compacted.parquet atomically, then deletes them. A crash in between leaves them there: other
  readers miss those rows until the next `compact` or `forget_trials` repairs it (a taken part goes
  back unless its trial is in compacted.parquet or has a newer part, then it goes); `read_table`
  reads them meanwhile.
- A trial that runs again is first dropped from the compacted files (`forget_trials`: the sweep
  does it for the trials a resume reruns, `run_trial` for its own trial), so its new parts never
  sit next to its old rows. `read_table` also prefers a trial's part over its compacted rows.
- The compacted trials file is replaced before the other tables', and `forget_trials` drops the
  trials rows last, so a trial with rows in any compacted file has its trials row there (which
  makes `run_trial`'s check one small read) and the trials row keeps marking a finished trial.
Compaction, forgetting and schema changes hold an exclusive flock on .store.lock (`read_table` a
shared one). Parts are written without it, so `compact` takes only finished trials (with a trials
row) and the sweep passes only its own trials: another shard's may still be running.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import threading
import time
import types
import typing
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock
    fcntl = None

TABLES = ("trials", "epochs", "classes", "confusion")
COMPACTED = "compacted.parquet"  # in each table's folder: every compacted trial's rows
TAKEN_DIR = ".compacting"  # .compacting/<table>/<trial_id>.parquet: parts a compaction has taken
TMP_DIR = ".tmp"  # files being written, renamed into place when complete
SCHEMA_FILE = "trials.schema.json"
LOCK_FILE = ".store.lock"
STALE_TMP_S = 6 * 3600  # a temp file this old was left by a killed writer

STRING, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TYPE_NAMES = {str(t): t for t in (STRING, INT, FLOAT, BOOL)}  # "string", "int64", "double", "bool"


class SchemaError(ValueError):
    """A row that does not fit its table's schema: an unknown column, or a value of the wrong type."""


# The fixed columns, in order. Classification and segmentation rows share one schema; a task's own
# columns are null in the other's rows.
TRIAL_SCHEMA = pa.schema([
    ("trial_id", STRING), ("sweep", STRING), ("status", STRING),
    ("point", STRING),  # the grid point (JSON)
    ("params", INT), ("trainable_params", INT),  # parameter counts (trainable: segmentation)
    ("epochs_run", INT), ("best_epoch", INT), ("overfit_epoch", INT),
    ("stopped_by", STRING),  # "scheduler" when a Tune scheduler (ASHA) pruned the trial
    ("best_val_loss", FLOAT), ("best_val_acc", FLOAT), ("best_val_iou", FLOAT), ("best_val_dice", FLOAT),
    ("test_loss", FLOAT), ("test_acc", FLOAT), ("test_iou", FLOAT), ("test_dice", FLOAT),
    ("test_macro_f1", FLOAT), ("test_micro_f1", FLOAT), ("test_top_class_share", FLOAT),
    ("train_images_per_sec", FLOAT), ("total_seconds", FLOAT),
    ("num_classes", INT), ("input_shape", STRING), ("split_hash", STRING),
    ("device", STRING), ("cuda_visible_devices", STRING), ("precision", STRING), ("world_size", INT),
    ("attempt", INT), ("torch_version", STRING),
    ("health", STRING),  # the flags raised (JSON list)
    ("error", STRING), ("error_detail", STRING),
    ("config", STRING),  # the full config (JSON)
    ("started_at", STRING), ("finished_at", STRING),
])
EPOCH_SCHEMA = pa.schema([
    ("trial_id", STRING), ("epoch", INT),
    ("train_loss", FLOAT), ("train_acc", FLOAT), ("train_iou", FLOAT),
    ("val_loss", FLOAT), ("val_acc", FLOAT), ("val_iou", FLOAT), ("val_dice", FLOAT),
    ("val_fg_share", FLOAT),  # segmentation: the share of foreground pixels predicted
    ("val_top_class_share", FLOAT),  # the share of predictions on the most predicted class
    ("val_largest_class_share", FLOAT), ("val_classes_never_predicted", INT),  # classification: for the monitor
    ("gap_loss", FLOAT), ("gap_acc", FLOAT),
    ("lr", FLOAT), ("grad_norm", FLOAT), ("grad_norm_min_layer", FLOAT),
    ("epoch_seconds", FLOAT), ("train_seconds", FLOAT), ("images_per_sec", FLOAT), ("peak_memory_mb", FLOAT),
    ("flags", STRING),
])
CLASS_SCHEMA = pa.schema([("trial_id", STRING), ("class_index", INT), ("class_name", STRING),
                          ("precision", FLOAT), ("recall", FLOAT), ("f1", FLOAT), ("support", INT)])
CONFUSION_SCHEMA = pa.schema([("trial_id", STRING), ("true", INT), ("pred", INT), ("count", INT)])
FIXED = {"trials": TRIAL_SCHEMA, "epochs": EPOCH_SCHEMA, "classes": CLASS_SCHEMA, "confusion": CONFUSION_SCHEMA}

# Columns every row of both tasks has (a subset of the schemas); the flattened config comes on top
# of the trials ones.
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
CLASS_COLUMNS = CLASS_SCHEMA.names
CONFUSION_COLUMNS = CONFUSION_SCHEMA.names
COLUMNS = {"trials": TRIAL_COLUMNS, "epochs": EPOCH_COLUMNS, "classes": CLASS_COLUMNS, "confusion": CONFUSION_COLUMNS}

# Terminal statuses: a trial with one of these in trials.parquet is finished and not rerun on resume.
FINISHED = ("completed", "early_stopped", "diverged", "stalled", "failed")


# --------------------------------------------------------------------------------------------------
# Paths and the lock


def table_dir(results_dir: str | Path, table: str) -> Path:
    if table not in TABLES:
        raise ValueError(f"unknown table '{table}'; tables: {', '.join(TABLES)}")
    return Path(results_dir) / f"{table}.parquet"


def part_path(results_dir: str | Path, table: str, trial_id: str) -> Path:
    if f"{trial_id}.parquet" == COMPACTED or not trial_id or trial_id.startswith((".", "_")) or "/" in trial_id:
        raise ValueError(f"'{trial_id}' cannot be a trial id (it names the part file {trial_id}.parquet)")
    return table_dir(results_dir, table) / f"{trial_id}.parquet"


def compacted_path(results_dir: str | Path, table: str) -> Path:
    return table_dir(results_dir, table) / COMPACTED


def schema_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / SCHEMA_FILE


def taken_path(results_dir: str | Path, table: str, trial_id: str) -> Path:
    """Where a compaction keeps a part it has taken until the compacted file holds its rows."""
    return Path(results_dir) / TAKEN_DIR / table / f"{trial_id}.parquet"


def _parquet_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    names = sorted(e.name for e in os.scandir(folder)
                   if e.name.endswith(".parquet") and not e.name.startswith((".", "_")))
    return {name[: -len(".parquet")]: folder / name for name in names}  # by trial id: rows in a stable order


def _listing(results_dir: Path, table: str) -> tuple[dict[str, Path], dict[str, Path], Optional[Path]]:
    """(parts by trial id, parts taken by an interrupted compaction by trial id, the compacted file or None)."""
    parts = _parquet_files(table_dir(results_dir, table))
    compacted = parts.pop(COMPACTED[: -len(".parquet")], None)
    return parts, _parquet_files(Path(results_dir) / TAKEN_DIR / table), compacted


_held = threading.local()  # .paths: the lock files this thread holds (a nested call does not lock again)


@contextlib.contextmanager
def _lock(results_dir: Path, shared: bool = False) -> Iterator[None]:
    """flock on results_dir/.store.lock: exclusive for compaction, forgetting and schema changes;
    shared (and only when the lock file exists: readers never create files) for read_table."""
    path = Path(results_dir) / LOCK_FILE
    key = str(path.absolute())
    held = _held.__dict__.setdefault("paths", set())
    if fcntl is None or key in held:
        yield
        return
    try:
        if shared:
            fd = os.open(path, os.O_RDONLY)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not shared:
            raise
        yield  # no lock file (nothing was ever compacted here) or a read-only folder
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some Lustre/NFS mounts): go on unlocked
            pass
        held.add(key)
        yield
    finally:
        held.discard(key)
        os.close(fd)  # releases the lock


def _atomic_write(data: pa.Table | str, path: Path, results_dir: Path) -> None:
    """Write a Parquet table (or text) to results_dir/.tmp/, then rename it to `path`: readers of the table
    folders see the old file or the new one, never a part of one, nor anything but Parquet files."""
    tmp_dir = Path(results_dir) / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{path.parent.name.split('.')[0]}-{uuid.uuid4().hex}.tmp"  # (trial ids can be long)
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            pq.write_table(data, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Types


def _merge_types(a: Optional[pa.DataType], b: Optional[pa.DataType]) -> Optional[pa.DataType]:
    """The narrowest of bool/int64/double/string holding both (None: no value seen yet)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {INT, FLOAT}:
        return FLOAT
    return STRING


def _value_type(value: Any) -> Optional[pa.DataType]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, numbers.Integral):
        return INT
    if isinstance(value, numbers.Real):
        return FLOAT
    return STRING  # text, and lists or dicts as JSON text


def _arrow_kind(t: pa.DataType) -> Optional[pa.DataType]:
    """One of the four column types for an Arrow type found in a file (null: None)."""
    if pa.types.is_null(t):
        return None
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_floating(t):
        return FLOAT
    return STRING


def _annotation_type(annotation: Any) -> Optional[pa.DataType]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        kinds = {_annotation_type(a) for a in args if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else STRING
    if origin is typing.Literal:
        kinds = {_value_type(a) for a in args}
        return kinds.pop() if len(kinds) == 1 else STRING
    if origin in (list, tuple, dict, set) or annotation in (list, tuple, dict, set, str):
        return STRING
    return {bool: BOOL, int: INT, float: FLOAT}.get(annotation, STRING if isinstance(annotation, type) else None)


def _declared_type(key: str) -> Optional[pa.DataType]:
    """The column type of a dotted config key from RunConfig's field annotations (None: a model
    option or unknown key, typed from its values)."""
    try:
        from pydantic import BaseModel

        from harness.config import RunConfig
    except ImportError:
        return None
    model: Any = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return None
            model = annotation
            continue
        return _annotation_type(annotation)
    return None


def _is_config_key(key: str) -> bool:
    """A flattened config key (`optimizer.lr`, or a top-level RunConfig field such as `seed`)."""
    if "." in key:
        return True
    try:
        from harness.config import RunConfig
    except ImportError:
        return False
    return key in RunConfig.model_fields


def config_types(flat_configs: Iterable[dict[str, Any]]) -> dict[str, pa.DataType]:
    """The trials schema's config part from flattened configs (`RunConfig.flat()`), keys in first-seen
    order: the field's declared type, else the values' (int and float: double; lists, dicts, mixed
    kinds: string), else string."""
    seen: dict[str, Optional[pa.DataType]] = {}
    for flat in flat_configs:
        for key, value in flat.items():
            seen[key] = _merge_types(seen.get(key), _value_type(value)) if key in seen else _value_type(value)
    return {k: _declared_type(k) or t or STRING for k, t in seen.items()}


# --------------------------------------------------------------------------------------------------
# Schemas


def _stored_config_types(results_dir: Path) -> Optional[dict[str, pa.DataType]]:
    try:
        data = json.loads(schema_path(results_dir).read_text())
    except FileNotFoundError:
        return None
    return {k: TYPE_NAMES[v] for k, v in data["config_columns"].items()}


def _trials_schema(config: dict[str, pa.DataType]) -> pa.Schema:
    fixed = set(TRIAL_SCHEMA.names)
    return pa.schema(list(TRIAL_SCHEMA) + [pa.field(k, t) for k, t in config.items() if k not in fixed])


def _file_config_types(results_dir: Path) -> dict[str, pa.DataType]:
    """Config columns found in the trials files' footers (a folder written before trials.schema.json)."""
    parts, hidden, compacted = _listing(results_dir, "trials")
    found: dict[str, Optional[pa.DataType]] = {}
    for path in [*([compacted] if compacted else []), *parts.values(), *hidden.values()]:
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid):
            continue
        for field in schema:
            if field.name not in TRIAL_SCHEMA.names:
                kind = _arrow_kind(field.type)
                found[field.name] = _merge_types(found.get(field.name), kind) if field.name in found else kind
    return {k: _declared_type(k) or t or STRING for k, t in found.items()}


def table_schema(results_dir: str | Path, table: str) -> pa.Schema:
    """The schema every file of `table` in results_dir has (trials: fixed columns + stored config columns)."""
    if table != "trials":
        table_dir(results_dir, table)  # validates the name
        return FIXED[table]
    results_dir = Path(results_dir)
    stored = _stored_config_types(results_dir)
    return _trials_schema(stored if stored is not None else _file_config_types(results_dir))


def write_schema(results_dir: str | Path, configs: Iterable[Any]) -> pa.Schema:
    """Store the trials schema of a sweep from all its trials' configs (RunConfig objects, or their
    `flat()` dicts), merged with what is stored already; when that changes the schema, the files
    written so far are rewritten to it. Call before any trial of the sweep runs."""
    flats = [c if isinstance(c, dict) else c.flat() for c in configs]
    _extend_config_types(Path(results_dir), config_types(flats))
    return table_schema(results_dir, "trials")


def _extend_config_types(results_dir: Path, new: dict[str, pa.DataType]) -> None:
    with _lock(results_dir):
        stored = _stored_config_types(results_dir)
        merged = dict(new if stored is None else stored)
        for key, t in (_file_config_types(results_dir) if stored is None else new).items():
            merged[key] = _merge_types(merged[key], t) if key in merged else t
        if stored is not None and merged == stored:
            return
        text = json.dumps({"config_columns": {k: str(t) for k, t in merged.items()}}, indent=1) + "\n"
        _atomic_write(text, schema_path(results_dir), results_dir)
        # the files written so far get the new schema (all tables the first time: a folder from before)
        for table in TABLES if stored is None else ("trials",):
            _migrate(results_dir, table)


def _migrate(results_dir: Path, table: str) -> None:
    """Rewrite every file of `table` whose schema is not the table's (under the lock)."""
    schema = table_schema(results_dir, table)
    parts, hidden, compacted = _listing(results_dir, table)
    for path in [*([compacted] if compacted else []), *parts.values(), *hidden.values()]:
        try:
            if pq.read_schema(path).remove_metadata().equals(schema):
                continue
            data = pq.read_table(path)
        except FileNotFoundError:
            continue
        _atomic_write(_conform(data, schema, table, str(path)), path, results_dir)


# --------------------------------------------------------------------------------------------------
# Rows -> Arrow


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _cell(value: Any, t: pa.DataType) -> Any:
    """One value as the column type wants it; raises TypeError/ValueError when it does not fit."""
    if value is None:
        return None
    is_bool = isinstance(value, (bool, np.bool_))
    if t == STRING:
        return value if isinstance(value, str) else _json(list(value) if isinstance(value, tuple) else value)
    if t == BOOL:
        if is_bool:
            return bool(value)
    elif t == FLOAT:
        if isinstance(value, numbers.Real) and not is_bool:
            return float(value)
    elif t == INT:
        if isinstance(value, numbers.Integral) and not is_bool:
            return int(value)
        if isinstance(value, numbers.Real) and not is_bool:
            if math.isnan(value):
                return None
            if float(value).is_integer():
                return int(value)
    raise TypeError(f"{value!r} is not {t}")


_PLAIN = {STRING: str, INT: int, FLOAT: float, BOOL: bool}


def _column(values: list, t: pa.DataType) -> pa.Array:
    plain = _PLAIN[t]
    if all(v is None or type(v) is plain for v in values):
        return pa.array(values, type=t)
    return pa.array([_cell(v, t) for v in values], type=t)


def _fits(values: Iterable[Any], t: pa.DataType) -> bool:
    try:
        for v in values:
            _cell(v, t)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def to_arrow(rows: list[dict[str, Any]], table: str, schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table of exactly `schema` (missing keys: null); SchemaError on an unknown key
    or a value of the wrong type."""
    keys = set().union(*rows) if rows else set()
    unknown = sorted(keys - set(schema.names))
    if unknown:
        where = {"trials": "TRIAL_SCHEMA (or make it a config key)", "epochs": "EPOCH_SCHEMA",
                 "classes": "CLASS_SCHEMA", "confusion": "CONFUSION_SCHEMA"}[table]
        raise SchemaError(f"{table} row has column(s) {', '.join(unknown)} not in the {table} schema: "
                          f"add them to store.{where}")
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(_column(values, field.type))
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as err:
            raise SchemaError(f"{table}.{field.name} is {field.type}: {err}") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _schema_for_trials_rows(results_dir: Path, rows: list[dict[str, Any]]) -> pa.Schema:
    """The stored trials schema, widened first when these rows bring config keys (or value types) it
    lacks; a non-config key it lacks is a SchemaError."""
    fixed = set(TRIAL_SCHEMA.names)
    keys = list(dict.fromkeys(k for row in rows for k in row if k not in fixed))
    bad = [k for k in keys if not _is_config_key(k)]
    if bad:
        raise SchemaError(f"trials row has column(s) {', '.join(bad)} not in the trials schema: "
                          f"add them to store.TRIAL_SCHEMA")
    stored = _stored_config_types(results_dir)
    need: dict[str, pa.DataType] = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        if stored is not None and key in stored:
            if not _fits(values, stored[key]):
                need[key] = config_types([{key: v} for v in values])[key]
        else:
            need[key] = config_types([{key: v} for v in values])[key]
    if need or stored is None:
        _extend_config_types(results_dir, need)
    return table_schema(results_dir, "trials")


# --------------------------------------------------------------------------------------------------
# Writing


def write_part(results_dir: str | Path, table: str, trial_id: str, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one trial's rows of one table atomically (a temp file under .tmp/, then rename), replacing
    that trial's part; SchemaError for a row that does not fit the table's schema."""
    results_dir = Path(results_dir)
    rows = list(rows)
    path = part_path(results_dir, table, trial_id)
    schema = _schema_for_trials_rows(results_dir, rows) if table == "trials" else FIXED[table]
    data = to_arrow(rows, table, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(data, path, results_dir)
    return path


def write_trial(results_dir: str | Path, trial_id: str, trial: dict[str, Any], epochs: list[dict[str, Any]],
                classes: list[dict[str, Any]] = (), confusion: list[dict[str, Any]] = ()) -> None:
    """All of one finished trial's tables; the trials row goes last, so it marks the trial finished."""
    for table, rows in (("epochs", epochs), ("classes", classes), ("confusion", confusion)):
        if rows:
            write_part(results_dir, table, trial_id, rows)
    write_part(results_dir, "trials", trial_id, [trial])


# --------------------------------------------------------------------------------------------------
# Reading


def _conform(data: pa.Table, schema: pa.Schema, table: str = "", where: str = "") -> pa.Table:
    """`data` cast to `schema`: missing columns null; int to double; double to int64 where whole (NaN:
    null); anything to string. SchemaError on a column the schema lacks or a value that does not fit."""
    extra = [n for n in data.column_names if n not in schema.names]
    if extra:
        raise SchemaError(f"{where or table}: column(s) {', '.join(extra)} not in the {table} schema")
    arrays = []
    for field in schema:
        if field.name not in data.column_names:
            arrays.append(pa.nulls(len(data), field.type))
            continue
        col = data[field.name]
        if col.type != field.type:
            try:
                if pa.types.is_floating(col.type) and pa.types.is_integer(field.type):
                    col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                raise SchemaError(f"{where or table}: column {field.name} ({col.type}) does not fit "
                                  f"{field.type}: {err}") from None
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def _widened(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """A schema holding every column of these (the first one's order first), types merged."""
    fields: dict[str, Optional[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            kind = _arrow_kind(f.type)
            fields[f.name] = _merge_types(fields[f.name], kind) if f.name in fields else kind
    return pa.schema([(name, t or STRING) for name, t in fields.items()])


def _read_files(paths: list[Path], schema: pa.Schema, table: str) -> pa.Table:
    """Files of one table as one Arrow table: files of `schema` (all that this module writes) in one
    multi-threaded scan; otherwise (an older layout) one by one, widened so that no column or value is lost."""
    if not paths:
        return schema.empty_table()
    try:
        return ds.dataset([str(p) for p in paths], schema=schema, format="parquet").to_table()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    tables = [pq.read_table(p) for p in paths]
    wide = _widened([schema, *(t.schema for t in tables)])
    return pa.concat_tables([_conform(t, wide, table) for t in tables])


def _trial_ids(path: Path) -> set[str]:
    try:
        return set(pq.read_table(path, columns=["trial_id"])["trial_id"].to_pylist())
    except FileNotFoundError:
        return set()


def read_arrow(results_dir: str | Path, table: str) -> pa.Table:
    """One table as an Arrow table: the compacted rows, then the parts (a trial with a part: its part
    only), then parts taken by an interrupted compaction whose trial is in neither."""
    results_dir = Path(results_dir)
    with _lock(results_dir, shared=True):
        schema = table_schema(results_dir, table)
        parts, taken, compacted = _listing(results_dir, table)
        pieces = []
        compacted_ids: set[str] = set()
        if compacted is not None:
            data = _read_files([compacted], schema, table)
            if taken:
                compacted_ids = set(data["trial_id"].to_pylist())
            if parts:
                data = data.filter(pc.invert(pc.is_in(data["trial_id"], pa.array(list(parts), STRING))))
            pieces.append(data)
        files = list(parts.values()) + [p for tid, p in taken.items() if tid not in parts and tid not in compacted_ids]
        if files:
            pieces.append(_read_files(files, schema, table))
    if not pieces:
        return schema.empty_table()
    if len(pieces) > 1 and not pieces[0].schema.equals(pieces[1].schema):  # an older file, widened
        wide = _widened(p.schema for p in pieces)
        pieces = [_conform(p, wide, table) for p in pieces]
    return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]


def read_table(results_dir: str | Path, table: str) -> pd.DataFrame:
    """One table as a DataFrame with every schema column (empty, typed, when nothing is written yet);
    ints with nulls come as float64, as pandas reads them from Parquet."""
    return read_arrow(results_dir, table).to_pandas()


def finished_trial_ids(results_dir: str | Path) -> set[str]:
    trials = read_table(results_dir, "trials")
    if trials.empty:
        return set()
    return set(trials.loc[trials["status"].isin(FINISHED), "trial_id"])


def trial_configs(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """The full config stored with each trial row, as dicts."""
    return [json.loads(c) for c in trials["config"]]


# --------------------------------------------------------------------------------------------------
# Compaction and forgetting


def _recover(results_dir: Path) -> None:
    """Finish or undo an interrupted compaction (under the lock): a taken part goes back into its table
    folder unless its trial has a newer part there or is in the compacted file (then it goes). Temp
    files older than STALE_TMP_S go too."""
    for table in TABLES:
        parts, taken, compacted = _listing(results_dir, table)
        if taken:
            in_compacted = _trial_ids(compacted) if compacted is not None else set()
            for tid, path in taken.items():
                if tid in parts or tid in in_compacted:
                    path.unlink(missing_ok=True)
                else:
                    os.replace(path, part_path(results_dir, table, tid))
        with contextlib.suppress(OSError):
            (results_dir / TAKEN_DIR / table).rmdir()
    with contextlib.suppress(OSError):
        (results_dir / TAKEN_DIR).rmdir()
    tmp_dir = results_dir / TMP_DIR
    if tmp_dir.is_dir():  # temp files of writers killed mid-write (a live one is seconds old)
        for path in tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > STALE_TMP_S:
                    path.unlink()


def _compact_table(results_dir: Path, table: str, wanted: set[str]) -> int:
    schema = table_schema(results_dir, table)
    parts, _, compacted = _listing(results_dir, table)
    take = {tid: p for tid, p in parts.items() if tid in wanted}
    if not take and (compacted is None or pq.read_schema(compacted).remove_metadata().equals(schema)):
        return 0
    taken = {tid: taken_path(results_dir, table, tid) for tid in take}
    if taken:
        (Path(results_dir) / TAKEN_DIR / table).mkdir(parents=True, exist_ok=True)
    moved: list[str] = []
    try:
        for tid in take:  # out of the folder first: from here on no reader sees these rows twice
            os.replace(take[tid], taken[tid])
            moved.append(tid)
        pieces = []
        if compacted is not None:
            old = _conform(pq.read_table(compacted), schema, table, str(compacted))
            if take:
                old = old.filter(pc.invert(pc.is_in(old["trial_id"], pa.array(list(take), STRING))))
            pieces.append(old)
        if take:
            pieces.append(_conform(_read_files(list(taken.values()), schema, table), schema, table, table))
        data = pa.concat_tables(pieces) if pieces else schema.empty_table()
        _atomic_write(data, compacted_path(results_dir, table), results_dir)
    except BaseException:
        for tid in moved:  # not compacted: the parts go back (unless a newer one was written meanwhile)
            if not take[tid].exists():
                os.replace(taken[tid], take[tid])
        raise
    for path in taken.values():
        path.unlink(missing_ok=True)
    for folder in (Path(results_dir) / TAKEN_DIR / table, Path(results_dir) / TAKEN_DIR):
        with contextlib.suppress(OSError):  # (not empty: another table's are still there)
            folder.rmdir()
    return len(take)


def compact(results_dir: str | Path, trial_ids: Optional[Iterable[str]] = None) -> int:
    """Move finished trials' part files (those with a trials row; only `trial_ids` when given) into each
    table's compacted.parquet, so that a finished sweep reads as four files. Also repairs an interrupted
    compaction and brings compacted files to the current schema. Returns the number of trials whose
    trials part was compacted. Safe while other processes write parts of trials it does not take."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return 0
    with _lock(results_dir):
        _recover(results_dir)
        parts, _, compacted = _listing(results_dir, "trials")
        finished = set(parts) | (_trial_ids(compacted) if compacted is not None else set())
        wanted = finished if trial_ids is None else finished & set(trial_ids)
        # trials first: a trial with rows in any compacted file has its row in compacted trials
        done = [_compact_table(results_dir, table, wanted) for table in TABLES]
        return done[0]


def forget_trials(results_dir: str | Path, trial_ids: Iterable[str], *, keep_parts: bool = False) -> int:
    """Drop these trials' rows from every table, compacted files and parts alike (keep_parts: from the
    compacted files only, for a run about to replace its parts), before running them again. Each file
    changes atomically; the trials rows go last, so an interrupted call leaves a trial either finished
    as before or forgotten enough to run again (and a second call finishes the job). Returns how many
    of the trials had a row in the compacted trials file."""
    results_dir = Path(results_dir)
    ids = set(trial_ids)
    if not ids or not results_dir.is_dir():
        return 0
    # a quick look without the lock (run_trial calls this for every trial): anything to drop?
    compacted = compacted_path(results_dir, "trials")
    in_compacted = ids & _trial_ids(compacted) if compacted.exists() else set()
    paths = [taken_path(results_dir, table, tid) for table in TABLES for tid in ids]
    if not keep_parts:
        paths += [part_path(results_dir, table, tid) for table in TABLES for tid in ids]
    if not in_compacted and not any(p.exists() for p in paths):
        return 0
    with _lock(results_dir):
        _recover(results_dir)
        dropped = 0
        for table in ("epochs", "classes", "confusion", "trials"):
            path = compacted_path(results_dir, table)
            if path.exists():
                data = pq.read_table(path)
                gone = pc.is_in(data["trial_id"], pa.array(list(ids), STRING))
                if pc.any(gone).as_py():
                    if table == "trials":
                        dropped = len(ids & set(data.filter(gone)["trial_id"].to_pylist()))
                    _atomic_write(data.filter(pc.invert(gone)), path, results_dir)
            if not keep_parts:
                for tid in ids:
                    part_path(results_dir, table, tid).unlink(missing_ok=True)
        return dropped
