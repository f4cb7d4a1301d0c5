"""Budget curves: Dodge et al.'s expected best of n trials (harness.report.budget)."""

import itertools

import numpy as np
import pytest

from harness.report import plots
from harness.report.budget import budget_axes, budget_curves, budget_table, expected_max

try:
    from report_fixtures import hand_results
except ImportError:  # tests/ as a package
    from tests.report_fixtures import hand_results


def brute_force(values, n, best=max):
    """Mean and variance of the best of n draws with replacement, over all N^n equally likely draws."""
    bests = [best(draw) for draw in itertools.product(values, repeat=n)]
    return np.mean(bests), np.var(bests)


def test_expected_max_exact_values():
    curve = expected_max([0.3, 0.1, 0.2], n_max=50).set_index("n")
    assert curve.loc[1, "expected"] == pytest.approx(0.2)
    assert curve.loc[2, "expected"] == pytest.approx((0.1 * 1 + 0.2 * 3 + 0.3 * 5) / 9)
    assert curve.loc[2, "expected"] == pytest.approx(0.244444444444)
    assert curve.loc[50, "expected"] == pytest.approx(0.3, abs=1e-8)
    assert curve.loc[1, "std"] == pytest.approx(np.std([0.1, 0.2, 0.3]))
    assert list(curve.index) == list(range(1, 51))
    assert (np.diff(curve["expected"]) >= 0).all()


def test_expected_max_defaults_to_the_number_of_values_and_drops_nan():
    curve = expected_max([0.5, float("nan"), 0.7, 0.6])
    assert list(curve["n"]) == [1, 2, 3]
    assert curve["expected"].iloc[0] == pytest.approx(0.6)
    empty = expected_max([])
    assert empty.empty and list(empty.columns) == ["n", "expected", "std"]


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.3], [0.5, 0.5, 0.9, 0.2], [3.0, 1.0, 4.0, 1.0, 5.0]])
def test_expected_max_and_variance_match_enumeration(values):
    curve = expected_max(values, n_max=4).set_index("n")
    for n in range(1, 5):
        mean, var = brute_force(values, n)
        assert curve.loc[n, "expected"] == pytest.approx(mean)
        assert curve.loc[n, "std"] == pytest.approx(np.sqrt(var), abs=1e-12)


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.3], [2.0, 0.5, 0.5, 1.5]])
def test_lower_is_better_is_the_expected_minimum(values):
    curve = expected_max(values, n_max=4, higher_is_better=False).set_index("n")
    for n in range(1, 5):
        mean, var = brute_force(values, n, best=min)
        assert curve.loc[n, "expected"] == pytest.approx(mean)
        assert curve.loc[n, "std"] == pytest.approx(np.sqrt(var), abs=1e-12)
    mirrored = expected_max([-v for v in values], n_max=4).set_index("n")
    assert np.allclose(curve["expected"], -mirrored["expected"])
    assert np.allclose(curve["std"], mirrored["std"])
    # [0.1, 0.2, 0.3], n = 2: (0.3 * 1 + 0.2 * 3 + 0.1 * 5) / 9
    if values == [0.1, 0.2, 0.3]:
        assert curve.loc[2, "expected"] == pytest.approx(1.4 / 9)


def optimizer_sweep(tmp_path, metric="best_val_acc", flip=False):
    """sgd over lr {0.1, 0.01}: 0.5 and 0.9 (risky); adam: 0.8 and 0.82 (safe); two seeds each, plus a
    failed sgd trial that must not count."""
    scores = {("sgd", 0.1): 0.5, ("sgd", 0.01): 0.9, ("adam", 0.1): 0.8, ("adam", 0.01): 0.82}
    rows = []
    for (opt, lr), score in scores.items():
        for seed in (0, 1):
            rows.append(({"optimizer.name": opt, "optimizer.lr": lr}, seed, 1 - score if flip else score))
    rows.append(({"optimizer.name": "sgd", "optimizer.lr": 0.01}, 2, 0.0 if not flip else 5.0, "failed"))
    return hand_results(tmp_path, rows, ["optimizer.name", "optimizer.lr"], metric)


def test_budget_curves_one_per_value_from_counted_trials(tmp_path):
    curves = budget_curves(optimizer_sweep(tmp_path), "best_val_acc", "optimizer.name")
    assert list(curves.columns) == ["axis", "value", "pool", "n", "expected", "std"]
    sgd = curves[curves["value"] == "sgd"].set_index("n")
    adam = curves[curves["value"] == "adam"].set_index("n")
    assert list(sgd.index) == [1, 2, 3, 4] and set(sgd["pool"]) == {4}  # the failed trial is no draw
    assert sgd.loc[1, "expected"] == pytest.approx(0.7)
    assert sgd.loc[2, "expected"] == pytest.approx(0.5 / 4 + 0.9 * 3 / 4)
    assert sgd.loc[3, "expected"] == pytest.approx(0.5 / 8 + 0.9 * 7 / 8)
    assert adam.loc[1, "expected"] == pytest.approx(0.81)
    assert adam.loc[1, "expected"] > sgd.loc[1, "expected"]  # adam wins on one trial
    assert sgd.loc[4, "expected"] > adam.loc[4, "expected"]  # sgd wins with a budget


def test_budget_table_names_where_each_curve_wins(tmp_path):
    results = optimizer_sweep(tmp_path)
    curves = budget_curves(results, "best_val_acc", "optimizer.name")
    table = budget_table(curves, "best_val_acc", "optimizer.name")
    view = table.view.set_index("optimizer.name")
    assert list(table.view.columns) == ["optimizer.name", "n trials", "best of 1", "best of 2", "best of 4",
                                        "wins from n"]
    # n=1: sgd 0.7 < adam 0.81; n=2: sgd 0.8 < adam 0.815; n=3: sgd 0.85 > adam 0.8175
    assert view.loc["adam", "wins from n"] == "1–2 only"
    assert view.loc["sgd", "wins from n"] == "≥ 3"
    assert view.loc["sgd", "best of 1"] == "0.7000" and view.loc["adam", "best of 1"] == "0.8100"
    assert view.loc["sgd", "n trials"] == "4"
    assert "Expected best of n trials drawn with replacement from the observed trials (Dodge et al. 2019)" in table.note
    assert table.data.set_index("value").loc["sgd", "n=4"] == pytest.approx(0.5 / 16 + 0.9 * 15 / 16)


def test_budget_table_lower_is_better(tmp_path):
    results = optimizer_sweep(tmp_path, metric="val_loss", flip=True)
    curves = budget_curves(results, "val_loss", "optimizer.name")
    sgd = curves[curves["value"] == "sgd"].set_index("n")
    assert sgd.loc[1, "expected"] == pytest.approx(0.3)
    assert sgd.loc[2, "expected"] == pytest.approx(0.5 / 4 + 0.1 * 3 / 4)  # expected minimum
    view = budget_table(curves, "val_loss", "optimizer.name").view.set_index("optimizer.name")
    assert view.loc["adam", "wins from n"] == "1–2 only" and view.loc["sgd", "wins from n"] == "≥ 3"


def test_budget_table_uneven_pools_compares_up_to_the_smallest(tmp_path):
    rows = [({"optimizer.name": "sgd"}, s, v) for s, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])]
    rows += [({"optimizer.name": "adam"}, s, v) for s, v in enumerate([0.6, 0.7])]
    curves = budget_curves(hand_results(tmp_path, rows, ["optimizer.name"]), "best_val_acc", "optimizer.name")
    table = budget_table(curves, "best_val_acc", "optimizer.name")
    view = table.view.set_index("optimizer.name")
    assert list(view.columns) == ["n trials", "best of 1", "best of 2", "best of 4", "best of 5", "wins from n"]
    assert view.loc["adam", "best of 4"] == "–" and view.loc["sgd", "best of 5"] != "–"
    assert view.loc["adam", "wins from n"] == "all" and view.loc["sgd", "wins from n"] == "never"
    assert "n = 2" in table.note


def test_budget_axes_leave_out_replicates_and_keep_three(tmp_path):
    axes = ["optimizer.name", "dataset.split_seed", "optimizer.lr", "model.width", "train.batch_size", "model.depth"]
    rows = [({a: (i + j) % 2 for j, a in enumerate(axes)}, 0, 0.5) for i in range(2)]
    rows.append(({**{a: 0 for a in axes}, "model.depth": 0}, 1, 0.5))
    results = hand_results(tmp_path, rows, axes)
    results.trials["model.depth"] = 7  # one value: not varying
    assert budget_axes(results) == ["optimizer.name", "optimizer.lr", "model.width"]


def test_plot_budget_writes_a_png(tmp_path):
    curves = budget_curves(optimizer_sweep(tmp_path), "best_val_acc", "optimizer.name")
    path = plots.plot_budget(curves, "optimizer.name", "best_val_acc", tmp_path / "budget.png")
    assert path is not None and path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.plot_budget(curves.iloc[:0], "optimizer.name", "best_val_acc", tmp_path / "none.png") is None
