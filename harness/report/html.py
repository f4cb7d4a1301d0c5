"""The self-contained report page: sections of tables and PNG figures embedded as base64 data URIs,
inline CSS, and nothing fetched from the network. The only scripts are the inline ones a section's `markup`
brings (the "explore" section's interactive views: harness.report.interactive), never one with `src`.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import files
from harness.report.tables import Table, html_table

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d1d1f; margin: 0; background: #f6f7f9; }
header { background: #1f2937; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0; color: #d1d5db; }
header code { background: #374151; color: #f9fafb; }
nav { padding: 10px 32px; background: #e5e7eb; font-size: 14px; }
nav a { margin-right: 16px; color: #1f2937; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { background: #fff; border-radius: 8px; padding: 8px 20px 16px; margin: 18px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 20px; border-bottom: 2px solid #e5e7eb; padding-bottom: 6px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 4px 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; text-align: left; max-width: 32em; }
th { background: #f3f4f6; vertical-align: bottom; max-width: 9em; }
td { white-space: nowrap; }
td:last-child { white-space: normal; }
.num { text-align: right; }
tbody tr:nth-child(even) { background: #fafafa; }
p.note { color: #4b5563; font-size: 13px; max-width: 1100px; }
p.none { color: #6b7280; font-style: italic; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
figure { margin: 14px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 4px; }
figcaption { color: #4b5563; font-size: 13px; }
svg.hx { display: block; font-size: 11px; background: #fff; }
svg.hx polyline { fill: none; stroke-width: 1.6; opacity: .8; }
svg.hx circle { stroke: #fff; stroke-width: .8; opacity: .9; }
svg.hx.dim polyline, svg.hx.dim circle { opacity: .15; }
svg.hx polyline.hl { opacity: 1; stroke: #d62728; stroke-width: 3.5; }
svg.hx circle.hl { opacity: 1; stroke: #d62728; stroke-width: 2.5; }
.hx-axis { stroke: #374151; stroke-width: 1; }
.hx-name { font-weight: 600; fill: #1f2937; }
.hx-tick { fill: #4b5563; }
.hx-grid { display: flex; flex-wrap: wrap; gap: 8px; }
.hx-cell { border: 1px solid #e5e7eb; border-radius: 4px; }
.hx-tip { position: fixed; display: none; pointer-events: none; background: #1f2937; color: #fff;
          padding: 4px 8px; border-radius: 4px; font-size: 12.5px; max-width: 40em; z-index: 10; }
"""


@dataclass
class Figure:
    caption: str
    path: Path


@dataclass
class Section:
    anchor: str
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    intro: str = ""
    keep: bool = False  # shown even without tables or figures (its intro says why they are absent)
    markup: str = ""  # trusted HTML shown after the intro, unescaped: the interactive views (and their scripts)


def inline_markdown(text: str) -> str:
    """Escape, then `code` and **bold**: the only markup table notes use."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_section(section: Section) -> str:
    parts = [f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>']
    if section.intro:
        parts.append(f'<p class="note">{inline_markdown(section.intro)}</p>')
    if section.markup:
        parts.append(section.markup)
    for table in section.tables:
        if len(section.tables) > 1 or table.title != section.title:
            parts.append(f"<h3>{html.escape(table.title)}</h3>")
        parts.append(html_table(table.view))
        if table.note:
            parts.append(f'<p class="note">{inline_markdown(table.note)}</p>')
    for figure in section.figures:
        parts.append(
            f'<figure><img src="{data_uri(figure.path)}" alt="{html.escape(figure.caption)}">'
            f"<figcaption>{inline_markdown(figure.caption)}</figcaption></figure>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, subtitle: list[str], sections: list[Section]) -> str:
    sections = [s for s in sections if s.tables or s.figures or s.markup or s.keep]
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    lines = "".join(f"<p>{inline_markdown(line)}</p>" for line in subtitle)
    body = "\n".join(render_section(s) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head>\n<body><header><h1>{html.escape(title)}</h1>{lines}</header>"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main></body></html>\n"
    )


def write_page(path: Path, title: str, subtitle: list[str], sections: list[Section]) -> Path:
    files.write_text(path, render_page(title, subtitle, sections))
    return path
