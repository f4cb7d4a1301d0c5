"""`python -m harness.report`: exit codes, the files it writes, and robustness to thin or broken results."""

import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

try:
    from report_fixtures import build_fake_sweep
except ImportError:  # tests/ as a package
    from tests.report_fixtures import build_fake_sweep

from harness.report import ReportError, write_report
from harness.report.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "leaderboard.md", "leaderboard.csv", "marginals.csv", "time_to_target.csv", "diagnosis.md", "overfitting.csv",
    "generalization_gap.csv", "health.csv", "throughput.md", "throughput.csv", "index.html",
    "plots/leaderboard.png", "plots/curves.png", "plots/confusion.png", "plots/class_f1.png", "plots/throughput.png",
    "plots/heatmap_optimizer-lr_x_optimizer-name.png", "plots/heatmap_model-activation_x_optimizer-name.png",
    "plots/heatmap_model-activation_x_optimizer-lr.png",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return build_fake_sweep(tmp_path_factory.mktemp("sweep"))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness.report", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_missing_dir_exits_2_with_one_line(tmp_path):
    proc = run_cli(tmp_path / "nope")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "no such results directory" in lines[0]


def test_empty_dir_and_bad_metric_exit_2(tmp_path, sweep, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no results" in err
    assert main([str(sweep), "--metric", "best_val_accc", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "best_val_accc" in err and "allowed: best_val_acc" in err


def test_compare_pairs_and_budget_axis(tmp_path, sweep, capsys):
    out = tmp_path / "pairs"
    assert main([str(sweep), "--out", str(out), "--compare", "tanh 0.1 adam", "relu lr=0.01 optimizer.name=adam",
                 "--compare", "gelu 0.1 sgd", "relu 0.1 sgd", "--budget-axis", "optimizer.name"]) == 0
    pairs = pd.read_csv(out / "separation.csv")
    assert list(pairs["a"]) == ["activation=relu lr=0.01 optimizer=adam", "activation=tanh lr=0.1 optimizer=adam",
                                "activation=gelu lr=0.1 optimizer=sgd"]
    assert list(pairs["asked"]) == [False, True, True]
    assert (out / "budget_optimizer.name.csv").is_file() and not (out / "budget_optimizer.lr.csv").exists()
    assert (out / "plots" / "budget_optimizer-name.png").is_file()
    capsys.readouterr()
    for argv, problem in [
        (["--compare", "relu", "tanh"], "--compare 'relu' matches 4 configurations"),
        (["--compare", "lion", "tanh 0.1 adam"], "--compare 'lion' matches no configuration"),
        (["--compare", "a", "b", "c"], "--compare takes one results directory (once) or two configurations"),
        (["--budget-axis", "seed"], "--budget-axis 'seed' is not a grid axis"),
    ]:
        assert main([str(sweep), "--out", str(tmp_path / "bad"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and problem in err, err


def test_exit_0_writes_every_file(tmp_path, sweep, capsys):
    other = build_fake_sweep(tmp_path / "other", configs=[("relu", "adam", 0.01)], shift=-0.05, sweep="other")
    out = tmp_path / "report"
    assert main([str(sweep), "--compare", str(other), "--out", str(out), "--target", "0.9"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    for name in FILES + ["compare.md", "compare.csv", "plots/compare.png"]:
        assert (out / name).is_file(), name
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["label"][0] == "activation=relu lr=0.01 optimizer=adam"
    assert board["mean"][0] == pytest.approx(0.95)
    assert "| 1= | activation=relu lr=0.01 optimizer=adam | 0.9500 | 0.0100 | 3 | [0.9252, 0.9748] |" in \
        (out / "leaderboard.md").read_text()
    assert "| activation=relu lr=0.01 optimizer=adam | 1= | 0.9500 |" in (out / "compare.md").read_text()


def test_cli_subprocess_default_out(tmp_path):
    results = build_fake_sweep(tmp_path / "r", configs=[("relu", "sgd", 0.1), ("gelu", "adam", 0.1)], seeds=(0, 1))
    proc = run_cli(results, "--metric", "test_acc")
    assert proc.returncode == 0, proc.stderr
    assert (results / "report" / "index.html").is_file()
    assert "Ranking by test_acc" in (results / "report" / "leaderboard.md").read_text()


FEW = [("relu", "adam", 0.01), ("gelu", "adam", 0.01), ("tanh", "sgd", 0.1)]
VARIANTS = {
    "no_classes": dict(classes=False, configs=FEW),
    "single_seed": dict(seeds=(0,), configs=FEW),
    "single_config": dict(configs=[("relu", "adam", 0.01)]),
    "no_grid": dict(grid=False, configs=[("relu", "adam", 0.01)]),
    "all_failed": dict(all_failed=True, configs=[("relu", "adam", 0.01), ("tanh", "sgd", 0.1)]),
    "point_in_params": dict(point_column="params", seeds=(0, 1), configs=FEW),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_robust_to_thin_results(tmp_path, variant):
    results = build_fake_sweep(tmp_path / variant, **VARIANTS[variant])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write_report(results)
    assert not [w for w in caught if "could not be drawn" in str(w.message)]
    for name in ["leaderboard.md", "leaderboard.csv", "diagnosis.md", "throughput.md", "index.html"]:
        assert (out / name).is_file(), name
    text = (out / "leaderboard.md").read_text()
    if variant == "single_seed":
        assert "| one seed |" in text and "needs at least 2 shared seeds" in text
    if variant == "no_grid":
        assert "| 1 | fake-activations | 0.9500 |" in text
    if variant == "all_failed":
        assert "No configuration has a value" in text
        assert (out / "diagnosis.md").read_text().count("| failed |") == 6
    if variant == "point_in_params":
        # two seeds each, every one 0.01 and 0.15 above the others on both: a winner by the paired test
        assert "| 1 | activation=relu lr=0.01 optimizer=adam | 0.9450 |" in text
        assert "**activation=relu lr=0.01 optimizer=adam** wins" in text
    if variant in ("no_classes", "all_failed"):
        assert not (out / "plots" / "confusion.png").exists()


def test_write_report_raises_report_error(tmp_path):
    with pytest.raises(ReportError, match="no such results directory"):
        write_report(tmp_path / "missing")
