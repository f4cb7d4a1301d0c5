"""Report tables: a `Table` (raw numbers for CSV + a formatted view for Markdown/HTML) and its renderers.

Numbers are formatted once, here (`fmt`), so Markdown and HTML show the same text:
NaN/None -> "–", integers as integers, |x| >= 1000 with thousands separators, |x| >= 10 with
2 decimals, smaller values with 4 decimals.
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

DASH = "–"


@dataclass
class Table:
    name: str  # file stem of its CSV (e.g. "leaderboard")
    title: str
    data: pd.DataFrame  # raw values, written to <name>.csv
    view: pd.DataFrame  # formatted strings, shown in Markdown and HTML
    note: str = ""  # one paragraph under the table (Markdown; `code` allowed)

    @property
    def empty(self) -> bool:
        return self.view.empty


def missing(x: Any) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 4) -> str:
    if missing(x):
        return DASH
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    if isinstance(x, numbers.Real):
        x = float(x)
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.2f}"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_int(x: Any) -> str:
    return DASH if missing(x) else f"{int(x):,}"


def fmt_p(p: Any) -> str:
    """A p-value: '0.031', '<0.001'."""
    if missing(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_interval(lo: Any, hi: Any, n: Any = None) -> str:
    """'[0.9252, 0.9748]', or 'none (n=1)' for a single seed."""
    if missing(lo) or missing(hi):
        return f"none (n={int(n)})" if not missing(n) and int(n) < 2 else DASH
    return f"[{fmt(lo)}, {fmt(hi)}]"


def view(frame: pd.DataFrame, columns: dict[str, str], formats: dict[str, Any] | None = None) -> pd.DataFrame:
    """The frame's `columns` (source -> header) as strings; `formats` maps a source column to a callable."""
    formats = formats or {}
    out = pd.DataFrame(index=frame.index)
    for src, header in columns.items():
        if src not in frame:
            continue
        f = formats.get(src, fmt)
        out[header] = [f(v) for v in frame[src]]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Renderers


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(none)_\n"
    header = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def markdown(title: str, tables: Sequence[Table], intro: str = "") -> str:
    parts = [f"# {title}\n"]
    if intro:
        parts.append(intro.strip() + "\n")
    for table in tables:
        if len(tables) > 1 or table.title != title:
            parts.append(f"## {table.title}\n")
        parts.append(markdown_table(table.view))
        if table.note:
            parts.append(table.note.strip() + "\n")
    return "\n".join(parts)


def html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="none">(none)</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def write_csv(table: Table, folder: Path) -> Path:
    path = folder / f"{table.name}.csv"
    table.data.to_csv(path, index=False)
    return path
