"""Adaptive search: Ray Tune's searchers (Optuna's TPE, HyperOpt's TPE, BOHB) choose a sweep's
configurations while it runs, each from the results so far (`tune: {search: optuna, num_samples: 20}`).

One Tune trial is one sampled configuration run over every seed of the sweep: the seeds train as one
pack when they can (harness.sweep.packs), else one after another. The searcher is told `objective`, the
mean over the seeds of each seed's best value so far of the sweep's metric (the leaderboard's
best_val_acc, averaged), so it chases configurations, not lucky seeds, and the leaderboard keeps its
intervals. A scheduler (asha, hyperband, median_stopping) sees the seeds' mean of the metric each epoch
and stops a configuration's seeds together.

Ids read like random search's, `sample=3-lr=0.002154-optimizer=adam-seed=0`: IndexedSearcher numbers the
samples as Tune asks for them and rounds their floats as the space says (harness.config.spaces).

--resume: samples whose every seed has a row are replayed into a fresh searcher, through its own API
(suggest, then on_trial_complete with the stored objective), so every searcher learns from them as if
it had just run them; a sample with seeds left is proposed again first, under its own index, and its
seeds continue from their checkpoints; Tune then runs num_samples minus the finished samples. This needs
no Tune experiment state, which a crash can leave half written.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from harness import store
from harness.config import ConfigError, Sweep, Trial, flatten, trial_id
from harness.config.spaces import Space, tune_domain
from harness.engine.stop import StopRequest
from harness.resume import checkpoint_configs
from harness.sweep.packs import why_not_packed
from harness.sweep.progress import Progress
from harness.sweep.tune import (
    StopSignals,
    finalize,
    fit,
    init_ray,
    make_callback,
    make_scheduler,
    pack_report,
    placement,
    report,
    run_config,
    run_pack_with_retries,
    run_unless_stopped,
    run_with_retries,
    stop_file,
    sweep_metric,
    trial_resources,
    tune_errors,
    tune_metrics,
)
from harness.vocabulary import FINISHED, Status, direction

OBJECTIVE = "objective"  # what the searcher optimizes: the seeds' mean of their best metric so far
SAMPLE = "sample"  # the sample's index, in the Tune config beside the searched values

# tune.search -> (Ray Tune's module, its searcher class, the packages it needs)
SEARCHERS = {
    "optuna": ("ray.tune.search.optuna", "OptunaSearch", ("optuna",)),
    "hyperopt": ("ray.tune.search.hyperopt", "HyperOptSearch", ("hyperopt",)),
    "bohb": ("ray.tune.search.bohb", "TuneBOHB", ("hpbandster", "ConfigSpace")),
}
SAMPLE_ID = re.compile(r"^sample=(\d+)-")


def check_search(sweep: Sweep, no_pack: bool = False) -> None:
    """Raise ConfigError (one line) when this adaptive sweep cannot run here: its searcher's package is
    missing, or its trials cannot run the way a searched configuration must."""
    cfg = sweep.config
    missing = [p for p in SEARCHERS[cfg.tune.search][2] if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(f"tune.search {cfg.tune.search} needs the {' and '.join(missing)} package"
                          f"{'s' if len(missing) > 1 else ''}: pip install -e \".[search]\"")
    if cfg.resources.workers_per_trial > 1:
        raise ConfigError(f"tune.search {cfg.tune.search} runs a configuration's seeds in one Tune trial; "
                          f"data-parallel trials (resources.workers_per_trial > 1) need tune.search grid or random")
    reason = why_not_packed(cfg, no_pack, seeds_only=True)
    if cfg.tune.scheduler != "none" and reason and len(sweep.seeds) > 1:
        raise ConfigError(f"tune.scheduler {cfg.tune.scheduler} with tune.search {cfg.tune.search} stops a "
                          f"configuration's seeds together, as one pack, and these cannot pack ({reason}): "
                          f"use one seed, or no scheduler")


def make_searcher(search: str, space: dict[str, Space], mode: str, seed: int, points: list[dict]):
    """Tune's searcher for tune.search, over `space`, maximizing or minimizing OBJECTIVE, seeded;
    `points` are proposed first, in order (replayed or continued samples)."""
    module, name, _ = SEARCHERS[search]
    kind = getattr(importlib.import_module(module), name)
    domains = kind.convert_search_space({k: tune_domain(s) for k, s in space.items()})  # the library's own
    common = dict(space=domains, metric=OBJECTIVE, mode=mode, points_to_evaluate=points or None)
    if search == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per trial
        return kind(**common, sampler=optuna.samplers.TPESampler(seed=seed))
    if search == "hyperopt":
        return kind(**common, random_state_seed=seed)
    return kind(**common, seed=seed)


def _indexed_searcher(inner, space: dict[str, Space], start: int, known: dict[str, int]):
    """`inner`, with each suggested configuration cast to the sweep's space and given its sample index:
    `known` (a point's key -> index) for samples continued from an earlier run, else the next from
    `start`. Everything else is the inner searcher's."""
    from ray.tune.search import Searcher

    class IndexedSearcher(Searcher):
        def __init__(self):
            super().__init__(metric=inner.metric, mode=inner.mode)
            self.next = start

        def set_search_properties(self, metric, mode, config, **spec):
            return inner.set_search_properties(metric, mode, config, **spec)

        def suggest(self, trial_id: str):
            config = inner.suggest(trial_id)
            if not isinstance(config, dict):  # None (wait) or Searcher.FINISHED
                return config
            point = {k: s.cast(config[k]) for k, s in space.items()}
            index = known.pop(point_key(point), None)
            if index is None:
                index, self.next = self.next, self.next + 1
            return {**point, SAMPLE: index}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            inner.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
            inner.on_trial_complete(trial_id, result=result, error=error)

        def __getattr__(self, name: str):  # what a scheduler asks of its searcher (BOHB's on_pause, ...)
            return getattr(inner, name)

        def save(self, checkpoint_path: str) -> None:
            inner.save(checkpoint_path)

        def restore(self, checkpoint_path: str) -> None:
            inner.restore(checkpoint_path)

    return IndexedSearcher()


def point_key(point: dict[str, Any]) -> str:
    """A point as its trial id shows it (values rounded for display): equal keys, the same sample."""
    return trial_id(dict(sorted(point.items())), 0)


@dataclass
class Observed:
    """What earlier runs of an adaptive sweep left: finished samples (point, objective or None when all
    its seeds failed), samples with seeds left to run (point key -> (index, point)), the next index."""

    finished: list[tuple[dict, Optional[float]]] = field(default_factory=list)
    unfinished: dict[str, tuple[int, dict]] = field(default_factory=dict)
    next_index: int = 0


def observed(results_dir: Path, sweep: Sweep, metric: str) -> Observed:
    """The samples an earlier run of this sweep left in results_dir (trials rows and checkpoints)."""
    rows = store.read_table(results_dir, "trials")
    samples: dict[int, dict] = {}  # index -> {"point": ..., "rows": {trial_id: (status, best)}}
    for tid, status, point, best in zip(rows.get("trial_id", []), rows.get("status", []), rows.get("point", []),
                                        rows.get(f"best_{metric}", [math.nan] * len(rows))):
        match = SAMPLE_ID.match(str(tid))
        values = json.loads(point) if isinstance(point, str) else {}
        values.pop("seed", None)
        if match and set(values) == set(sweep.space):
            sample = samples.setdefault(int(match[1]), {"point": values, "rows": {}})
            sample["rows"][tid] = (status, best)
    for tid, config in checkpoint_configs(results_dir).items():  # interrupted before any row
        match = SAMPLE_ID.match(tid)
        flat = flatten(config or {})
        if match and int(match[1]) not in samples and all(k in flat for k in sweep.space):
            samples[int(match[1])] = {"point": {k: flat[k] for k in sweep.space}, "rows": {}}
    out = Observed(next_index=max(samples, default=-1) + 1)
    for index, sample in sorted(samples.items()):
        point, done = sample["point"], sample["rows"]
        if len(done) < len(sweep.seeds):
            out.unfinished[point_key(point)] = (index, point)
            continue
        bests = [b for status, b in done.values() if status != Status.FAILED and b is not None and math.isfinite(b)]
        out.finished.append((point, sum(bests) / len(bests) if bests else None))
    return out


class Objective:
    """Each seed's best value so far of the sweep's metric; the objective is their mean."""

    def __init__(self, metric: str, stored: dict[str, float]):
        self.metric = metric
        self.pick = min if direction(metric) == "min" else max
        self.best = {tid: v for tid, v in stored.items() if v is not None and math.isfinite(v)}

    def see(self, tid: str, row: dict) -> None:
        value = row.get(self.metric)
        if value is not None and math.isfinite(value):
            self.best[tid] = self.pick(self.best.get(tid, value), value)

    @property
    def value(self) -> float:
        return sum(self.best.values()) / len(self.best) if self.best else math.nan


def _earlier_rows(results_dir: Path, unit: list[Trial]):
    """The trials rows of the unit's trials that finished (failed included) in an earlier run."""
    rows = store.read_table(results_dir, "trials")
    if rows.empty:
        return rows
    return rows[rows["trial_id"].isin([t.trial_id for t in unit]) & rows["status"].isin(FINISHED)]


def _bests(rows, metric: str) -> dict[str, float]:
    """best_<metric> of each trial of `rows` that did not fail."""
    if rows.empty or f"best_{metric}" not in rows:
        return {}
    ok = rows[rows["status"] != Status.FAILED]
    return dict(zip(ok["trial_id"], ok[f"best_{metric}"]))


def _search_trainable(sweep: Sweep, results_dir: str, packed: bool, stop_path: Path):
    """The function Tune runs per sampled configuration: its trials (one per seed), as a pack or one after
    another, each epoch reported with the seeds' mean metric and OBJECTIVE. On the driver's stop request
    (`stop_path`) they save mid-epoch and end without telling the searcher anything more."""

    def trainable(tune_config: dict) -> None:
        run_unless_stopped(stop_path, lambda stop: run_sample(tune_config, stop))

    def run_sample(tune_config: dict, stop: StopRequest) -> None:
        cfg = sweep.config
        metric = sweep_metric(cfg)
        unit = sweep.trials_at({k: tune_config[k] for k in sweep.space}, tune_config[SAMPLE])
        earlier = _earlier_rows(Path(results_dir), unit)  # a continued sample: its seeds that ran already
        objective = Objective(metric, _bests(earlier, metric))
        sent = []

        def send(metrics: dict) -> None:
            sent.append(True)
            report({**metrics, OBJECTIVE: objective.value}, cfg)

        def pack_epoch(closed: list) -> None:
            for tid, row, _ in closed:
                objective.see(tid, row)
            send(pack_report(closed, metric, seeds_mean=True))  # a scheduler ranks the seeds' mean

        def trial_epoch(trial: Trial, row: dict) -> None:
            objective.see(trial.trial_id, row)
            send(tune_metrics(row))

        finished = set(earlier["trial_id"]) if not earlier.empty else set()
        todo = [t for t in unit if t.trial_id not in finished]
        if packed and len(todo) > 1:
            run_pack_with_retries(todo, results_dir, cfg.resources.max_retries, on_pack_epoch=pack_epoch, stop=stop)
        else:
            for trial in todo:
                run_with_retries(trial, results_dir, cfg.resources.max_retries, stop=stop,
                                 on_epoch=lambda row, _, t=trial: trial_epoch(t, row))
        if not sent:  # every seed had finished already: tell the searcher what they scored
            send({"epoch": cfg.train.epochs})

    return trainable


def run_search(sweep: Sweep, results_dir: Path, *, address: Optional[str] = None,
               max_concurrent: Optional[int] = None, stream=None, no_pack: bool = False,
               on_finished: Optional[Callable[[list[str]], None]] = None) -> dict[str, str]:
    """Run the sweep's adaptive search on Tune, continuing what results_dir holds; returns trial_id ->
    status for every trial this run ran."""
    from ray import tune

    cfg = sweep.config
    metric, mode = sweep_metric(cfg), direction(sweep_metric(cfg))
    before = observed(results_dir, sweep, metric)
    points = [p for p, _ in before.finished] + [p for _, p in before.unfinished.values()]
    # seeded by the sweep, and differently on each resume: a fresh searcher's random start would repeat the first run's
    seed = (sweep.seeds[0] + 7919 * len(before.finished)) % 2**32
    inner = make_searcher(cfg.tune.search, sweep.space, mode, seed, points)
    for i, (point, value) in enumerate(before.finished):  # replay: the searcher learns what earlier runs found
        inner.suggest(f"replay-{i}")
        result = {OBJECTIVE: value, metric: value, "epoch": cfg.train.epochs, "training_iteration": cfg.train.epochs}
        inner.on_trial_complete(f"replay-{i}", result=None if value is None else result, error=value is None)
    remaining = cfg.tune.num_samples - len(before.finished)
    print(f"{cfg.tune.search}: {len(before.finished)} of {cfg.tune.num_samples} configurations sampled already"
          + (f", {len(before.unfinished)} to continue" if before.unfinished else "")
          + f"; {max(0, remaining)} to sample, each over {len(sweep.seeds)} seed(s)", flush=True)
    if remaining <= 0:
        return {}
    searcher = _indexed_searcher(inner, sweep.space, before.next_index,
                                 {k: i for k, (i, _) in before.unfinished.items()})
    init_ray(address)
    gpus, _ = placement(cfg)
    packed = why_not_packed(cfg, no_pack, seeds_only=True) is None and len(sweep.seeds) > 1
    if len(sweep.seeds) > 1:
        print(f"each configuration's {len(sweep.seeds)} seeds run "
              + ("as one pack" if packed else f"one after another ({why_not_packed(cfg, no_pack, seeds_only=True)})"),
              flush=True)
    units: dict[str, list[Trial]] = {}  # "sample=N" -> its trials, as Tune starts them

    def unit_of(config: dict) -> tuple[str, list[Trial]]:
        key = f"{SAMPLE}={config[SAMPLE]}"
        if key not in units:
            units[key] = sweep.trials_at({k: config[k] for k in sweep.space}, config[SAMPLE])
        return key, units[key]

    progress = Progress(remaining * len(sweep.seeds), metric, stream)
    stop_path = stop_file(results_dir)
    signals = StopSignals(progress, stop_path)
    trainable = tune.with_resources(_search_trainable(sweep, str(results_dir.resolve()), packed, stop_path),
                                    trial_resources(cfg, gpus))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, scheduler=make_scheduler(cfg),
                                    max_concurrent_trials=max_concurrent or cfg.resources.max_concurrent,
                                    reuse_actors=True),
        run_config=run_config(cfg, results_dir, make_callback(progress, results_dir, unit_of, signals, on_finished)),
    )
    grid = fit(tuner, progress, lambda: [t for unit in units.values() for t in unit], signals)
    errors = tune_errors(grid, lambda config: unit_of(config)[1] if SAMPLE in config else [])
    trials = [t for unit in units.values() for t in unit]
    if not trials:
        print("warning: the searcher proposed no configuration", file=sys.stderr, flush=True)
        return {}
    return finalize(trials, results_dir, errors)
