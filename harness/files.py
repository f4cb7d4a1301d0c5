"""Atomic file writes: write beside the target, then rename over it, so that a crash leaves the old
file or the new one, never half of one. Every writer of results (Parquet parts, checkpoints,
snapshots, schema files, reports) goes through here."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path, tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path` (os.replace, atomic on one
    filesystem), on an exception it is removed and `path` is untouched. `tmp_dir` (default: the
    target's folder, which must be on the same filesystem) keeps temp files out of a folder that
    readers list."""
    path = Path(path)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name[:200]}.{uuid.uuid4().hex[:8]}.tmp"  # [:200]: within 255 bytes for a long name
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
