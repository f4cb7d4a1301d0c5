"""Where things are in a results directory, the lock, and the one way files get there (atomic, through
harness.files, temp files under .tmp/ so that the table folders only ever hold complete Parquet files).

    trials.parquet/ epochs.parquet/ classes.parquet/ confusion.parquet/
        <trial_id>.parquet    one part per trial while a sweep runs
        compacted.parquet     every compacted trial's rows
    trials.schema.json        the sweep's config columns and their types
    .tmp/  .compacting/<table>/  .store.lock    files being written, parts a compaction has taken, the lock
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from harness.files import atomic_path
from harness.store.schema import TABLES

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock
    fcntl = None

COMPACTED = "compacted.parquet"  # in each table's folder: every compacted trial's rows
TAKEN_DIR = ".compacting"  # .compacting/<table>/<trial_id>.parquet: parts a compaction has taken
TMP_DIR = ".tmp"  # files being written, renamed into place when complete
SCHEMA_FILE = "trials.schema.json"
LOCK_FILE = ".store.lock"
STALE_TMP_S = 6 * 3600  # a temp file this old was left by a killed writer


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


def parquet_files(folder: Path) -> dict[str, Path]:
    """The Parquet files of a folder by name without .parquet (a trial id), sorted: rows in a stable order."""
    if not folder.is_dir():
        return {}
    names = sorted(e.name for e in os.scandir(folder)
                   if e.name.endswith(".parquet") and not e.name.startswith((".", "_")))
    return {name[: -len(".parquet")]: folder / name for name in names}


def listing(results_dir: Path, table: str) -> tuple[dict[str, Path], dict[str, Path], Optional[Path]]:
    """(parts by trial id, parts taken by an interrupted compaction by trial id, the compacted file or None)."""
    parts = parquet_files(table_dir(results_dir, table))
    compacted = parts.pop(COMPACTED[: -len(".parquet")], None)
    return parts, parquet_files(Path(results_dir) / TAKEN_DIR / table), compacted


_held = threading.local()  # .paths: the lock files this thread holds (a nested call does not lock again)


@contextlib.contextmanager
def lock(results_dir: Path, shared: bool = False) -> Iterator[None]:
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


def write_file(data: pa.Table | str, path: Path, results_dir: Path) -> None:
    """A Parquet table (or text) to `path`, atomically (harness.files), its temp file under results_dir/.tmp/:
    readers of the table folders see the old file or the new one, never a part of one, nor anything but
    Parquet files."""
    with atomic_path(path, tmp_dir=Path(results_dir) / TMP_DIR) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            pq.write_table(data, tmp)
