"""Adaptive search (harness.sweep.search) on real Ray Tune: Optuna, HyperOpt and BOHB choose each
configuration as the sweep runs, every configuration runs over every seed (one pack), ids stay readable,
--resume replays what ran into a fresh searcher and continues an interrupted sample under its own id;
and HyperBand pauses and stops packs of one configuration's seeds. One Ray per module: the sweeps run
in this process (harness.sweep.cli.main), as the user's command does."""

import math

import pytest
import yaml

from harness import store
from harness.config import ConfigError, build_sweep
from harness.config.spaces import Space
from harness.sweep import search
from harness.sweep.cli import main
from harness.sweep.search import Objective, check_search

DATA = {"name": "synthetic", "num_train": 384, "num_val": 128, "num_test": 128, "shape": [1, 8, 8], "num_classes": 4}
BASE = {"dataset": DATA, "model": {"arch": "mlp", "widths": [16]}, "optimizer": {"name": "adam"},
        "train": {"epochs": 2, "batch_size": 64}, "health": {"enabled": False},
        "early_stopping": {"enabled": False}, "resources": {"cpus_per_trial": 1}, "seeds": [0, 1]}
SPACE = {"optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]}, "optimizer.weight_decay": {"quniform": [0.0, 0.001, 0.0005]},
         "model.activation": ["relu", "tanh"]}


pytestmark = pytest.mark.usefixtures("one_ray")


def run(tmp_path, sweep: dict, *args: str, capsys=None) -> tuple[int, str]:
    path = tmp_path / f"{sweep['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    code = main([str(path), "--results-dir", str(tmp_path), "--no-report", *args])
    return code, capsys.readouterr().out if capsys else ""


def test_adaptive_sweeps_are_checked_before_anything_runs(monkeypatch):
    sweep = build_sweep({**BASE, "name": "a", "tune": {"search": "optuna", "num_samples": 3}, "grid": SPACE})
    assert sweep.adaptive and set(sweep.space) == set(SPACE)
    assert sweep.space["model.activation"] == Space("choice", ("relu", "tanh"))  # a list is a choice
    assert len(sweep.trials) == 6  # a random draw of the same size: --dry-run, the checks before a run
    [t0, t1] = sweep.trials_at({"optimizer.lr": 0.01, "optimizer.weight_decay": 0.0005, "model.activation": "tanh"}, 7)
    assert t0.trial_id == "sample=7-lr=0.01-weight_decay=0.0005-activation=tanh-seed=0"
    assert (t1.config.seed, t1.config.optimizer.lr, t1.config.model.activation) == (1, 0.01, "tanh")
    for grid, message in (([SPACE], "searches one grid mapping"), ({}, "searches one grid mapping")):
        with pytest.raises(ConfigError, match=message):
            build_sweep({**BASE, "name": "a", "tune": {"search": "hyperopt"}, "grid": grid})
    build_sweep({**BASE, "name": "a", "tune": {"scheduler": "hyperband"},  # pauses data-parallel trials too
                 "resources": {"workers_per_trial": 2}, "grid": {"optimizer.lr": [0.1]}})
    scheduled = build_sweep({**BASE, "name": "a", "tune": {"search": "optuna", "scheduler": "asha"}, "grid": SPACE})
    with pytest.raises(ConfigError, match=r"stops a configuration's seeds together, as one pack, and these cannot "
                                          r"pack \(--no-pack\)"):
        check_search(scheduled, no_pack=True)
    monkeypatch.setitem(search.SEARCHERS, "optuna", ("ray.tune.search.optuna", "OptunaSearch", ("no_such_pkg",)))
    with pytest.raises(ConfigError, match=r'tune.search optuna needs the no_such_pkg package: pip install -e "\.\[search\]"'):
        check_search(sweep)


def test_values_from_a_searcher_are_cast_to_the_space_and_the_objective_is_the_seeds_mean():
    assert Space("loguniform", (1e-4, 0.1)).cast(0.0123456789) == 0.01235
    assert Space("quniform", (0.0, 1.0, 0.25)).cast(0.6) == 0.5
    assert Space("randint", (1, 9)).cast(3.0) == 3 and isinstance(Space("randint", (1, 9)).cast(3.0), int)
    import numpy as np

    assert type(Space("choice", ("relu", "tanh")).cast(np.str_("tanh"))) is str
    objective = Objective("val_acc", {"a": 0.5})
    for tid, acc in (("b", 0.6), ("b", 0.8), ("b", 0.7), ("c", math.nan)):
        objective.see(tid, {"val_acc": acc})
    assert objective.value == pytest.approx((0.5 + 0.8) / 2)  # each seed's best, NaN ignored
    loss = Objective("val_loss", {})
    for v in (0.9, 0.4, 0.6):
        loss.see("a", {"val_loss": v})
    assert loss.value == 0.4


@pytest.mark.parametrize("searcher,scheduler", [("optuna", "none"), ("hyperopt", "none"), ("bohb", "hyperband")])
def test_each_searcher_samples_runs_every_seed_and_resumes(tmp_path, capsys, searcher, scheduler):
    name = f"search-{searcher}"
    sweep = {**BASE, "name": name, "tune": {"search": searcher, "num_samples": 2, "scheduler": scheduler,
                                            "reduction_factor": 2}, "grid": SPACE}
    code, out = run(tmp_path, sweep, capsys=capsys)
    assert code == 0, out
    assert f"{searcher}: 0 of 2 configurations sampled already; 2 to sample, each over 2 seed(s)" in out
    assert "each configuration's 2 seeds run as one pack" in out
    trials = store.read_table(tmp_path / name, "trials")
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "early_stopped"}
    samples = trials["trial_id"].str.extract(r"^sample=(\d+)-")[0]
    assert sorted(samples.unique()) == ["0", "1"]
    for _, seeds in trials.groupby(samples):  # a configuration's seeds share every searched value
        assert sorted(seeds["seed"]) == [0, 1]
        assert seeds[["optimizer.lr", "optimizer.weight_decay", "model.activation"]].nunique().max() == 1
    assert trials["optimizer.lr"].between(1e-4, 1e-1).all()
    assert set(trials["optimizer.weight_decay"]) <= {0.0, 0.0005, 0.001}
    assert set(trials["model.activation"]) <= {"relu", "tanh"}
    for tid, lr in zip(trials["trial_id"], trials["optimizer.lr"]):
        assert f"-lr={lr:g}-" in tid or f"-lr={lr}-" in tid  # the id shows the value the trial ran with
    first = dict(zip(trials["trial_id"], trials["finished_at"]))

    # --resume with a larger budget: the 2 samples are replayed into the searcher, 1 more is sampled
    code, out = run(tmp_path, sweep, "--resume", "--set", "tune.num_samples=3", capsys=capsys)
    assert code == 0, out
    assert f"{searcher}: 2 of 3 configurations sampled already; 1 to sample" in out
    trials = store.read_table(tmp_path / name, "trials")
    assert len(trials) == 6 and trials["trial_id"].str.startswith("sample=2-").sum() == 2
    assert {t: f for t, f in zip(trials["trial_id"], trials["finished_at"]) if t in first} == first  # none ran twice
    if searcher != "optuna":
        return

    # a sample interrupted after one seed: proposed again first, under its own id; only the missing seed runs
    lost = sorted(t for t in trials["trial_id"] if t.startswith("sample=1-"))[1]
    store.forget_trials(tmp_path / name, [lost])
    code, out = run(tmp_path, sweep, "--resume", "--set", "tune.num_samples=3", capsys=capsys)
    assert code == 0, out
    assert "optuna: 2 of 3 configurations sampled already, 1 to continue; 1 to sample" in out
    again = store.read_table(tmp_path / name, "trials")
    assert sorted(again["trial_id"]) == sorted(trials["trial_id"])
    changed = {t for t, f in zip(again["trial_id"], again["finished_at"])
               if f != dict(zip(trials["trial_id"], trials["finished_at"]))[t]}
    assert changed == {lost}


def test_hyperband_stops_a_configuration_with_all_its_seeds(tmp_path, capsys):
    """A grid sweep under HyperBand: each configuration's seeds run as one pack, which HyperBand pauses,
    resumes (from the harness's checkpoints) and stops as a whole, by the seeds' mean."""
    sweep = {**BASE, "name": "hyperband", "optimizer": {"name": "sgd"}, "train": {"epochs": 4, "batch_size": 64},
             "tune": {"scheduler": "hyperband", "reduction_factor": 2, "metric": "val_loss"},
             "grid": {"optimizer.lr": [3.0, 0.3, 0.03, 0.003, 0.0003, 3.0e-5]}}
    code, out = run(tmp_path, sweep, "--max-concurrent", "6", capsys=capsys)
    assert code == 0, out
    assert "12 trials in 6 programs: 12 trials in 6 packs of 2-2" in out
    trials = store.read_table(tmp_path / "hyperband", "trials")
    assert len(trials) == 12 and set(trials["status"]) <= {"completed", "early_stopped"}
    by_lr = trials.groupby("optimizer.lr")
    assert (by_lr["status"].nunique() == 1).all() and (by_lr["epochs_run"].nunique() == 1).all()  # seeds together
    stopped = trials[trials["status"] == "early_stopped"]
    assert len(stopped) >= 2 and (stopped["epochs_run"] < 4).all() and (stopped["stopped_by"] == "scheduler").all()
    epochs = store.read_table(tmp_path / "hyperband", "epochs")
    for tid, rows in epochs.groupby("trial_id"):  # paused and resumed or not, each epoch once, in order
        assert list(rows.sort_values("epoch")["epoch"]) == list(range(1, len(rows) + 1))
    assert not any((tmp_path / "hyperband" / "checkpoints").glob("*"))
