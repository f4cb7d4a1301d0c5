"""The schema of each table in one results directory. Fixed for epochs, classes and confusion; for
trials, TRIAL_SCHEMA followed by the sweep's config columns, stored in trials.schema.json by
`write_schema` (the sweep driver, from all of the sweep's trials, before any trial runs) or by the first
trials row written (`python -m harness.trial` alone). A trials row's new *config* key (or a value its
column's type cannot hold) widens the stored schema, and the files written so far are rewritten to it,
so that every file of a table has the identical schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from harness.store.convert import conform, fits
from harness.store.layout import listing, lock, schema_path, table_dir, write_file
from harness.store.schema import (
    FIXED,
    STRING,
    TABLES,
    TRIAL_SCHEMA,
    TYPE_NAMES,
    SchemaError,
    arrow_kind,
    config_types,
    declared_type,
    is_config_key,
    merge_types,
    trials_schema,
)


def _stored_config_types(results_dir: Path) -> Optional[dict[str, pa.DataType]]:
    try:
        data = json.loads(schema_path(results_dir).read_text())
    except FileNotFoundError:
        return None
    return {k: TYPE_NAMES[v] for k, v in data["config_columns"].items()}


def _file_config_types(results_dir: Path) -> dict[str, pa.DataType]:
    """Config columns found in the trials files' footers (a folder written before trials.schema.json)."""
    parts, hidden, compacted = listing(results_dir, "trials")
    found: dict[str, Optional[pa.DataType]] = {}
    for path in [*([compacted] if compacted else []), *parts.values(), *hidden.values()]:
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid):
            continue
        for field in schema:
            if field.name not in TRIAL_SCHEMA.names:
                kind = arrow_kind(field.type)
                found[field.name] = merge_types(found.get(field.name), kind) if field.name in found else kind
    return {k: declared_type(k) or t or STRING for k, t in found.items()}


def table_schema(results_dir: str | Path, table: str) -> pa.Schema:
    """The schema every file of `table` in results_dir has (trials: fixed columns + stored config columns)."""
    if table != "trials":
        table_dir(results_dir, table)  # validates the name
        return FIXED[table]
    results_dir = Path(results_dir)
    stored = _stored_config_types(results_dir)
    return trials_schema(stored if stored is not None else _file_config_types(results_dir))


def write_schema(results_dir: str | Path, configs: Iterable[Any]) -> pa.Schema:
    """Store the trials schema of a sweep from all its trials' configs (RunConfig objects, or their
    `flat()` dicts), merged with what is stored already; when that changes the schema, the files
    written so far are rewritten to it. Call before any trial of the sweep runs."""
    flats = [c if isinstance(c, dict) else c.flat() for c in configs]
    _extend_config_types(Path(results_dir), config_types(flats))
    return table_schema(results_dir, "trials")


def _extend_config_types(results_dir: Path, new: dict[str, pa.DataType]) -> None:
    with lock(results_dir):
        stored = _stored_config_types(results_dir)
        merged = dict(new if stored is None else stored)
        for key, t in (_file_config_types(results_dir) if stored is None else new).items():
            merged[key] = merge_types(merged[key], t) if key in merged else t
        if stored is not None and merged == stored:
            return
        text = json.dumps({"config_columns": {k: str(t) for k, t in merged.items()}}, indent=1) + "\n"
        write_file(text, schema_path(results_dir), results_dir)
        # the files written so far get the new schema (all tables the first time: a folder from before)
        for table in TABLES if stored is None else ("trials",):
            _migrate(results_dir, table)


def _migrate(results_dir: Path, table: str) -> None:
    """Rewrite every file of `table` whose schema is not the table's (under the lock)."""
    schema = table_schema(results_dir, table)
    parts, hidden, compacted = listing(results_dir, table)
    for path in [*([compacted] if compacted else []), *parts.values(), *hidden.values()]:
        try:
            if pq.read_schema(path).remove_metadata().equals(schema):
                continue
            data = pq.read_table(path)
        except FileNotFoundError:
            continue
        write_file(conform(data, schema, table, str(path)), path, results_dir)


def schema_for_trials_rows(results_dir: Path, rows: list[dict[str, Any]]) -> pa.Schema:
    """The stored trials schema, widened first when these rows bring config keys (or value types) it
    lacks; a non-config key it lacks is a SchemaError."""
    fixed = set(TRIAL_SCHEMA.names)
    keys = list(dict.fromkeys(k for row in rows for k in row if k not in fixed))
    bad = [k for k in keys if not is_config_key(k)]
    if bad:
        raise SchemaError(f"trials row has column(s) {', '.join(bad)} not in the trials schema: "
                          f"add them to store.TRIAL_SCHEMA")
    stored = _stored_config_types(results_dir)
    need: dict[str, pa.DataType] = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        if stored is not None and key in stored:
            if not fits(values, stored[key]):
                need[key] = config_types([{key: v} for v in values])[key]
        else:
            need[key] = config_types([{key: v} for v in values])[key]
    if need or stored is None:
        _extend_config_types(results_dir, need)
    return table_schema(results_dir, "trials")
