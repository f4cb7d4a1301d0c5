"""One trial, for every task: build the task's data, model and loss, the optimizer and schedule from a
RunConfig, train with Accelerate, watch every epoch, evaluate the best weights on the test split, and
write the Parquet rows. This file is the loop, top to bottom (`train`); the parts are harness.engine,
what differs between tasks is harness.tasks.

    python -m harness.trial sweeps/quickstart.yaml --set model.activation=gelu

runs ONE trial in-process (the first grid point, or the one the overrides pin) with an epoch line
per epoch. The same `run_trial` runs inside Ray Tune (harness.sweep) and data-parallel over N
processes (`accelerate launch` / `torchrun` / Ray Train workers): the batch size is per process,
the effective batch is batch_size x processes, and metrics are summed across processes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import torch
from accelerate.utils import set_seed

from harness import files, monitor, store
from harness.config import ArgParser, ConfigError, RunConfig, Trial, load_sweep
from harness.data import load_dataset
from harness.engine.checkpoint import checkpoint_dir
from harness.engine.device import make_accelerator, peak_memory_mb, precision_run, reset_peak_memory, sync
from harness.engine.loop import COUNTS, SAMPLES, STEPS, evaluate, train_epoch
from harness.engine.progress import TrialProgress
from harness.engine.stop import StopRequest, TrialInterrupted
from harness.models import count_params
from harness.optimizers import create_optimizer
from harness.perf import device_name
from harness.preflight import check_trials
from harness.provenance import provenance, results_sweep_hash
from harness.registry import did_you_mean
from harness.schedulers import create_scheduler
from harness.tasks import Task, create_task
from harness.vocabulary import Status, direction

EpochCallback = Callable[[dict, "monitor.Verdict"], None]


@dataclass
class TrialOutcome:
    trial_id: str
    status: str
    row: dict  # the trials.parquet row
    epochs: list[dict] = field(default_factory=list)
    classes: list[dict] = field(default_factory=list)
    confusion: list[dict] = field(default_factory=list)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_trial(config: RunConfig, trial_id: str = "trial", results_dir: Optional[str | Path] = None,
              point: Optional[dict] = None, on_epoch: Optional[EpochCallback] = None,
              accelerator=None, attempt: int = 1, stop: Optional[StopRequest] = None,
              extra: Optional[dict] = None) -> TrialOutcome:
    """Train one trial end to end and (on the main process) write its rows under results_dir.

    Exceptions become a `failed` trial with the error recorded; KeyboardInterrupt and other
    BaseExceptions pass through untouched, leaving the last checkpoint to resume from. A failed
    trial keeps its checkpoint, so running it again (`attempt` 2, 3, ...) continues from there.
    `stop` (harness.engine.stop): once it fires, the trial saves where it stands, mid-epoch, and raises
    TrialInterrupted, with no row. `extra`: more trials-row columns (PBT's `pbt_schedule`).
    """
    accelerator = accelerator or make_accelerator(config.train.precision)
    results_dir = None if results_dir is None else Path(results_dir)
    t_start = time.perf_counter()
    base = {**trial_base(config, trial_id, point, accelerator, attempt, results_dir), **(extra or {})}
    if results_dir is not None and accelerator.is_main_process:
        # a trial run again: its earlier rows in compacted files go now, its new parts replace the rest
        store.forget_trials(results_dir, [trial_id], keep_parts=True)
    try:
        outcome = train(create_task(config), config, trial_id, results_dir, accelerator, on_epoch, base, stop)
    except Exception as err:  # noqa: BLE001 - a trial's failure is recorded, never fatal to the sweep
        outcome = failed_outcome(base, err)
    outcome.row.update(total_seconds=time.perf_counter() - t_start, finished_at=now())
    if results_dir is not None and accelerator.is_main_process:
        save_outcome(outcome, config, results_dir)
    return outcome


def trial_base(config: RunConfig, trial_id: str, point: Optional[dict], accelerator, attempt: int = 1,
               results_dir: Optional[Path] = None) -> dict:
    """The trials row's columns known before training: identity, config, device, and provenance (code
    version, library versions, host: harness.provenance; `sweep_hash`: of results_dir/sweep.yaml, if any)."""
    return {
        "trial_id": trial_id, "sweep": config.name, "point": json.dumps(point or {}, sort_keys=True),
        "device": device_name(accelerator.device), "precision": precision_run(accelerator),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "attempt": attempt,
        "world_size": accelerator.num_processes, **provenance(), "torch_version": torch.__version__,
        "sweep_hash": results_sweep_hash(results_dir), "config": config.model_dump_json(), "started_at": now(),
        **config.flat(),
    }


def failed_outcome(base: dict, err: BaseException) -> TrialOutcome:
    """The outcome of a trial that raised: status failed, the error and the end of its traceback."""
    message = f"{type(err).__name__}: {err}"
    detail = "".join(traceback.format_exception(err)[-3:]).strip()
    row = {**base, "status": Status.FAILED, "error": message, "error_detail": detail, "epochs_run": 0}
    return TrialOutcome(base["trial_id"], Status.FAILED, row)


def save_outcome(outcome: TrialOutcome, config: RunConfig, results_dir: Path) -> None:
    """Write a finished trial's rows, keep its best weights when asked (models/<id>.pt) and drop its
    checkpoint; a failed trial keeps its checkpoint, to continue from when it runs again."""
    trial_id = outcome.trial_id
    store.write_trial(results_dir, trial_id, outcome.row, outcome.epochs, outcome.classes, outcome.confusion)
    ckpt = checkpoint_dir(results_dir, trial_id)
    if outcome.status != Status.FAILED and ckpt is not None and ckpt.exists():
        if config.train.save_model and (ckpt / "best.pt").exists():
            models = results_dir / "models"
            models.mkdir(exist_ok=True)
            with files.atomic_path(models / f"{trial_id}.pt") as tmp:
                shutil.copy(ckpt / "best.pt", tmp)
        shutil.rmtree(ckpt, ignore_errors=True)


def train(task: Task, cfg: RunConfig, trial_id: str, results_dir: Optional[Path], accelerator, on_epoch,
          base: dict, stop: Optional[StopRequest] = None) -> TrialOutcome:
    """Train one trial of `task` end to end; returns its rows (run_trial writes them)."""
    set_seed(cfg.seed)
    device, world, tc = accelerator.device, accelerator.num_processes, cfg.train

    # data: every split lives on the device as uint8; val/test never augmented
    splits = load_dataset(cfg.dataset)
    train_batches, val_batches, test_batches = task.batches(splits, device=device, rank=accelerator.process_index,
                                                            world_size=world)

    # model, optimizer, schedule, loss
    model, loss_fn, uniform_loss = task.build(splits)
    num_params = count_params(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model = model.to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, cfg.optimizer, device.type)
    raw_optimizer = optimizer
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler, step_on = create_scheduler(raw_optimizer, cfg.scheduler, cfg.optimizer.lr, tc.epochs, len(train_batches))
    unwrapped = accelerator.unwrap_model(model)
    train_model = torch.compile(model) if tc.compile else model
    eval_model = train_model if world == 1 else unwrapped  # DDP forward would sync buffers across ranks
    count, num_counts = task.counts, task.num_counts

    # resume from the last checkpoint, if this trial was interrupted; what PBT mutates (tune.mutations) keeps
    # the config's values, not the checkpoint's (PBT's explore step changed them)
    mutated = [key.split(".", 1)[1] for key in cfg.tune.mutations]
    chosen = [{k: group[k] for k in mutated} for group in raw_optimizer.param_groups]
    progress = TrialProgress(cfg, trial_id, results_dir, accelerator, unwrapped, raw_optimizer, scheduler, step_on,
                             splits.num_classes, uniform_loss, task.metric, task.chance(splits))
    for group, values in zip(raw_optimizer.param_groups, chosen):
        group.update(values)
    history, best, start_epoch = progress.history, progress.best, progress.start_epoch

    status = Status.COMPLETED
    for epoch in range(start_epoch, tc.epochs + 1):
        train_batches.set_epoch(epoch)
        reset_peak_memory(device)
        lr = progress.epoch_lr(epoch, raw_optimizer.param_groups[0]["lr"])
        sync(device)
        t0 = time.perf_counter()
        start_step = progress.start_step if epoch == start_epoch else 0  # resumed mid-epoch: the steps already run
        sums, layer_min, warmup_s = train_epoch(
            train_model, train_batches, optimizer, loss_fn, accelerator, scheduler if step_on == "batch" else None,
            tc.grad_clip, skip_first=tc.compile and epoch == start_epoch, count=count, num_counts=num_counts,
            start_step=start_step, stop=stop)
        sums = accelerator.reduce(sums, "sum").cpu()  # the epoch's one host sync
        sync(device)
        sums, before = progress.resumed_sums(epoch, sums)  # with the steps run before an interruption
        train_seconds = time.perf_counter() - t0 - warmup_s + before
        if stop is not None and stop.fired:
            progress.save_stopped(epoch, sums, train_seconds, round(sums[STEPS].item()) // world, lr)
            raise TrialInterrupted([trial_id])
        val_loss, val_counts = evaluate(eval_model, val_batches, loss_fn, accelerator, count, num_counts)
        epoch_seconds = time.perf_counter() - t0 + before

        images = sums[SAMPLES].item() - (tc.batch_size * world if warmup_s else 0)  # compile warm-up: left out
        row = epoch_row(task, trial_id, epoch, sums, val_loss, val_counts, lr, layer_min, epoch_seconds,
                        train_seconds, images, peak_memory_mb(device))
        verdict = progress.record(row)
        task.after_epoch(unwrapped, row, verdict, results_dir if accelerator.is_main_process else None)
        if on_epoch is not None:
            on_epoch(row, verdict)  # the caller's reporting (Ray Tune may stop the trial there)
        if verdict.stop:
            status = verdict.status
            break

    # the best weights, on the test split
    progress.restore_best()
    test_loss, test_counts = evaluate(eval_model, test_batches, loss_fn, accelerator, count, num_counts)
    test = task.scores(test_counts)
    classes, confusion = task.test_tables(test_counts, splits, trial_id)
    row = trial_row(base, task, cfg, status, history, best["epoch"], num_params, trainable, test_loss, test, splits)
    return TrialOutcome(trial_id, status, row, history, classes, confusion)


def epoch_row(task: Task, trial_id: str, epoch: int, sums: torch.Tensor, val_loss: float, val_counts: torch.Tensor,
              lr: float, layer_min, epoch_seconds: float, train_seconds: float, images: float,
              peak_memory: float) -> dict:
    """One epochs row from train_epoch's sums (CPU: [loss x n, grad norm, samples, steps, *counts]) and
    the validation pass."""
    loss_n, grad_sum, n, steps = sums[:COUNTS].tolist()
    train, val = task.scores(sums[COUNTS:]), task.scores(val_counts)
    return {
        "trial_id": trial_id, "epoch": epoch, "train_loss": loss_n / n if n else math.nan,
        **{f"train_{k}": train[k] for k in task.columns["train"]},
        "val_loss": val_loss, **{f"val_{k}": val[k] for k in task.columns["val"]}, "lr": lr,
        "grad_norm": grad_sum / steps if steps else math.nan,
        "grad_norm_min_layer": float(layer_min) if layer_min is not None else math.nan,
        "epoch_seconds": epoch_seconds, "train_seconds": train_seconds,
        "images_per_sec": images / train_seconds if train_seconds > 0 else math.nan,
        "peak_memory_mb": peak_memory,
    }


def trial_row(base: dict, task: Task, cfg: RunConfig, status: str, history: list[dict], best_epoch: Optional[int],
              num_params: int, trainable: int, test_loss: float, test: dict, splits) -> dict:
    """A finished trial's trials row: `base`, its status, best epoch, overfitting, test scores, health."""
    es = cfg.early_stopping
    flags = [f for r in history for f in (r.get("flags") or "").split(",") if f]
    throughput = [r["images_per_sec"] for r in history if math.isfinite(r["images_per_sec"])]
    return {
        **base, "status": status, "params": num_params, "trainable_params": trainable, "epochs_run": len(history),
        "best_epoch": best_epoch, "overfit_epoch": monitor.overfit_epoch(history, es.patience, es.min_delta),
        **{f"best_{key}": best_of(history, key) for key in ["val_loss", *(f"val_{k}" for k in task.columns["best_val"])]},
        "test_loss": test_loss, **{f"test_{k}": test[k] for k in task.columns["test"]},
        "train_images_per_sec": sum(throughput) / len(throughput) if throughput else math.nan,
        "health": json.dumps(flags), "error": None, "num_classes": splits.num_classes,
        "input_shape": list(splits.input_shape), "split_hash": splits.split_info.get("split_hash"),
    }


def best_of(history: list[dict], key: str) -> float:
    """The best finite value of `key` over the epochs (lowest for a loss); NaN without any."""
    values = [r[key] for r in history if math.isfinite(r[key])]
    pick = min if direction(key) == "min" else max
    return pick(values, default=math.nan)


# --------------------------------------------------------------------------------------------------
# CLI


def format_epoch(row: dict, epochs: int) -> str:
    ips = row["images_per_sec"]
    speed = f"{ips / 1000:.1f}k img/s" if math.isfinite(ips) else "- img/s"
    flags = f"  [{row['flags']}]" if row.get("flags") else ""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | lr {row['lr']:.2e}"
            f" | {speed} | {row['epoch_seconds']:.1f}s{flags}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgParser(prog="python -m harness.trial", description="Run ONE trial of a sweep in-process.")
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable); pins a grid axis")
    parser.add_argument("--results-dir", default="results", help="parent folder of results/<sweep name>/")
    parser.add_argument("--trial-id", help="run this trial of the expanded grid instead of the first")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    trial = sweep.trials[0]  # the first grid point (the overrides pin the rest)
    if args.trial_id:
        match = [t for t in sweep.trials if t.trial_id == args.trial_id]
        if not match:
            ids = [t.trial_id for t in sweep.trials]
            print(f"error: {args.sweep}: --trial-id: no trial '{args.trial_id}' in the grid"
                  f"{did_you_mean(args.trial_id, ids)}; allowed: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}",
                  file=sys.stderr)
            return 2
        trial = match[0]
    try:
        check_trials([trial], args.sweep)  # its model fits the dataset's input, its loss, optimizer, schedule build
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    accelerator = make_accelerator(trial.config.train.precision)
    try:
        return _run_and_print(trial, len(sweep.trials), Path(args.results_dir) / sweep.name, accelerator)
    finally:
        accelerator.end_training()  # under torchrun: destroys the process group


def _run_and_print(trial: Trial, grid_size: int, results_dir: Path, accelerator) -> int:
    say = accelerator.print
    say(f"trial {trial.trial_id} ({grid_size} in the grid) on {device_name(accelerator.device)}"
        f" x{accelerator.num_processes}, precision {precision_run(accelerator)}")
    if precision_run(accelerator) != trial.config.train.precision:
        say(f"warning: train.precision {trial.config.train.precision} does not run on {accelerator.device.type}: "
            f"training in fp32 (recorded as precision '{precision_run(accelerator)}')")
    outcome = run_trial(trial.config, trial.trial_id, results_dir, trial.point,
                        on_epoch=lambda row, _: say(format_epoch(row, trial.config.train.epochs)),
                        accelerator=accelerator)
    r = outcome.row
    if outcome.status == Status.FAILED:
        say(f"failed: {r['error']}")
        return 1
    say(f"{outcome.status}: best epoch {r['best_epoch']}, best val acc {r['best_val_acc']:.4f}, "
        f"test acc {r['test_acc']:.4f}, test macro F1 {r['test_macro_f1']:.4f}"
        + (f", overfit after epoch {r['overfit_epoch']}" if r["overfit_epoch"] else ""))
    say(f"results: {results_dir}/")
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker leaves without tearing the interpreter down. A DistributedDataParallel model
        # keeps its gloo group alive past destroy_process_group (torch 2.15: the group's threads still run
        # after main() returns). One that is still dropping the last collective's tensors when Python
        # finalizes needs the GIL, is stopped by the finalizing interpreter, and aborts the process after
        # all its work is done (SIGABRT, "terminate called without an active exception"; 1-4% of 2-process
        # CPU runs here; pytorch/pytorch#190489). Every result is written and closed by now; only stdio
        # is buffered.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
