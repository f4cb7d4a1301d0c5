"""Compaction and forgetting, both under the exclusive lock.

`compact` moves finished trials' parts (those with a trials row) into each table's compacted.parquet, so
that a finished sweep reads as four files: the parts it takes leave the folder first (to .compacting/),
compacted.parquet is replaced atomically, then they are deleted. A crash in between leaves them there:
other readers miss those rows until the next `compact` or `forget_trials` repairs it (`_recover`: a taken
part goes back unless its trial is in compacted.parquet or has a newer part, then it goes); read_table
reads them meanwhile. `forget_trials` drops a trial's rows before it runs again, so its new parts never
sit next to its old rows. The trials table goes first when compacting and last when forgetting, so a
trial with rows in any compacted file has its trials row there.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterable, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.store.convert import conform
from harness.store.folder_schema import table_schema
from harness.store.layout import (
    STALE_TMP_S,
    TAKEN_DIR,
    TMP_DIR,
    compacted_path,
    listing,
    lock,
    part_path,
    taken_path,
    write_file,
)
from harness.store.read import ids_in_file, read_files
from harness.store.schema import STRING, TABLES


def _recover(results_dir: Path) -> None:
    """Finish or undo an interrupted compaction (under the lock): a taken part goes back into its table
    folder unless its trial has a newer part there or is in the compacted file (then it goes). Temp
    files older than STALE_TMP_S go too."""
    for table in TABLES:
        parts, taken, compacted = listing(results_dir, table)
        if taken:
            in_compacted = ids_in_file(compacted) if compacted is not None else set()
            for tid, path in taken.items():
                if tid in parts or tid in in_compacted:
                    path.unlink(missing_ok=True)
                else:
                    os.replace(path, part_path(results_dir, table, tid))  # a move back, not a write
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
    parts, _, compacted = listing(results_dir, table)
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
            old = conform(pq.read_table(compacted), schema, table, str(compacted))
            if take:
                old = old.filter(pc.invert(pc.is_in(old["trial_id"], pa.array(list(take), STRING))))
            pieces.append(old)
        if take:
            pieces.append(conform(read_files(list(taken.values()), schema, table), schema, table, table))
        data = pa.concat_tables(pieces) if pieces else schema.empty_table()
        write_file(data, compacted_path(results_dir, table), results_dir)
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
    with lock(results_dir):
        _recover(results_dir)
        parts, _, compacted = listing(results_dir, "trials")
        finished = set(parts) | (ids_in_file(compacted) if compacted is not None else set())
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
    in_compacted = ids & ids_in_file(compacted) if compacted.exists() else set()
    paths = [taken_path(results_dir, table, tid) for table in TABLES for tid in ids]
    if not keep_parts:
        paths += [part_path(results_dir, table, tid) for table in TABLES for tid in ids]
    if not in_compacted and not any(p.exists() for p in paths):
        return 0
    with lock(results_dir):
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
                    write_file(data.filter(pc.invert(gone)), path, results_dir)
            if not keep_parts:
                for tid in ids:
                    part_path(results_dir, table, tid).unlink(missing_ok=True)
        return dropped
