"""Reading a table as it is, with every column and its type, and never a trial twice: the compacted rows,
then the parts (a trial with a part: its part only), then parts an interrupted compaction took whose
trial is in neither. Under the shared lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.store.convert import conform, widened
from harness.store.folder_schema import table_schema
from harness.store.layout import listing, lock
from harness.store.schema import STRING
from harness.vocabulary import FINISHED


def read_files(paths: list[Path], schema: pa.Schema, table: str) -> pa.Table:
    """Files of one table as one Arrow table: files of `schema` (all that this package writes) in one
    multi-threaded scan; otherwise (an older layout) one by one, widened so that no column or value is lost."""
    if not paths:
        return schema.empty_table()
    try:
        return ds.dataset([str(p) for p in paths], schema=schema, format="parquet").to_table()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    tables = [pq.read_table(p) for p in paths]
    wide = widened([schema, *(t.schema for t in tables)])
    return pa.concat_tables([conform(t, wide, table) for t in tables])


def ids_in_file(path: Path) -> set[str]:
    """The trial ids in one file (none when it is gone)."""
    try:
        return set(pq.read_table(path, columns=["trial_id"])["trial_id"].to_pylist())
    except FileNotFoundError:
        return set()


def read_arrow(results_dir: str | Path, table: str) -> pa.Table:
    """One table as an Arrow table: the compacted rows, then the parts (a trial with a part: its part
    only), then parts taken by an interrupted compaction whose trial is in neither."""
    results_dir = Path(results_dir)
    with lock(results_dir, shared=True):
        schema = table_schema(results_dir, table)
        parts, taken, compacted = listing(results_dir, table)
        pieces = []
        compacted_ids: set[str] = set()
        if compacted is not None:
            data = read_files([compacted], schema, table)
            if taken:
                compacted_ids = set(data["trial_id"].to_pylist())
            if parts:
                data = data.filter(pc.invert(pc.is_in(data["trial_id"], pa.array(list(parts), STRING))))
            pieces.append(data)
        files = list(parts.values()) + [p for tid, p in taken.items() if tid not in parts and tid not in compacted_ids]
        if files:
            pieces.append(read_files(files, schema, table))
    if not pieces:
        return schema.empty_table()
    if len(pieces) > 1 and not pieces[0].schema.equals(pieces[1].schema):  # an older file, widened
        wide = widened(p.schema for p in pieces)
        pieces = [conform(p, wide, table) for p in pieces]
    return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]


def read_table(results_dir: str | Path, table: str) -> pd.DataFrame:
    """One table as a DataFrame with every schema column (empty, typed, when nothing is written yet);
    ints with nulls come as float64, as pandas reads them from Parquet."""
    return read_arrow(results_dir, table).to_pandas()


def recorded_statuses(results_dir: str | Path, trial_ids: Iterable[str]) -> dict[str, str]:
    """The status in the trials row of each of `trial_ids` that has one: its part, else the compacted file
    (two columns read, the rows of these trials kept), else a part an interrupted compaction took."""
    results_dir, wanted = Path(results_dir), set(trial_ids)
    found: dict[str, str] = {}

    def take(path: Path, ids: set[str]) -> None:
        try:
            data = pq.read_table(path, columns=["trial_id", "status"])
        except (OSError, pa.ArrowInvalid):  # gone, or being replaced right now: no row yet
            return
        for tid, status in zip(data["trial_id"].to_pylist(), data["status"].to_pylist()):
            if tid in ids and tid not in found and status is not None:
                found[tid] = status

    with lock(results_dir, shared=True):
        parts, taken, compacted = listing(results_dir, "trials")
        for tid in wanted & parts.keys():
            take(parts[tid], {tid})
        if compacted is not None and wanted - parts.keys():
            take(compacted, wanted - parts.keys())
        for tid in (wanted - found.keys()) & taken.keys():
            take(taken[tid], {tid})
    return found


def finished_trial_ids(results_dir: str | Path) -> set[str]:
    """Trials with a finished status (harness.vocabulary.FINISHED): not run again on --resume."""
    trials = read_table(results_dir, "trials")
    if trials.empty:
        return set()
    return set(trials.loc[trials["status"].isin(FINISHED), "trial_id"])


def trial_configs(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """The full config stored with each trial row, as dicts."""
    return [json.loads(c) for c in trials["config"]]
