"""Experiment trackers (harness.sweep.tracking): one small real sweep with TensorBoard, MLflow (a real
local MLflow server, SQLite store, on 127.0.0.1) and W&B (offline) on, each read back with the
tracker's own reader and compared with the sweep's Parquet; and a tracker's missing package is a
one-line exit 2 before any trial runs."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness import store
from harness.config import ConfigError, load_sweep

SWEEP = """
name: tracked
dataset: {{name: synthetic, num_train: 512, num_val: 128, num_test: 128, shape: [1, 8, 8], num_classes: 4}}
model: {{arch: mlp, widths: [16]}}
optimizer: {{name: adam, lr: 0.01}}
train: {{epochs: 2, batch_size: 64}}
health: {{enabled: false}}
resources: {{cpus_per_trial: 1}}
seeds: [0]
grid:
  optimizer.lr: [0.01, 0.001]
tracking:
  tensorboard: true
  mlflow: {{tracking_uri: "{uri}"}}
  wandb: {{mode: offline}}
"""

# no tracker may call out: W&B offline, MLflow only to the test's server
QUIET = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_CODE": "true", "WANDB_ERROR_REPORTING": "false",
         "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend store): its URI."""
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{home / 'mlflow.db'}", "--default-artifact-root", str(home / "artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=home, stdout=open(home / "server.log", "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **QUIET}, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the MLflow server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield uri
    proc.terminate()  # the server and its worker: the session it leads
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory, mlflow_server):
    """The sweep run once with all three trackers on: (results dir, trials, epochs, MLflow URI)."""
    tmp = tmp_path_factory.mktemp("tracked")
    path = tmp / "sweep.yaml"
    path.write_text(SWEEP.format(uri=mlflow_server))
    proc = subprocess.run([sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp), "--no-report"],
                          capture_output=True, text=True, timeout=600, cwd=tmp, env={**os.environ, **QUIET})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "warning: tracking" not in proc.stderr, proc.stderr[-3000:]
    results = tmp / "tracked"
    trials = store.read_table(results, "trials").set_index("trial_id")
    epochs = store.read_table(results, "epochs")
    assert len(trials) == 2 and len(epochs) == 4
    return results, trials, epochs, mlflow_server


def val_acc(epochs, trial_id) -> dict[int, float]:
    rows = epochs[epochs["trial_id"] == trial_id]
    return dict(zip(rows["epoch"].astype(int), rows["val_acc"].astype(float)))


def test_tensorboard_event_files_hold_each_trials_epochs_and_config(tracked_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results, trials, epochs, _ = tracked_sweep
    assert sorted(p.name for p in (results / "tensorboard").iterdir()) == sorted(trials.index)
    for tid, row in trials.iterrows():
        acc = EventAccumulator(str(results / "tensorboard" / tid), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        got = {e.step: e.value for e in acc.Scalars("val_acc")}
        assert got == pytest.approx(val_acc(epochs, tid))
        assert sorted(got) == [1, 2]
        assert acc.Scalars("final/test_acc")[0].value == pytest.approx(row["test_acc"])
        texts = {tag: acc.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in ("status/text_summary",
                                                                                          "config/text_summary")}
        assert texts["status/text_summary"] == "completed"
        assert f'"lr": {row["optimizer.lr"]}' in texts["config/text_summary"]


def test_mlflow_server_holds_one_run_per_trial(tracked_sweep):
    from mlflow.tracking import MlflowClient

    results, trials, epochs, uri = tracked_sweep
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracked")  # the sweep's name
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(trials.index)
    for run in runs:
        tid, row = run.info.run_name, trials.loc[run.info.run_name]
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert {m.step: m.value for m in history} == pytest.approx(val_acc(epochs, tid))
        assert float(run.data.params["optimizer.lr"]) == row["optimizer.lr"]
        assert run.data.params["model.arch"] == "mlp"
        assert run.data.metrics["test_acc"] == pytest.approx(row["test_acc"])
        assert run.data.metrics["best_val_acc"] == pytest.approx(row["best_val_acc"])
        assert run.data.tags["status"] == "completed" and run.data.tags["sweep"] == "tracked"
        assert run.info.status == "FINISHED"


def wandb_records(run_file: Path) -> list[dict]:
    """An offline run's records, read by W&B's own reader (`wandb leet inspect --json`, wandb-core)."""
    wandb_cli = Path(sys.executable).parent / "wandb"
    proc = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_file)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **QUIET})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_wandb_offline_runs_hold_each_trials_history_and_summary(tracked_sweep):
    results, trials, epochs, _ = tracked_sweep
    run_dirs = sorted((results / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2
    runs = {}
    for run_dir in run_dirs:
        (run_file,) = run_dir.glob("run-*.wandb")
        records = wandb_records(run_file)
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        history = {r["history"]["step"]["num"]: r["history"]["item"] for r in records if r["type"] == "history"}
        summary = {}
        for r in records:
            if r["type"] == "summary":
                summary.update(r["summary"]["update"])
        (exit_record,) = [r["exit"] for r in records if r["type"] == "exit"]
        runs[run["display_name"]] = run, history, summary, exit_record
    assert sorted(runs) == sorted(trials.index)
    for tid, (run, history, summary, exit_record) in runs.items():
        row = trials.loc[tid]
        assert (run["project"], run["run_group"], run["tags"]) == ("tracked", "tracked", ["completed"])
        assert run["config"]["update"]["optimizer"]["lr"] == row["optimizer.lr"]
        assert {step: item["val_acc"] for step, item in history.items()} == pytest.approx(val_acc(epochs, tid))
        assert summary["test_acc"] == pytest.approx(row["test_acc"]) and summary["status"] == "completed"
        assert exit_record["exit_code"] == 0


# ---- a tracker's package is missing -------------------------------------------------------------

MISSING = """
import sys
sys.modules["mlflow"] = None  # `import mlflow` raises ImportError, as when it is not installed
from harness.sweep.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_missing_tracker_package_is_exit_2_before_any_trial(tmp_path, write_sweep):
    path = write_sweep(SWEEP.format(uri="http://127.0.0.1:9"))
    proc = subprocess.run([sys.executable, "-c", MISSING, str(path), "--results-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **QUIET})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith('error: tracking.mlflow needs mlflow: pip install -e ".[trackers]"'), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_check_trackers_imports_only_what_is_on(write_sweep, monkeypatch):
    from harness.sweep.tracking import check_trackers, enabled

    cfg = load_sweep(write_sweep(SWEEP.format(uri="x").replace("  wandb: {mode: offline}\n", ""))).config
    assert enabled(cfg.tracking) == ["tensorboard", "mlflow"]
    monkeypatch.setitem(sys.modules, "wandb", None)  # off: never imported, so never missing
    check_trackers(cfg.tracking)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ConfigError, match=r"^tracking.tensorboard needs tensorboard: pip install"):
        check_trackers(cfg.tracking)


def test_a_failing_tracker_warns_once_and_is_off(tracked_sweep, monkeypatch):
    import io

    from harness.config.schema import MlflowTracking, TrackingConfig
    from harness.sweep.tracking import Trackers

    results, trials, _, _ = tracked_sweep
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    stream = io.StringIO()
    trackers = Trackers(TrackingConfig(mlflow=MlflowTracking(tracking_uri=f"http://127.0.0.1:{free_port()}")),
                        results, "tracked", stream=stream)  # nothing listens there
    trackers.log_trials(list(trials.index))
    trackers.log_trials(list(trials.index))  # sent once: not again
    trackers.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: tracking.mlflow failed (") and lines[0].endswith(
        "it is off for the rest of the sweep"), lines
    assert trackers.sent == set(trials.index)
