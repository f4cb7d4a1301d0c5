"""A results directory loaded for reporting: the four tables plus each trial's configuration identity.

A *configuration* is a trial's grid point without its seed: the JSON object in `point` (as
harness.trial writes it) or in `params` (as design.md names it; a number there is the model's
parameter count and is ignored), "seed" dropped.
`load_results` adds to the trials table:

    config_key    canonical JSON of the grid point (what seeds of one configuration share)
    config        ... (left as stored: the full config JSON)
    label         readable name, e.g. "activation=relu lr=0.01 optimizer=sgd"
    seed          the seed (from params, or the `seed` column)
    <axis>        one column per grid axis (dotted key, e.g. `optimizer.lr`), values from params

A sweep without a grid has one configuration, labelled by the sweep's name. Tables are read only
through `harness.store.read_table`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import format_value, short_name
from harness.store import read_table
from harness.vocabulary import Status

# Statuses whose metric is left out of means (listed in the diagnosis instead).
EXCLUDED = (Status.FAILED, Status.DIVERGED)


class ReportError(ValueError):
    """Bad input to the report (missing directory, no results, unknown metric): a one-line message."""


@dataclass
class Results:
    path: Path
    trials: pd.DataFrame
    epochs: pd.DataFrame
    classes: pd.DataFrame
    confusion: pd.DataFrame
    axes: list[str] = field(default_factory=list)  # grid axes (dotted keys), in params order

    @property
    def name(self) -> str:
        names = self.trials.get("sweep", pd.Series(dtype=object)).dropna().unique()
        return str(names[0]) if len(names) else self.path.name

    def included(self) -> pd.DataFrame:
        """Trials whose metrics count in means: not failed, not diverged."""
        return self.trials[~self.trials["status"].isin(EXCLUDED)]


def parse_json(text: Any) -> Any:
    if isinstance(text, (dict, list)):
        return text
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {}


def config_label(point: dict[str, Any], fallback: str) -> str:
    """'activation=relu loss=nll lr=0.01' from a grid point: short key names as in trial ids, sorted."""
    if not point:
        return fallback
    keys = list(point)
    return " ".join(sorted(f"{short_name(k, keys)}={format_value(v)}" for k, v in point.items()))


POINT_COLUMNS = ("point", "params")


def _point(values: tuple) -> tuple[dict[str, Any], Any]:
    """(grid point without seed, seed) from the first of a row's POINT_COLUMNS values holding a JSON object."""
    for value in values:
        parsed = parse_json(value) if isinstance(value, (str, dict)) else None
        if isinstance(parsed, dict):
            point = dict(parsed)
            return point, point.pop("seed", None)
    return {}, None


def load_results(results_dir: str | Path) -> Results:
    """Read every table; raise ReportError when the directory or its trials are missing."""
    path = Path(results_dir)
    if not path.is_dir():
        raise ReportError(f"{path}: no such results directory")
    trials = read_table(path, "trials")
    if trials.empty:
        raise ReportError(f"{path}: no results (trials.parquet has no trial rows)")
    trials = trials.reset_index(drop=True)
    if "status" not in trials:
        trials["status"] = Status.COMPLETED.value
    trials["status"] = trials["status"].fillna(Status.FAILED.value).astype(str)

    columns = [trials[c] if c in trials else [None] * len(trials) for c in POINT_COLUMNS]
    points = [_point(values) for values in zip(*columns)]
    axes: list[str] = []
    for point, _ in points:
        axes += [k for k in point if k not in axes]
    sweeps = trials["sweep"].dropna() if "sweep" in trials else []
    fallback = str(sweeps.iloc[0]) if len(sweeps) else path.name  # the label of a sweep without a grid
    trials["config_key"] = [json.dumps(p, sort_keys=True, default=str) for p, _ in points]
    trials["label"] = [config_label(p, fallback) for p, _ in points]
    seeds = [s for _, s in points]
    if "seed" in trials:
        seeds = [s if s is not None else c for s, c in zip(seeds, trials["seed"])]
    trials["seed"] = seeds
    for axis in axes:
        trials[axis] = [p.get(axis) for p, _ in points]

    return Results(
        path=path,
        trials=trials,
        epochs=read_table(path, "epochs"),
        classes=read_table(path, "classes"),
        confusion=read_table(path, "confusion"),
        axes=axes,
    )


def varying_axes(results: Results) -> list[str]:
    """Grid axes with at least two distinct values among the trials."""
    return [a for a in results.axes if results.trials[a].map(format_value).nunique() >= 2]
