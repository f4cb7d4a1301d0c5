"""Population based training (tune.scheduler pbt, harness.sweep.pbt) on real Ray Tune: the grid's trials
are the population; at each perturbation epoch a bottom trial takes a top trial's state and goes on with a
perturbed learning rate. Every trial keeps its id and has its rows once, with its lineage in the epoch
rows and its hyperparameters over time in `pbt_schedule`. The checks on the sweep file are pure."""

import json

import pandas as pd
import pytest
import yaml

from harness import store
from harness.config import ConfigError, build_sweep
from harness.report import write_report
from harness.resume import config_changes
from harness.sweep.cli import main

DATA = {"name": "synthetic", "num_train": 512, "num_val": 128, "num_test": 128, "shape": [1, 8, 8], "num_classes": 4}
BASE = {"dataset": DATA, "model": {"arch": "mlp", "widths": [16]}, "optimizer": {"name": "sgd", "momentum": 0.9},
        "train": {"epochs": 6, "batch_size": 64}, "health": {"enabled": False},
        "early_stopping": {"enabled": False}, "resources": {"cpus_per_trial": 1}, "seeds": [0]}
PBT = {"scheduler": "pbt", "perturbation_interval": 2, "mutations": {"optimizer.lr": {"loguniform": [1.0e-4, 0.5]}}}


@pytest.fixture(scope="module", autouse=True)
def one_ray():
    yield
    import ray

    ray.shutdown()


def run_sweep(tmp_path, sweep: dict):
    """Run `sweep` through the CLI (it must exit 0): its trials (by id) and epochs tables, and its results folder."""
    path = tmp_path / f"{sweep['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    assert main([str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
    results = tmp_path / sweep["name"]
    return store.read_table(results, "trials").set_index("trial_id"), store.read_table(results, "epochs"), results


def test_pbt_sweeps_are_checked():
    sweep = build_sweep({**BASE, "name": "p", "tune": PBT, "grid": {"optimizer.lr": [0.1, 0.01]}})
    assert [t.config.tune.scheduler for t in sweep.trials] == ["pbt", "pbt"]
    for tune, extra, message in (
            ({**PBT, "mutations": {}}, {}, "pbt needs tune.mutations"),
            ({**PBT, "mutations": {"model.activation": ["relu"]}}, {}, "'model.activation' cannot change while"),
            ({**PBT, "mutations": {"optimizer.lr": {"randint": [1, 3]}}}, {}, "randint is for integers"),
            ({**PBT, "mutations": {"optimizer.lr": ["fast"]}}, {}, "a list of numbers"),
            ({**PBT, "perturbation_interval": 6}, {}, "must be below train.epochs"),
            (PBT, {"scheduler": {"name": "cosine"}}, "sets the learning rate itself"),
            ({**PBT, "search": "optuna"}, {}, "runs no searcher beside it"),
            (PBT, {"resources": {"workers_per_trial": 2}}, "data-parallel trials"),
            ({"mutations": PBT["mutations"]}, {}, "tune.mutations are for tune.scheduler pbt")):
        with pytest.raises(ConfigError, match=message):
            build_sweep({**BASE, "name": "p", "tune": tune, **extra, "grid": {"optimizer.lr": [0.1]}})


def test_resume_does_not_count_what_pbt_changed_as_a_changed_config():
    [ran, now] = [t.config.model_dump(mode="json") for t in build_sweep(
        {**BASE, "name": "p", "tune": PBT, "grid": {"optimizer.lr": [0.1, 0.01]}}).trials]
    assert config_changes(ran, now) == {}  # the learning rate is PBT's to change
    now["train"]["epochs"] = 9
    assert config_changes(ran, now) == {"train.epochs": (6, 9)}
    now["tune"]["scheduler"] = "none"
    assert "optimizer.lr" in config_changes(ran, now)


def test_pbt_copies_bottom_trials_from_top_ones_and_records_their_schedules(tmp_path):
    trials, epochs, results = run_sweep(tmp_path, {**BASE, "name": "pbt", "tune": PBT,
                                                   "grid": {"optimizer.lr": [0.3, 0.05, 0.001, 0.00001]}})
    assert sorted(trials.index) == sorted(f"lr={lr}-seed=0" for lr in ("0.3", "0.05", "0.001", "1e-05"))
    assert set(trials["status"]) == {"completed"}
    assert (epochs.groupby("trial_id")["epoch"].apply(list) == [[1, 2, 3, 4, 5, 6]] * 4).all()
    by_trial = {tid: rows.set_index("epoch") for tid, rows in epochs.groupby("trial_id")}
    copies = 0
    for tid, row in trials.iterrows():
        schedule = json.loads(row["pbt_schedule"])  # the lineage of the weights the trial ends with
        root = schedule[0]
        assert root["epoch"] == 0 and root["trial"] in trials.index
        assert root["config"]["optimizer.lr"] == json.loads(trials.loc[root["trial"], "point"])["optimizer.lr"]
        assert schedule[-1]["trial"] == tid or len(schedule) == 1 and root["trial"] == tid
        assert row["optimizer.lr"] == schedule[-1]["config"]["optimizer.lr"]  # the config column: the last value
        assert [s["epoch"] for s in schedule] == sorted(s["epoch"] for s in schedule)
        for before, step in zip(schedule, schedule[1:]):
            copies += step["trial"] == tid
            assert step["epoch"] % 2 == 0 and 0 < step["epoch"] < 6 and step["trial"] != before["trial"]
            lr = step["config"]["optimizer.lr"]
            assert 1.0e-4 * 0.8 <= lr <= 0.5 * 1.2
        # each entry's epochs trained with its rate (sgd, no schedule: the rate given), the last one's by this trial
        rates = by_trial[tid]["lr"]
        for step, after in zip(schedule, [*schedule[1:], {"epoch": 6}]):
            trained = rates.loc[step["epoch"] + 1:after["epoch"]].tolist()
            assert trained == pytest.approx([step["config"]["optimizer.lr"]] * len(trained)), (tid, schedule)
    # synchronous PBT: at epochs 2 and 4 the worst quarter (one trial) copies the best
    assert copies == 2, trials["pbt_schedule"].tolist()
    assert not list((results / "checkpoints").glob("*"))

    # the report shows each trial's lineage, best first, and says how to read the leaderboard under PBT
    report = write_report(results)
    lineages = pd.read_csv(report / "pbt.csv")
    assert sorted(lineages["trial_id"]) == sorted(trials.index)
    assert lineages["best_val_acc"].is_monotonic_decreasing
    assert lineages["copies"].sum() >= copies
    copied = lineages[lineages["copies"] > 0].iloc[0]
    assert " → epoch " in copied["lineage"] and copied["lineage"].endswith(f"({_lr(trials, copied['trial_id'])})")
    text = (report / "leaderboard.md").read_text()
    assert "Population based training: lineages" in text and "not to the starting point its id names" in text
    assert 'id="pbt"' in (report / "index.html").read_text()


def _lr(trials, tid) -> str:
    return f"lr {trials.loc[tid, 'optimizer.lr']:.4g}"


def test_a_pbt_sweep_stopped_by_a_signal_resumes_each_trial_on_its_lineage(tmp_path):
    """SIGUSR1 once the population is past the first copy (epoch 2): the sweep exits 3 with every trial's
    schedule in its checkpoint; --resume finishes each one from there, its lineage extended, not restarted."""
    import os
    import signal
    import threading
    import time

    data = {**DATA, "num_train": 12000}
    sweep = {**BASE, "dataset": data, "name": "pbt-resume", "tune": PBT,
             "grid": {"optimizer.lr": [0.3, 0.05, 0.001, 0.00001]}}
    path = tmp_path / "pbt-resume.yaml"
    path.write_text(yaml.safe_dump(sweep))
    results = tmp_path / "pbt-resume"
    args = [str(path), "--results-dir", str(tmp_path), "--no-report"]

    def stop_after_epoch_2():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(store.read_table(results, "epochs")) < 10:  # 4 x 2, then more
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=stop_after_epoch_2, daemon=True).start()
    assert main(args) == 3
    assert store.read_table(results, "trials").empty
    saved = {p.parent.name: json.loads(p.read_text())["schedule"] for p in (results / "checkpoints").glob("*/pbt.json")}
    assert len(saved) == 4 and sum(len(s) - 1 for s in saved.values()) >= 1, saved  # the copy at epoch 2
    assert main([*args, "--resume"]) == 0
    trials = store.read_table(results, "trials").set_index("trial_id")
    epochs = store.read_table(results, "epochs")
    assert set(trials["status"]) == {"completed"} and len(trials) == 4
    assert (epochs.groupby("trial_id")["epoch"].apply(list) == [[1, 2, 3, 4, 5, 6]] * 4).all()
    for tid, before in saved.items():
        after = json.loads(trials.loc[tid, "pbt_schedule"])
        assert after[:len(before)] == before, (tid, before, after)  # continued, not started over


def test_pbt_over_packs_copies_a_configuration_seed_by_seed(tmp_path):
    """Two seeds per configuration: each configuration's seeds train as one pack, PBT ranks the pack by
    their mean, and a copying pack takes the donor pack's member of each seed (schedules, rates, rows)."""
    trials, epochs, results = run_sweep(tmp_path, {**BASE, "name": "pbt-packs", "tune": PBT, "seeds": [0, 1],
                                                   "grid": {"optimizer.lr": [0.3, 0.05, 0.001, 0.00001]}})
    assert len(trials) == 8 and set(trials["status"]) == {"completed"}
    assert set(trials["pack_size"]) == {2} and trials["pack_id"].nunique() == 4
    assert (epochs.groupby("trial_id")["epoch"].apply(list) == [[1, 2, 3, 4, 5, 6]] * 8).all()
    by_trial = {tid: rows.set_index("epoch") for tid, rows in epochs.groupby("trial_id")}
    schedules = {tid: json.loads(s) for tid, s in trials["pbt_schedule"].items()}
    copies = {}
    for tid, schedule in schedules.items():
        seed = trials.loc[tid, "seed"]
        assert all(trials.loc[step["trial"], "seed"] == seed for step in schedule)  # each seed copies its own seed
        for before, step in zip(schedule, schedule[1:]):
            assert step["trial"] != before["trial"] and step["epoch"] in (2, 4)
            if step["trial"] == tid:  # this trial's own copy (the rest of its schedule is its donor's)
                copies.setdefault((trials.loc[tid, "pack_id"], step["epoch"]), []).append(step["config"])
        rates = by_trial[tid]["lr"]
        for step, after in zip(schedule, [*schedule[1:], {"epoch": 6}]):
            trained = rates.loc[step["epoch"] + 1:after["epoch"]].tolist()
            assert trained == pytest.approx([step["config"]["optimizer.lr"]] * len(trained)), (tid, schedule)
    # synchronous PBT over 4 packs: at epochs 2 and 4 the worst pack copies the best; both its members at
    # once, with the same new values
    assert len(copies) == 2 and sorted(epoch for _, epoch in copies) == [2, 4], schedules
    assert all(len(values) == 2 and values[0] == values[1] for values in copies.values()), copies
    assert not list((results / "checkpoints").glob("*"))
