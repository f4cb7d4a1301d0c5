"""The bench's table: one row per Comparison (medians, ratios, step time, memory, FLOP/s, % of peak), in
Markdown, numbers formatted by the report's formatter (harness.report.tables)."""

from __future__ import annotations

import math

import pandas as pd
import torch

from harness import perf
from harness.bench.measure import Comparison
from harness.report.tables import DASH, fmt, fmt_si, markdown_table

COLUMNS = ["arch", "precision", "batch", "trial img/s", "bare img/s", "torchvision img/s", "trial/bare",
           "trial/torchvision", "step ms", "peak MB", "GFLOP/img", "TFLOP/s", "% peak"]


def table_row(c: Comparison, device: torch.device) -> list[str]:
    """One line of the table: a Comparison's medians, ratios and FLOP/s as text."""
    peak = perf.device_peak_tflops(device, c.precision)
    pct = fmt(100 * c.tflops / peak, 1)
    if math.isfinite(c.fwd_bwd) and math.isfinite(peak):
        pct += f" (fwd+bwd {fmt(100 * c.gflop_per_image * c.fwd_bwd / 1e3 / peak, 1)})"
    return [c.arch, c.precision, str(c.batch), fmt_si(c.median("trial")), fmt_si(c.median("bare")),
            fmt_si(c.median("torchvision")),
            fmt(c.ratio("trial", "bare"), 2) + "x" if "bare" in c.rates else DASH,
            fmt(c.ratio("trial", "torchvision"), 2) + "x" if "torchvision" in c.rates else DASH,
            fmt(1000 * c.batch / c.median("trial"), 2), fmt(c.peak_mb, 0), fmt(c.gflop_per_image, 3),
            fmt(c.tflops, 3 if c.tflops < 1 else 1), pct]


def markdown(rows: list[list[str]], header: list[str] = COLUMNS) -> str:
    """The table in Markdown, numbers right-aligned."""
    return markdown_table(pd.DataFrame(rows, columns=header), align=["---"] * 3 + ["--:"] * (len(header) - 3))
