"""Sweeps: a sweep file's base config, `--set` overrides, its grid (a mapping of dotted keys to lists of
values, or a list of such mappings: the union of their products) and seeds, expanded into `Trial`s,
each a validated RunConfig with a stable id. `load_sweep(path, overrides) -> Sweep` is the entry point.

An axis may be a search space instead of a list (harness.config.spaces: `{loguniform: [1e-4, 1e-1]}`);
then `tune.search: random` draws `tune.num_samples` points (lists drawn from uniformly), each run over
every seed, with ids such as `sample=3-lr=0.002154-seed=0`. Under an adaptive search (optuna, hyperopt,
bohb: harness.sweep.search) Tune's searcher chooses the points while the sweep runs: `Sweep.space` is
what it searches (a list is a choice), `Sweep.trials_at(point, index)` makes a chosen point's trials,
and `Sweep.trials` holds a random draw of the same size, for --dry-run and the checks before a run.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from harness.config.dotted import set_dotted
from harness.config.errors import ConfigError, error
from harness.config.naming import format_value, trial_id
from harness.config.overrides import known_key, parse_override
from harness.config.schema import ADAPTIVE_SEARCH, RunConfig
from harness.config.spaces import Space, parse_space
from harness.config.validate import validate_run
from harness.config.yaml_file import read_yaml


@dataclass
class Trial:
    """One trial: its id, its grid point (dotted key -> value, plus `seed`) and its validated config."""

    trial_id: str
    point: dict[str, Any]
    config: RunConfig


@dataclass
class Sweep:
    name: str
    path: Optional[Path]
    base: dict[str, Any]  # the raw base config (without grid and seeds)
    grids: list[dict[str, list[Any]]]  # `grid:` as a list of mappings (one when the file has a mapping)
    seeds: list[int]
    trials: list[Trial] = field(default_factory=list)
    sampled: bool = False  # the points were drawn from search spaces (search: random over spaces, adaptive)
    space: dict[str, Space] = field(default_factory=dict)  # adaptive search: what its searcher searches
    where: str = "<config>"
    set_keys: list[str] = field(default_factory=list)

    @property
    def config(self) -> RunConfig:
        """The first trial's config: settings shared by the whole sweep (name, resources, tune)."""
        return self.trials[0].config

    @property
    def adaptive(self) -> bool:
        """Tune's searcher chooses the points as the sweep runs (harness.sweep.search)."""
        return self.config.tune.search in ADAPTIVE_SEARCH

    def trials_at(self, point: dict[str, Any], index: int) -> list[Trial]:
        """The trials of sample `index` at `point` (one per seed), as the sweep file's own draws are made."""
        return point_trials(self.base, point, self.seeds, f"sample={index}-", self.where, self.set_keys)


def build_sweep(raw: dict[str, Any], where: str = "<config>", overrides: list[str] = ()) -> Sweep:
    """Apply overrides, expand the grid x seeds and validate every trial."""
    raw = copy.deepcopy(raw)
    grid = raw.pop("grid", None)
    grid = {} if grid is None else grid
    seeds = raw.pop("seeds", None)
    listed = isinstance(grid, list)  # a list of grids: the union of their cartesian products
    grids = grid if listed else [grid]
    if not grids or not all(isinstance(g, dict) for g in grids):
        raise error(where, "grid", "must map dotted keys to lists of values, e.g. model.activation: [relu, gelu], "
                                    f"or be a non-empty list of such mappings, got {grid!r}")
    if "seed" in raw:
        raise error(where, "seed", "use seeds: [0, 1, 2] (a list) in a sweep file")
    set_keys: list[str] = []  # keys whose value came from --set: their errors name --set, not the file
    seeds_where = where
    for text in overrides:
        key, value = parse_override(text)
        set_keys.append(key)
        if key == "seeds" or key == "seed":
            seeds = value if isinstance(value, list) else [value]
            seeds_where = "--set"
        elif key.startswith("grid."):
            for g in grids:
                g[key[len("grid."):]] = value if isinstance(value, list) else [value]
        else:  # the value holds in every trial: it pins the axis where a grid has one, else sets the base
            pinned = [g for g in grids if key in g]
            for g in pinned:
                g[key] = [value]  # (kept in the trial id)
            if len(pinned) < len(grids):
                problem = known_key(key)
                if problem:
                    raise error("--set", key, problem)
                try:
                    set_dotted(raw, key, value)
                except ConfigError as err:
                    raise error(where, "", str(err)) from None
    if seeds is None:
        seeds = [0]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise error(seeds_where, "seeds", f"must be a non-empty list of integers, got {seeds!r}")
    if not all(0 <= s < 2**32 for s in seeds):
        raise error(seeds_where, "seeds", f"{seeds!r} has a seed out of range; allowed: integers 0..{2**32 - 1}")
    if len(set(seeds)) != len(seeds):
        raise error(seeds_where, "seeds", f"has duplicates: {seeds}")
    for i, g in enumerate(grids):
        label = f"grid[{i}]" if listed else "grid"
        for key, values in g.items():
            if not isinstance(key, str):
                raise error(where, label, f"{key!r} is not a key: keys are dotted names such as optimizer.lr")
            problem = known_key(key) if key not in ("seed", "seeds") else "put seeds in seeds: [...], not in the grid"
            if problem:
                raise error(where, f"{label}.{key}", problem)
            if isinstance(values, dict):
                try:
                    parse_space(values)
                except ValueError as err:
                    raise error(where, f"{label}.{key}", str(err)) from None
                continue
            if not isinstance(values, list) or not values:
                raise error(where, f"{label}.{key}", f"must be a non-empty list of values or a search space such as "
                                                    f"{{loguniform: [1.0e-4, 1.0e-1]}}, got {values!r}")
            if len({format_value(v) for v in values}) != len(values):
                raise error(where, f"{label}.{key}", f"has duplicate values: {values}")

    base = validate_run({**raw, "seed": seeds[0]}, where, set_keys)
    spaced = [(i, k) for i, g in enumerate(grids) for k, v in g.items() if isinstance(v, dict)]
    adaptive = base.tune.search in ADAPTIVE_SEARCH
    if spaced and base.tune.search == "grid":
        i, key = spaced[0]
        raise error(where, f"{f'grid[{i}]' if listed else 'grid'}.{key}",
                    f"a search space needs tune.search: random, {', '.join(ADAPTIVE_SEARCH)} (grid search runs "
                    f"lists of values); tune.search is grid")
    if adaptive and (listed or not grids[0]):
        raise error(where, "grid", f"tune.search {base.tune.search} searches one grid mapping (axes of lists and "
                                   f"spaces), not {'a list of grids' if listed else 'an empty grid'}")
    if base.tune.num_samples > 1 and base.tune.search == "grid":
        raise error(where, "tune.num_samples", "applies to tune.search: random (points drawn from the grid's "
                                               "lists and spaces); grid search runs every grid point")
    sweep = Sweep(name=base.name, path=None, base=raw, grids=grids, seeds=seeds, sampled=bool(spaced) or adaptive,
                  where=where, set_keys=set_keys)
    if adaptive:
        sweep.space = {k: parse_space(v) or Space("choice", tuple(v)) for k, v in grids[0].items()}
    rng = np.random.default_rng(seeds[0])  # search: random over spaces: the same draw on every --resume
    origin: dict[str, int] = {}  # trial id -> the grid it came from
    for i, g in enumerate(grids):
        axes = list(g)
        drawn = adaptive or any(isinstance(v, dict) for v in g.values())
        points = (sample_points(g, base.tune.num_samples, rng) if drawn
                  else [dict(zip(axes, combo)) for combo in itertools.product(*(g[k] for k in axes))])
        for point in points:
            prefix = f"sample={len(origin) // len(seeds)}-" if drawn else ""
            for trial in point_trials(raw, point, seeds, prefix, where, set_keys):
                if trial.trial_id in origin:
                    raise error(where, "grid", f"grid[{origin[trial.trial_id]}] and grid[{i}] both give trial "
                                                f"{trial.trial_id}: make each grid's keys or values tell its trials apart")
                origin[trial.trial_id] = i
                sweep.trials.append(trial)
    return sweep


def point_trials(raw: dict[str, Any], point: dict[str, Any], seeds: list[int], prefix: str, where: str,
                 set_keys: list[str]) -> list[Trial]:
    """One validated trial per seed at `point` of the base config `raw`, ids `<prefix><point>-seed=S`."""
    tree = copy.deepcopy(raw)
    for key, value in point.items():
        set_dotted(tree, key, value)
    trials = []
    for seed in seeds:
        tree["seed"] = seed
        tid = prefix + trial_id(point, seed)
        try:
            config = validate_run(tree, where, set_keys)
        except ConfigError as err:
            raise ConfigError(f"{err} (in grid point {tid})") from None
        trials.append(Trial(trial_id=tid, point={**point, "seed": seed}, config=config))
    return trials


def sample_points(grid: dict[str, Any], num_samples: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`num_samples` distinct points: each space axis drawn from its space, each list axis uniformly from
    its values (fewer points when the grid has fewer distinct ones)."""
    spaces = {k: parse_space(v) or Space("choice", tuple(v)) for k, v in grid.items()}
    points, seen = [], set()
    for _ in range(20 * num_samples):
        if len(points) == num_samples:
            break
        point = {k: space.sample(rng) for k, space in spaces.items()}
        key = tuple(format_value(v) for v in point.values())
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points


def load_sweep(path: str | Path, overrides: list[str] = ()) -> Sweep:
    """Read, override, expand and validate a sweep file. Raises ConfigError with a one-line message."""
    path = Path(path)
    sweep = build_sweep(read_yaml(path), str(path), overrides)
    sweep.path = path
    return sweep


def grid_size(grid: dict[str, list[Any]] | list[dict[str, list[Any]]], seeds: list[int]) -> int:
    grids = grid if isinstance(grid, list) else [grid]
    return sum(math.prod(len(v) for v in g.values()) for g in grids) * len(seeds)
