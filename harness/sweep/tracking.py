"""Experiment trackers, opt-in per sweep (`tracking:` in the sweep file): TensorBoard, MLflow and W&B get
every trial's config, its epoch rows and its final row, one tracker run per trial named by its trial id
and grouped by the sweep's name.

    tracking:
      tensorboard: true                               # RESULTS_DIR/tensorboard/<trial_id>/
      mlflow: {tracking_uri: http://127.0.0.1:5000}   # experiment: the sweep's name
      wandb: {mode: offline}                          # RESULTS_DIR/wandb/offline-run-*/, project: the sweep's name

Why neither Tune's logger callbacks nor Accelerate's trackers: Tune sees one Tune trial per *pack* of
many trials (harness.sweep.packs packs trials into one program), and Accelerate's trackers live inside
the training process. So the harness feeds the trackers from the rows it already stores (Parquet,
harness.store), in the sweep driver, as each trial finishes (run_on_tune's `on_finished`): the same for
packed, data-parallel and SLURM-array trials, and a tracker failure can never hurt training.

    check_trackers(cfg.tracking)           # each tracker's package imports, else ConfigError (exit 2)
    trackers = Trackers(cfg.tracking, results_dir, sweep_name)
    trackers.log_trials(["trial-a"])       # from on_finished: queued, sent by one background thread
    trackers.close()                       # sends what is queued (and trials whose row came later), flushes

A trial is sent once per sweep command (a --resume sends only the trials it runs). A tracker that fails
prints one warning line and is off for the rest of the sweep; the sweep goes on.
"""

from __future__ import annotations

import importlib
import json
import math
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness import store
from harness.config import ConfigError, flatten
from harness.config.schema import TrackingConfig

INSTALL = 'pip install -e ".[trackers]"'
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # tracker -> the package it imports


def enabled(tracking: TrackingConfig) -> list[str]:
    """The trackers a sweep turns on, in a fixed order."""
    on = {"tensorboard": tracking.tensorboard, "mlflow": tracking.mlflow is not None,
          "wandb": tracking.wandb is not None and tracking.wandb.mode != "disabled"}
    return [name for name in PACKAGES if on[name]]


def check_trackers(tracking: TrackingConfig) -> None:
    """Every tracker the sweep turns on can be imported, else a ConfigError naming the install command
    (the CLI calls this before any trial runs)."""
    for name in enabled(tracking):
        try:
            importlib.import_module(PACKAGES[name])
        except ImportError as err:
            raise ConfigError(f"tracking.{name} needs {PACKAGES[name]}: {INSTALL} ({err})") from None


# ---- the rows a tracker gets --------------------------------------------------------------------

def trial_rows(results_dir: Path, table: str, trial_id: str) -> pd.DataFrame:
    """One trial's rows of one table: its part file while the sweep runs (cheap), else from the whole table."""
    path = store.part_path(results_dir, table, trial_id)
    try:
        return pq.read_table(path).to_pandas()
    except (FileNotFoundError, pa.ArrowInvalid):
        rows = store.read_table(results_dir, table)
        return rows[rows["trial_id"] == trial_id] if not rows.empty else rows


def number(value: Any) -> Optional[float]:
    """A finite int/float as a float (bools and NaN, None, strings: None)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


EPOCH_METRICS = [f.name for f in store.EPOCH_SCHEMA if f.type in (store.FLOAT, store.INT) and f.name != "epoch"]
FINAL_METRICS = [f.name for f in store.TRIAL_SCHEMA if f.type in (store.FLOAT, store.INT)]


class TrialRecord:
    """What the trackers get of one trial: its id, status, nested and flat config, epochs and final metrics."""

    def __init__(self, row: dict, epochs: pd.DataFrame):
        self.trial_id: str = row["trial_id"]
        self.status: str = row.get("status") or "unknown"
        self.config: dict = json.loads(row["config"]) if row.get("config") else {}
        self.flat: dict = flatten(self.config)
        self.epochs: list[tuple[int, dict[str, float]]] = []
        for e in epochs.sort_values("epoch").to_dict("records") if not epochs.empty else []:
            metrics = {k: v for k in EPOCH_METRICS if (v := number(e.get(k))) is not None}
            self.epochs.append((int(e["epoch"]), metrics))
        self.final = {k: v for k in FINAL_METRICS if (v := number(row.get(k))) is not None}
        self.last_step = self.epochs[-1][0] if self.epochs else 0


def read_record(results_dir: Path, trial_id: str) -> Optional[TrialRecord]:
    """The trial's record, or None while it has no trials row (a trial a scheduler stopped: finalize writes it)."""
    trials = trial_rows(results_dir, "trials", trial_id)
    if trials.empty:
        return None
    return TrialRecord(trials.iloc[-1].to_dict(), trial_rows(results_dir, "epochs", trial_id))


def scalar(value: Any) -> Any:
    """A config value as a tracker parameter: numbers, strings and bools as they are, the rest as JSON text."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


# ---- the trackers ------------------------------------------------------------------------------

class TensorBoard:
    name = "tensorboard"

    def __init__(self, results_dir: Path, sweep: str):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard

        self.writer_class = SummaryWriter
        self.root = results_dir / "tensorboard"

    def log(self, t: TrialRecord) -> None:
        writer = self.writer_class(log_dir=str(self.root / t.trial_id))
        try:
            for step, metrics in t.epochs:
                for key, value in metrics.items():
                    writer.add_scalar(key, value, step)
            for key, value in t.final.items():
                writer.add_scalar(f"final/{key}", value, t.last_step)
            writer.add_text("status", t.status, t.last_step)
            writer.add_text("config", "```\n" + json.dumps(t.config, indent=1, sort_keys=True) + "\n```", 0)
            writer.add_hparams({k: scalar(v) for k, v in t.flat.items()},
                               {f"hparam/{k}": v for k, v in t.final.items()}, run_name=".")
        finally:
            writer.close()

    def close(self) -> None:
        pass


class Mlflow:
    name = "mlflow"

    def __init__(self, results_dir: Path, sweep: str, uri: Optional[str], experiment: Optional[str]):
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_name = experiment or sweep
        self.sweep = sweep
        self.experiment_id: Optional[str] = None

    def experiment(self) -> str:
        if self.experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment_name)
        return self.experiment_id

    def log(self, t: TrialRecord) -> None:
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        tags = {"sweep": self.sweep, "status": t.status, "trial_id": t.trial_id}
        run = self.client.create_run(self.experiment(), run_name=t.trial_id, tags=tags)
        run_id = run.info.run_id
        params = [self.Param(k, str(scalar(v))[:MAX_PARAM_VAL_LENGTH]) for k, v in sorted(t.flat.items())]
        ms = run.info.start_time or 0
        metrics = [self.Metric(k, v, ms, step) for step, values in t.epochs for k, v in values.items()]
        metrics += [self.Metric(k, v, ms, t.last_step) for k, v in t.final.items()]
        for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=params[i:i + MAX_PARAMS_TAGS_PER_BATCH])
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[i:i + MAX_METRICS_PER_BATCH])
        self.client.set_terminated(run_id, status="FAILED" if t.status == store.Status.FAILED else "FINISHED")

    def close(self) -> None:
        pass


class Wandb:
    name = "wandb"

    def __init__(self, results_dir: Path, sweep: str, mode: str, project: Optional[str], entity: Optional[str],
                 folder: Optional[str]):
        import wandb

        self.wandb = wandb
        self.sweep = sweep
        self.project = project or sweep
        self.entity = entity
        self.mode = mode
        self.dir = Path(folder) if folder else results_dir  # W&B writes its runs to DIR/wandb/
        self.dir.mkdir(parents=True, exist_ok=True)

    def log(self, t: TrialRecord) -> None:
        # the trial ran elsewhere: no system metrics, console, code or git state of the driver
        settings = self.wandb.Settings(silent=True, console="off", save_code=False, disable_git=True,
                                       x_disable_stats=True, x_disable_meta=True, disable_job_creation=True)
        run = self.wandb.init(project=self.project, entity=self.entity, group=self.sweep, name=t.trial_id,
                              dir=str(self.dir), mode=self.mode, config=t.config, tags=[t.status],
                              reinit="create_new", settings=settings)
        try:
            for step, metrics in t.epochs:
                run.log(metrics, step=step)
            run.summary.update({**t.final, "status": t.status})
        finally:
            run.finish(exit_code=1 if t.status == store.Status.FAILED else 0)

    def close(self) -> None:
        pass


def build(name: str, tracking: TrackingConfig, results_dir: Path, sweep: str):
    if name == "tensorboard":
        return TensorBoard(results_dir, sweep)
    if name == "mlflow":
        return Mlflow(results_dir, sweep, tracking.mlflow.tracking_uri, tracking.mlflow.experiment)
    w = tracking.wandb
    return Wandb(results_dir, sweep, w.mode, w.project, w.entity, w.dir)


class Trackers:
    """The sweep's trackers, fed by one background thread (the Tune driver's loop never waits on a tracker)."""

    def __init__(self, tracking: TrackingConfig, results_dir: str | Path, sweep: str, stream=None):
        self.tracking = tracking
        self.results_dir = Path(results_dir)
        self.sweep = sweep
        self.stream = stream or sys.stderr
        self.names = enabled(tracking)
        self.backends: Optional[list] = None  # built in the thread, on the first trial
        self.sent: set[str] = set()
        self.waiting: list[str] = []  # finished without a trials row yet (finalize writes it)
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        self.thread.start()

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks (and so this, through on_finished) when it starts: a copy without the
        thread; only the driver's own object sends anything."""
        return {**self.__dict__, "queue": None, "thread": None, "stream": None}

    def log_trials(self, trial_ids: list[str]) -> None:
        """Send these trials (finished, their rows written) to every tracker, in the background."""
        self.queue.put(list(trial_ids))

    def close(self) -> None:
        """Send what is queued and the trials whose row came later, then flush and close every tracker."""
        self.queue.put(None)
        self.thread.join()

    # -- the thread

    def _warn(self, name: str, err: BaseException) -> None:
        text = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        print(f"warning: tracking.{name} failed ({text}); it is off for the rest of the sweep",
              file=self.stream, flush=True)

    def _start(self) -> None:
        self.backends = []
        for name in self.names:
            try:
                self.backends.append(build(name, self.tracking, self.results_dir, self.sweep))
            except Exception as err:  # noqa: BLE001 - a tracker never fails the sweep
                self._warn(name, err)

    def _send(self, trial_ids: list[str], last: bool = False) -> None:
        for tid in trial_ids:
            if tid in self.sent:
                continue
            try:
                record = read_record(self.results_dir, tid)
            except Exception as err:  # noqa: BLE001
                print(f"warning: tracking: could not read trial {tid}'s rows ({type(err).__name__}: {err})",
                      file=self.stream, flush=True)
                continue
            if record is None:
                if not last and tid not in self.waiting:
                    self.waiting.append(tid)
                continue
            self.sent.add(tid)
            if self.backends is None:
                self._start()
            for backend in list(self.backends):
                try:
                    backend.log(record)
                except Exception as err:  # noqa: BLE001 - a tracker never fails the sweep
                    self._warn(backend.name, err)
                    self.backends.remove(backend)

    def _work(self) -> None:
        while (ids := self.queue.get()) is not None:
            self._send(ids)
        self._send(self.waiting, last=True)
        for backend in self.backends or []:
            try:
                backend.close()
            except Exception as err:  # noqa: BLE001
                self._warn(backend.name, err)
