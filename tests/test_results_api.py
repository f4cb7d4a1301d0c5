"""`harness.results`: the README's Python example, run as written on the quickstart's results, and the API
agreeing with the report's files."""

import contextlib
import io
import os
import re

import pandas as pd
import pytest

from harness.results import ReportError, load
from readme_blocks import REPO


def readme_python(marker: str = "results-api") -> str:
    text = open(os.path.join(REPO, "README.md")).read()
    block = text[text.index(f"<!-- {marker}"):text.index(f"<!-- /{marker} -->")]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def test_readme_example_runs_on_the_quickstart(quickstart_run, monkeypatch):
    work, runs = quickstart_run
    assert all(proc.returncode == 0 for _, proc in runs)
    monkeypatch.chdir(work)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_python(), "README.md", "exec"), {})
    printed = out.getvalue()
    assert "rank" in printed and "p_holm" in printed and "split_seed=" in printed
    assert "needs about" in printed or "more than" in printed or "no difference" in printed

    r = load(work / "results" / "quickstart")
    assert len(r.trials) == 48 and set(r.epochs["trial_id"]) == set(r.trials["trial_id"])
    board = r.leaderboard()
    report = pd.read_csv(work / "results" / "quickstart" / "report" / "leaderboard.csv")
    assert list(board["label"]) == list(report["label"])
    assert list(board["mean"]) == pytest.approx(list(report["mean"]))
    best = r.best()
    leader = r.trials[r.trials["config_key"] == board["config_key"][0]]
    assert best["trial_id"] in set(leader["trial_id"]) and best["best_val_acc"] == leader["best_val_acc"].max()
    assert set(r.axes) == {"model.activation", "optimizer.name", "optimizer.lr"}  # dataset.split_seed: a replicate
    assert all(len(v) == 6 for v in r.values().values())  # 3 seeds x 2 splits per configuration
    sep = r.separation("relu 0.1 sgd", "tanh 0.01 adam")
    assert sep["a"] == "activation=relu lr=0.1 optimizer=sgd" and sep["shared"] == 6


def test_errors_are_one_line(tmp_path):
    with pytest.raises(ReportError, match="no such results directory"):
        load(tmp_path / "missing")
