"""A pack: several trials of one architecture trained as ONE program (harness.engine.pack), each
member still a trial in every way a user sees: its own init, data order and augmentation (as alone),
optimizer and schedule, epoch rows, early stopping, health flags, best weights, test evaluation,
checkpoint and trials row (with `pack_id`, `pack_size`). The loop is harness.trial's, for K members:

    outcomes = run_pack(trials, results_dir, pack_id="p0")   # one TrialOutcome per member

A member that stops (early stop, diverged, stalled) is shed at the end of that epoch: its weights no
longer change and the pack goes on with the others. Which trials may share a pack is
harness.sweep.packs' business; here they are assumed to (same data, task, model, loss, batch size,
epochs, precision).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from accelerate.utils import set_seed

from harness import store
from harness.config import Trial
from harness.data import load_dataset
from harness.engine.checkpoint import checkpoint_dir, stopped_mark
from harness.engine.device import make_accelerator, peak_memory_mb, reset_peak_memory, sync
from harness.engine.loop import SAMPLES, STEPS, evaluate
from harness.engine.pack import PackedModel
from harness.engine.pack_loop import PackBatches, evaluate_pack, member_counts, train_pack_epoch
from harness.engine.pack_optim import PackOptimizer
from harness.engine.progress import TrialProgress
from harness.engine.stop import StopRequest, TrialInterrupted
from harness.models import count_params
from harness.schedulers import create_scheduler
from harness.tasks import create_task
from harness.trial import TrialOutcome, epoch_row, failed_outcome, now, save_outcome, trial_base, trial_row
from harness.vocabulary import Status

SAVE_EVERY = 5.0  # seconds between the members' checkpoints and epochs parts (a member's last epoch is always saved)

# (trial id, epoch row, verdict) after each member's epoch
MemberEpochCallback = Callable[[str, dict, object], None]
# [(trial id, epoch row, verdict), ...] of every member that ran the epoch, once it has closed
PackEpochCallback = Callable[[list], None]


def run_pack(trials: Sequence[Trial], results_dir: Optional[str | Path] = None, pack_id: str = "pack",
             on_epoch: Optional[MemberEpochCallback] = None, accelerator=None, attempt: int = 1,
             rule: str = "stacked", on_pack_epoch: Optional[PackEpochCallback] = None,
             stop: Optional[StopRequest] = None, extras: Optional[dict[str, dict]] = None) -> list[TrialOutcome]:
    """Train `trials` as one pack and write each member's rows under results_dir as it finishes (a member
    that stops early is written then, not when the pack ends); one outcome per trial, in order. An
    exception in the pack fails the members still running (each keeps its checkpoint). `stop`: as
    harness.trial.run_trial's (the members still training save mid-epoch; TrialInterrupted names them).
    `extras`: trial id -> more trials-row columns for that member (PBT's `pbt_schedule`)."""
    trials = list(trials)
    accelerator = accelerator or make_accelerator(trials[0].config.train.precision)
    results_dir = None if results_dir is None else Path(results_dir)
    t_start = time.perf_counter()
    bases = [{**trial_base(t.config, t.trial_id, t.point, accelerator, attempt, results_dir), "pack_id": pack_id,
              "pack_size": len(trials), **(extras or {}).get(t.trial_id, {})} for t in trials]
    if results_dir is not None:
        store.forget_trials(results_dir, [t.trial_id for t in trials], keep_parts=True)
    finished: dict[str, TrialOutcome] = {}

    def finish(outcome: TrialOutcome, config) -> None:
        outcome.row.update(total_seconds=time.perf_counter() - t_start, finished_at=now())
        if results_dir is not None:
            save_outcome(outcome, config, results_dir)
        finished[outcome.trial_id] = outcome

    try:
        train_pack(trials, results_dir, accelerator, on_epoch, bases, rule, on_pack_epoch, finish, stop)
    except Exception as err:  # noqa: BLE001 - recorded per member, never fatal to the sweep
        for base, trial in zip(bases, trials):
            if trial.trial_id not in finished:
                finish(failed_outcome(base, err), trial.config)
    return [finished[t.trial_id] for t in trials]


def train_pack(trials: Sequence[Trial], results_dir: Optional[Path], accelerator, on_epoch, bases: list[dict],
               rule: str = "stacked", on_pack_epoch: Optional[PackEpochCallback] = None,
               finish: Callable = lambda outcome, config: None, stop: Optional[StopRequest] = None) -> None:
    """The pack's loop, top to bottom (harness.trial.train for K members); `finish(outcome, config)` takes
    each member's outcome as it finishes."""
    configs = [t.config for t in trials]
    cfg0, device = configs[0], accelerator.device
    tc = cfg0.train
    splits = load_dataset(cfg0.dataset)
    tasks = [create_task(cfg) for cfg in configs]

    # the splits on the device once: training batches per seed (order, augmentation), val and test shared
    train0, val_batches, test_batches = tasks[0].batches(splits, device=device, rank=0, world_size=1)
    seeds = list(dict.fromkeys(cfg.seed for cfg in configs))
    train_batches = PackBatches([train0.with_seed(s) for s in seeds], [seeds.index(cfg.seed) for cfg in configs])

    # members built one by one as each is alone: seed, model (init), the RNG where it then stands (dropout)
    modules, generators = [], []
    for task, cfg in zip(tasks, configs):
        set_seed(cfg.seed)
        model, loss_fn, uniform_loss = task.build(splits)
        g = torch.Generator(device=device)
        g.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
        generators.append(g)
        model = model.to(device)
        if tc.channels_last:
            model = model.to(memory_format=torch.channels_last)
        modules.append(model)
    task = tasks[0]
    num_params = count_params(modules[0])
    trainable = sum(p.numel() for p in modules[0].parameters() if p.requires_grad)

    pack = PackedModel(modules, generators, input_shape=splits.input_shape)
    optimizer = PackOptimizer(pack, [cfg.optimizer for cfg in configs], device.type, rule)
    schedules = [create_scheduler(m.shadow, cfg.scheduler, cfg.optimizer.lr, tc.epochs, len(train_batches))
                 for m, cfg in zip(optimizer.members, configs)]
    for member in optimizer.members:
        member.shadow._opt_called = True  # stepped through the pack (torch's schedulers warn otherwise)
    count = getattr(task, "pack_counts", None) or member_counts(task.counts)
    # a pack resumes mid-epoch only when every member stopped at the same step (the pack it was); else each
    # member goes back to its last epoch checkpoint
    marks = [stopped_mark(checkpoint_dir(results_dir, t.trial_id)) if cfg.train.checkpoint else None
             for t, cfg in zip(trials, configs)]
    mid_epoch = marks[0] is not None and all(m == marks[0] for m in marks)
    # what PBT mutates (tune.mutations) keeps each member's config values over its checkpoint's, as alone
    chosen = [[{k.split(".", 1)[1]: g[k.split(".", 1)[1]] for k in cfg.tune.mutations} for g in member.param_groups]
              for cfg, member in zip(configs, optimizer.members)]
    progress = [TrialProgress(cfg, t.trial_id, results_dir, accelerator, module, member, scheduler, step_on,
                              splits.num_classes, uniform_loss, task.metric, task.chance(splits), generator=g,
                              mid_epoch=mid_epoch)
                for t, cfg, module, member, (scheduler, step_on), g
                in zip(trials, configs, modules, optimizer.members, schedules, generators)]
    for member, values in zip(optimizer.members, chosen):
        for group, kept in zip(member.param_groups, values):
            group.update(kept)
    clip = [math.inf if cfg.train.grad_clip is None else cfg.train.grad_clip for cfg in configs]
    status = [Status.COMPLETED] * len(trials)

    def outcome(k: int, test_loss: float, test_counts) -> TrialOutcome:
        test = task.scores(test_counts)
        classes, confusion = task.test_tables(test_counts, splits, trials[k].trial_id)
        row = trial_row(bases[k], task, configs[k], status[k], progress[k].history, progress[k].best["epoch"],
                        num_params, trainable, test_loss, test, splits)
        return TrialOutcome(trials[k].trial_id, status[k], row, progress[k].history, classes, confusion)

    def finish_alone(k: int) -> None:
        """A member that stopped: its best weights on the test split, its rows written now."""
        progress[k].restore_best()
        test_loss, test_counts = evaluate(modules[k], test_batches, loss_fn, accelerator, task.counts,
                                          task.num_counts)
        finish(outcome(k, test_loss, test_counts), configs[k])

    # members resumed from checkpoints may stand at different epochs: each joins the pack at its own; one whose
    # checkpoint already says it stopped (the pack ended before its rows were written) finishes at once
    starts = [p.start_epoch for p in progress]
    for k, p in enumerate(progress):
        verdict = p.resumed_verdict()
        if verdict is not None and verdict.stop:
            status[k], starts[k] = verdict.status, None
            finish_alone(k)
    active: list[int] = []
    saved_at = time.monotonic()
    scheduled = trials[0].config.tune.scheduler != "none"
    for epoch in range(min((s for s in starts if s is not None), default=tc.epochs + 1), tc.epochs + 1):
        joining = [k for k, s in enumerate(starts) if s == epoch]
        if joining:
            active = sorted(active + joining)
            pack.restack(active)
            optimizer.restack()
        if not active:
            continue
        train_batches.active = active
        train_batches.set_epoch(epoch)
        reset_peak_memory(device)
        lrs = [progress[k].epoch_lr(epoch, optimizer.members[k].param_groups[0]["lr"]) for k in active]
        per_batch = [schedules[k][0] for k in active if schedules[k][1] == "batch"]
        clips = None if all(math.isinf(clip[k]) for k in active) else \
            torch.tensor([clip[k] for k in active], device=device)
        start_step = max(progress[k].start_step if epoch == starts[k] else 0 for k in active)  # resumed mid-epoch
        sync(device)
        t0 = time.perf_counter()
        sums, layer_min = train_pack_epoch(pack, train_batches, optimizer, loss_fn, accelerator, per_batch,
                                           clips, count, task.num_counts, start_step=start_step, stop=stop)
        sums = sums.cpu()  # the epoch's one host sync
        layer_min = layer_min.cpu() if layer_min is not None else None
        train_seconds = time.perf_counter() - t0
        before = 0.0
        if start_step:  # each member's sums with its steps before the interruption
            resumed = [progress[k].resumed_sums(epoch, sums[j]) for j, k in enumerate(active)]
            sums, before = torch.stack([r[0] for r in resumed]), resumed[0][1]
            train_seconds += before
        if stop is not None and stop.fired:
            steps = round(sums[0][STEPS].item())
            for j, k in enumerate(active):
                progress[k].save_stopped(epoch, sums[j], train_seconds, steps, lrs[j])
            raise TrialInterrupted([trials[k].trial_id for k in active])
        val_losses, val_counts = evaluate_pack(pack, val_batches, loss_fn, accelerator, count, task.num_counts)
        epoch_seconds = time.perf_counter() - t0 + before
        peak = peak_memory_mb(device)
        # checkpoints and epochs parts every few seconds, decided once for the pack: its members' checkpoints
        # always stand at the same epoch. Under a Tune scheduler every epoch: it may stop or pause the pack
        # at any report, and what it stopped at must be on disk (epochs rows, the checkpoint to resume from)
        save = scheduled or time.monotonic() - saved_at >= SAVE_EVERY
        if save:
            saved_at = time.monotonic()
        stopped, closed = [], []
        for j, k in enumerate(active):
            # each member's throughput is its own images over the pack's time (the pack's: the sum over members)
            row = epoch_row(task, trials[k].trial_id, epoch, sums[j], val_losses[j], val_counts[j], lrs[j],
                            layer_min[j] if layer_min is not None else None, epoch_seconds, train_seconds,
                            sums[j][SAMPLES].item(), peak)
            verdict = progress[k].record(row, save_now=save)
            tasks[k].after_epoch(modules[k], row, verdict, results_dir)
            if on_epoch is not None:
                on_epoch(trials[k].trial_id, row, verdict)
            closed.append((trials[k].trial_id, row, verdict))
            if verdict.stop:
                status[k] = verdict.status
                stopped.append(k)
        if on_pack_epoch is not None:
            on_pack_epoch(closed)
        if stopped:
            active = [k for k in active if k not in stopped]
            for k in stopped:  # shed: its weights stay as they are, its rows are written now
                finish_alone(k)
            if active:
                pack.restack(active)
                optimizer.restack()

    # the members that ran every epoch: each one's best weights, on the test split together
    done = [k for k, s in enumerate(status) if s == Status.COMPLETED]
    if done:
        for k in done:
            progress[k].restore_best()
        pack.restack(done)
        optimizer.restack()
        test_losses, test_counts = evaluate_pack(pack, test_batches, loss_fn, accelerator, count, task.num_counts)
        for j, k in enumerate(done):
            finish(outcome(k, test_losses[j], test_counts[j]), configs[k])

