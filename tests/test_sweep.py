"""The sweep CLI on real (local) Ray: one row per trial and per trial x epoch, isolation of a failing
trial (exit 1), resume after SIGKILL with no trial lost or duplicated, data-parallel trials, shards."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from harness import store
from harness.config import build_sweep
from harness.sweep.select import parse_shard, random_subset, shard, smoke_trials

SWEEP = """
name: {name}
dataset: {{name: synthetic, num_train: 512, num_val: 128, num_test: 128, shape: [1, 8, 8], num_classes: 4}}
model: {{arch: mlp, widths: [16]}}
optimizer: {{name: adam, lr: 0.01}}
train: {{epochs: {epochs}, batch_size: 64}}
health: {{enabled: false}}
resources: {{cpus_per_trial: 1}}
seeds: [0, 1]
grid:
  model.activation: [relu, tanh]
  optimizer.lr: {lrs}
"""

ASHA_BY_VAL_LOSS = "tune: {scheduler: asha, grace_period: 1, reduction_factor: 2, metric: val_loss}\n"


def one_seed_lr_sweep(name: str, epochs: int, lrs: str, extra: str = "") -> str:
    """SWEEP over optimizer.lr alone, one seed, with `extra` lines appended (e.g. a tune: section)."""
    text = SWEEP.format(name=name, epochs=epochs, lrs=lrs).replace("seeds: [0, 1]", "seeds: [0]")
    return text.replace("  model.activation: [relu, tanh]\n", "") + extra


def sweep_cmd(path, results, *extra):
    return [sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(results), "--no-report", *extra]


def test_sweep_runs_every_trial_once_with_its_config(tmp_path, write_sweep):
    path = write_sweep(SWEEP.format(name="small", epochs=2, lrs="[0.01, 0.001]"))
    proc = subprocess.run(sweep_cmd(path, tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "finished 8 trials" in proc.stdout and "8 completed" in proc.stdout
    assert "rank  best_val_acc" in proc.stdout  # the top table
    trials = store.read_table(tmp_path / "small", "trials")
    epochs = store.read_table(tmp_path / "small", "epochs")
    expected = {t.trial_id: t for t in build_sweep(__import__("yaml").safe_load(path.read_text())).trials}
    assert sorted(trials["trial_id"]) == sorted(expected)
    assert len(epochs) == 8 * 2
    assert {tid: sorted(e) for tid, e in epochs.groupby("trial_id")["epoch"]} == {tid: [1, 2] for tid in expected}
    for _, row in trials.iterrows():
        cfg = expected[row["trial_id"]].config
        assert row["status"] == "completed"
        assert (row["model.activation"], row["optimizer.lr"], row["seed"]) == (cfg.model.activation, cfg.optimizer.lr,
                                                                              cfg.seed)
    # packed by default (activation splits packs; as many packs as CPUs at least), each trial its own rows
    assert re.search(r"8 trials in \d+ programs: 8 trials in \d+ packs", proc.stdout), proc.stdout[-2000:]
    packs = trials.groupby("pack_id")
    assert (packs["model.activation"].nunique() == 1).all()
    assert (packs["pack_size"].first() == packs.size()).all()
    # a second run without --resume refuses to mix results
    again = subprocess.run(sweep_cmd(path, tmp_path), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume to continue it" in again.stderr


def test_failing_trial_is_recorded_and_the_sweep_exits_1(tmp_path, write_sweep):
    # dataset.name cifar10 with no files and no download: each trial raises DatasetUnavailable;
    # only one grid point uses it, the others train
    path = write_sweep(SWEEP.format(name="fails", epochs=1, lrs="[0.01]").replace("seeds: [0, 1]", "seeds: [0]")
                       + "  dataset.name: [synthetic, cifar10]\n")
    proc = subprocess.run(sweep_cmd(path, tmp_path, "--set", f"dataset.data_dir={tmp_path / 'nodata'}",
                                    "--set", "dataset.download=false"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    trials = store.read_table(tmp_path / "fails", "trials").set_index("trial_id")
    assert len(trials) == 4
    failed = trials[trials["status"] == "failed"]
    assert sorted(failed.index) == ["activation=relu-lr=0.01-dataset=cifar10-seed=0",
                                    "activation=tanh-lr=0.01-dataset=cifar10-seed=0"]
    assert failed["error"].str.startswith("DatasetUnavailable").all()
    assert (trials.drop(failed.index)["status"] == "completed").all()


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path, write_sweep):
    # 12 trials of a few seconds each (512 samples: a fast machine ran all 12 between two looks at the table)
    path = write_sweep(SWEEP.format(name="killed", epochs=6, lrs="[0.01, 0.003, 0.001]")
                       .replace("num_train: 512", "num_train: 8192"))
    # one trial per program, so that some trials have finished and others not when the kill comes
    # (packs resuming from their members' checkpoints: tests/test_pack.py)
    proc = subprocess.Popen(sweep_cmd(path, tmp_path, "--no-pack"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    results = tmp_path / "killed"
    deadline = time.time() + 300
    while time.time() < deadline and len(store.finished_trial_ids(results)) < 3:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes in its session
    proc.wait()
    finished_before = store.finished_trial_ids(results)  # read after the kill: a trial may finish meanwhile
    assert 3 <= len(finished_before) < 12
    before = store.read_table(results, "trials").set_index("trial_id").loc[sorted(finished_before), "finished_at"]

    resumed = subprocess.run(sweep_cmd(path, tmp_path, "--resume", "--no-pack"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"({len(finished_before)} already finished)" in resumed.stdout
    trials = store.read_table(results, "trials")
    epochs = store.read_table(results, "epochs")
    assert len(trials) == 12 and trials["trial_id"].is_unique and set(trials["status"]) == {"completed"}
    assert len(epochs) == 12 * 6 and not epochs.duplicated(["trial_id", "epoch"]).any()
    # finished trials were not rerun
    after = trials.set_index("trial_id").loc[sorted(finished_before), "finished_at"]
    assert after.tolist() == before.tolist()


def test_data_parallel_trial_over_two_ray_train_workers(tmp_path, write_sweep):
    text = SWEEP.format(name="dp", epochs=2, lrs="[0.01]").replace("seeds: [0, 1]", "seeds: [0]")
    text = text.replace("resources: {cpus_per_trial: 1}", "resources: {cpus_per_trial: 0.5, workers_per_trial: 2}")
    text = text.replace("  model.activation: [relu, tanh]\n", "")
    path = write_sweep(text)
    proc = subprocess.run(sweep_cmd(path, tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    trials = store.read_table(tmp_path / "dp", "trials")
    assert list(trials["status"]) == ["completed"] and list(trials["world_size"]) == [2]
    assert len(store.read_table(tmp_path / "dp", "epochs")) == 2


def test_shards_random_search_and_smoke_selection_are_pure():
    trials = build_sweep({"name": "s", "seeds": [0, 1], "grid": {"optimizer.lr": [0.1, 0.01, 0.001]}}).trials
    ids = [t.trial_id for t in trials]
    assert [t.trial_id for t in shard(trials, 1, 4)] == [ids[1], ids[5]]
    assert sum(len(shard(trials, i, 4)) for i in range(4)) == 6
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(Exception, match="I must be in 0..N-1"):
        parse_shard("3/3")
    picked = random_subset(trials, 2, [0, 1], seed=0)
    assert len(picked) == 4 and len({t.point["optimizer.lr"] for t in picked}) == 2  # 2 points x 2 seeds
    assert [t.trial_id for t in smoke_trials(trials, 4)] == [ids[0], ids[2], ids[3], ids[5]]


def test_asha_prunes_trials_and_every_trial_still_gets_a_row(tmp_path, write_sweep):
    path = write_sweep(one_seed_lr_sweep("asha", 6, "[0.3, 0.03, 0.003, 0.0003]", ASHA_BY_VAL_LOSS))
    proc = subprocess.run(sweep_cmd(path, tmp_path, "--max-concurrent", "4"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    trials = store.read_table(tmp_path / "asha", "trials").set_index("trial_id")
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "early_stopped"}
    pruned = trials[trials["epochs_run"] < 6]
    assert len(pruned) >= 1 and (pruned["status"] == "early_stopped").all()
    assert not (tmp_path / "asha" / "checkpoints").exists() or not any((tmp_path / "asha" / "checkpoints").iterdir())


@pytest.mark.parametrize("scheduler", ["median_stopping"])
def test_other_schedulers_stop_trials_and_every_trial_still_gets_a_row(tmp_path, write_sweep, scheduler):
    """Ray Tune's HyperBand and median stopping rule, keyed on the epoch and val_loss like ASHA: trials
    they stop early get a row (early_stopped, stopped_by scheduler), the rest run every epoch."""
    extra = f"tune: {{scheduler: {scheduler}, grace_period: 1, reduction_factor: 2, metric: val_loss}}\n"
    path = write_sweep(one_seed_lr_sweep(scheduler, 6, "[0.3, 0.03, 0.003, 0.0003, 3.0e-5]", extra))
    proc = subprocess.run(sweep_cmd(path, tmp_path, "--max-concurrent", "5"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"trials run one by one (under tune.scheduler {scheduler} a pack holds one configuration's seeds)" in proc.stdout
    trials = store.read_table(tmp_path / scheduler, "trials").set_index("trial_id")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "early_stopped"}
    stopped = trials[trials["epochs_run"] < 6]
    assert len(stopped) >= 1 and (stopped["status"] == "early_stopped").all(), trials[["status", "epochs_run"]]
    assert (trials.loc[stopped.index, "stopped_by"] == "scheduler").all()


def test_progress_line_counts_and_best_so_far():
    import io

    from harness.sweep.progress import Progress

    out = io.StringIO()
    p = Progress(4, "val_acc", out)
    p.start("a")
    p.start("b")
    p.epoch("a", {"val_acc": 0.5})
    p.epoch("b", {"val_acc": 0.7})
    p.finish("a", "completed")
    p.finish("b", "failed")
    line = p.line()
    assert line.startswith("2/4 done, 0 running, 2 pending, 1 failed | ")
    assert line.endswith(" | best val_acc 0.7000 (b)")
    assert out.getvalue().splitlines()[1].startswith("[2/4] b: failed  |  2/4 done")  # a line per trial off a TTY


def test_asha_survives_trials_that_stop_themselves(tmp_path, write_sweep):
    # issue 13: the last report of a trial that stopped itself (stalled, early-stopped) carried no metric,
    # and Tune ended the whole sweep with a ValueError; trials reaching the last epoch were stopped by ASHA
    # before their test evaluation
    text = one_seed_lr_sweep("ashaself", 8, "[1.0e-6, 0.1]", "early_stopping: {enabled: true, patience: 2}\n"
                                                            "tune: {scheduler: asha, grace_period: 8}\n")
    path = write_sweep(text.replace("health: {enabled: false}\n", "").replace("seeds: [0]", "seeds: [0, 1]"))
    proc = subprocess.run(sweep_cmd(path, tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    trials = store.read_table(tmp_path / "ashaself", "trials").set_index("trial_id")
    assert len(trials) == 4
    stopped_itself = trials[(trials["epochs_run"] < 8) & trials["stopped_by"].isna()]
    assert len(stopped_itself) >= 1 and set(stopped_itself["status"]) <= {"stalled", "early_stopped"}
    assert trials["test_acc"].notna().all()  # every trial, pruned by nobody, was evaluated on the test split


def test_asha_prunes_data_parallel_trials_from_their_per_epoch_reports(tmp_path, write_sweep):
    # lr 1e-6 reaches rung 1 second, with a worse val_loss than lr 0.01 had there: ASHA stops it. It can
    # only do so if the data-parallel trial reported its epochs to Tune (rank 0, through Ray Train).
    text = one_seed_lr_sweep("ashadp", 3, "[0.01, 1.0e-6]", ASHA_BY_VAL_LOSS)
    path = write_sweep(text.replace("resources: {cpus_per_trial: 1}",
                                    "resources: {cpus_per_trial: 0.5, workers_per_trial: 2}"))
    proc = subprocess.run(sweep_cmd(path, tmp_path, "--max-concurrent", "1"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    trials = store.read_table(tmp_path / "ashadp", "trials").set_index("trial_id")
    good, bad = trials.loc["lr=0.01-seed=0"], trials.loc["lr=1e-06-seed=0"]
    assert (good["status"], good["world_size"]) == ("completed", 2) and good["test_acc"] > 0
    assert (bad["status"], bad["stopped_by"]) == ("early_stopped", "scheduler")


def test_live_report_is_rewritten_while_the_sweep_runs(tmp_path, write_sweep):
    """--report-every 2: after the first pack's trials finish, report/ is rewritten in the background (the
    progress says so), and the final report follows; a negative interval is bad input."""
    path = write_sweep(SWEEP.format(name="live", epochs=1, lrs="[0.01, 0.001]"))
    cmd = [sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp_path)]
    bad = subprocess.run([*cmd, "--report-every", "-1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--report-every must be 0" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.run([*cmd, "--report-every", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = tmp_path / "live" / "report" / "index.html"
    assert f"live report: {report} (rewritten every 2 finished trials)" in proc.stdout
    updates = re.findall(r"report updated \((\d)/8 trials\): (\S+)", proc.stdout)
    assert updates and all(int(done) < 8 and where == str(report) for done, where in updates), proc.stdout[-3000:]
    assert report.is_file() and "finished 8 trials" in proc.stdout
