"""Parquet results: one fixed schema per table, crash-safe per-trial writes, compaction, and readers.

A results directory (one per sweep, `results/<sweep-name>/`) holds four tables, each a folder:

    trials.parquet/      one row per trial (status, test metrics, flattened config, ...)
    epochs.parquet/      one row per trial x epoch
    classes.parquet/     one row per trial x class (precision, recall, f1, support)
    confusion.parquet/   one row per trial x (true, pred) with count
    trials.schema.json   the sweep's config columns and their types (the variable part of trials)
    .tmp/  .compacting/  .store.lock    files being written, parts being compacted, the lock

While a sweep runs, each table folder holds one `<trial_id>.parquet` part per trial; once the sweep is
done (`compact`: at the end of `python -m harness.sweep`, and at the start of a `--resume`), one
`compacted.parquet` with the finished trials' rows, plus any part written since. Every file of a table
has the identical Arrow schema, whatever is null in it, so every reader reads a folder as it is:

    pandas.read_parquet("results/x/trials.parquet")
    pyarrow.dataset.dataset("results/x/trials.parquet").to_table()
    duckdb: SELECT * FROM read_parquet('results/x/trials.parquet/*.parquet')   (no union_by_name)
    polars.read_parquet("results/x/trials.parquet")      (or ".../*.parquet")

and no reader ever sees a trial twice. The parts of this package, one concept each:

    schema.py         the fixed schemas, the columns every row has, how a config column gets its type
    convert.py        rows -> Arrow, Arrow -> a schema (SchemaError when a value does not fit)
    layout.py         paths in a results directory, the lock, atomic file writes (harness.files)
    folder_schema.py  a directory's trials schema: trials.schema.json, widening, migrating old files
    parts.py          write_part / write_trial: one trial's rows as its own part file
    read.py           read_table / read_arrow, finished_trial_ids, recorded_statuses
    compaction.py     compact, forget_trials, repairing an interrupted compaction
"""

from harness.store.compaction import compact, forget_trials
from harness.store.convert import conform, to_arrow
from harness.store.folder_schema import table_schema, write_schema
from harness.store.layout import (
    COMPACTED,
    LOCK_FILE,
    SCHEMA_FILE,
    STALE_TMP_S,
    TAKEN_DIR,
    TMP_DIR,
    compacted_path,
    part_path,
    schema_path,
    table_dir,
    taken_path,
)
from harness.store.parts import write_part, write_trial
from harness.store.read import finished_trial_ids, read_arrow, read_table, recorded_statuses, trial_configs
from harness.store.schema import (
    BOOL,
    CLASS_COLUMNS,
    CLASS_SCHEMA,
    COLUMNS,
    CONFUSION_COLUMNS,
    CONFUSION_SCHEMA,
    EPOCH_COLUMNS,
    EPOCH_SCHEMA,
    FIXED,
    FLOAT,
    INT,
    STRING,
    TABLES,
    TRIAL_COLUMNS,
    TRIAL_SCHEMA,
    TYPE_NAMES,
    SchemaError,
    config_types,
)
from harness.vocabulary import FINISHED, Status

__all__ = [
    "BOOL", "CLASS_COLUMNS", "CLASS_SCHEMA", "COLUMNS", "COMPACTED", "CONFUSION_COLUMNS", "CONFUSION_SCHEMA",
    "EPOCH_COLUMNS", "EPOCH_SCHEMA", "FINISHED", "FIXED", "FLOAT", "INT", "LOCK_FILE", "SCHEMA_FILE",
    "STALE_TMP_S", "STRING", "Status", "SchemaError", "TABLES", "TAKEN_DIR", "TMP_DIR", "TRIAL_COLUMNS",
    "TRIAL_SCHEMA", "TYPE_NAMES", "compact", "compacted_path", "config_types", "conform", "finished_trial_ids",
    "forget_trials", "part_path", "read_arrow", "read_table", "recorded_statuses", "schema_path", "table_dir", "table_schema",
    "taken_path", "to_arrow", "trial_configs", "write_part", "write_schema", "write_trial",
]
