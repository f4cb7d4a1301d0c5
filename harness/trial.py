"""One trial: build data, model, loss, optimizer and schedule from a RunConfig, train with Accelerate,
watch every epoch, evaluate the best weights on the test split, and write the Parquet rows.

    python -m harness.trial sweeps/quickstart.yaml --set model.activation=gelu

runs ONE trial in-process (the first grid point, or the one the overrides pin) with an epoch line
per epoch. The same `run_trial` runs inside Ray Tune (harness.sweep) and data-parallel over N
processes (`accelerate launch` / `torchrun` / Ray Train workers): the batch size is per process,
the effective batch is batch_size x processes, and metrics are summed across processes.

The hot loop keeps everything on the device: no .item() or host sync per step; sums of loss,
correct predictions, samples and gradient norms accumulate in one tensor read once per epoch.
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

from harness import metrics, monitor, store
from harness.config import ConfigError, RunConfig, Trial, load_sweep
from harness.step import Stepper, smallest_layer_grad_norm

EpochCallback = Callable[[dict, "monitor.Verdict"], None]


@dataclass
class TrialOutcome:
    trial_id: str
    status: str
    row: dict  # the trials.parquet row
    epochs: list[dict] = field(default_factory=list)
    classes: list[dict] = field(default_factory=list)
    confusion: list[dict] = field(default_factory=list)


class _Stop(Exception):
    """Internal: ends training early with a status (diverged, stalled, early_stopped)."""


def make_accelerator(precision: str = "no"):
    """An Accelerator on the GPU when there is one, else the CPU; fresh mixed-precision state."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)  # allow a new precision in this process
    if not torch.cuda.is_available() and os.environ.get("ACCELERATE_TORCH_DEVICE", "").startswith("cuda"):
        # Ray Train names a worker's device after the Ray GPU it holds, CUDA or not (logical GPUs)
        os.environ["ACCELERATE_TORCH_DEVICE"] = "cpu"
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)


def precision_run(accelerator) -> str:
    """The precision the trial actually trains in: Accelerate runs fp16 only on CUDA (on the CPU it
    silently trains in fp32), so a trial records what ran, not what was asked for (`train.precision`)."""
    if accelerator.mixed_precision == "no" or not accelerator.native_amp:
        return "no"
    return accelerator.mixed_precision


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# The loop


def train_epoch(model, batches, optimizer, loss_fn, accelerator, scheduler=None, grad_clip=None, skip_first=False):
    """One pass over the training batches. Returns device tensors: [loss*n, correct, n, grad_norm, steps],
    the smallest per-layer gradient norm of the last step, and the seconds spent on the first step
    when `skip_first` (compile warm-up, excluded from throughput)."""
    model.train()
    stepper = Stepper(model, optimizer, accelerator, scheduler, grad_clip)
    # one float32 row [loss*n, correct, grad norm] per step, written in place (one op), summed in float64 at the end
    rows = torch.zeros(len(batches), 3, device=accelerator.device)
    images = steps = 0
    first_step_seconds = 0.0
    for step, (x, y) in enumerate(batches):
        if skip_first and step == 0:
            t0 = time.perf_counter()
        logits = model(x)
        loss = loss_fn(logits, y)
        norm = stepper(loss)
        n = y.shape[0]
        correct = (logits.argmax(1) == y).sum(dtype=torch.float32)
        torch.stack([loss.detach().float() * n, correct, norm.float()], out=rows[step])
        images, steps = images + n, steps + 1
        if skip_first and step == 0:
            _sync(accelerator.device)
            first_step_seconds = time.perf_counter() - t0
    loss_n, correct, grad_sum = rows[:steps].double().sum(0)
    fill = lambda value: loss_n.new_full((), value)  # noqa: E731 - a fill on the device: no copy, no sync
    sums = torch.stack([loss_n, correct, fill(images), grad_sum, fill(steps)])
    return sums, smallest_layer_grad_norm(model), first_step_seconds


@torch.no_grad()
def evaluate(model, batches, loss_fn, num_classes: int, accelerator) -> dict:
    """Exact sample-weighted loss and accuracy plus the confusion matrix, summed across processes."""
    model.eval()
    loss_sum = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, device=accelerator.device, dtype=torch.long)
    for x, y in batches:
        with accelerator.autocast():
            logits = model(x)
        loss_sum += loss_fn(logits, y).double() * y.shape[0]
        metrics.add_to_confusion(confusion, y, logits.argmax(1))
    loss_sum = accelerator.reduce(loss_sum, "sum")
    confusion = accelerator.reduce(confusion, "sum")
    n = int(confusion.sum())
    predicted, support = confusion.sum(0), confusion.sum(1)
    return {
        "loss": float(loss_sum) / n if n else math.nan,
        "acc": float(confusion.diag().sum()) / n if n else math.nan,
        "top_class_share": float(predicted.max()) / n if n else math.nan,
        # for the monitor's at_chance and collapsed rules: what a constant prediction scores, and the
        # classes that have samples here but are never predicted
        "largest_class_share": float(support.max()) / n if n else math.nan,
        "classes_never_predicted": int(((predicted == 0) & (support > 0)).sum()),
        "confusion": confusion.cpu(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; process peak RSS


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, epoch: int, history: list, best: dict) -> None:
    """Everything needed to continue a trial after `epoch`: weights, optimizer, schedule, scaler, RNG."""
    device = accelerator.device
    _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
           "scheduler": scheduler.state_dict() if scheduler is not None else None,
           "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
           "rng_cpu": torch.get_rng_state(),
           "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
           "epoch": epoch, "history": history, "best_value": best["value"], "best_epoch": best["epoch"]},
          ckpt / "last.pt")


def resume_from_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, best: dict) -> tuple[list, int]:
    """Load `ckpt/last.pt` (and the best weights) into the run's objects; returns (history, next epoch)."""
    device = accelerator.device
    state = torch.load(ckpt / "last.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if accelerator.scaler is not None and state.get("scaler") is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    best.update(value=state["best_value"], epoch=state["best_epoch"])
    if (ckpt / "best.pt").exists():
        best["state"] = torch.load(ckpt / "best.pt", map_location=device, weights_only=False)
    return state["history"], state["epoch"] + 1


def checkpoint_dir(results_dir: Optional[Path], trial_id: str) -> Optional[Path]:
    return None if results_dir is None else Path(results_dir) / "checkpoints" / trial_id


class TrialProgress:
    """Where a trial stands between epochs, for both loops (classification here, segmentation's):
    the epoch rows so far, the best epoch and its weights, and the epoch to start from (1, or where
    an interrupted run's checkpoint left off). `record(row)` closes an epoch: health verdict, best
    weights, the scheduler's epoch step, checkpoint, the epochs part file.

        progress = TrialProgress(cfg, trial_id, results_dir, accelerator, model, optimizer, scheduler,
                                 step_on, num_classes, uniform_loss)
        for epoch in range(progress.start_epoch, cfg.train.epochs + 1):
            ...  # train, evaluate, build the row
            verdict = progress.record(row)
            on_epoch(row, verdict)  # the loop's own reporting (Ray Tune may stop the trial there)
            if verdict.stop: break
    """

    def __init__(self, cfg: RunConfig, trial_id: str, results_dir: Optional[Path], accelerator, model, optimizer,
                 scheduler, step_on: str, num_classes: int, uniform_loss: float):
        self.cfg, self.trial_id, self.results_dir, self.accelerator = cfg, trial_id, results_dir, accelerator
        self.model, self.optimizer, self.scheduler, self.step_on = model, optimizer, scheduler, step_on
        self.num_classes, self.uniform_loss = num_classes, uniform_loss
        self.ckpt = checkpoint_dir(results_dir, trial_id) if cfg.train.checkpoint else None
        self.best = {"value": math.nan, "epoch": None, "state": None}  # the monitored value, its epoch, weights
        self.history, self.start_epoch = [], 1
        if self.ckpt is not None and (self.ckpt / "last.pt").exists():
            self.history, self.start_epoch = resume_from_checkpoint(self.ckpt, model, optimizer, scheduler,
                                                                    accelerator, self.best)
        elif self.ckpt is not None and accelerator.is_main_process:
            self.ckpt.mkdir(parents=True, exist_ok=True)
        if self.ckpt is not None and accelerator.is_main_process:
            # what the checkpoint is made with: --resume compares it with the sweep file's (harness.resume)
            (self.ckpt / "config.json").write_text(cfg.model_dump_json())

    def record(self, row: dict) -> "monitor.Verdict":
        """Close the epoch whose row this is; the verdict says whether to stop."""
        es, main = self.cfg.early_stopping, self.accelerator.is_main_process
        row.update(monitor.generalization_gap(row))
        self.history.append(row)
        verdict = monitor.check_epoch(self.history, self.num_classes, self.cfg.health, es, self.uniform_loss)
        row["flags"] = ",".join(verdict.flags)
        best = self.best
        if monitor.improved(row[es.monitor], best["value"], es.direction, es.min_delta if best["epoch"] else 0.0):
            best.update(value=row[es.monitor], epoch=row["epoch"], state=_state(self.model))
            if self.ckpt is not None and main:
                _save(best["state"], self.ckpt / "best.pt")
        if self.step_on == "epoch" and self.scheduler is not None:
            self.scheduler.step()
        elif self.step_on == "plateau" and math.isfinite(row["val_loss"]):
            self.scheduler.step(row["val_loss"])
        if self.ckpt is not None and main:
            save_checkpoint(self.ckpt, self.model, self.optimizer, self.scheduler, self.accelerator, row["epoch"],
                            self.history, best)
        if self.results_dir is not None and main:
            store.write_part(self.results_dir, "epochs", self.trial_id, self.history)  # visible while it runs
        return verdict

    def restore_best(self) -> None:
        """Load the best epoch's weights into the model (no-op before any epoch)."""
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])


def run_trial(config: RunConfig, trial_id: str = "trial", results_dir: Optional[str | Path] = None,
              point: Optional[dict] = None, on_epoch: Optional[EpochCallback] = None,
              accelerator=None, attempt: int = 1) -> TrialOutcome:
    """Train one trial end to end and (on the main process) write its rows under results_dir.

    Exceptions become a `failed` trial with the error recorded; KeyboardInterrupt and other
    BaseExceptions pass through untouched, leaving the last checkpoint to resume from. A failed
    trial keeps its checkpoint, so running it again (`attempt` 2, 3, ...) continues from there.
    """
    accelerator = accelerator or make_accelerator(config.train.precision)
    results_dir = None if results_dir is None else Path(results_dir)
    started_at, t_start = now(), time.perf_counter()
    base = {
        "trial_id": trial_id, "sweep": config.name, "point": json.dumps(point or {}, sort_keys=True),
        "device": _device_name(accelerator.device), "precision": precision_run(accelerator),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "attempt": attempt,
        "world_size": accelerator.num_processes, "torch_version": torch.__version__,
        "config": config.model_dump_json(), "started_at": started_at, **config.flat(),
    }
    if results_dir is not None and accelerator.is_main_process:
        # a trial run again: its earlier rows in compacted files go now, its new parts replace the rest
        store.forget_trials(results_dir, [trial_id], keep_parts=True)
    try:
        outcome = _train(config, trial_id, results_dir, accelerator, on_epoch, base)
    except Exception as err:  # noqa: BLE001 - a trial's failure is recorded, never fatal to the sweep
        message = f"{type(err).__name__}: {err}"
        detail = "".join(traceback.format_exception(err)[-3:]).strip()
        row = {**base, "status": "failed", "error": message, "error_detail": detail, "epochs_run": 0}
        outcome = TrialOutcome(trial_id, "failed", row)
    outcome.row.update(total_seconds=time.perf_counter() - t_start, finished_at=now())
    if results_dir is not None and accelerator.is_main_process:
        store.write_trial(results_dir, trial_id, outcome.row, outcome.epochs, outcome.classes, outcome.confusion)
        ckpt = checkpoint_dir(results_dir, trial_id)
        if outcome.status != "failed" and ckpt is not None and ckpt.exists():
            if config.train.save_model and (ckpt / "best.pt").exists():
                models = results_dir / "models"
                models.mkdir(exist_ok=True)
                shutil.copy(ckpt / "best.pt", models / f"{trial_id}.pt")
            shutil.rmtree(ckpt, ignore_errors=True)
    return outcome


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _train(cfg: RunConfig, trial_id: str, results_dir: Optional[Path], accelerator, on_epoch, base: dict) -> TrialOutcome:
    if cfg.task == "segmentation":
        from harness.segmentation.train import train_segmentation

        return train_segmentation(cfg, trial_id, results_dir, accelerator, on_epoch, base)
    from accelerate.utils import set_seed

    from harness.data import DeviceBatches, load_dataset
    from harness.losses import create_loss
    from harness.models import count_params, create_model
    from harness.models.transfer import apply_transfer
    from harness.optimizers import create_optimizer
    from harness.schedulers import create_scheduler

    set_seed(cfg.seed)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    tc = cfg.train

    # data: every split lives on the device as one uint8 tensor; val/test never augmented
    splits = load_dataset(cfg.dataset)
    norm = dict(normalize=cfg.dataset.normalize, mean=splits.split_info.get("mean"), std=splits.split_info.get("std"),
                channels_last=tc.channels_last, device=device, rank=rank, world_size=world)
    train_batches = DeviceBatches(splits.train_x, splits.train_y, tc.batch_size, shuffle=True,
                                  augment=cfg.dataset.augment, seed=cfg.seed, **norm)
    val_batches = DeviceBatches(splits.val_x, splits.val_y, tc.eval_batch_size, shuffle=False, **norm)
    test_batches = DeviceBatches(splits.test_x, splits.test_y, tc.eval_batch_size, shuffle=False, **norm)
    num_classes = splits.num_classes

    # model, optimizer, schedule, loss
    model = create_model(cfg.model.arch, splits.input_shape, num_classes, init=cfg.model.init, **cfg.model.options)
    model = apply_transfer(model, cfg.model)  # init_from / finetune: before the optimizer sees the parameters
    num_params = count_params(model)
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
    loss_fn = create_loss(cfg.loss)
    uniform_loss = float(loss_fn(torch.zeros(len(splits.train_y), num_classes), splits.train_y))
    es = cfg.early_stopping

    # resume from the last checkpoint, if this trial was interrupted
    progress = TrialProgress(cfg, trial_id, results_dir, accelerator, unwrapped, raw_optimizer, scheduler, step_on,
                             num_classes, uniform_loss)
    history, best, start_epoch = progress.history, progress.best, progress.start_epoch

    status = "completed"
    for epoch in range(start_epoch, tc.epochs + 1):
        train_batches.set_epoch(epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        lr = raw_optimizer.param_groups[0]["lr"]
        _sync(device)
        t0 = time.perf_counter()
        sums, layer_min, warmup_s = train_epoch(
            train_model, train_batches, optimizer, loss_fn, accelerator,
            scheduler if step_on == "batch" else None, tc.grad_clip, skip_first=tc.compile and epoch == start_epoch)
        sums = accelerator.reduce(sums, "sum")
        _sync(device)
        train_seconds = time.perf_counter() - t0 - warmup_s
        val = evaluate(eval_model, val_batches, loss_fn, num_classes, accelerator)
        epoch_seconds = time.perf_counter() - t0

        loss_n, correct, n, grad_sum, steps = sums.tolist()
        images = n - (tc.batch_size * world if warmup_s else 0)
        row = {
            "trial_id": trial_id, "epoch": epoch,
            "train_loss": loss_n / n if n else math.nan, "train_acc": correct / n if n else math.nan,
            "val_loss": val["loss"], "val_acc": val["acc"], "lr": lr,
            "grad_norm": grad_sum / steps if steps else math.nan,
            "grad_norm_min_layer": float(layer_min) if layer_min is not None else math.nan,
            "epoch_seconds": epoch_seconds, "train_seconds": train_seconds,
            "images_per_sec": images / train_seconds if train_seconds > 0 else math.nan,
            "peak_memory_mb": peak_memory_mb(device), "val_top_class_share": val["top_class_share"],
            "val_largest_class_share": val["largest_class_share"],
            "val_classes_never_predicted": val["classes_never_predicted"],
        }
        verdict = progress.record(row)
        if on_epoch is not None:
            on_epoch(row, verdict)
        if verdict.stop:
            status = verdict.status
            break

    # the best weights, on the test split
    progress.restore_best()
    test = evaluate(eval_model, test_batches, loss_fn, num_classes, accelerator)
    per_class = metrics.per_class(test["confusion"])
    summary = metrics.summary(test["confusion"])
    flags = [f for r in history for f in (r.get("flags") or "").split(",") if f]
    throughput = [r["images_per_sec"] for r in history if math.isfinite(r["images_per_sec"])]
    row = {
        **base, "status": status, "params": num_params, "epochs_run": len(history),
        "best_epoch": best["epoch"], "overfit_epoch": monitor.overfit_epoch(history, es.patience, es.min_delta),
        "best_val_loss": min((r["val_loss"] for r in history if math.isfinite(r["val_loss"])), default=math.nan),
        "best_val_acc": max((r["val_acc"] for r in history if math.isfinite(r["val_acc"])), default=math.nan),
        "test_loss": test["loss"], "test_acc": test["acc"], "test_macro_f1": summary["macro_f1"],
        "test_micro_f1": summary["micro_f1"], "test_top_class_share": test["top_class_share"],
        "train_images_per_sec": sum(throughput) / len(throughput) if throughput else math.nan,
        "health": json.dumps(flags), "error": None, "num_classes": num_classes,
        "input_shape": list(splits.input_shape), "split_hash": splits.split_info.get("split_hash"),
    }
    classes = [{"trial_id": trial_id, "class_index": i, "class_name": splits.class_names[i],
                "precision": per_class["precision"][i], "recall": per_class["recall"][i],
                "f1": per_class["f1"][i], "support": per_class["support"][i]} for i in range(num_classes)]
    cm = test["confusion"]
    confusion = [{"trial_id": trial_id, "true": t, "pred": p, "count": int(cm[t, p])}
                 for t in range(num_classes) for p in range(num_classes) if cm[t, p] > 0]
    return TrialOutcome(trial_id, status, row, history, classes, confusion)


# --------------------------------------------------------------------------------------------------
# CLI


def format_epoch(row: dict, epochs: int) -> str:
    ips = row["images_per_sec"]
    speed = f"{ips / 1000:.1f}k img/s" if math.isfinite(ips) else "- img/s"
    flags = f"  [{row['flags']}]" if row.get("flags") else ""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | lr {row['lr']:.2e}"
            f" | {speed} | {row['epoch_seconds']:.1f}s{flags}")


def pick_trial(trials: list[Trial]) -> Trial:
    """The first grid point (the overrides pin the rest)."""
    return trials[0]


def main(argv: Optional[list[str]] = None) -> int:
    from harness.config import ArgParser
    from harness.preflight import check_trials
    from harness.registry import did_you_mean

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
    trial = pick_trial(sweep.trials)
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
    say(f"trial {trial.trial_id} ({grid_size} in the grid) on {_device_name(accelerator.device)}"
        f" x{accelerator.num_processes}, precision {precision_run(accelerator)}")
    if precision_run(accelerator) != trial.config.train.precision:
        say(f"warning: train.precision {trial.config.train.precision} does not run on {accelerator.device.type}: "
            f"training in fp32 (recorded as precision '{precision_run(accelerator)}')")
    outcome = run_trial(trial.config, trial.trial_id, results_dir, trial.params,
                        on_epoch=lambda row, _: say(format_epoch(row, trial.config.train.epochs)),
                        accelerator=accelerator)
    r = outcome.row
    if outcome.status == "failed":
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
