"""Search spaces in sweep files (harness.config.spaces) and `search: random` over them: validation with
one-line errors, draws with Ray Tune's meanings, readable ids stable under --resume, a real sweep."""

import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

from harness import store
from harness.config import ConfigError, build_sweep, load_sweep
from harness.config.spaces import Space, parse_space

BASE = {"name": "spaces", "dataset": {"name": "digits"}, "model": {"arch": "mlp"},
        "tune": {"search": "random", "num_samples": 5}, "seeds": [0, 1]}


def sweep_with(grid, **tune):
    return build_sweep({**BASE, "tune": {**BASE["tune"], **tune}, "grid": grid})


def test_draws_follow_their_spaces():
    rng = np.random.default_rng(0)
    lr = [parse_space({"loguniform": [1e-4, 1e-1]}).sample(rng) for _ in range(4000)]
    assert min(lr) >= 1e-4 and max(lr) <= 1e-1
    # log-uniform: each decade gets a third of the draws
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0] / len(lr)
    assert np.allclose(decades, 1 / 3, atol=0.03)
    assert all(float(f"{x:.4g}") == x for x in lr[:50])  # 4 significant digits
    ints = [parse_space({"randint": [2, 5]}).sample(rng) for _ in range(300)]
    assert set(ints) == {2, 3, 4}  # high excluded, as tune.randint
    q = [parse_space({"quniform": [0.0, 1.0, 0.25]}).sample(rng) for _ in range(300)]
    assert set(q) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {parse_space({"choice": ["relu", "gelu"]}).sample(rng) for _ in range(50)} == {"relu", "gelu"}
    u = [parse_space({"uniform": [0.8, 0.99]}).sample(rng) for _ in range(300)]
    assert 0.8 <= min(u) and max(u) <= 0.99
    assert parse_space([0.1, 0.01]) is None
    assert parse_space({"loguniform": ["1e-4", 0.1]}) == Space("loguniform", (1e-4, 0.1))  # YAML's 1e-4 is text


@pytest.mark.parametrize("grid,message", [
    ({"optimizer.lr": {"loguniform": [0, 1]}}, "grid.optimizer.lr: loguniform needs low > 0, got [0, 1]"),
    ({"optimizer.lr": {"normal": [0, 1]}}, "grid.optimizer.lr: a search space is one of {loguniform: [...]"),
    ({"optimizer.lr": {"uniform": [1, 0.5]}}, "uniform needs low < high"),
    ({"optimizer.lr": {"quniform": [0, 1]}}, "quniform takes [low, high, q] (numbers)"),
    ({"train.batch_size": {"randint": [8.5, 64]}}, "randint takes integers [low, high) (high excluded)"),
    ({"model.activation": {"choice": ["relu", "relu"]}}, "choice has duplicate values"),
    ({"optimizer.lr": "0.1"}, "must be a non-empty list of values or a search space"),
])
def test_bad_spaces_are_one_line_errors(grid, message):
    with pytest.raises(ConfigError) as err:
        sweep_with(grid)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_spaces_need_random_search_and_grid_search_takes_no_num_samples():
    with pytest.raises(ConfigError, match="grid.optimizer.lr: a search space needs tune.search: random, optuna"):
        build_sweep({**BASE, "tune": {"search": "grid"}, "grid": {"optimizer.lr": {"loguniform": [1e-4, 0.1]}}})
    with pytest.raises(ConfigError, match="tune.num_samples: applies to tune.search: random"):
        build_sweep({**BASE, "tune": {"search": "grid", "num_samples": 4}, "grid": {"optimizer.lr": [0.1, 0.01]}})


def test_random_search_draws_points_with_readable_stable_ids():
    grid = {"optimizer.lr": {"loguniform": [1e-4, 1e-1]}, "optimizer.name": ["sgd", "adam"]}
    sweep = sweep_with(grid)
    assert sweep.sampled and len(sweep.trials) == 5 * 2
    first = sweep.trials[0]
    lr = first.point["optimizer.lr"]
    assert first.trial_id == f"sample=0-lr={lr:g}-optimizer={first.point['optimizer.name']}-seed=0"
    assert first.config.optimizer.lr == lr and 1e-4 <= lr <= 1e-1
    assert [t.trial_id for t in sweep.trials[:2]] == [first.trial_id, first.trial_id.replace("seed=0", "seed=1")]
    assert len({t.trial_id for t in sweep.trials}) == 10
    assert [t.trial_id for t in sweep_with(grid).trials] == [t.trial_id for t in sweep.trials]  # same draw
    other_seeds = build_sweep({**BASE, "seeds": [7], "grid": grid})
    assert other_seeds.trials[0].point != first.point  # drawn from the sweep's first seed
    few = sweep_with({"optimizer.name": {"choice": ["sgd", "adam"]}}, num_samples=5)
    assert len(few.trials) == 2 * 2  # only two distinct points exist


def test_a_random_search_over_a_space_runs_and_resumes(tmp_path):
    sweep = {
        "name": "space", "dataset": {"name": "synthetic", "num_train": 512, "num_val": 128, "num_test": 128,
                                     "shape": [1, 8, 8], "num_classes": 4},
        "model": {"arch": "mlp", "widths": [16]}, "optimizer": {"name": "adam"},
        "train": {"epochs": 2, "batch_size": 64}, "health": {"enabled": False}, "resources": {"cpus_per_trial": 1},
        "tune": {"search": "random", "num_samples": 3}, "seeds": [0, 1],
        "grid": {"optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]}},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(sweep))
    cmd = [sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp_path), "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    expected = [t.trial_id for t in load_sweep(path).trials]
    trials = store.read_table(tmp_path / "space", "trials")
    assert sorted(trials["trial_id"]) == sorted(expected) and len(expected) == 6
    assert set(trials["status"]) == {"completed"}
    lrs = trials.groupby(trials["trial_id"].str.extract(r"^(sample=\d)")[0])["optimizer.lr"].nunique()
    assert (lrs == 1).all() and trials["optimizer.lr"].nunique() == 3  # a point's seeds share its lr
    assert all(1e-4 <= lr <= 1e-1 and not math.isnan(lr) for lr in trials["optimizer.lr"])
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "(6 already finished)" in again.stdout, again.stdout[-2000:]
