"""S0's open question (shared/seeds.md): does CNN+BN+Dropout (C, test acc ~0.81 in the write-up) beat the
plain CNN (B, ~0.82)? Asked of the report on synthetic stand-ins: trials rows of the S0 sweep's two
models, written as real Parquet by harness.store, with accuracies drawn from known distributions
(a seed-to-seed std of 0.01, seeds shared by both models), and read through `python -m harness.report`
as a user would. With 3 seeds the honest answer is "cannot separate, needs about N seeds"; with
enough seeds and a real difference the report names the winner."""

import subprocess
import sys

import pandas as pd
import pytest

try:
    from report_fixtures import write_standins
except ImportError:  # tests/ as a package
    from tests.report_fixtures import write_standins

from harness.report.stats import seeds_needed

B, C = (("model.arch", "s0_cnn"),), (("model.arch", "s0_cnn_bn_dropout"),)  # grid points of S0's models B and C


def report(results_dir, *args) -> tuple[str, pd.DataFrame]:
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(results_dir), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = (results_dir / "report" / "leaderboard.md").read_text()
    return text, pd.read_csv(results_dir / "report" / "separation.csv")


def test_three_seeds_cannot_separate_b_from_c(tmp_path):
    results = write_standins(tmp_path / "three", {B: 0.82, C: 0.81}, seeds=3, sweep="s0_standin")
    text, pairs = report(results)
    assert "No winner" in text and "cannot be separated from 1 other configuration" in text
    top = pairs.iloc[0]
    needed = seeds_needed(top["mean_diff"], top["sd_diff"])
    assert needed is not None and needed > 3
    assert top["verdict"] == f"needs about {needed} seeds"
    assert f"needs about {needed} seeds (80% power, paired t-test)" in text
    assert "| 1= | arch=s0_cnn " in text or "| 1= | arch=s0_cnn_bn_dropout " in text


def test_enough_seeds_show_the_winner(tmp_path):
    results = write_standins(tmp_path / "many", {B: 0.82, C: 0.81}, seeds=30, rng_seed=1, sweep="s0_standin")
    text, pairs = report(results, "--metric", "test_acc")
    assert "**arch=s0_cnn** wins" in text
    assert "| 1 | arch=s0_cnn |" in text and "| 2 | arch=s0_cnn_bn_dropout |" in text
    assert pairs.iloc[0]["p"] < 0.05


@pytest.mark.parametrize("seeds", [3, 30])
def test_no_difference_never_shows_a_winner_here(tmp_path, seeds):
    results = write_standins(tmp_path / f"same{seeds}", {B: 0.815, C: 0.815}, seeds=seeds, rng_seed=2,
                             sweep="s0_standin")
    text, _ = report(results)
    assert "No winner" in text
