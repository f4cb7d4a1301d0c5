"""Throughput per architecture x precision x batch size (x device x world size): training images/s,
step time, peak memory, training FLOPs per image, achieved TFLOP/s and % of the device's dense peak.

Images/s is the trial's `train_images_per_sec` (else the mean of its epochs' `images_per_sec`, first
epoch dropped as warm-up), averaged over the group's trials; failed trials are left out. Step time
= batch_size x world_size / images/s (batch_size per process). Peak memory is the largest epoch
`peak_memory_mb`. Achieved TFLOP/s = FLOPs per image x images/s; % of peak divides it by the peak of
all `world_size` devices at the trial's precision (fp32 for precision "no").
"""

from __future__ import annotations

import math
import numbers

import pandas as pd

from harness.perf import peak_tflops
from harness.report.flops import train_flops_per_image
from harness.report.results import Results, parse_json
from harness.report.tables import Table, fmt, fmt_int, fmt_si, fmt_sig, view
from harness.vocabulary import Status

GROUP = ["arch", "precision", "batch_size", "device", "world_size"]
SOURCES = {  # group column -> trials columns to read it from, first present wins
    "arch": ["model.arch"],
    "precision": ["train.precision", "precision"],
    "batch_size": ["train.batch_size"],
    "device": ["device"],
    "world_size": ["world_size"],
}


def _column(trials: pd.DataFrame, names: list[str]) -> pd.Series:
    for name in names:
        if name in trials:
            return trials[name]
    return pd.Series([None] * len(trials), index=trials.index)


def _shape(value) -> list | None:
    return list(value) if isinstance(value, (list, tuple)) and value else None


def _count(value) -> int | None:
    return int(value) if isinstance(value, numbers.Real) and not pd.isna(value) and value > 0 else None


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(dtype=float)


def _epoch_rate(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per trial: mean images/s after the first (warm-up) epoch, and peak memory."""
    if epochs.empty:
        return pd.DataFrame(columns=["ips", "peak_mb"])
    epochs = epochs.sort_values(["trial_id", "epoch"])
    rows = {}
    for tid, part in epochs.groupby("trial_id"):
        ips, mem = _numbers(part, "images_per_sec"), _numbers(part, "peak_memory_mb")
        ips = ips.iloc[1:] if ips.notna().sum() > 1 else ips
        rows[tid] = {"ips": ips.mean(), "peak_mb": mem.max()}
    return pd.DataFrame.from_dict(rows, orient="index")


def per_trial(results: Results) -> pd.DataFrame:
    trials = results.trials[results.trials["status"] != Status.FAILED]
    frame = pd.DataFrame({col: _column(trials, names) for col, names in SOURCES.items()})
    frame["trial_id"] = trials["trial_id"]
    rates = _epoch_rate(results.epochs).reindex(trials["trial_id"])
    stored = pd.to_numeric(_column(trials, ["train_images_per_sec"]), errors="coerce")
    frame["images_per_sec"] = stored.where(stored.notna(), rates["ips"].to_numpy()).to_numpy()
    frame["peak_memory_mb"] = rates["peak_mb"].to_numpy()
    shapes = [parse_json(s) if isinstance(s, str) else s for s in _column(trials, ["input_shape"])]
    frame["flops_per_image"] = [
        train_flops_per_image(parse_json(c), _shape(shape), _count(classes)) if isinstance(c, str) else None
        for c, shape, classes in zip(_column(trials, ["config"]), shapes, _column(trials, ["num_classes"]))
    ]
    frame["world_size"] = pd.to_numeric(frame["world_size"], errors="coerce").fillna(1).astype(int)
    return frame.reset_index(drop=True)


def throughput(results: Results) -> pd.DataFrame:
    """One row per arch x precision x batch size x device x world size."""
    trials = per_trial(results)
    rows = []
    for key, group in trials.groupby(GROUP, dropna=False, sort=True):
        row = dict(zip(GROUP, key))
        ips = group["images_per_sec"].mean()
        flops = pd.to_numeric(group["flops_per_image"], errors="coerce").mean()
        batch = pd.to_numeric(pd.Series([row["batch_size"]]), errors="coerce").iloc[0]
        achieved = flops * ips / 1e12 if ips > 0 else math.nan
        spec, dtype, peak = peak_tflops(row["device"], row["precision"])
        row.update({
            "trials": len(group), "images_per_sec": ips,
            "step_ms": 1000 * batch * row["world_size"] / ips if ips > 0 else math.nan,
            "peak_memory_mb": group["peak_memory_mb"].max(), "gflops_per_image": flops / 1e9,
            "achieved_tflops": achieved, "peak_tflops": peak * row["world_size"] if peak else math.nan,
            "peak_dtype": dtype if peak else None, "device_model": spec.name if spec else None,
            "pct_of_peak": 100 * achieved / (peak * row["world_size"]) if peak else math.nan,
        })
        rows.append(row)
    columns = GROUP + ["trials", "images_per_sec", "step_ms", "peak_memory_mb", "gflops_per_image", "achieved_tflops",
                       "peak_tflops", "peak_dtype", "device_model", "pct_of_peak"]
    return pd.DataFrame(rows, columns=columns)


def throughput_table(frame: pd.DataFrame) -> Table:
    shown = view(frame, {
        "arch": "arch", "precision": "precision", "batch_size": "batch", "device": "device", "world_size": "devices",
        "trials": "trials", "images_per_sec": "images/s", "step_ms": "step ms", "peak_memory_mb": "peak MB",
        "gflops_per_image": "train FLOP/image", "achieved_tflops": "achieved FLOP/s",
    }, {"batch_size": fmt_int, "world_size": fmt_int, "trials": fmt_int, "peak_memory_mb": lambda x: fmt(x, 0),
        "gflops_per_image": lambda g: fmt_si(g * 1e9), "achieved_tflops": lambda t: fmt_si(t * 1e12)})
    shown["% of peak"] = [
        f"{fmt_sig(p, 3)}% of {fmt(t, 1)} {d}" if not pd.isna(p) else "–"
        for p, t, d in zip(frame["pct_of_peak"], frame["peak_tflops"], frame["peak_dtype"])
    ]
    note = (
        "FLOPs: one forward + backward under torch FlopCounterMode (matmuls and convolutions), per image; empty "
        "when the model can't be rebuilt from the stored config. % of peak: against the device's dense "
        "datasheet peak at that precision (fp32 for `no`), times the number of devices; empty for unknown devices."
    )
    return Table("throughput", "Throughput", frame, shown, note)
