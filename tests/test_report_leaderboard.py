"""Leaderboard order, means, std, intervals and ties; marginals; time to target; compare — on the fake sweep."""

import math

import numpy as np
import pytest

try:
    from report_fixtures import board, build_fake_sweep, results  # noqa: F401 - board, results: shared fixtures
except ImportError:  # tests/ as a package
    from tests.report_fixtures import board, build_fake_sweep, results  # noqa: F401 - fixtures pytest finds by name

from harness.report.compare import compare
from harness.report.leaderboard import best_trial, leaderboard, replicate_values
from harness.report.marginals import grid2d, heatmap_pairs, marginals
from harness.report.results import load_results
from harness.report.targets import time_to_target, trial_times

T2, T3, T11 = 12.706204736174707, 4.302652729749464, 2.200985160082949  # t_{0.975, df} for df = 1, 2, 11

ORDER = [
    "activation=relu lr=0.01 optimizer=adam",
    "activation=gelu lr=0.01 optimizer=adam",
    "activation=relu lr=0.1 optimizer=sgd",
    "activation=tanh lr=0.01 optimizer=adam",
    "activation=gelu lr=0.1 optimizer=sgd",
    "activation=relu lr=0.01 optimizer=sgd",
    "activation=gelu lr=0.01 optimizer=sgd",  # seed 1 failed: n=2, a wide interval
    "activation=relu lr=0.1 optimizer=adam",
    "activation=gelu lr=0.1 optimizer=adam",
    "activation=tanh lr=0.01 optimizer=sgd",
    "activation=tanh lr=0.1 optimizer=sgd",  # seed 2 diverged: n=2
    "activation=tanh lr=0.1 optimizer=adam",  # seed 1 stalled at 0.10: huge std
]


def row(board, label):
    return board[board["label"] == label].iloc[0]


def test_configuration_identity(results):
    assert results.axes == ["model.activation", "optimizer.lr", "optimizer.name"]
    assert results.trials["config_key"].nunique() == 12
    assert set(results.trials["label"]) == set(ORDER)


def test_order_means_std_and_intervals(board):
    assert list(board["label"]) == ORDER
    top = row(board, ORDER[0])
    half = T3 * 0.01 / math.sqrt(3)
    assert (top["mean"], top["std"], top["n"]) == (pytest.approx(0.95), pytest.approx(0.01), 3)
    assert (top["ci_low"], top["ci_high"]) == (pytest.approx(0.95 - half), pytest.approx(0.95 + half))

    failed_one = row(board, ORDER[6])  # 0.84 and 0.87 left
    std = np.std([0.84, 0.87], ddof=1)
    assert (failed_one["mean"], failed_one["std"], failed_one["n"]) == (pytest.approx(0.855), pytest.approx(std), 2)
    # two seeds: no trustworthy interval, the range instead
    assert failed_one["interval"] == "range" and math.isnan(failed_one["ci_low"]) and math.isnan(failed_one["ci_high"])
    assert (failed_one["min"], failed_one["max"]) == (pytest.approx(0.84), pytest.approx(0.87))
    assert failed_one["excluded"] == 1

    diverged = row(board, ORDER[10])
    assert (diverged["mean"], diverged["n"], diverged["excluded"]) == (pytest.approx(0.795), 2, 1)

    stalled = row(board, ORDER[11])  # stalled trials count
    values = [0.69, 0.10, 0.71]
    std = np.std(values, ddof=1)
    assert (stalled["mean"], stalled["std"], stalled["n"]) == (pytest.approx(0.5), pytest.approx(std), 3)
    # 0.5 +- 4.30 * 0.347 / sqrt(3) would run from -0.36 to 1.36: an accuracy's interval stays in [0, 1]
    assert (stalled["ci_low"], stalled["ci_high"]) == (0.0, 1.0)


def test_ties_with_the_leader(board):
    # Every fake configuration moves with the seed exactly like the leader (offsets -0.01, 0, +0.01), so its
    # paired differences have no spread and the paired test separates it (p = 0), however close the means.
    # Left tied: the n=2 entry (differences -0.10, -0.09: t = -19, df = 1, p = 0.0335, Holm x2 = 0.067) and
    # the stalled one (differences -0.25, -0.85, -0.25: p = 0.153); overlapping intervals decide nothing.
    assert list(board["rank"]) == ["1=", "2", "3", "4", "5", "6", "1=", "8", "9", "10", "11", "1="]
    assert list(board["tied_with_top"]) == [True, False, False, False, False, False, True, False, False, False,
                                            False, True]
    assert not board["winner"].any()


def test_paired_p_values(board):
    assert math.isnan(board["p_vs_top"][0]) and math.isnan(board["p_holm"][0])
    p6 = 1 - 2 / math.pi * math.atan(19.0)  # seeds 0 and 2 shared: differences -0.10, -0.09 -> t = -19, df = 1
    p11 = 1 - 2.25 / math.sqrt(2.25**2 + 2)  # differences -0.25, -0.85, -0.25 -> t = -2.25, df = 2
    assert row(board, ORDER[6])["p_vs_top"] == pytest.approx(p6)
    assert row(board, ORDER[11])["p_vs_top"] == pytest.approx(p11)
    # Holm over the 11 comparisons: nine p = 0, then p6 (x2) and p11 (x1, but never below the one before)
    assert row(board, ORDER[6])["p_holm"] == pytest.approx(2 * p6)
    assert row(board, ORDER[11])["p_holm"] == pytest.approx(max(2 * p6, p11))
    assert row(board, ORDER[1])["p_holm"] == 0.0
    # P(beats #1): the share of shared seeds on which the entry beats the leader
    assert row(board, ORDER[1])["p_beats_top"] == 0.0
    assert row(board, ORDER[6])["shared"] == 2


def test_no_tie_when_alone_and_lower_is_better(results):
    board = leaderboard(results, "best_val_loss")
    assert board["mean"].is_monotonic_increasing  # lower loss first
    assert board["rank"].iloc[0] in ("1", "1=")


def test_best_trial_is_the_leaders_best_seed(results, board):
    best = best_trial(results, board, "best_val_acc")
    assert best["trial_id"] == "activation=relu-optimizer=adam-lr=0.01-seed=2"


def test_marginals(results):
    frame = marginals(results, "best_val_acc")
    assert list(dict.fromkeys(frame["axis"])) == ["model.activation", "optimizer.lr", "optimizer.name"]
    act = frame[frame["axis"] == "model.activation"].set_index("value")
    assert list(act.index) == ["relu", "gelu", "tanh"]  # best mean first
    relu = [0.94, 0.95, 0.96, 0.90, 0.91, 0.92, 0.86, 0.87, 0.88, 0.84, 0.85, 0.86]
    assert act.loc["relu", "n"] == 12
    assert act.loc["relu", "mean"] == pytest.approx(np.mean(relu))
    assert act.loc["relu", "std"] == pytest.approx(np.std(relu, ddof=1))
    assert act.loc["relu", "ci_high"] == pytest.approx(np.mean(relu) + T11 * np.std(relu, ddof=1) / math.sqrt(12))
    assert act.loc["relu", "best"] == pytest.approx(0.95)
    tanh = [0.89, 0.90, 0.91, 0.81, 0.82, 0.83, 0.79, 0.80, 0.69, 0.10, 0.71]  # diverged seed left out
    assert act.loc["tanh", "n"] == 11 and act.loc["tanh", "mean"] == pytest.approx(np.mean(tanh))
    assert act.loc["tanh", "configs"] == 4


def test_grid2d_and_heatmap_pairs(results):
    assert heatmap_pairs(results)[0] == ("optimizer.lr", "optimizer.name")
    assert len(heatmap_pairs(results)) == 3
    grid = grid2d(results, "best_val_acc", "optimizer.lr", "optimizer.name")
    assert list(grid.index) == ["0.01", "0.1"] and list(grid.columns) == ["adam", "sgd"]
    adam_001 = [0.94, 0.95, 0.96, 0.93, 0.94, 0.95, 0.89, 0.90, 0.91]
    assert grid.loc["0.01", "adam"] == pytest.approx(np.mean(adam_001))


def test_time_to_target(results):
    per_trial = trial_times(results, 0.9).set_index("trial_id")
    overfit = per_trial.loc["activation=relu-optimizer=adam-lr=0.01-seed=0"]
    assert (overfit["epoch"], overfit["seconds"]) == (3, 7.0)  # 3 + 2 + 2 seconds
    assert "activation=gelu-optimizer=sgd-lr=0.01-seed=1" not in per_trial.index  # failed: left out

    frame = time_to_target(results, 0.9)
    head = frame.head(5).set_index("label")
    assert list(head.index) == [ORDER[0], ORDER[1], ORDER[2], ORDER[3], ORDER[4]]
    assert head.loc[ORDER[0], ["reached", "n", "median_epoch", "median_seconds"]].tolist() == [3, 3, 3, 7.0]
    assert head.loc[ORDER[1], "median_epoch"] == 4 and head.loc[ORDER[1], "mean_seconds"] == pytest.approx(25 / 3)
    assert head.loc[ORDER[2], ["reached", "median_epoch", "median_seconds"]].tolist() == [3, 5, 11.0]
    assert head.loc[ORDER[3], ["reached", "median_epoch", "median_seconds"]].tolist() == [2, 5, 11.0]
    assert head.loc[ORDER[4], "reached"] == 1 and math.isinf(head.loc[ORDER[4], "median_seconds"])
    assert (frame["reached"].iloc[5:] == 0).all()


def test_compare(tmp_path, results, board):
    subset = [("relu", "adam", 0.01), ("gelu", "adam", 0.01)]
    other = load_results(build_fake_sweep(tmp_path / "b", configs=subset, shift=-0.05, sweep="other"))
    frame = compare(board, leaderboard(other, "best_val_acc"), replicate_values(results, "best_val_acc"),
                    replicate_values(other, "best_val_acc")).set_index("label")
    assert list(frame.index) == ORDER  # A's order; B's configurations are all in A
    assert frame.loc[ORDER[0], "delta"] == pytest.approx(0.05)
    assert frame.loc[ORDER[0], "mean_b"] == pytest.approx(0.90)
    assert frame.loc[ORDER[0], "differs"]  # every seed 0.05 lower in B: paired differences without spread
    assert math.isnan(frame.loc[ORDER[5], "mean_b"]) and frame.loc[ORDER[5], "differs"] is None
    # the other way round: B's configurations first, A-only ones after
    back = compare(leaderboard(other, "best_val_acc"), board, replicate_values(other, "best_val_acc"),
                   replicate_values(results, "best_val_acc"))
    assert list(back["label"][:2]) == [ORDER[0], ORDER[1]]
    assert back["delta"][0] == pytest.approx(-0.05)


def test_ranking_rule_on_hand_made_values():
    from harness.report.ranking import is_winner, rank, ranks

    values = {
        "a": {0: 0.90, 1: 0.92, 2: 0.94},
        "b": {0: 0.80, 1: 0.83, 2: 0.85},  # below a on every seed by 0.09-0.10: separated
        "c": {0: 0.91, 1: 0.90, 2: 0.93},  # mixed: tied
        "d": {5: 0.99},  # shares no seed with the leader: untested
        "e": {},
    }
    entries = rank(values, bounds=(0.0, 1.0))
    assert [e.key for e in entries] == ["d", "a", "c", "b", "e"]
    # d leads on one seed: nothing can be tested against it, so no winner and nobody tied
    assert ranks(entries) == ["1", "2", "3", "4", "–"] and not is_winner(entries)
    without_d = rank({k: v for k, v in values.items() if k != "d"}, bounds=(0.0, 1.0))
    assert [e.key for e in without_d] == ["a", "c", "b", "e"]
    assert ranks(without_d) == ["1=", "1=", "3", "–"] and not is_winner(without_d)
    clear = rank({"a": values["a"], "b": values["b"]})
    assert ranks(clear) == ["1", "2"] and is_winner(clear)
    assert rank({}) == [] and not is_winner(rank({"a": values["a"]}))


def test_verdict_and_seeds_needed(results, board):
    from harness.report.leaderboard import find_configuration, separations, verdict

    assert verdict(board, "best_val_acc").startswith("No winner: **activation=relu lr=0.01 optimizer=adam** leads")
    key = find_configuration(results, "activation=tanh lr=0.1 optimizer=adam")
    assert find_configuration(results, "optimizer=adam lr=0.1 activation=tanh") == key
    pairs = separations(results, board, "best_val_acc", [(board["config_key"][0], key)])
    assert list(pairs["asked"]) == [False, True]
    top_two = pairs.iloc[0]
    assert (top_two["shared"], top_two["mean_diff"], top_two["sd_diff"]) == (3, pytest.approx(0.01), pytest.approx(0))
    assert top_two["verdict"] == "needs about 2 seeds (separated now)"
    asked = pairs.iloc[1]  # differences 0.25, 0.85, 0.25: effect 0.45 / 0.346 = 1.30 -> 7 seeds
    assert asked["seeds_needed"] == 7 and asked["p_a_beats_b"] == 1.0
    from harness.report.results import ReportError
    with pytest.raises(ReportError, match="matches 6 configurations: activation=gelu lr=0.01 optimizer=adam;"):
        find_configuration(results, "optimizer=adam")
    with pytest.raises(ReportError, match="matches no configuration"):
        find_configuration(results, "optimizer=lion")
