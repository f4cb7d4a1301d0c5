"""The tables' schemas and the typing rules behind them: the four fixed Arrow schemas (EPOCH_SCHEMA,
CLASS_SCHEMA, CONFUSION_SCHEMA, and TRIAL_SCHEMA's fixed columns), the columns every row of both tasks
has, and how a config column gets its type (RunConfig's field annotation, else its values: bool, int64,
double, string; int and float mixed: double; lists, dicts, other mixes: JSON text). Pure: no files."""

from __future__ import annotations

import numbers
import types
import typing
from typing import Any, Iterable, Optional

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from harness.config import RunConfig

TABLES = ("trials", "epochs", "classes", "confusion")

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
    # provenance (harness.provenance): the code version (git commit and dirty tree, or the installed version),
    # the libraries, the host, and the sha256 (16 hex digits) of the results directory's sweep.yaml
    ("code_commit", STRING), ("code_dirty", BOOL), ("harness_version", STRING), ("cuda_version", STRING),
    ("cudnn_version", STRING), ("accelerate_version", STRING), ("ray_version", STRING), ("python_version", STRING),
    ("host", STRING), ("sweep_hash", STRING),
    ("pack_id", STRING), ("pack_size", INT),  # the packed program the trial trained in (harness.pack); null: alone
    # tune.scheduler pbt (harness.sweep.pbt): the trial's hyperparameters over time, JSON [{epoch, from, config}]
    ("pbt_schedule", STRING),
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


def trials_schema(config: dict[str, pa.DataType]) -> pa.Schema:
    """TRIAL_SCHEMA followed by these config columns."""
    fixed = set(TRIAL_SCHEMA.names)
    return pa.schema(list(TRIAL_SCHEMA) + [pa.field(k, t) for k, t in config.items() if k not in fixed])


# --------------------------------------------------------------------------------------------------
# Column types


def merge_types(a: Optional[pa.DataType], b: Optional[pa.DataType]) -> Optional[pa.DataType]:
    """The narrowest of bool/int64/double/string holding both (None: no value seen yet)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {INT, FLOAT}:
        return FLOAT
    return STRING


def value_type(value: Any) -> Optional[pa.DataType]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, numbers.Integral):
        return INT
    if isinstance(value, numbers.Real):
        return FLOAT
    return STRING  # text, and lists or dicts as JSON text


def arrow_kind(t: pa.DataType) -> Optional[pa.DataType]:
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
        kinds = {value_type(a) for a in args}
        return kinds.pop() if len(kinds) == 1 else STRING
    if origin in (list, tuple, dict, set) or annotation in (list, tuple, dict, set, str):
        return STRING
    return {bool: BOOL, int: INT, float: FLOAT}.get(annotation, STRING if isinstance(annotation, type) else None)


def declared_type(key: str) -> Optional[pa.DataType]:
    """The column type of a dotted config key from RunConfig's field annotations (None: a model
    option or unknown key, typed from its values)."""
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


def is_config_key(key: str) -> bool:
    """A flattened config key (`optimizer.lr`, or a top-level RunConfig field such as `seed`)."""
    return "." in key or key in RunConfig.model_fields


def config_types(flat_configs: Iterable[dict[str, Any]]) -> dict[str, pa.DataType]:
    """The trials schema's config part from flattened configs (`RunConfig.flat()`), keys in first-seen
    order: the field's declared type, else the values' (int and float: double; lists, dicts, mixed
    kinds: string), else string."""
    seen: dict[str, Optional[pa.DataType]] = {}
    for flat in flat_configs:
        for key, value in flat.items():
            seen[key] = merge_types(seen.get(key), value_type(value)) if key in seen else value_type(value)
    return {k: declared_type(k) or t or STRING for k, t in seen.items()}
