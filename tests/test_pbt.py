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


pytestmark = pytest.mark.usefixtures("one_ray")


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


def test_pbt_copies_bottom_trials_from_top_ones_and_records_their_schedules(run_sweep):
    trials, epochs, results = run_sweep({**BASE, "name": "pbt", "tune": PBT,
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
        if after[:len(before)] != before:  # it copied a donor at epoch 4, after the resume: the donor's lineage
            assert after[-1]["trial"] == tid and after[-1]["epoch"] == 4, (tid, before, after)
            assert after[:-1] in [s for d, s in saved.items() if d != tid], (tid, saved, after)
    # the resumed population went on in step: copies only at the perturbation epochs
    assert {step["epoch"] for tid in saved for step in json.loads(trials.loc[tid, "pbt_schedule"])} <= {0, 2, 4}


def test_pbt_over_packs_copies_a_configuration_seed_by_seed(run_sweep):
    """Two seeds per configuration: each configuration's seeds train as one pack, PBT ranks the pack by
    their mean, and a copying pack takes the donor pack's member of each seed (schedules, rates, rows)."""
    trials, epochs, results = run_sweep({**BASE, "name": "pbt-packs", "tune": PBT, "seeds": [0, 1],
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


def test_population_epoch_is_the_last_perturbation_epoch_every_unit_has_passed():
    from harness.sweep.pbt import population_epoch

    assert population_epoch({}, 2) == 0  # a new sweep
    assert population_epoch({"a": 0, "b": 0}, 2) == 0
    assert population_epoch({"a": 3, "b": 4, "c": 2}, 2) == 2  # c copied or waited at 2, a is mid-interval
    assert population_epoch({"a": 5, "b": 4}, 2) == 4
    assert population_epoch({"a": 5, "b": 7}, 3) == 3


def toy_population(tmp_path, scheduler, budget: float, resumed: dict | None = None, rejoin=(),
                   quitter: str | None = None, epochs: int = 6) -> tuple[list[int], list[str]]:
    """A real Tune run of four toy trials (ids "0.1" to "0.4") under `scheduler`: trial `lr` reports val_acc =
    lr * epoch each epoch, with a checkpoint holding its epoch and id at each even one. `resumed`: the
    epoch a trial starts after when Tune gives it no checkpoint (as a --resume), `rejoin`: those that
    report that epoch again first. `quitter` ends by itself after its first epoch, once the others have
    got to epoch 2 and wait there (as a trial the health monitor stops). Returns the last epoch each Tune
    trial reported, in order, once done or out of its time `budget`, and each restart from a checkpoint
    ("<trial> <epoch> <the checkpoint's trial>")."""
    import time
    from pathlib import Path

    from ray import tune

    restarts = tmp_path / "restarts"
    tmp_path.mkdir(parents=True, exist_ok=True)
    restarts.touch()
    resumed = resumed or {}

    def trainable(config):
        tid = config["trial_id"]

        def report(epoch):
            metrics = {"epoch": epoch, "val_acc": config["optimizer.lr"] * epoch}
            if epoch % 2:
                tune.report(metrics)
                return
            folder = tmp_path / f"{tid}-{epoch}"
            folder.mkdir(exist_ok=True)
            (folder / "epoch").write_text(f"{epoch} {tid}")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

        start = resumed.get(tid, 0)
        if tune.get_checkpoint() is not None:
            with tune.get_checkpoint().as_directory() as folder:
                start, source = Path(folder, "epoch").read_text().split()
            start = int(start)
            with restarts.open("a") as f:
                f.write(f"{tid} {start} {source}\n")
        elif tid in rejoin:
            report(start)
        for epoch in range(start + 1, epochs + 1):
            time.sleep(0.05)
            report(epoch)
            if tid == quitter:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not all((tmp_path / f"0.{n}-2").exists() for n in "234"):
                    time.sleep(0.1)
                time.sleep(1.0)  # for Tune to pause them
                return

    lrs = ["0.1", "0.2", "0.3", "0.4"]
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 0.25}),
                       param_space={"trial_id": tune.grid_search(lrs),
                                    "optimizer.lr": tune.sample_from(lambda spec: float(spec.config["trial_id"]))},
                       tune_config=tune.TuneConfig(scheduler=scheduler, time_budget_s=budget),
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0))
    return sorted(r.metrics.get("epoch") for r in tuner.fit()), sorted(restarts.read_text().splitlines())


def test_synchronous_pbt_goes_on_when_the_last_trial_short_of_the_epoch_ends_after_the_others_wait(tmp_path):
    """Tune's synchronous PBT waits at each perturbation epoch for every live trial. Three trials reach
    epoch 2 and wait; the fourth ends by itself after epoch 1, after they got there: no result comes to
    trigger the perturbation. Tune's own scheduler leaves the three paused until the run's time budget
    (what hung a resumed sweep in CI); the harness's perturbs them and lets them finish."""
    import ray
    from ray.tune.schedulers import PopulationBasedTraining

    from harness.sweep.pbt import make_pbt

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    cfg = build_sweep({**BASE, "name": "p", "tune": PBT, "grid": {"optimizer.lr": [0.1]}}).trials[0].config
    ends, _ = toy_population(tmp_path / "harness", make_pbt(cfg, "val_acc", "max"), budget=120, quitter="0.1")
    assert ends == [1, 6, 6, 6]
    tunes_own = PopulationBasedTraining(time_attr="epoch", metric="val_acc", mode="max", perturbation_interval=2,
                                        hyperparam_mutations={"optimizer.lr": [0.1, 0.2]}, synch=True)
    ends, _ = toy_population(tmp_path / "tune", tunes_own, budget=15, quitter="0.1")
    assert ends == [1, 2, 2, 2]


def test_a_resumed_pbt_population_waits_for_its_next_perturbation_epoch(tmp_path):
    """A population stopped past its copy at epoch 2: two trials had got to epoch 4 and waited there, one
    was mid-epoch 4, one mid-epoch 3. Resumed, the scheduler starts at epoch 2 (population_epoch) and the
    two at epoch 4 report it again: the population is ranked once, at epoch 4, all of it there; the worst
    (lr 0.1) copies the best (lr 0.4) and the others go on from their own checkpoints."""
    import ray

    from harness.sweep.pbt import make_pbt, population_epoch

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    cfg = build_sweep({**BASE, "name": "p", "tune": PBT, "grid": {"optimizer.lr": [0.1]}}).trials[0].config
    resumed = {"0.1": 3, "0.2": 4, "0.3": 2, "0.4": 4}
    start = population_epoch(resumed, 2)
    assert start == 2
    ends, restarts = toy_population(tmp_path, make_pbt(cfg, "val_acc", "max", start), budget=120, resumed=resumed,
                                    rejoin={"0.2", "0.4"})
    assert ends == [6, 6, 6, 6]
    assert restarts == ["0.1 4 0.4", "0.2 4 0.2", "0.3 4 0.3", "0.4 4 0.4"], restarts
