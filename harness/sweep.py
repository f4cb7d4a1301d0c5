"""The sweep CLI: expand a sweep file and run its trials on Ray Tune, over every CPU/GPU of a machine
or a cluster, with a live progress line, resume, shards, and a report at the end.

    python -m harness.sweep sweeps/quickstart.yaml            # run the grid, write results/quickstart/
    python -m harness.sweep sweeps/cifar.yaml --dry-run --json  # the expanded trials, nothing trained

Each Tune trial is one `harness.trial.run_trial` (data-parallel over `resources.workers_per_trial`
Ray Train workers when that is above 1). Results land in Parquet as trials finish, so a crash loses
no finished trial; `--resume` skips finished trials and lets unfinished ones continue from their
last epoch checkpoint. Exit codes: 0 done, 1 some trials failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from harness import store
from harness.config import ArgParser, ConfigError, Sweep, Trial, load_sweep
from harness.resume import plan_resume

# --------------------------------------------------------------------------------------------------
# Choosing the trials (pure)


def smoke_overrides(sweep: Sweep) -> list[str]:
    """Overrides that shrink any sweep to seconds: one epoch, a few hundred samples, one seed.
    A staged schedule shrinks to one 1-epoch stage at its first learning rate."""
    cfg = sweep.config
    out = ["dataset.max_train=256", "dataset.max_eval=128", "train.eval_batch_size=128",
           "early_stopping.enabled=false", "health.enabled=false", "train.epochs=1", f"seeds=[{sweep.seeds[0]}]"]
    if cfg.dataset.name == "synthetic":
        out += [f"dataset.num_train={min(cfg.dataset.num_train, 256)}", f"dataset.num_test={min(cfg.dataset.num_test, 128)}"]
        if cfg.dataset.num_val:
            out.append(f"dataset.num_val={min(cfg.dataset.num_val, 128)}")
    staged = [t.config.scheduler for t in sweep.trials if t.config.scheduler.name == "staged"]
    if staged:
        out.append(f"scheduler.stages={json.dumps([{'epochs': 1, 'lr': staged[0].stages[0].lr}])}")
    return out


def smoke_trials(trials: list[Trial], most: int = 4) -> list[Trial]:
    """At most `most` trials spread evenly over the grid."""
    if len(trials) <= most:
        return trials
    step = (len(trials) - 1) / (most - 1)
    return [trials[round(i * step)] for i in range(most)]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text}: expected I/N, e.g. --shard 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: I must be in 0..N-1 and N >= 1")
    return index, count


def shard(trials: list[Trial], index: int, count: int) -> list[Trial]:
    return [t for i, t in enumerate(trials) if i % count == index]


def random_subset(trials: list[Trial], num_samples: int, seeds: list[int], seed: int = 0) -> list[Trial]:
    """`search: random`: num_samples grid points drawn without replacement (all seeds of each)."""
    points: dict[str, list[Trial]] = {}
    for t in trials:
        key = json.dumps({k: v for k, v in t.params.items() if k != "seed"}, sort_keys=True)
        points.setdefault(key, []).append(t)
    keys = list(points)
    chosen = sorted(random.Random(seed).sample(range(len(keys)), min(num_samples, len(keys))))
    return [t for i in chosen for t in points[keys[i]]]


def dry_run_rows(trials: list[Trial]) -> list[dict]:
    """One flat dict per trial: id, flattened config and the model's parameter count."""
    from harness.data import DATASETS  # noqa: F401  (registers datasets)
    from harness.models import count_params, create_model
    from harness.segmentation.models import SEG_MODELS, create_seg_model

    counts: dict[str, int] = {}
    rows = []
    for t in trials:
        cfg = t.config
        shape, classes = input_spec(cfg.dataset)
        key = json.dumps([cfg.model.arch, cfg.model.init, cfg.model.options, shape, classes], sort_keys=True, default=str)
        if key not in counts:
            make = create_seg_model if cfg.model.arch in SEG_MODELS else create_model
            options = {**cfg.model.options, **({"pretrained": False} if cfg.model.options.get("pretrained") else {})}
            counts[key] = count_params(make(cfg.model.arch, shape, classes, **options))  # no weight download
        rows.append({"trial_id": t.trial_id, "params": counts[key], **cfg.flat()})
    return rows


# Input shape and class count of each dataset, known without loading it: harness/preflight.py
from harness.preflight import DATASET_SPECS, check_trials, input_spec  # noqa: E402,F401


# --------------------------------------------------------------------------------------------------
# Progress on the terminal


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Trials done / running / pending / failed, best so far, elapsed and ETA: one live line on a
    terminal, a line per finished trial otherwise."""

    def __init__(self, total: int, metric: str, stream=None):
        self.total, self.metric = total, metric
        self._stream = stream  # None: sys.stdout at the time of writing (Tune pickles this object)
        self.started = time.time()
        self.running: set[str] = set()
        self.peak_running = 0  # most trials running at once
        self.done: dict[str, str] = {}  # trial_id -> status
        self.best: tuple[float, str] = (-math.inf, "")
        self.live = self.stream.isatty()
        self._last_draw = 0.0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def __getstate__(self):
        return {**self.__dict__, "_stream": None}

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.peak_running = max(self.peak_running, len(self.running))
        self.draw()

    def epoch(self, trial_id: str, row: dict) -> None:
        value = row.get(self.metric)
        if value is not None and math.isfinite(value):
            score = -value if self.metric.endswith("loss") else value
            if score > self.best[0]:
                self.best = (score, trial_id)
        self.draw()

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.done[trial_id] = status
        if not self.live:
            print(f"[{len(self.done)}/{self.total}] {trial_id}: {status}  |  {self.line()}", file=self.stream, flush=True)
        self.draw(force=True)

    def line(self) -> str:
        failed = sum(s == "failed" for s in self.done.values())
        pending = self.total - len(self.done) - len(self.running)
        elapsed = time.time() - self.started
        eta = elapsed / len(self.done) * (self.total - len(self.done)) if self.done else math.nan
        best = ""
        if self.best[1]:
            value = -self.best[0] if self.metric.endswith("loss") else self.best[0]
            best = f" | best {self.metric} {value:.4f} ({self.best[1]})"
        return (f"{len(self.done)}/{self.total} done, {len(self.running)} running, {pending} pending, {failed} failed"
                f" | {_fmt_seconds(elapsed)} elapsed, ETA {_fmt_seconds(eta)}{best}")

    def draw(self, force: bool = False) -> None:
        if not self.live or (not force and time.time() - self._last_draw < 0.2):
            return
        self._last_draw = time.time()
        width = os.get_terminal_size(self.stream.fileno()).columns if self.live else 200
        print("\r\033[K" + self.line()[: width - 1], end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=self.stream)


# --------------------------------------------------------------------------------------------------
# Ray Tune


def sweep_metric(cfg) -> str:
    """The per-epoch metric that ranks trials: tune.metric, else the task's own (val_acc, val_iou)."""
    return cfg.tune.metric or ("val_iou" if cfg.task == "segmentation" else "val_acc")


def tune_metrics(row: dict) -> dict:
    """What one epoch tells Tune: the epoch (the schedulers' time) and every metric a scheduler or the
    progress line may rank by. Each report carries them all, so a scheduler never sees a result without
    its metric (Tune rejects such a result and ends the sweep)."""
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_iou", "val_dice", "lr", "images_per_sec")
    return {k: row[k] for k in keep if k in row}


def run_with_retries(trial: Trial, results_dir: str, max_retries: int, on_epoch=None, accelerator=None):
    """Run a trial; when it fails, run it again (at most `max_retries` times more), continuing from its
    last epoch checkpoint: a failed trial keeps its checkpoint. Returns the last outcome."""
    from harness.trial import run_trial

    for attempt in range(max_retries + 1):
        outcome = run_trial(trial.config, trial.trial_id, results_dir, trial.params, on_epoch=on_epoch,
                            accelerator=accelerator, attempt=attempt + 1)
        if outcome.status != "failed":
            break
    return outcome


def _tune_trainable(trials: dict, results_dir: str, workers: int, use_gpu: bool, backend: str):
    """The function Tune runs per trial: look the trial up by id and run it (data-parallel if asked).
    Every epoch is reported to Tune as it ends; the trial's status is read from its Parquet row."""

    def trainable(tune_config: dict) -> None:
        from ray import tune

        trial = trials[tune_config["trial_id"]]
        if workers <= 1:
            run_with_retries(trial, results_dir, trial.config.resources.max_retries,
                             on_epoch=lambda row, _: tune.report(tune_metrics(row)))
        else:
            _run_data_parallel(trial, results_dir, workers, use_gpu, backend)

    return trainable


def _run_data_parallel(trial: Trial, results_dir: str, workers: int, use_gpu: bool, backend: str) -> None:
    """A data-parallel trial: a Ray Train TorchTrainer with Accelerate inside each worker. Every rank
    reports each epoch's row (the same numbers: metrics are summed across ranks); Ray Train hands rank
    0's report to Tune (TuneReportCallback), so schedulers see and prune it like any other trial."""
    from ray.train import RunConfig as TrainRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def loop(_config):
        from ray import train

        from harness.trial import make_accelerator

        run_with_retries(trial, results_dir, trial.config.resources.max_retries,
                         on_epoch=lambda row, _: train.report(tune_metrics(row)),
                         accelerator=make_accelerator(trial.config.train.precision))

    trainer = TorchTrainer(
        loop,
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": trial.config.resources.cpus_per_trial}),
        run_config=TrainRunConfig(name=f"dp-{trial.trial_id}", storage_path=str(Path(results_dir, "_ray").resolve()),
                                  callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def recorded_status(results_dir: Path, trial_id: str) -> Optional[str]:
    """The status in a trial's own trials row, or None when it has none (yet)."""
    path = store.part_path(results_dir, "trials", trial_id)
    try:
        return str(pd.read_parquet(path, columns=["status"])["status"].iloc[-1])
    except (OSError, IndexError, KeyError):  # no row yet (or it is being replaced right now)
        return None


def _make_callback(progress: Progress, results_dir: Path):
    from ray import tune

    class ProgressCallback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.start(trial.config["trial_id"])

        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.epoch(trial.config["trial_id"], result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            # a trial that ended by itself wrote its row; one a scheduler stopped has none yet (finalize)
            tid = trial.config["trial_id"]
            progress.finish(tid, recorded_status(results_dir, tid) or "early_stopped")

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.finish(trial.config["trial_id"], "failed")

    return ProgressCallback()


def init_ray(address: Optional[str], **resources) -> None:
    """Join `address` (else $RAY_ADDRESS), else start a local Ray (`resources`: e.g. num_gpus=2 for
    logical GPUs in tests). A Ray already initialized in this process is reused as it is."""
    import ray

    if ray.is_initialized():  # a second sweep in the same process reuses its Ray
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # Ray's workers inherit the driver's environment; keep their own thread pools to one core each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                  configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs, **resources)
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def resources_text(resources: dict, workers: int) -> str:
    if workers > 1:
        return f"{workers} Ray Train workers"
    return f"{resources['cpu']:g} CPU, {resources['gpu']:g} GPU"


def gpus_are_cuda(timeout: float = 120.0) -> bool:
    """Whether a task holding one of the Ray cluster's GPUs sees a CUDA device. Ray's GPUs can be logical
    (`ray start --num-gpus 2` on a machine without CUDA); then trials are placed on them but train on
    the CPU, and data-parallel trials must use gloo, not NCCL."""
    import ray

    @ray.remote(num_gpus=0.001, num_cpus=0)
    def probe() -> bool:
        import torch

        return torch.cuda.is_available()

    try:
        return bool(ray.get(probe.remote(), timeout=timeout))
    except ray.exceptions.GetTimeoutError:  # every GPU busy: assume what a GPU cluster normally is
        return True


def run_on_tune(trials: list[Trial], results_dir: Path, *, address: Optional[str] = None,
                max_concurrent: Optional[int] = None, stream=None) -> dict[str, str]:
    """Run `trials` as Tune trials; returns trial_id -> status for every trial (from the Parquet)."""
    import ray
    from ray import tune

    cfg = trials[0].config
    init_ray(address)
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpus = cfg.resources.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if cluster_gpus > 0 else 0.0
    elif gpus > 0 and cluster_gpus == 0:
        print(f"warning: resources.gpus_per_trial is {gpus} but the Ray cluster has no GPU: trials run on CPU",
              file=sys.stderr, flush=True)
        gpus = 0.0  # otherwise Tune waits forever for a GPU that is not there
    cuda = gpus > 0 and gpus_are_cuda()
    if gpus > 0 and not cuda:
        print("warning: the Ray cluster's GPUs are not CUDA devices here (logical GPUs): trials are scheduled "
              "on them but train on the CPU", file=sys.stderr, flush=True)
    if cfg.train.precision == "fp16" and not cuda:
        print("warning: train.precision fp16 needs a CUDA GPU: on the CPU trials train in fp32 and record "
              "precision 'no' (bf16 runs on the CPU)", file=sys.stderr, flush=True)
    workers = cfg.resources.workers_per_trial
    by_id = {t.trial_id: t for t in trials}
    # data-parallel trials: NCCL between CUDA devices, gloo otherwise (logical GPUs, CPUs)
    trainable = _tune_trainable(by_id, str(results_dir.resolve()), workers, use_gpu=gpus > 0,
                                backend="nccl" if cuda else "gloo")
    if workers > 1:
        # the driver function itself is light: Ray Train asks for each worker's resources
        resources = {"cpu": 0.01}
    else:
        resources = {"cpu": cfg.resources.cpus_per_trial, "gpu": gpus}
    trainable = tune.with_resources(trainable, resources)

    scheduler = None
    if cfg.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="epoch", metric=sweep_metric(cfg),
                                  mode="min" if sweep_metric(cfg).endswith("loss") else "max",
                                  max_t=cfg.train.epochs, grace_period=cfg.tune.grace_period,
                                  reduction_factor=cfg.tune.reduction_factor,
                                  # a trial that reaches the last epoch finishes by itself (best weights on
                                  # the test split, its row); stopping it there would lose its test metrics
                                  stop_last_trials=False)
    progress = Progress(len(trials), sweep_metric(cfg), stream)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial_id": tune.grid_search([t.trial_id for t in trials])},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or cfg.resources.max_concurrent,
                                    # a worker serves trial after trial: its imports (torch, torch._dynamo) are paid
                                    # once per worker, not per trial (2.65 s -> 0.15-0.25 s a trial on 2 CPUs,
                                    # `python -m harness.bench --ray`); every trial seeds itself and builds a
                                    # fresh Accelerator
                                    scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=str((results_dir / "_ray").resolve()),
            verbose=0, callbacks=[_make_callback(progress, results_dir)],
            # a trial whose worker died (out of memory, a lost node) starts again from its checkpoint
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_retries),
        ),
    )
    try:
        grid = tuner.fit()
    finally:
        progress.close()
    print(f"at most {progress.peak_running} trial(s) ran at once ({resources_text(resources, workers)} each)", flush=True)
    errors = {}
    for result in grid:
        tid = (result.config or {}).get("trial_id")
        if tid and result.error is not None:
            errors[tid] = f"{type(result.error).__name__}: {result.error}".splitlines()[0][:500]
    return finalize(trials, results_dir, errors)


def finalize(trials: list[Trial], results_dir: Path, errors: dict[str, str]) -> dict[str, str]:
    """Give every trial a row: a trial killed from outside (out of memory, a lost worker, ASHA) has
    epoch rows but wrote no trials row; record it here as failed, or early_stopped when pruned."""
    rows = store.read_table(results_dir, "trials")
    have = dict(zip(rows["trial_id"], rows["status"])) if not rows.empty else {}
    epochs = store.read_table(results_dir, "epochs")
    for t in trials:
        if t.trial_id in have:
            continue
        history = epochs[epochs["trial_id"] == t.trial_id] if not epochs.empty else epochs
        error = errors.get(t.trial_id)
        if error is None and history.empty:
            error = "the trial ended without reporting (worker lost)"
        status = "failed" if error else "early_stopped"
        row = {"trial_id": t.trial_id, "sweep": t.config.name, "status": status, "error": error,
               "epochs_run": int(len(history)), "point": json.dumps(t.params, sort_keys=True),
               "stopped_by": None if error else "scheduler", "config": t.config.model_dump_json(), **t.config.flat()}
        if not history.empty:
            row.update(best_val_acc=float(history["val_acc"].max()), best_val_loss=float(history["val_loss"].min()),
                       best_epoch=int(history.loc[history["val_loss"].idxmin(), "epoch"]))
        store.write_part(results_dir, "trials", t.trial_id, [row])
        if status == "early_stopped":  # pruned: it will not be resumed, so its checkpoint can go
            shutil.rmtree(results_dir / "checkpoints" / t.trial_id, ignore_errors=True)
        have[t.trial_id] = status
    return {t.trial_id: have[t.trial_id] for t in trials}


def stored_configs(results_dir: Path) -> dict[str, tuple[str, Optional[dict]]]:
    """Each finished trial's status and the config it ran with (None where none was stored)."""
    rows = store.read_table(results_dir, "trials")
    out = {}
    for tid, status, config in zip(rows["trial_id"], rows["status"],
                                   rows["config"] if "config" in rows else [None] * len(rows)):
        if status in store.FINISHED:
            out[tid] = (status, json.loads(config) if isinstance(config, str) and config else None)
    return out


def checkpoint_configs(results_dir: Path) -> dict[str, Optional[dict]]:
    """The config each interrupted trial's checkpoint was made with (checkpoints/<trial_id>/config.json)."""
    out = {}
    for path in sorted((results_dir / "checkpoints").glob("*/config.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            out[path.parent.name] = None
    return out


# --------------------------------------------------------------------------------------------------
# CLI


def top_table(results_dir: Path, metric: str = "best_val_acc", most: int = 10) -> str:
    rows = store.read_table(results_dir, "trials")
    if rows.empty or metric not in rows:
        return "(no results)"
    ok = rows[rows["status"] != "failed"].sort_values(metric, ascending=metric.endswith("loss"))
    lines = [f"{'rank':>4}  {metric:>12}  {'test_acc':>8}  {'status':<13}  trial"]
    for i, r in enumerate(ok.head(most).itertuples(), 1):
        test = getattr(r, "test_acc", math.nan)
        test = f"{test:8.4f}" if test is not None and math.isfinite(test) else f"{'-':>8}"
        lines.append(f"{i:>4}  {getattr(r, metric):12.4f}  {test}  {r.status:<13}  {r.trial_id}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog="python -m harness.sweep", description="Run a sweep file's grid on Ray Tune.")
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--dry-run", action="store_true", help="print the expanded trials, train nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: a JSON list, one object per trial")
    p.add_argument("--resume", action="store_true", help="skip finished trials, continue unfinished ones")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run failed trials again (from their last checkpoint)")
    changed = p.add_mutually_exclusive_group()
    changed.add_argument("--rerun-changed", action="store_true",
                         help="with --resume: run trials whose stored config differs from the file's again")
    changed.add_argument("--keep-changed", action="store_true",
                         help="with --resume: keep the results of trials whose stored config differs from the file's")
    p.add_argument("--overwrite", action="store_true", help="delete earlier results of this sweep first")
    p.add_argument("--results-dir", default="results", help="parent folder; results go to DIR/<sweep name>/")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable); pins a grid axis")
    p.add_argument("--smoke", action="store_true", help="tiny data, one epoch, a few trials: an end-to-end check")
    p.add_argument("--shard", help="I/N: run only trials i with i %% N == I (SLURM arrays)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides)
        if args.smoke:
            sweep = load_sweep(args.sweep, args.overrides + smoke_overrides(sweep))
        trials = sweep.trials
        cfg = sweep.config
        if cfg.tune.search == "random":
            trials = random_subset(trials, cfg.tune.num_samples, sweep.seeds, seed=cfg.seed)
        if args.smoke:
            trials = smoke_trials(trials)
        if args.shard:
            trials = shard(trials, *parse_shard(args.shard))
        if args.max_concurrent is not None and args.max_concurrent < 1:
            raise ConfigError("--max-concurrent must be at least 1")
        check_trials(trials, args.sweep, files=not args.dry_run)  # every model fits its input: before any trial
        if args.dry_run:
            rows = dry_run_rows(trials)
            if args.json:
                print(json.dumps(rows, indent=1, default=str))
            else:
                print(f"{sweep.name}: {len(trials)} trials")
                for r in rows:
                    print(f"  {r['trial_id']}  ({r['model.arch']}, {r['params']:,} params)")
            return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    results_dir = Path(args.results_dir) / sweep.name
    if args.overwrite and results_dir.exists():
        shutil.rmtree(results_dir)
    resume = args.resume or args.retry_failed or args.rerun_changed or args.keep_changed
    finished = store.finished_trial_ids(results_dir)
    if finished and not resume:
        print(f"error: {results_dir} already holds {len(finished)} finished trial(s) of this sweep: "
              f"--resume to continue it, --overwrite to start again", file=sys.stderr)
        return 2
    # every writer (Ray workers, finalize, shards) gets the trials schema of the whole sweep before any
    # trial writes; a resume starts from compacted files (and repairs an interrupted compaction)
    store.write_schema(results_dir, [t.config for t in sweep.trials])
    store.compact(results_dir, [t.trial_id for t in trials])
    try:
        plan = plan_resume(trials, stored_configs(results_dir), checkpoint_configs(results_dir),
                           retry_failed=args.retry_failed,
                           on_change="rerun" if args.rerun_changed else "keep" if args.keep_changed else None,
                           where=f"{args.sweep}: --resume {results_dir}")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if plan.forget:
        store.forget_trials(results_dir, plan.forget)
    for tid in plan.discard_checkpoints:
        shutil.rmtree(results_dir / "checkpoints" / tid, ignore_errors=True)
    pending = plan.pending
    again = f", {len(plan.forget)} to run again" if plan.forget else ""
    print(f"sweep {sweep.name}: {len(trials)} trials ({plan.kept} already finished{again}) -> {results_dir}/",
          flush=True)
    started = time.time()
    statuses = run_on_tune(pending, results_dir, address=args.address, max_concurrent=args.max_concurrent) if pending else {}
    store.compact(results_dir, [t.trial_id for t in trials])  # finished: one file per table (this run's trials only)

    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    print(f"\nfinished {len(statuses)} trials in {_fmt_seconds(time.time() - started)}: "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(top_table(results_dir, "best_" + sweep_metric(cfg)))
    if not args.no_report:
        try:
            from harness.report import write_report

            report = write_report(results_dir)
            print(f"report: {report}")
        except Exception as err:  # noqa: BLE001 - the sweep's results stand even if the report fails
            print(f"warning: the report could not be written: {type(err).__name__}: {err}", file=sys.stderr)
    print(f"results: {results_dir}/")
    return 1 if counts.get("failed") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        os._exit(0)
