"""Across-workload comparison: normalized scores, IQM with stratified bootstrap, performance profiles
(harness.report.workloads)."""


import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from harness.report import plots
from harness.report.workloads import (
    iqm,
    iqm_table,
    normalized_scores,
    performance_profile,
    stratified_resample,
    workload_axes,
    workloads_note,
)

try:
    from report_fixtures import hand_results
except ImportError:  # tests/ as a package
    from tests.report_fixtures import hand_results

METRIC = "best_val_acc"


def two_datasets(tmp_path, scores, metric=METRIC):
    """`scores`: {(dataset, optimizer): [score per seed]}."""
    rows = [({"dataset.name": d, "optimizer.name": o}, seed, v)
            for (d, o), values in scores.items() for seed, v in enumerate(values)]
    return hand_results(tmp_path, rows, ["dataset.name", "optimizer.name"], metric)


# a: sgd mean 0.9 is best; b: both means 0.5
TINY = {("a", "sgd"): [0.8, 1.0], ("a", "adam"): [0.6], ("b", "sgd"): [0.5], ("b", "adam"): [0.25, 0.75]}


def test_normalized_by_the_workloads_best_method_mean(tmp_path):
    results = two_datasets(tmp_path, TINY)
    assert workload_axes(results) == ["dataset.name"]
    scores = normalized_scores(results, METRIC)
    got = {m: sorted(part["normalized"]) for m, part in scores.groupby("method")}
    assert got["optimizer=sgd"] == pytest.approx(sorted([0.8 / 0.9, 1.0 / 0.9, 1.0]))
    assert got["optimizer=adam"] == pytest.approx(sorted([0.6 / 0.9, 0.5, 1.5]))
    assert set(scores["workload"]) == {"dataset=a", "dataset=b"}


def test_lower_is_better_normalizes_best_over_score(tmp_path):
    losses = {("a", "sgd"): [0.2, 0.4], ("a", "adam"): [0.6], ("b", "sgd"): [1.0], ("b", "adam"): [2.0]}
    scores = normalized_scores(two_datasets(tmp_path, losses, "val_loss"), "val_loss")
    got = {m: sorted(part["normalized"]) for m, part in scores.groupby("method")}
    assert got["optimizer=sgd"] == pytest.approx(sorted([0.3 / 0.2, 0.3 / 0.4, 1.0]))
    assert got["optimizer=adam"] == pytest.approx(sorted([0.3 / 0.6, 0.5]))


def test_performance_profile_fractions(tmp_path):
    profile = performance_profile(two_datasets(tmp_path, TINY), METRIC, taus=[0.5, 1.0, 1.2])
    assert list(profile.columns) == ["method", "tau", "fraction"]
    got = {(m, t): f for m, t, f in profile.itertuples(index=False)}
    # sgd runs: 0.889, 1.111, 1.0; adam runs: 0.667, 0.5, 1.5
    assert got[("optimizer=sgd", 0.5)] == 1.0
    assert got[("optimizer=sgd", 1.0)] == pytest.approx(2 / 3)
    assert got[("optimizer=sgd", 1.2)] == 0.0
    assert got[("optimizer=adam", 0.5)] == 1.0  # >= tau: the run at exactly 0.5 counts
    assert got[("optimizer=adam", 1.0)] == pytest.approx(1 / 3)
    assert got[("optimizer=adam", 1.2)] == pytest.approx(1 / 3)
    default = performance_profile(two_datasets(tmp_path, TINY), METRIC)
    assert len(default) == 2 * 101 and default["tau"].min() == pytest.approx(0.5) and default["tau"].max() == 1.5
    assert default.groupby("method")["fraction"].first().eq(1.0).all()


def test_iqm_is_the_quarter_trimmed_mean():
    x = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 100.0, -50.0, 4.0])
    assert iqm(x) == pytest.approx(trim_mean(x, 0.25))
    assert iqm(x) == pytest.approx(np.mean([3.0, 4.0, 5.0, 7.0]))


def big_sweep(tmp_path):
    rng = np.random.default_rng(7)
    scores = {(d, o): list(np.round(base + rng.normal(0, 0.05, size=6), 4))
              for d, shift in (("mnist", 0.15), ("cifar10", 0.0), ("svhn", 0.05))
              for o, base in (("sgd", 0.7 + shift), ("adam", 0.75 + shift), ("lion", 0.6 + shift))}
    return two_datasets(tmp_path, scores), scores


def test_iqm_table_values_interval_and_reproducibility(tmp_path):
    results, scores = big_sweep(tmp_path)
    table = iqm_table(results, METRIC, reps=500, seed=0)
    data = table.data.set_index("method")
    assert list(table.data["method"])[0] == "optimizer=adam"  # best IQM first
    for opt in ("sgd", "adam", "lion"):
        normalized = []
        for d in ("mnist", "cifar10", "svhn"):
            best = max(np.mean(scores[(d, o)]) for o in ("sgd", "adam", "lion"))
            normalized += [v / best for v in scores[(d, opt)]]
        row = data.loc[f"optimizer={opt}"]
        assert row["iqm"] == pytest.approx(trim_mean(normalized, 0.25))
        assert row["mean"] == pytest.approx(np.mean(normalized))
        assert row["runs"] == 18 and row["workloads"] == 3
        assert row["ci_low"] <= row["iqm"] <= row["ci_high"] and row["ci_low"] < row["ci_high"]
    again = iqm_table(results, METRIC, reps=500, seed=0)
    pd.testing.assert_frame_equal(table.data, again.data)
    other = iqm_table(results, METRIC, reps=500, seed=1)
    assert not np.allclose(other.data["ci_low"], table.data["ci_low"])
    assert list(table.view.columns) == ["method", f"IQM normalized {METRIC}", "95% CI", "mean", "n runs", "workloads"]
    assert table.view["workloads"].tolist() == ["3/3"] * 3
    assert "stratified" in table.note and "Agarwal et al. 2021" in table.note and "score / best" in table.note


def test_stratified_resample_keeps_each_workloads_runs_and_count():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0]), np.array([100.0])]
    sample = stratified_resample(groups, 1000, np.random.default_rng(0))
    assert sample.shape == (1000, 6)
    assert set(np.unique(sample[:, :3])) == {1.0, 2.0, 3.0}
    assert set(np.unique(sample[:, 3:5])) == {10.0, 20.0}
    assert (sample[:, 5] == 100.0).all()
    again = stratified_resample(groups, 1000, np.random.default_rng(0))
    assert (sample == again).all()


def test_single_workload_has_no_iqm_and_a_note(tmp_path):
    rows = [({"dataset.name": "cifar10", "optimizer.name": o}, s, 0.5 + 0.1 * s)
            for o in ("sgd", "adam") for s in (0, 1)]
    results = hand_results(tmp_path, rows, ["dataset.name", "optimizer.name"])
    assert workload_axes(results) == []
    assert iqm_table(results, METRIC) is None
    profile = performance_profile(results, METRIC)
    assert profile.empty and list(profile.columns) == ["method", "tau", "fraction"]
    note = workloads_note(results)
    assert "dataset.name=cifar10" in note and "`model.arch`" in note and "at least two" in note


def test_failed_trials_do_not_make_a_workload(tmp_path):
    rows = [({"dataset.name": "cifar10", "optimizer.name": o}, 0, 0.5) for o in ("sgd", "adam")]
    rows.append(({"dataset.name": "mnist", "optimizer.name": "sgd"}, 0, float("nan"), "failed"))
    results = hand_results(tmp_path, rows, ["dataset.name", "optimizer.name"])
    assert iqm_table(results, METRIC) is None


def test_architectures_are_workloads_too(tmp_path):
    rows = [({"model.arch": a, "optimizer.name": o}, s, base + 0.01 * s)
            for a, shift in (("mlp", 0.0), ("resnet18", 0.2))
            for o, base in (("sgd", 0.5 + shift), ("adam", 0.6 + shift))
            for s in (0, 1, 2)]
    results = hand_results(tmp_path, rows, ["model.arch", "optimizer.name"])
    assert workload_axes(results) == ["model.arch"]
    table = iqm_table(results, METRIC, reps=200)
    assert list(table.data["method"]) == ["optimizer=adam", "optimizer=sgd"]
    assert table.data["iqm"].iloc[0] == pytest.approx(1.0)
    assert "2 values of `model.arch`" in workloads_note(results)


def test_plot_performance_profile_writes_a_png(tmp_path):
    profile = performance_profile(two_datasets(tmp_path, TINY), METRIC)
    path = plots.plot_performance_profile(profile, METRIC, tmp_path / "profile.png")
    assert path is not None and path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.plot_performance_profile(profile.iloc[:0], METRIC, tmp_path / "none.png") is None


def test_report_compares_methods_across_workloads(tmp_path):
    """Two datasets x two optimizers through write_report: the IQM table and the performance profile appear,
    adam ahead on both workloads."""
    from harness.report import write_report

    try:
        from report_fixtures import write_standins
    except ImportError:  # tests/ as a package
        from tests.report_fixtures import write_standins
    means = {(("dataset.name", d), ("optimizer.name", o)): m
             for (d, o), m in {("digits", "adam"): 0.97, ("digits", "sgd"): 0.93,
                               ("mnist_5k", "adam"): 0.95, ("mnist_5k", "sgd"): 0.90}.items()}
    out = write_report(write_standins(tmp_path / "r", means, seeds=5))
    text = (out / "leaderboard.md").read_text()
    assert "## IQM of normalized best_val_acc across workloads" in text
    iqm = pd.read_csv(out / "iqm.csv")
    assert list(iqm["method"]) == ["optimizer=adam", "optimizer=sgd"]
    assert (out / "plots" / "performance_profile.png").stat().st_size > 0
