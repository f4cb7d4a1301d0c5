"""Report tables: a `Table` (raw numbers for CSV + a formatted view for Markdown/HTML) and its renderers.

Numbers are formatted once, here (`fmt`), so Markdown and HTML show the same text:
NaN/None -> "–", integers as integers, |x| >= 1000 with thousands separators, |x| >= 10 with
2 decimals, smaller values with 4 decimals. HTML right-aligns the columns that look numeric.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harness import files

DASH = "–"


@dataclass
class Table:
    name: str  # file stem of its CSV (e.g. "leaderboard")
    title: str
    data: pd.DataFrame  # raw values, written to <name>.csv
    view: pd.DataFrame  # formatted strings, shown in Markdown and HTML
    note: str = ""  # one paragraph under the table (Markdown; `code` allowed)


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
            return f"{x:.{min(digits, 2)}f}"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_int(x: Any) -> str:
    return DASH if missing(x) else f"{int(x):,}"


def fmt_sig(x: Any, digits: int = 4) -> str:
    """Significant digits, for quantities spanning magnitudes (GFLOPs, TFLOP/s, percentages)."""
    return DASH if missing(x) else f"{float(x):.{digits}g}"


def fmt_si(x: Any, unit: str = "") -> str:
    """3 significant digits with an SI prefix: 3.35 M, 24.3 G, 0.0151 T -> 15.1 G."""
    if missing(x):
        return DASH
    x = float(x)
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def fmt_epoch(x: Any) -> str:
    """An epoch (or a median of epochs): '3', '4.5'."""
    if missing(x) or (isinstance(x, float) and math.isinf(x)):
        return fmt(x)
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def fmt_p(p: Any) -> str:
    """A p-value: '0.031', '<0.001'."""
    if missing(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_interval(lo: Any, hi: Any, n: Any = None) -> str:
    """'[0.9252, 0.9748]', 'none (n=1)' for a single seed, '–' for no value."""
    if missing(lo) or missing(hi):
        return "none (n=1)" if not missing(n) and int(n) == 1 else DASH
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


def markdown_table(frame: pd.DataFrame, align: Sequence[str] | None = None) -> str:
    """A Markdown table; `align` gives each column's rule ("---", "--:" right-aligned), "---" by default."""
    if frame.empty:
        return "_(none)_\n"
    header = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join(align or ["---"] * len(frame.columns)) + "|"
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


NUMERIC = re.compile(r"^[\[\]+\-−–<>=.,/%0-9 ∞eEkMGTP]*$|^none \(n=1\)$|^NaN$|^not reached$")


def html_table(frame: pd.DataFrame) -> str:
    """An HTML table; columns whose cells all look numeric are right-aligned (class "num")."""
    if frame.empty:
        return '<p class="none">(none)</p>'
    numeric = [all(NUMERIC.match(str(v)) for v in frame[c]) for c in frame.columns]
    cls = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{c}>{html.escape(str(name))}</th>" for name, c in zip(frame.columns, cls))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{html.escape(str(v))}</td>" for v, c in zip(row, cls)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def write_csv(table: Table, folder: Path) -> Path:
    path = folder / f"{table.name}.csv"
    files.write_text(path, table.data.to_csv(index=False))
    return path
