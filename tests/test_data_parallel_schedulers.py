"""Schedulers that pause, copy or stop trials (HyperBand, PBT) over data-parallel trials, on real Ray Tune
and Ray Train (two gloo workers per trial): rank 0's epochs reach Tune with the checkpoint Tune needs
(harness.sweep.data_parallel.Relay), and a trial Tune pauses or stops ends its Train run at once
(data_parallel.trainable) and resumes from its epoch checkpoint later. Every trial has its epoch rows
once, on two workers, and every CPU is free again at the end."""

import json

import pytest

DATA = {"name": "synthetic", "num_train": 512, "num_val": 128, "num_test": 128, "shape": [1, 8, 8], "num_classes": 4}
BASE = {"dataset": DATA, "model": {"arch": "mlp", "widths": [16]}, "optimizer": {"name": "sgd", "momentum": 0.9},
        "train": {"batch_size": 64}, "health": {"enabled": False}, "early_stopping": {"enabled": False},
        "resources": {"cpus_per_trial": 0.45, "workers_per_trial": 2}, "seeds": [0]}


pytestmark = pytest.mark.usefixtures("one_ray")


def all_cpus_back(timeout: float = 30.0) -> bool:
    """Whether every CPU of this test's Ray is free again (every Train run's placement group is gone)."""
    import time

    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) >= ray.cluster_resources()["CPU"]:
            return True
        time.sleep(0.5)
    return False


def test_hyperband_pauses_and_halves_data_parallel_trials(run_sweep):
    """max_t 2, reduction factor 2: Tune's first bracket (lr 0.03, 0.003) runs to the end; the second
    (0.3, 3e-5) halves at epoch 1, pausing both there: the worse is stopped, the other resumes from its
    checkpoint. A paused or stopped trial's Train run ends at once: the sweep finishes, every epoch once,
    with every CPU back."""
    trials, epochs, _ = run_sweep({**BASE, "name": "hb-dp", "train": {**BASE["train"], "epochs": 2},
                                  "tune": {"scheduler": "hyperband", "reduction_factor": 2},
                                  "grid": {"optimizer.lr": [0.03, 0.003, 0.3, 3.0e-5]}})
    completed = trials[trials["status"] == "completed"]
    assert set(completed["world_size"]) == {2} and completed["test_acc"].notna().all()
    stopped = trials[trials["status"] == "early_stopped"]
    second = {"lr=0.3-seed=0", "lr=3e-05-seed=0"}
    assert len(stopped) == 1 and set(stopped.index) < second and stopped["stopped_by"].tolist() == ["scheduler"]
    [survivor] = second - set(stopped.index)
    assert epochs.groupby("trial_id")["epoch"].apply(list).to_dict() == {
        "lr=0.03-seed=0": [1, 2], "lr=0.003-seed=0": [1, 2], survivor: [1, 2], stopped.index[0]: [1]}
    assert all_cpus_back()


def test_pbt_copies_data_parallel_trials(run_sweep):
    """Three data-parallel trials, a perturbation at epoch 2 (4 is the last): the worst one takes the best
    one's state, which rank 0 sent through Ray Train, and trains on at the perturbed rate."""
    trials, epochs, results = run_sweep({
        **BASE, "name": "pbt-dp", "train": {**BASE["train"], "epochs": 4},
        "tune": {"scheduler": "pbt", "perturbation_interval": 2,
                 "mutations": {"optimizer.lr": {"loguniform": [1.0e-4, 0.5]}}},
        "grid": {"optimizer.lr": [0.3, 0.03, 1.0e-5]}})
    assert set(trials["status"]) == {"completed"} and set(trials["world_size"]) == {2}
    assert all_cpus_back()
    assert (epochs.groupby("trial_id")["epoch"].apply(list) == [[1, 2, 3, 4]] * 3).all()
    schedules = {tid: json.loads(s) for tid, s in trials["pbt_schedule"].items()}
    copied = {tid: s for tid, s in schedules.items() if len(s) > 1}
    assert len(copied) == 1, schedules
    [(tid, schedule)] = copied.items()
    assert [s["epoch"] for s in schedule] == [0, 2] and schedule[0]["trial"] != tid and schedule[1]["trial"] == tid
    rates = epochs[epochs["trial_id"] == tid].set_index("epoch")["lr"]
    assert rates.loc[3:4].tolist() == pytest.approx([schedule[1]["config"]["optimizer.lr"]] * 2)
    assert rates.loc[1:2].tolist() == pytest.approx([schedule[0]["config"]["optimizer.lr"]] * 2)  # the donor's
    assert not list((results / "checkpoints").glob("*"))
