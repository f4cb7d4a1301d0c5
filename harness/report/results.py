"""A results directory loaded for reporting: the four tables plus each trial's configuration identity.

A *configuration* is a trial's grid point without its replicate axes: the JSON object in `point`
(as harness.trial writes it) or in `params` (as design.md names it; a number there is the model's
parameter count and is ignored), with `seed` and `dataset.split_seed` dropped. Those two are the
sources of variation a configuration is repeated over (init and data order; the data split), so
a configuration's *replicates* are its (split seed, seed) pairs, and paired comparisons match them.
`load_results` adds to the trials table:

    config_key    canonical JSON of the grid point (what replicates of one configuration share)
    config        ... (left as stored: the full config JSON)
    label         readable name, e.g. "activation=relu lr=0.01 optimizer=sgd"
    seed          the seed (from params, or the `seed` column)
    split_seed    the data split's seed (dataset.split_seed; NaN when unknown)
    replicate     "seed=0", or "split=43 seed=0" when the sweep varies dataset.split_seed
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
SPLIT_AXIS = "dataset.split_seed"  # a replicate axis, like the seed: not part of a configuration


def _point(values: tuple) -> tuple[dict[str, Any], Any, Any]:
    """(grid point without replicate axes, seed, split seed) from the first of a row's POINT_COLUMNS
    values holding a JSON object."""
    for value in values:
        parsed = parse_json(value) if isinstance(value, (str, dict)) else None
        if isinstance(parsed, dict):
            point = dict(parsed)
            return point, point.pop("seed", None), point.pop(SPLIT_AXIS, None)
    return {}, None, None


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
    for point, _, _ in points:
        axes += [k for k in point if k not in axes]
    sweeps = trials["sweep"].dropna() if "sweep" in trials else []
    fallback = str(sweeps.iloc[0]) if len(sweeps) else path.name  # the label of a sweep without a grid
    trials["config_key"] = [json.dumps(p, sort_keys=True, default=str) for p, _, _ in points]
    trials["label"] = [config_label(p, fallback) for p, _, _ in points]
    seeds = [s for _, s, _ in points]
    if "seed" in trials:
        seeds = [s if s is not None else c for s, c in zip(seeds, trials["seed"])]
    trials["seed"] = seeds
    splits = [s for _, _, s in points]
    if SPLIT_AXIS in trials:
        splits = [s if s is not None else c for s, c in zip(splits, trials[SPLIT_AXIS])]
    trials["split_seed"] = splits
    trials["replicate"] = replicates(trials["seed"], trials["split_seed"])
    for axis in axes:
        trials[axis] = [p.get(axis) for p, _, _ in points]

    return Results(
        path=path,
        trials=trials,
        epochs=read_table(path, "epochs"),
        classes=read_table(path, "classes"),
        confusion=read_table(path, "confusion"),
        axes=axes,
    )


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def replicates(seeds: pd.Series, splits: pd.Series) -> list[str | None]:
    """Each trial's replicate name: "seed=0", or "split=43 seed=0" when the split seed varies;
    None when the seed is unknown."""
    vary = len({format_value(s) for s in splits if _known(s)}) > 1
    out = []
    for seed, split in zip(seeds, splits):
        if not _known(seed):
            out.append(None)
        else:
            out.append(f"split={format_value(split)} seed={format_value(seed)}" if vary else f"seed={format_value(seed)}")
    return out


def varying_axes(results: Results) -> list[str]:
    """Grid axes with at least two distinct values among the trials."""
    return [a for a in results.axes if results.trials[a].map(format_value).nunique() >= 2]
