"""Trial names: a stable, readable id from a grid point (`activation=relu-lr=0.01-seed=0`), the short
name of a dotted key, and how a value is written in ids and labels. Pure; the report reads these."""

from __future__ import annotations

import re
from typing import Any


def short_name(key: str, keys: list[str]) -> str:
    parts = key.split(".")
    short = parts[-2] if parts[-1] in ("name", "arch") and len(parts) > 1 else parts[-1]
    if parts[-1] == "arch":
        short = "arch"
    others = [k for k in keys if k != key]
    if any(_plain_short_name(o) == short for o in others):
        return key
    return short


def _plain_short_name(key: str) -> str:
    parts = key.split(".")
    if parts[-1] == "arch":
        return "arch"
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}{format_value(v)}" for k, v in value.items())
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))


def trial_id(point: dict[str, Any], seed: int) -> str:
    """A stable, readable id from the grid point: 'activation=relu-lr=0.01-seed=0'."""
    keys = list(point)
    parts = [f"{short_name(k, keys)}={format_value(v)}" for k, v in point.items()]
    return "-".join(parts + [f"seed={seed}"])
