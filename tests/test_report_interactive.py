"""The report's analysis views: the interactive views' data blob, hyperparameter importance, Pareto fronts."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from harness.report.importance import importance, importance_table
from harness.report.interactive import SCRIPT, describe_axis, embed_json, render_views, view_data
from harness.report.pareto import config_means, pareto_front, pareto_table, plot_pareto

try:
    import report_fixtures as fixtures
except ImportError:  # tests/ as a package
    from tests import report_fixtures as fixtures

DIVERGED, FAILED, STALLED, EPOCH_SECONDS, PARAM_COUNT = (fixtures.DIVERGED, fixtures.FAILED, fixtures.STALLED,
                                                         fixtures.EPOCH_SECONDS, fixtures.PARAM_COUNT)
best_val_acc, hand_results = fixtures.best_val_acc, fixtures.hand_results
results = fixtures.results  # the fake sweep's module-scoped fixture, found by pytest by name

# Interactive views


def test_view_data_has_one_record_per_counted_trial(results):
    data = view_data(results, "best_val_acc")
    records = data["trials"]
    assert len(records) == 34  # 36 less the failed and the diverged trial
    assert data["metric"] == "best_val_acc" and data["direction"] == "max"
    excluded = {(FAILED[0], FAILED[1]), (DIVERGED[0], DIVERGED[1])}
    seen = set()
    for rec in records:
        point = rec["axes"]
        config = (point["model.activation"], point["optimizer.name"], point["optimizer.lr"])
        assert (config, rec["seed"]) not in excluded
        seen.add((config, rec["seed"]))
        assert rec["metric"] == pytest.approx(best_val_acc(config, rec["seed"]))
        assert rec["params"] == PARAM_COUNT
        assert rec["total_seconds"] == pytest.approx(sum(EPOCH_SECONDS[:3] if (config, rec["seed"]) == STALLED
                                                         else EPOCH_SECONDS))
        assert rec["label"] == f"activation={config[0]} lr={config[2]:g} optimizer={config[1]}"
        assert rec["trial_id"] and f"seed={rec['seed']}" in rec["trial_id"]
    assert len(seen) == 34
    axes = {a["name"]: a for a in data["axes"]}
    assert axes["model.activation"] == {"name": "model.activation", "short": "activation", "kind": "categorical",
                                        "values": ["gelu", "relu", "tanh"]}
    assert axes["optimizer.lr"]["kind"] == "numeric" and axes["optimizer.lr"]["values"] == [0.01, 0.1]
    assert not axes["optimizer.lr"]["log"]  # exactly one decade: linear
    assert data["metric_axis"]["min"] == pytest.approx(0.10) and data["metric_axis"]["max"] == pytest.approx(0.96)
    json.dumps(data, allow_nan=False)  # plain JSON, nothing numpy


def test_numeric_axes_over_a_decade_are_log():
    assert describe_axis("optimizer.lr", [0.1, 0.01, 0.001, None], ["optimizer.lr"])["log"]
    assert not describe_axis("train.batch_size", [64, 128, 512], ["train.batch_size"])["log"]
    flag = describe_axis("model.bias", [True, False], ["model.bias"])
    assert flag["kind"] == "categorical" and flag["values"] == ["false", "true"]


def test_embedded_json_cannot_close_the_script():
    nasty = "</script><script>alert(1)</script><!-- & \u2028"
    tag = embed_json({"label": nasty})
    assert tag.lower().count("</script") == 1 and tag.endswith("</script>")
    assert "<!--" not in tag
    inner = re.fullmatch(r'<script type="application/json" id="harness-data">(.*)</script>', tag, re.S).group(1)
    assert json.loads(inner) == {"label": nasty}


def test_rendered_views_are_inline_and_offline(results):
    markup = render_views(view_data(results, "best_val_acc"))
    scripts = re.findall(r"<script\b[^>]*>", markup)
    assert scripts == ['<script type="application/json" id="harness-data">', "<script>"]
    assert "http" not in SCRIPT and "</script" not in SCRIPT
    assert "#selftest" in SCRIPT and "document.title" in SCRIPT
    assert render_views({"metric": "m", "direction": "max", "axes": [], "trials": []}) == ""


# Importance


def _lr_driven(tmp_path, seeds=4):
    """metric = f(lr) + noise; `noise.axis` has no effect."""
    rng = np.random.default_rng(0)
    effect = {0.1: 0.80, 0.01: 0.90, 0.001: 0.70}
    rows = []
    for lr, base in effect.items():
        for other in ("a", "b", "c"):
            for seed in range(seeds):
                rows.append(({"optimizer.lr": lr, "noise.axis": other}, seed, base + rng.normal(0, 0.01)))
    return hand_results(tmp_path, rows, ["optimizer.lr", "noise.axis"])


def test_importance_ranks_the_axis_that_drives_the_metric_first(tmp_path):
    frame, reason = importance(_lr_driven(tmp_path), "best_val_acc")
    assert reason == ""
    assert list(frame["axis"]) == ["optimizer.lr", "noise.axis"]
    lr, noise = frame["importance"]
    assert lr > 0.5 and noise < 0.1 and lr > 10 * max(noise, 0.01)
    table, _ = importance_table(_lr_driven(tmp_path), "best_val_acc")
    assert table.data["importance"].tolist() == frame["importance"].tolist()  # seeded: reproducible
    assert "permutation importance" in table.note and "RandomForestRegressor" in table.note
    assert table.view.columns.tolist() == ["axis", "importance (mean drop in R²)", "values"]


def test_importance_is_skipped_with_a_reason(tmp_path):
    few = hand_results(tmp_path, [({"optimizer.lr": lr, "noise.axis": "a"}, s, 0.5) for lr in (0.1, 0.01)
                                  for s in range(3)], ["optimizer.lr", "noise.axis"])
    table, reason = importance_table(few, "best_val_acc")
    assert table is None and "at least 8 counted trials" in reason
    one_axis = hand_results(tmp_path, [({"optimizer.lr": lr, "noise.axis": "a"}, s, 0.5) for lr in (0.1, 0.01)
                                       for s in range(5)], ["optimizer.lr", "noise.axis"])
    table, reason = importance_table(one_axis, "best_val_acc")
    assert table is None and "at least 2 grid axes" in reason


# Pareto


def test_pareto_front_hand_example():
    frame = pd.DataFrame({
        "name": ["A", "B", "C", "D", "E", "F", "G", "H"],
        "cost": [1.0, 2.0, 3.0, 2.0, 4.0, np.nan, 0.5, 4.0],
        "acc": [0.5, 0.7, 0.6, 0.7, 0.9, 0.99, 0.4, 0.8],
    })
    # C is beaten by B (cheaper, better), H by E (same cost, better); B and D tie and both stay; F has no cost
    front = pareto_front(frame, "cost", "acc")
    assert set(frame.loc[front, "name"]) == {"A", "B", "D", "E", "G"}
    # lower is better on y too (a loss): the cheapest point dominates everything at least as costly and worse
    assert set(frame.loc[pareto_front(frame, "cost", "acc", maximize_y=False), "name"]) == {"G"}


def test_pareto_tables_of_the_fake_sweep(results):
    means = config_means(results, "best_val_acc")
    assert len(means) == 12
    timing = pareto_table(means, "total_seconds", "best_val_acc")
    # every configuration takes 11 s a trial except tanh/adam/0.1, whose stalled seed stopped after 3 epochs
    assert list(timing.data["label"]) == ["activation=tanh lr=0.1 optimizer=adam",
                                          "activation=relu lr=0.01 optimizer=adam"]
    params = pareto_table(means, "params", "best_val_acc")  # one model: the best mean alone
    assert list(params.data["label"]) == ["activation=relu lr=0.01 optimizer=adam"]
    assert "Pareto front of 1 of 12 configurations" in params.note
    assert pareto_table(means.assign(params=np.nan), "params", "best_val_acc") is None


def test_plot_pareto_writes_a_png(results, tmp_path):
    means = config_means(results, "best_val_acc")
    path = plot_pareto(means, "total_seconds", "best_val_acc", path=tmp_path / "pareto.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_pareto(means.iloc[0:0], "total_seconds", "best_val_acc", path=tmp_path / "none.png") is None
