"""Where a trial stands between epochs: `TrialProgress` holds the epoch rows so far, the best epoch and
its weights, and the epoch to start from (1, or where an interrupted run's checkpoint left off; with a
step and the epoch's sums so far when a stop request interrupted it mid-epoch). `record(row)` closes
an epoch: health verdict, best weights, the scheduler's epoch step, checkpoint, the epochs part file;
`save_stopped` saves a trial interrupted mid-epoch. Not here: training, evaluation, what a task scores.

    progress = TrialProgress(cfg, trial_id, results_dir, accelerator, model, optimizer, scheduler, step_on,
                             num_classes, uniform_loss, metric="val_acc", chance=0.1)
    for epoch in range(progress.start_epoch, cfg.train.epochs + 1):
        ...  # train, evaluate, build the row
        verdict = progress.record(row)
        if verdict.stop: break
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from harness import monitor, store
from harness.config import RunConfig
from harness.engine.checkpoint import (
    LAST,
    STOPPED,
    checkpoint_dir,
    copy_state,
    drop_stopped,
    resume_from_checkpoint,
    save,
    save_checkpoint,
    save_stopped_mark,
    stopped_mark,
)
from harness.files import write_text


class TrialProgress:
    def __init__(self, cfg: RunConfig, trial_id: str, results_dir: Optional[Path], accelerator, model, optimizer,
                 scheduler, step_on: str, num_classes: int, uniform_loss: float, metric: str = "val_acc",
                 chance: Optional[float] = None, generator=None, mid_epoch: bool = True):
        self.cfg, self.trial_id, self.results_dir, self.accelerator = cfg, trial_id, results_dir, accelerator
        self.model, self.optimizer, self.scheduler, self.step_on = model, optimizer, scheduler, step_on
        self.num_classes, self.uniform_loss = num_classes, uniform_loss
        self.metric, self.chance = metric, chance  # the task's score and what a constant prediction scores on it
        self.generator = generator  # a pack member's own RNG (dropout), checkpointed in place of the global one
        self._best_unsaved = False  # best weights not yet in best.pt (written with the next checkpoint)
        self.ckpt = checkpoint_dir(results_dir, trial_id) if cfg.train.checkpoint else None
        self.best = {"value": math.nan, "epoch": None, "state": None}  # the monitored value, its epoch, weights
        self.history, self.start_epoch = [], 1
        # mid-epoch (a stop request): the steps of start_epoch already run, their sums and seconds
        self.start_step, self.partial, self.partial_seconds, self.partial_lr = 0, None, 0.0, None
        if not mid_epoch and accelerator.is_main_process:
            drop_stopped(self.ckpt)  # a pack whose members stopped at different points: each goes back to last.pt
        name = STOPPED if stopped_mark(self.ckpt) is not None else LAST
        if self.ckpt is not None and (self.ckpt / name).exists():
            state = resume_from_checkpoint(self.ckpt, model, optimizer, scheduler, accelerator, self.best, generator,
                                           name)
            self.history, self.start_epoch = state["history"], state["epoch"] + 1
            if name == STOPPED:
                self.start_step, self.partial, self.partial_seconds = state["step"], state["partial"], state["seconds"]
                self.partial_lr = state["lr"]
        elif self.ckpt is not None and accelerator.is_main_process:
            self.ckpt.mkdir(parents=True, exist_ok=True)
        if self.ckpt is not None and accelerator.is_main_process:
            # what the checkpoint is made with: --resume compares it with the sweep file's (harness.resume)
            write_text(self.ckpt / "config.json", cfg.model_dump_json())

    def resumed_verdict(self) -> Optional[monitor.Verdict]:
        """The monitor's verdict on the last epoch a checkpoint brought back (None: nothing resumed): whether
        the run had already stopped there."""
        if not self.history:
            return None
        return monitor.check_epoch(self.history, self.num_classes, self.cfg.health, self.cfg.early_stopping,
                                   self.uniform_loss, metric=self.metric, chance=self.chance)

    def record(self, row: dict, save_now: Optional[bool] = None) -> monitor.Verdict:
        """Close the epoch whose row this is; the verdict says whether to stop. `save_now`: whether to write the
        checkpoint and epochs part now (None: every epoch; a pack decides once per epoch for its members, every
        few seconds); the last epoch is always saved."""
        es, main = self.cfg.early_stopping, self.accelerator.is_main_process
        row.update(monitor.generalization_gap(row))
        self.history.append(row)
        verdict = monitor.check_epoch(self.history, self.num_classes, self.cfg.health, es, self.uniform_loss,
                                      metric=self.metric, chance=self.chance)
        row["flags"] = ",".join(verdict.flags)
        best = self.best
        if monitor.improved(row[es.monitor], best["value"], es.direction, es.min_delta if best["epoch"] else 0.0):
            best.update(value=row[es.monitor], epoch=row["epoch"], state=copy_state(self.model))
            self._best_unsaved = True
        if self.step_on == "epoch" and self.scheduler is not None:
            self.scheduler.step()
        elif self.step_on == "plateau" and math.isfinite(row["val_loss"]):
            self.scheduler.step(row["val_loss"])
        last = verdict.stop or row["epoch"] >= self.cfg.train.epochs
        if main and (last or save_now is not False):
            if self.ckpt is not None:
                if self._best_unsaved:  # best.pt and last.pt are written together: a resume finds them in step
                    save(best["state"], self.ckpt / "best.pt")
                    self._best_unsaved = False
                save_checkpoint(self.ckpt, self.model, self.optimizer, self.scheduler, self.accelerator,
                                row["epoch"], self.history, best, self.generator)
                drop_stopped(self.ckpt)  # older than last.pt now
            if self.results_dir is not None:
                store.write_part(self.results_dir, "epochs", self.trial_id, self.history)  # visible while it runs
        return verdict

    def resumed_sums(self, epoch: int, sums):
        """An epoch's training sums with what ran of it before a stop request (start_epoch's), and the seconds
        that took (0.0 for any other epoch)."""
        if epoch != self.start_epoch or self.partial is None:
            return sums, 0.0
        return sums + self.partial.to(sums), self.partial_seconds

    def epoch_lr(self, epoch: int, lr: float) -> float:
        """The learning rate an epoch started with (its row's `lr`): `lr`, or the one saved mid-epoch."""
        return self.partial_lr if epoch == self.start_epoch and self.partial_lr is not None else lr

    def save_stopped(self, epoch: int, sums, seconds: float, step: int, lr: float) -> None:
        """Save a trial that a stop request interrupted in `epoch` after `step` steps (`sums`: that epoch's
        training sums so far, CPU; `seconds`: its training time so far; `lr`: the one it started with):
        stopped.pt, then stopped.json, and
        the epochs part. The best weights go inside stopped.pt, so last.pt and best.pt stay a pair to fall
        back on (a pack that cannot resume mid-epoch)."""
        if self.ckpt is None or not self.accelerator.is_main_process:
            return
        save_checkpoint(self.ckpt, self.model, self.optimizer, self.scheduler, self.accelerator, epoch - 1,
                        self.history, self.best, self.generator, name=STOPPED,
                        extra={"step": step, "partial": sums.detach().cpu(), "seconds": seconds, "lr": lr,
                               "best_state": self.best["state"] if self._best_unsaved else None})
        save_stopped_mark(self.ckpt, epoch, step)
        if self.results_dir is not None:
            store.write_part(self.results_dir, "epochs", self.trial_id, self.history)

    def restore_best(self) -> None:
        """Load the best epoch's weights into the model (no-op before any epoch)."""
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
