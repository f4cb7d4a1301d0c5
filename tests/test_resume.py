"""--resume compares each finished trial's stored config with the file's and refuses a mismatch unless
told what to do; --retry-failed runs failed trials again; resources.max_retries runs a failing trial
again from its checkpoint. The plan is pure (exact expected values); the CLI runs on one real Ray
for the module, over tiny MNIST files in the real IDX format."""

import pytest
import yaml

from harness import store
from harness.config import build_sweep
from harness.resume import config_changes, plan_resume
from harness.sweep.cli import main as sweep_main
from harness.sweep.tune import init_ray, run_with_retries

try:
    from fixtures_data import write_mnist
except ImportError:  # tests/ as a package
    from tests.fixtures_data import write_mnist

BASE = {"name": "r", "dataset": {"name": "synthetic", "num_train": 256, "num_val": 64, "num_test": 64,
                                 "shape": [1, 8, 8], "num_classes": 4},
        "model": {"arch": "mlp", "widths": [16]}, "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 64}}


def trials_of(**changes):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for key, value in changes.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return build_sweep({**raw, "seeds": [0, 1]}).trials


# --------------------------------------------------------------------------------------------------
# pure


def test_config_changes_names_each_key_that_can_change_a_result():
    ran, now = trials_of()[0].config.model_dump(mode="json"), trials_of(train__epochs=5, optimizer__lr=0.1,
                                                                        dataset__data_dir="/elsewhere")[0]
    assert config_changes(ran, now.config.model_dump(mode="json")) == {
        "optimizer.lr": (0.01, 0.1), "train.epochs": (2, 5)}  # data_dir: where the files are, not what they hold
    resources = trials_of(resources__max_concurrent=3)[0].config.model_dump(mode="json")
    assert config_changes(ran, resources) == {}


def test_plan_refuses_a_changed_config_unless_told_what_to_do():
    old = {t.trial_id: ("completed", t.config.model_dump(mode="json")) for t in trials_of()}
    now = trials_of(train__epochs=3)
    with pytest.raises(Exception) as err:
        plan_resume(now, old, {}, where="x.yaml")
    message = str(err.value)
    assert message.startswith("x.yaml: 2 finished trial(s) ran with a different config than the file now has: "
                              "train.epochs 2 -> 3 (trials: seed=0, seed=1)")
    assert "--rerun-changed" in message and "--keep-changed" in message and "\n" not in message
    kept = plan_resume(now, old, {}, on_change="keep")
    assert (kept.pending, kept.forget, kept.kept) == ([], [], 2)
    rerun = plan_resume(now, old, {}, on_change="rerun")
    assert [t.trial_id for t in rerun.pending] == rerun.forget == rerun.discard_checkpoints == ["seed=0", "seed=1"]


def test_plan_retries_failed_trials_only_when_asked_and_checks_checkpoints():
    trials = trials_of()
    old = {"seed=0": ("failed", trials[0].config.model_dump(mode="json")),
           "seed=1": ("completed", trials[1].config.model_dump(mode="json"))}
    assert plan_resume(trials, old, {}).pending == []
    retry = plan_resume(trials, old, {}, retry_failed=True)
    assert [t.trial_id for t in retry.pending] == retry.forget == ["seed=0"] and retry.discard_checkpoints == []
    # an interrupted trial's checkpoint made with another lr
    ckpt = {"seed=1": trials_of(optimizer__lr=0.5)[1].config.model_dump(mode="json")}
    with pytest.raises(Exception, match=r"1 interrupted trial\(s\)' checkpoints ran with a different config.*"
                                        r"optimizer.lr 0.5 -> 0.01 \(trials: seed=1\)"):
        plan_resume(trials, {}, ckpt)
    rerun = plan_resume(trials, {}, ckpt, on_change="rerun")
    assert [t.trial_id for t in rerun.pending] == ["seed=0", "seed=1"] and rerun.discard_checkpoints == ["seed=1"]


# --------------------------------------------------------------------------------------------------
# the CLI on real Ray

SWEEP = """
name: resumed
dataset: {{name: synthetic, num_train: 256, num_val: 64, num_test: 64, shape: [1, 8, 8], num_classes: 4,
          data_dir: {data}, download: false}}
model: {{arch: mlp, widths: [16]}}
optimizer: {{name: adam, lr: 0.01}}
train: {{epochs: {epochs}, batch_size: 64}}
health: {{enabled: false}}
seeds: [0]
grid:
  dataset.name: [synthetic, mnist]
"""


@pytest.fixture(scope="module")
def ray_once():
    import ray

    init_ray(None)
    yield
    ray.shutdown()


def run(path, results, *flags):
    return sweep_main([str(path), "--results-dir", str(results), "--no-report", *flags])


def test_resume_refuses_changed_configs_and_retries_failed_trials(ray_once, tmp_path, write_sweep, capsys):
    data = tmp_path / "data"  # no MNIST yet: that trial fails
    path = write_sweep(SWEEP.format(data=data, epochs=2))
    results = tmp_path / "results"
    assert run(path, results) == 1
    statuses = dict(store.read_table(results / "resumed", "trials")[["trial_id", "status"]].values)
    assert statuses == {"dataset=synthetic-seed=0": "completed", "dataset=mnist-seed=0": "failed"}
    capsys.readouterr()

    path.write_text(SWEEP.format(data=data, epochs=3))  # the user edits the file, then resumes
    assert run(path, results, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "2 finished trial(s) ran with a different config than the file now has: train.epochs 2 -> 3" in err
    assert "dataset=mnist-seed=0" in err and "dataset=synthetic-seed=0" in err

    # keep what ran; retry the failed trial now that its data is there (with the file's config)
    write_mnist(data)
    assert run(path, results, "--resume", "--keep-changed", "--retry-failed") == 0
    assert "(1 already finished, 1 to run again)" in capsys.readouterr().out
    trials = store.read_table(results / "resumed", "trials").set_index("trial_id")
    assert len(trials) == 2 and trials.loc["dataset=mnist-seed=0", "status"] == "completed"
    assert trials["train.epochs"].to_dict() == {"dataset=synthetic-seed=0": 2, "dataset=mnist-seed=0": 3}

    # run what changed again: every trial now ran with 3 epochs, each epoch once
    assert run(path, results, "--resume", "--rerun-changed") == 0
    trials = store.read_table(results / "resumed", "trials")
    epochs = store.read_table(results / "resumed", "epochs")
    assert trials["trial_id"].is_unique and set(trials["train.epochs"]) == {3} and set(trials["status"]) == {
        "completed"}
    assert len(epochs) == 6 and not epochs.duplicated(["trial_id", "epoch"]).any()
    assert run(path, results, "--resume") == 0  # nothing left to do, nothing refused


def test_a_failing_trial_runs_again_from_its_checkpoint(tmp_path):
    trial = build_sweep({**BASE, "train": {"epochs": 3, "batch_size": 64}}).trials[0]
    calls = []

    def flaky(row, _verdict):  # a transient failure at the end of epoch 2 (after its checkpoint)
        calls.append(row["epoch"])
        if len(calls) == 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    outcome = run_with_retries(trial, str(tmp_path), max_retries=1, on_epoch=flaky)
    assert outcome.status == "completed" and outcome.row["attempt"] == 2
    assert calls == [1, 2, 3]  # the second attempt continued after epoch 2, it did not start over
    epochs = store.read_table(tmp_path, "epochs")
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert store.read_table(tmp_path, "trials")["attempt"].tolist() == [2]
    assert not (tmp_path / "checkpoints" / trial.trial_id).exists()  # removed once it finished


def test_without_retries_a_failure_is_final(tmp_path):
    trial = build_sweep(BASE).trials[0]

    def broken(row, _verdict):
        raise RuntimeError("always")

    outcome = run_with_retries(trial, str(tmp_path), max_retries=0, on_epoch=broken)
    assert outcome.status == "failed" and outcome.row["attempt"] == 1 and outcome.row["error"] == "RuntimeError: always"


def test_a_trial_whose_worker_dies_runs_again_from_its_checkpoint(tmp_path, write_sweep):
    """resources.max_retries also covers a worker that dies (killed, out of memory, a lost node): Tune
    starts the trial again and it continues from its last checkpoint. The test kills the worker."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    path = write_sweep(SWEEP.format(data=tmp_path / "data", epochs=8)
                       .replace("  dataset.name: [synthetic, mnist]\n", "")
                       .replace("num_train: 256", "num_train: 20000")
                       + "resources: {max_retries: 1}\n")
    proc = subprocess.Popen([sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp_path),
                             "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    epochs_part = store.part_path(tmp_path / "resumed", "epochs", "seed=0")
    try:
        deadline = time.time() + 300
        while time.time() < deadline and (not epochs_part.exists()
                                          or len(store.read_table(tmp_path / "resumed", "epochs")) < 2):
            time.sleep(0.2)
        before = store.read_table(tmp_path / "resumed", "epochs").set_index("epoch")["epoch_seconds"]
        workers = [p for p in psutil.process_iter(["cmdline"])
                   if any("ray::ImplicitFunc" in part for part in (p.info["cmdline"] or []))]
        assert workers, "the trial's Ray worker was not found"
        for p in workers:
            p.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    trials = store.read_table(tmp_path / "resumed", "trials")
    epochs = store.read_table(tmp_path / "resumed", "epochs")
    assert list(trials["status"]) == ["completed"]
    assert list(epochs["epoch"]) == list(range(1, 9))  # every epoch once
    # the epochs before the kill are the ones that ran then (timings and all): the rerun continued from
    # the checkpoint, it did not start over
    assert epochs.set_index("epoch")["epoch_seconds"].loc[before.index[:1]].tolist() == before.iloc[:1].tolist()


def test_a_stop_signal_has_trials_save_mid_epoch_and_resume_continues_them(tmp_path, write_sweep):
    """SIGUSR1 to the sweep (SLURM's warning before the time limit): the running trials save where they
    stand, within seconds, mid-epoch (harness.engine.stop), the sweep exits 3 with no row for them, and
    --resume continues each from its step: every epoch once, no epoch rerun from its start."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    path = write_sweep(SWEEP.format(data=tmp_path / "data", epochs=4)
                       .replace("  dataset.name: [synthetic, mnist]\n", "  optimizer.lr: [0.01, 0.003]\n")
                       .replace("num_train: 256", "num_train: 60000"))
    command = [sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp_path), "--no-report"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    results = tmp_path / "resumed"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(store.read_table(results, "epochs")) < 1:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        signalled = time.time()
        proc.send_signal(signal.SIGUSR1)
        out, _ = proc.communicate(timeout=120)
        stopped_in = time.time() - signalled
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, out[-3000:]
    assert "interrupted by SIGUSR1" in out and stopped_in < 60, (stopped_in, out[-3000:])
    assert store.read_table(results, "trials").empty  # nothing finished, nothing recorded as failed
    marks = [json.loads(p.read_text()) for p in (results / "checkpoints").glob("*/stopped.json")]
    assert len(marks) == 2, "a trial did not save where it stood"
    assert all(m["epoch"] >= 1 and m["step"] >= 0 for m in marks) and any(m["step"] > 0 for m in marks), marks
    assert not list((results / "_stop").glob("*")), "the stop file outlived the run"
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trials = store.read_table(results, "trials")
    epochs = store.read_table(results, "epochs")
    assert sorted(trials["status"]) == ["completed", "completed"]
    assert (epochs.groupby("trial_id")["epoch"].apply(list) == [[1, 2, 3, 4]] * 2).all()
    assert not list((results / "checkpoints").glob("*/stopped.*"))
