"""Running trials on Ray Tune: one Tune trial per unit of work, a pack of trials trained as one
program (harness.packed_trial; harness.sweep.packs decides which) or a trial alone (data-parallel
ones over Ray Train workers); per-epoch reports that carry every metric a scheduler needs, ASHA,
retries from checkpoints, GPU placement (logical GPUs included), and `finalize`, which gives every
trial a row.

Ray is imported inside the functions that use it: importing Ray costs seconds, and the pure parts of
the sweep (selection, --dry-run, resume plans) never need it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from harness import store
from harness.config import Trial
from harness.engine.device import make_accelerator
from harness.engine.stop import StopRequest, TrialInterrupted, request_stop
from harness.monitor import Verdict
from harness.packed_trial import run_pack
from harness.sweep.packs import member_cap_for, pack_id, plan_packs, why_not_packed
from harness.sweep.progress import MEMBERS, Progress
from harness.tasks import TASKS
from harness.trial import run_trial
from harness.vocabulary import Status, direction


def sweep_metric(cfg) -> str:
    """The per-epoch metric that ranks trials: tune.metric, else the task's own (val_acc, val_iou)."""
    return cfg.tune.metric or TASKS.get(cfg.task).metric


def tune_metrics(row: dict) -> dict:
    """What one epoch tells Tune: the epoch (the schedulers' time) and every metric a scheduler or the
    progress line may rank by. Each report carries them all, so a scheduler never sees a result without
    its metric (Tune rejects such a result and ends the sweep)."""
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_iou", "val_dice", "lr", "images_per_sec")
    return {k: row[k] for k in keep if k in row}


def report(metrics: dict, cfg) -> None:
    """Tell Tune one epoch's metrics. Under HyperBand, with a checkpoint: Tune pauses a trial only when
    it has one, and restarts it later from it. That checkpoint is a marker (the epoch): the trial's state
    is the harness's own epoch checkpoint (results/checkpoints/<id>), which a restarted trial resumes from."""
    from ray import tune

    if cfg.tune.scheduler != "hyperband":
        tune.report(metrics)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "epoch.json").write_text(json.dumps({"epoch": metrics.get("epoch")}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def run_with_retries(trial: Trial, results_dir: str, max_retries: int, on_epoch=None, accelerator=None,
                     stop: Optional[StopRequest] = None, extra: Optional[dict] = None):
    """Run a trial; when it fails, run it again (at most `max_retries` times more), continuing from its
    last epoch checkpoint: a failed trial keeps its checkpoint. Returns the last outcome."""
    for attempt in range(max_retries + 1):
        outcome = run_trial(trial.config, trial.trial_id, results_dir, trial.point, on_epoch=on_epoch,
                            accelerator=accelerator, attempt=attempt + 1, stop=stop, extra=extra)
        if outcome.status != Status.FAILED:
            break
    return outcome


def run_pack_with_retries(unit: list[Trial], results_dir: str, max_retries: int, on_pack_epoch=None,
                          stop: Optional[StopRequest] = None, extras: Optional[dict[str, dict]] = None):
    """Run a pack; members that failed (the pack raised) run again as a pack, at most `max_retries`
    times more, each from its last checkpoint. Members with a row already (Tune restarting the pack after
    its worker died: a member that stopped early was written when it stopped) do not run again."""
    outcomes = {}
    recorded = store.recorded_statuses(results_dir, [t.trial_id for t in unit])
    todo = [t for t in unit if recorded.get(t.trial_id) in (None, Status.FAILED)]
    if not todo:
        return []
    for attempt in range(max_retries + 1):
        for outcome in run_pack(todo, results_dir, pack_id(unit), attempt=attempt + 1, on_pack_epoch=on_pack_epoch,
                                stop=stop, extras=extras):
            outcomes[outcome.trial_id] = outcome
        todo = [t for t in todo if outcomes[t.trial_id].status == Status.FAILED]
        if not todo:
            break
    return [outcomes[t.trial_id] for t in unit if t.trial_id in outcomes]


def pack_report(closed: list, metric: str, seeds_mean: bool = False) -> dict:
    """What one pack epoch tells Tune: the epoch, the metrics of the member best on the sweep's `metric`,
    and each member's (metrics, status) for the progress line. `seeds_mean` (a pack of one configuration's
    seeds, under a scheduler): `metric` is the members' mean, which the scheduler ranks the pack by."""
    rows = [row for _, row, _ in closed]
    pick = min if direction(metric) == "min" else max
    best = pick(rows, key=lambda r: r[metric] if math.isfinite(r.get(metric, math.nan)) else
                (math.inf if pick is min else -math.inf))
    members = {tid: {"status": str(v.status) if v.stop else "", **tune_metrics(row)} for tid, row, v in closed}
    out = {**tune_metrics(best), MEMBERS: json.dumps(members)}
    if seeds_mean:
        values = [r[metric] for r in rows if math.isfinite(r.get(metric, math.nan))]
        out[metric] = sum(values) / len(values) if values else math.nan
    return out


def run_unless_stopped(stop_path: Path, run: Callable[[StopRequest], None]) -> None:
    """What a Tune trainable runs: `run(stop)`, unless the sweep is stopping already (then nothing starts).
    A trial the stop request interrupted has saved where it stands; the Tune trial just ends, and the
    driver ends the run once its trials have (StopSignals)."""
    stop = StopRequest(stop_path)
    if stop():
        return
    try:
        run(stop)
    except TrialInterrupted:
        pass


def _tune_trainable(units: dict, results_dir: str, workers: int, use_gpu: bool, backend: str, stop_path: Path,
                    rejoin: Optional[dict[str, int]] = None):
    """The function Tune runs per unit: look it up by id and run it, a pack or one trial (data-parallel if
    asked). Every epoch is reported to Tune as it ends; a trial's status is read from its Parquet row. Once
    the driver asks them to stop (`stop_path`, StopSignals), trials save mid-epoch and end with no row.
    `rejoin` (PBT, --resume): unit id -> the perturbation epoch it had reached, which it reports again."""

    def trainable(tune_config: dict) -> None:
        run_unless_stopped(stop_path, lambda stop: run_unit(tune_config, stop))

    def run_unit(tune_config: dict, stop: StopRequest) -> None:
        unit = units[tune_config["trial_id"]]
        trial = unit[0]
        cfg = trial.config
        rejoin_epoch = (rejoin or {}).get(tune_config["trial_id"])
        if workers > 1:  # data-parallel: they do not stop mid-epoch (every rank would have to agree on the step)
            _run_data_parallel(trial, results_dir, workers, use_gpu, backend, tune_config, rejoin_epoch)
        elif cfg.tune.scheduler == "pbt":
            _run_pbt_unit(unit, tune_config, results_dir, stop, rejoin_epoch)
        elif len(unit) > 1:
            run_pack_with_retries(unit, results_dir, cfg.resources.max_retries, stop=stop,
                                  on_pack_epoch=lambda closed: report(pack_report(
                                      closed, sweep_metric(cfg), seeds_mean=cfg.tune.scheduler != "none"), cfg))
        else:
            run_with_retries(trial, results_dir, cfg.resources.max_retries, stop=stop,
                             on_epoch=lambda row, _: report(tune_metrics(row), cfg))

    return trainable


def _run_pbt_unit(unit: list[Trial], tune_config: dict, results_dir: str, stop: StopRequest,
                  rejoin_epoch: Optional[int] = None) -> None:
    """A unit under PBT (harness.sweep.pbt), a trial alone or a pack of one configuration's seeds: started
    from the checkpoint Tune gives it, with the values it is given, each member's schedule in its row.
    `rejoin_epoch` (--resume): the perturbation epoch it stopped at (_rejoin)."""
    from harness.sweep import pbt

    results = Path(results_dir)
    unit, schedules = pbt.start(unit, tune_config, results)
    cfg = unit[0].config
    extras = {tid: {"pbt_schedule": json.dumps(schedule)} for tid, schedule in schedules.items()}

    def on_pack_epoch(closed):
        pbt.report(pack_report(closed, sweep_metric(cfg), seeds_mean=True), unit, [tid for tid, _, _ in closed],
                   results, schedules)

    def on_epoch(row, _verdict):
        pbt.report(tune_metrics(row), unit, [unit[0].trial_id], results, schedules)

    _rejoin(unit, results, rejoin_epoch, schedules)
    if len(unit) > 1:
        run_pack_with_retries(unit, results_dir, cfg.resources.max_retries, stop=stop, extras=extras,
                              on_pack_epoch=on_pack_epoch)
    else:
        run_with_retries(unit[0], results_dir, cfg.resources.max_retries, stop=stop, extra=extras[unit[0].trial_id],
                         on_epoch=on_epoch)


def _rejoin(unit: list[Trial], results: Path, epoch: Optional[int], schedules: dict[str, list[dict]]) -> None:
    """A PBT unit that --resume found waiting at a perturbation epoch (`epoch`; None: not one), started by
    Tune without a checkpoint: it reports that epoch's rows again, with its snapshot, so that synchronous
    PBT ranks it with the others there before it trains on."""
    from ray import tune

    from harness.sweep import pbt

    if not epoch or tune.get_checkpoint() is not None:
        return
    rows = pbt.rows_at(unit, results, epoch)
    if len(unit) > 1:
        metrics = pack_report([(tid, row, Verdict()) for tid, row in rows.items()], sweep_metric(unit[0].config),
                              seeds_mean=True)
    else:
        metrics = tune_metrics(rows[unit[0].trial_id])
    pbt.report(metrics, unit, list(rows), results, schedules)


def _run_data_parallel(trial: Trial, results_dir: str, workers: int, use_gpu: bool, backend: str,
                       tune_config: dict, rejoin_epoch: Optional[int] = None) -> None:
    """A data-parallel trial: a Ray Train TorchTrainer with Accelerate inside each worker. Every rank
    reports each epoch's row (the same numbers: metrics are summed across ranks); rank 0's report reaches
    Tune through the trial's thread (harness.sweep.data_parallel.Relay), so schedulers see, prune, pause
    and copy it like any other trial. Under PBT rank 0 attaches the trial's snapshot at each perturbation
    epoch (a Ray Train checkpoint, which the relay hands to Tune); `rejoin_epoch` as in _run_pbt_unit."""
    from ray import tune
    from ray.train import RunConfig as TrainRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness.sweep.data_parallel import Relay

    cfg = trial.config
    schedules = None
    if cfg.tune.scheduler == "pbt":
        from harness.sweep import pbt

        [trial], schedules = pbt.start([trial], tune_config, Path(results_dir))
        _rejoin([trial], Path(results_dir), rejoin_epoch, schedules)
    relay = Relay()

    def loop(_config):
        from ray import train

        accelerator = make_accelerator(trial.config.train.precision)

        def on_epoch(row, _verdict):
            if schedules is not None:
                pbt.report_from_worker(tune_metrics(row), trial, Path(results_dir), schedules,
                                       accelerator.is_main_process)
            else:
                train.report(tune_metrics(row))
            if accelerator.is_main_process:
                relay.wait_for_tune()  # Tune may pause, copy or stop the trial here: no further until it has said

        extra = {"pbt_schedule": json.dumps(schedules[trial.trial_id])} if schedules is not None else None
        run_with_retries(trial, results_dir, trial.config.resources.max_retries, on_epoch=on_epoch,
                         accelerator=accelerator, extra=extra)

    def tell_tune(metrics: dict, folder: Optional[str]) -> None:
        if folder is None:
            report(metrics, cfg)
        else:  # rank 0's PBT snapshot
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    trainer = TorchTrainer(
        loop,
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cfg.resources.cpus_per_trial}),
        run_config=TrainRunConfig(name=f"dp-{trial.trial_id}", storage_path=str(Path(results_dir, "_ray").resolve()),
                                  callbacks=[relay.callback()]),
    )
    relay.run(trainer, tell_tune)


def make_callback(progress: Progress, results_dir: Path, unit_of: Callable[[dict], tuple[str, list[Trial]]],
                  signals: "StopSignals", on_finished: Optional[Callable[[list[str]], None]] = None):
    """A Tune callback that keeps the progress line, and calls `on_finished(trial_ids)` in the driver as
    trials finish (their rows are written then, except a trial a scheduler stopped: finalize writes it).
    `unit_of(tune_config)` names a Tune trial's unit of work and gives its trials; `signals` are installed
    once Tune has set up its own handlers."""
    from ray import tune

    class ProgressCallback(tune.Callback):
        def setup(self, **info):
            signals.install()

        def on_trial_start(self, iteration, trials, trial, **info):
            unit, members = unit_of(trial.config)
            progress.unit_started(unit)
            for t in members:
                if t.trial_id not in progress.done:
                    progress.start(t.trial_id)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.result(unit_of(trial.config)[0], result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            # a trial that ended by itself wrote its row; one a scheduler stopped has none yet (finalize)
            ended(trial.config, Status.EARLY_STOPPED)

        def on_trial_error(self, iteration, trials, trial, **info):
            ended(trial.config, Status.FAILED)

    def ended(config: dict, without_row: str) -> None:
        """A Tune trial ended: each of its trials not yet counted finishes with its row's status."""
        unit, members = unit_of(config)
        progress.unit_ended(unit)
        recorded = store.recorded_statuses(results_dir, [t.trial_id for t in members if t.trial_id not in progress.done])
        status = {t.trial_id: recorded.get(t.trial_id) for t in members if t.trial_id not in progress.done}
        if progress.interrupted:  # stopped on a signal: a trial with no row is left for --resume, not finished
            status = {tid: s for tid, s in status.items() if s is not None}
        finished = list(status)
        for tid in finished:
            progress.finish(tid, status[tid] or without_row)
        if on_finished is not None and finished:
            try:
                on_finished(finished)
            except Exception as err:  # noqa: BLE001 - what listens (report, trackers) never stops the sweep
                print(f"warning: {type(err).__name__}: {err}", file=sys.stderr, flush=True)

    return ProgressCallback()


class Interrupted(Exception):
    """The sweep was told to stop (SIGUSR1: SLURM's warning before the time limit; SIGTERM: a preemption):
    its running trials saved where they stood, mid-epoch (StopSignals), and have no row, so that a
    --resume continues them."""

    def __init__(self, signal_name: str, left: list[str]):
        super().__init__(f"interrupted by {signal_name}: {len(left)} trial(s) left, which continue where they "
                         f"stopped on --resume")
        self.signal_name, self.left = signal_name, left


STOP_GRACE = 20.0  # seconds trials have to save where they stand after a stop signal, before Tune ends them


def stop_file(results_dir: Path) -> Path:
    """This driver's stop request (harness.engine.stop): its own host and pid, since array tasks sharing
    a results folder by claims stop one at a time. Cleared now: a pid can come back after a requeue."""
    import socket

    path = results_dir.resolve() / "_stop" / f"{socket.gethostname()}-{os.getpid()}"
    path.unlink(missing_ok=True)
    return path


class StopSignals:
    """In the driver, while Tune runs: on SIGUSR1 or SIGTERM (SLURM's warning before the time limit, a
    preemption), ask the running trials to stop (the stop file), give them up to STOP_GRACE seconds to
    save mid-epoch and end, then end the run through Tune's own SIGUSR1 handler; a second signal ends it
    at once. The signal is noted on `progress`: run_on_tune then raises Interrupted instead of giving
    unfinished trials a row. `wait=False` (data-parallel trials, which cannot stop mid-epoch): end the run
    at once, each trial keeping its last epoch checkpoint."""

    def __init__(self, progress: Progress, path: Path, wait: bool = True):
        self.progress, self.path, self.wait = progress, path, wait
        self._closed = self._waiter = None

    def __getstate__(self):  # Tune pickles its callbacks, and this with them: no thread, no event
        return {**self.__dict__, "_closed": None, "_waiter": None}

    def install(self) -> None:
        """Wrap Tune's SIGUSR1 handler (Tune installs it before it sets up callbacks) and handle SIGTERM alike."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        tune_stop = signal.getsignal(signal.SIGUSR1)
        self._closed = threading.Event()

        def on_signal(signum, frame):
            first = self.progress.interrupted is None
            if first:
                self.progress.interrupted = signal.Signals(signum).name
            if first and self.wait:
                request_stop(self.path)
                self._waiter = threading.Thread(target=self._end_when_saved, daemon=True)
                self._waiter.start()
            elif callable(tune_stop):
                tune_stop(signal.SIGUSR1, frame)

        signal.signal(signal.SIGUSR1, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    def _end_when_saved(self) -> None:
        """Wait until the units running at the signal have ended (or STOP_GRACE), then signal the driver
        again: Tune's handler must run in the main thread."""
        import signal

        running = set(self.progress.units)
        deadline = time.monotonic() + STOP_GRACE
        while running & self.progress.units and time.monotonic() < deadline and not self._closed.is_set():
            time.sleep(0.1)
        if not self._closed.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)

    def close(self) -> None:
        """The run is over: no more signal from the waiter; the stop file goes."""
        if self._closed is not None:
            self._closed.set()
        if self._waiter is not None:
            self._waiter.join()
        self.path.unlink(missing_ok=True)


def fit(tuner, progress: Progress, trials: Callable[[], list[Trial]] | list[Trial], signals: StopSignals):
    """tuner.fit(), with the driver's stop-signal handlers put back and the progress line closed after;
    raises Interrupted when a stop signal ended it (`trials`: the sweep's, or a function giving them)."""
    handlers = stop_signal_handlers()
    try:
        grid = tuner.fit()
    finally:
        signals.close()
        progress.close()
        restore_stop_signals(handlers)
    check_interrupted(progress, trials() if callable(trials) else trials)
    return grid


def stop_signal_handlers() -> dict:
    """The driver's SIGUSR1/SIGTERM handlers before Tune's run (Tune replaces SIGUSR1's and never puts it
    back): restore_stop_signals puts them back."""
    import signal

    return {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM)}


def restore_stop_signals(handlers: dict) -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def check_interrupted(progress: Progress, trials: list[Trial]) -> None:
    """Raise Interrupted when a stop signal ended the run (StopSignals)."""
    if progress.interrupted:
        raise Interrupted(progress.interrupted, [t.trial_id for t in trials if t.trial_id not in progress.done])


def make_scheduler(cfg, pbt_start: int = 0):
    """Ray Tune's scheduler for tune.scheduler (None for none). Every one keys on the epoch and the sweep's
    metric; a trial that reaches its last epoch finishes by itself (best weights on the test split, its row).
    `pbt_start`: the perturbation epoch a resumed PBT population has passed (harness.sweep.pbt.make_pbt)."""
    from ray.tune import schedulers

    metric, mode = sweep_metric(cfg), direction(sweep_metric(cfg))
    if cfg.tune.scheduler == "asha":
        # stop_last_trials=False: stopping a trial at its last epoch would lose its test metrics
        return schedulers.ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=cfg.train.epochs,
                                        grace_period=cfg.tune.grace_period,
                                        reduction_factor=cfg.tune.reduction_factor, stop_last_trials=False)
    if cfg.tune.scheduler == "hyperband":
        # synchronous HyperBand pauses trials and resumes them from their checkpoints (report());
        # with search: bohb, the variant BOHB's searcher is made for
        kind = schedulers.HyperBandForBOHB if cfg.tune.search == "bohb" else schedulers.HyperBandScheduler
        return kind(time_attr="epoch", metric=metric, mode=mode, max_t=cfg.train.epochs,
                    reduction_factor=cfg.tune.reduction_factor, stop_last_trials=False)
    if cfg.tune.scheduler == "median_stopping":
        return schedulers.MedianStoppingRule(time_attr="epoch", metric=metric, mode=mode,
                                             grace_period=cfg.tune.grace_period, min_samples_required=3)
    if cfg.tune.scheduler == "pbt":
        from harness.sweep.pbt import make_pbt

        return make_pbt(cfg, metric, mode, pbt_start)
    return None


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
        return torch.cuda.is_available()

    try:
        return bool(ray.get(probe.remote(), timeout=timeout))
    except ray.exceptions.GetTimeoutError:  # every GPU busy: assume what a GPU cluster normally is
        return True


def plan_units(trials: list[Trial], gpus: float, no_pack: bool = False) -> list[list[Trial]]:
    """The sweep's packs (harness.sweep.packs) for this Ray cluster: enough units to keep every CPU or GPU
    share busy, each pack within what a share's memory holds."""
    import ray

    cfg = trials[0].config
    resources = ray.cluster_resources()
    gpu_memory = _gpu_memory() if gpus > 0 else 0.0  # 0: logical GPUs (no CUDA device): trials train on CPUs
    if gpus > 0:
        slots = int(resources.get("GPU", 0) / gpus)
        budget = (gpu_memory or _free_memory()) * gpus * 0.5
    else:
        slots = int(resources.get("CPU", 1) / cfg.resources.cpus_per_trial)
        budget = _free_memory() * 0.5 / max(1, slots)
    if cfg.resources.max_concurrent:
        slots = min(slots, cfg.resources.max_concurrent)
    return plan_packs(trials, slots=max(1, slots), member_cap=member_cap_for(budget), no_pack=no_pack)


def _gpu_memory() -> float:
    """Bytes of memory of one of the cluster's GPUs (asked of a GPU task; 0 when it has no CUDA device)."""
    import ray

    @ray.remote(num_gpus=0.001, num_cpus=0)
    def probe() -> float:
        return float(torch.cuda.get_device_properties(0).total_memory) if torch.cuda.is_available() else 0.0

    try:
        return ray.get(probe.remote(), timeout=60)
    except ray.exceptions.GetTimeoutError:  # every GPU busy: size packs by the host's memory
        return _free_memory()


def _free_memory() -> float:
    import psutil

    return float(psutil.virtual_memory().available)


def placement(cfg) -> tuple[float, bool]:
    """GPUs per trial on the Ray cluster (resources.gpus_per_trial; 1 where the cluster has GPUs when unset)
    and whether they are CUDA devices, with a warning for each setting the cluster cannot honour."""
    import ray

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
    return gpus, cuda


def claim_batch(cfg, no_pack: bool = False) -> int:
    """How many trials a process sharing a sweep by claims (harness.sweep.claims) takes at a time: one per
    trial slot of its Ray cluster, eight per slot where trials pack."""
    import ray

    resources = ray.cluster_resources()
    gpus = cfg.resources.gpus_per_trial
    if gpus and resources.get("GPU", 0):
        slots = resources["GPU"] / gpus
    else:
        slots = resources.get("CPU", 1) / (cfg.resources.cpus_per_trial * cfg.resources.workers_per_trial)
    return max(1, int(slots)) * (1 if why_not_packed(cfg, no_pack) else 8)


def trial_resources(cfg, gpus: float) -> dict:
    """What one Tune trial asks for: a trial's CPUs and GPUs, or (data-parallel) almost nothing: its driver
    function is light, and Ray Train asks for each worker's resources."""
    if cfg.resources.workers_per_trial > 1:
        return {"cpu": 0.01}
    return {"cpu": cfg.resources.cpus_per_trial, "gpu": gpus}


def run_config(cfg, results_dir: Path, callback):
    """Tune's RunConfig for a sweep: storage under RESULTS_DIR/_ray, the progress callback, retries."""
    from ray import tune
    from ray.tune.progress_reporter import TrialProgressCallback

    class Silent(TrialProgressCallback):
        """In place of the one Tune adds, which prints "Trial ... completed. Last result:" for a trial that
        ends without a result (one started as the sweep stops) whatever the verbosity: the sweep's progress
        line says what happens."""

        def on_trial_result(self, *args, **kwargs) -> None:
            pass

        def on_trial_complete(self, *args, **kwargs) -> None:
            pass

        def on_trial_error(self, *args, **kwargs) -> None:
            pass

    return tune.RunConfig(
        name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
        storage_path=str((results_dir / "_ray").resolve()),
        verbose=0, callbacks=[callback, Silent()],
        # a trial whose worker died (out of memory, a lost node) starts again from its checkpoint
        failure_config=tune.FailureConfig(max_failures=cfg.resources.max_retries),
        # hyperband's markers (report()); PBT's copies of trials' states (harness.sweep.pbt), of which Tune
        # warns that keeping 2 or fewer can lose one a trial is about to copy
        checkpoint_config=tune.CheckpointConfig(num_to_keep=3 if cfg.tune.scheduler == "pbt" else 1),
    )


def run_on_tune(trials: list[Trial], results_dir: Path, *, address: Optional[str] = None,
                max_concurrent: Optional[int] = None, stream=None, no_pack: bool = False,
                on_finished: Optional[Callable[[list[str]], None]] = None) -> dict[str, str]:
    """Run `trials` as Tune trials, packed where they can be; returns trial_id -> status for every trial
    (from the Parquet). `on_finished(trial_ids)` runs in the driver as trials finish (a live report)."""
    from ray import tune

    cfg = trials[0].config
    init_ray(address)
    gpus, cuda = placement(cfg)
    workers = cfg.resources.workers_per_trial
    units = {pack_id(u): u for u in plan_units(trials, gpus, no_pack)}
    packed = [u for u in units.values() if len(u) > 1]
    if packed:
        print(f"{len(trials)} trials in {len(units)} programs: {sum(map(len, packed))} trials in {len(packed)} packs "
              f"of {min(map(len, packed))}-{max(map(len, packed))}", flush=True)
    elif why_not_packed(cfg, no_pack) and len(trials) > 1:
        print(f"trials run one by one ({why_not_packed(cfg, no_pack)})", flush=True)
    stop_path = stop_file(results_dir)
    space, start, rejoin = {"trial_id": tune.grid_search(list(units))}, 0, None
    if cfg.tune.scheduler == "pbt":  # a resumed population starts where it stood (harness.sweep.pbt)
        from harness.sweep import pbt

        completed = pbt.completed_epochs(units, results_dir)
        start = pbt.population_epoch(completed, cfg.tune.perturbation_interval)
        space = pbt.param_space(units, results_dir)
        rejoin = {uid: epoch for uid, epoch in completed.items()
                  if start < epoch < cfg.train.epochs and pbt.perturbation_epoch(epoch, cfg)}
    scheduler = make_scheduler(cfg, pbt_start=start)
    # data-parallel trials: NCCL between CUDA devices, gloo otherwise (logical GPUs, CPUs)
    trainable = _tune_trainable(units, str(results_dir.resolve()), workers, use_gpu=gpus > 0,
                                backend="nccl" if cuda else "gloo", stop_path=stop_path, rejoin=rejoin)
    if workers > 1:  # Tune ending such a trial ends its Train run (harness.sweep.data_parallel)
        from harness.sweep import data_parallel

        trainable = data_parallel.trainable(trainable)
    resources = trial_resources(cfg, gpus)
    trainable = tune.with_resources(trainable, resources)
    progress = Progress(len(trials), sweep_metric(cfg), stream)
    signals = StopSignals(progress, stop_path, wait=workers <= 1)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or cfg.resources.max_concurrent,
                                    # a worker serves trial after trial: its imports (torch, torch._dynamo) are paid
                                    # once per worker, not per trial (2.65 s -> 0.15-0.25 s a trial on 2 CPUs,
                                    # `python -m harness.bench --ray`); every trial seeds itself and builds a
                                    # fresh Accelerator. Not for data-parallel trials: one that Tune ends
                                    # aborts its Train run in its actor's cleanup (data_parallel.trainable)
                                    scheduler=scheduler, reuse_actors=workers <= 1),
        run_config=run_config(cfg, results_dir, make_callback(
            progress, results_dir, lambda config: (config["trial_id"], units[config["trial_id"]]), signals,
            on_finished)),
    )
    grid = fit(tuner, progress, trials, signals)
    unit_word = "program(s)" if packed else "trial(s)"
    print(f"at most {progress.peak_units} {unit_word} ran at once ({resources_text(resources, workers)} each)", flush=True)
    errors = tune_errors(grid, lambda config: units.get(config.get("trial_id"), []))
    return finalize(trials, results_dir, errors)


def tune_errors(grid, trials_of: Callable[[dict], list[Trial]]) -> dict[str, str]:
    """trial_id -> the first line of the error of each Tune trial that raised, for every trial of its unit
    (`trials_of(tune_config)`): what finalize records for a trial that wrote no row itself."""
    errors = {}
    for result in grid:
        if result.error is not None:
            for t in trials_of(result.config or {}):
                errors[t.trial_id] = f"{type(result.error).__name__}: {result.error}".splitlines()[0][:500]
    return errors


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
        status = Status.FAILED if error else Status.EARLY_STOPPED
        row = {"trial_id": t.trial_id, "sweep": t.config.name, "status": status, "error": error,
               "epochs_run": int(len(history)), "point": json.dumps(t.point, sort_keys=True),
               "stopped_by": None if error else "scheduler", "config": t.config.model_dump_json(), **t.config.flat()}
        if not history.empty:  # its task's best scores, so that it counts on the leaderboard (best_val_iou ...)
            scores = TASKS.get(t.config.task).columns["best_val"]
            row.update({f"best_val_{k}": float(history[f"val_{k}"].max()) for k in scores if f"val_{k}" in history},
                       best_val_loss=float(history["val_loss"].min()),
                       best_epoch=int(history.loc[history["val_loss"].idxmin(), "epoch"]))
        store.write_part(results_dir, "trials", t.trial_id, [row])
        if status == Status.EARLY_STOPPED:  # pruned: it will not be resumed, so its checkpoint can go
            shutil.rmtree(results_dir / "checkpoints" / t.trial_id, ignore_errors=True)
        have[t.trial_id] = status
    return {t.trial_id: have[t.trial_id] for t in trials}
