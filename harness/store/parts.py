"""Writing: one trial's rows of one table as its own part file, atomically, so that concurrent trials
never write the same file and a crash never leaves half of one; a trial's later write replaces its part.
Parts are written without the lock (compaction takes only finished trials)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from harness.store.convert import to_arrow
from harness.store.folder_schema import schema_for_trials_rows
from harness.store.layout import part_path, write_file
from harness.store.schema import FIXED


def write_part(results_dir: str | Path, table: str, trial_id: str, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one trial's rows of one table atomically (a temp file under .tmp/, then rename), replacing
    that trial's part; SchemaError for a row that does not fit the table's schema."""
    results_dir = Path(results_dir)
    rows = list(rows)
    path = part_path(results_dir, table, trial_id)
    schema = schema_for_trials_rows(results_dir, rows) if table == "trials" else FIXED[table]
    data = to_arrow(rows, table, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(data, path, results_dir)
    return path


def write_trial(results_dir: str | Path, trial_id: str, trial: dict[str, Any], epochs: list[dict[str, Any]],
                classes: list[dict[str, Any]] = (), confusion: list[dict[str, Any]] = ()) -> None:
    """All of one finished trial's tables; the trials row goes last, so it marks the trial finished."""
    for table, rows in (("epochs", epochs), ("classes", classes), ("confusion", confusion)):
        if rows:
            write_part(results_dir, table, trial_id, rows)
    write_part(results_dir, "trials", trial_id, [trial])
