"""Rows to Arrow and Arrow to a schema: each value as its column's type wants it, or a SchemaError that
names the table and the column. Pure: no files."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Iterable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.store.schema import BOOL, FLOAT, INT, STRING, SchemaError, arrow_kind, merge_types


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def cell(value: Any, t: pa.DataType) -> Any:
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
    return pa.array([cell(v, t) for v in values], type=t)


def fits(values: Iterable[Any], t: pa.DataType) -> bool:
    try:
        for v in values:
            cell(v, t)
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


def conform(data: pa.Table, schema: pa.Schema, table: str = "", where: str = "") -> pa.Table:
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


def widened(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """A schema holding every column of these (the first one's order first), types merged."""
    fields: dict[str, Optional[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            kind = arrow_kind(f.type)
            fields[f.name] = merge_types(fields[f.name], kind) if f.name in fields else kind
    return pa.schema([(name, t or STRING) for name, t in fields.items()])
