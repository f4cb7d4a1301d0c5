"""Sweep files: schema, overrides, grid expansion, trial ids, and the error messages users see."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import ConfigError, build_sweep, load_sweep, parse_override, trial_id

BASE = {"name": "t", "dataset": {"name": "digits"}, "model": {"arch": "mlp", "widths": [32]}}


def sweep(**extra):
    return build_sweep({**BASE, **extra}, "t.yaml")


def error(raw, overrides=()):
    with pytest.raises(ConfigError) as info:
        build_sweep(raw, "t.yaml", list(overrides))
    return str(info.value)


def test_grid_is_cartesian_product_times_seeds_in_stable_order():
    s = sweep(seeds=[0, 1], grid={"model.activation": ["relu", "gelu"], "optimizer.lr": [0.1, 0.01]})
    assert [t.trial_id for t in s.trials] == [
        "activation=relu-lr=0.1-seed=0", "activation=relu-lr=0.1-seed=1",
        "activation=relu-lr=0.01-seed=0", "activation=relu-lr=0.01-seed=1",
        "activation=gelu-lr=0.1-seed=0", "activation=gelu-lr=0.1-seed=1",
        "activation=gelu-lr=0.01-seed=0", "activation=gelu-lr=0.01-seed=1",
    ]
    t = s.trials[5]
    assert t.point == {"model.activation": "gelu", "optimizer.lr": 0.1, "seed": 1}
    assert (t.config.model.activation, t.config.optimizer.lr, t.config.seed) == ("gelu", 0.1, 1)
    assert t.config.model.options == {"widths": [32], "activation": "gelu"}


def test_no_grid_no_seeds_is_one_trial():
    s = sweep()
    assert [t.trial_id for t in s.trials] == ["seed=0"]


def test_trial_ids_name_sections_for_name_keys_and_lists():
    assert trial_id({"loss.name": "nll", "optimizer.name": "sgd", "model.arch": "s0_cnn"}, 2) == \
        "loss=nll-optimizer=sgd-arch=s0_cnn-seed=2"
    assert trial_id({"model.widths": [100, 50], "optimizer.lr": 1e-3}, 0) == "widths=100x50-lr=0.001-seed=0"
    # two keys with the same last part keep their full dotted names
    assert trial_id({"model.dropout": 0.1, "head.dropout": 0.2}, 0) == "model.dropout=0.1-head.dropout=0.2-seed=0"


def test_override_pins_a_grid_axis_and_parses_yaml_values():
    s = build_sweep({**BASE, "grid": {"model.activation": ["relu", "gelu"], "optimizer.lr": [0.1, 0.01]}},
                    "t.yaml", ["model.activation=tanh", "train.epochs=3", "seeds=[4, 5]"])
    assert [t.trial_id for t in s.trials] == ["activation=tanh-lr=0.1-seed=4", "activation=tanh-lr=0.1-seed=5",
                                            "activation=tanh-lr=0.01-seed=4", "activation=tanh-lr=0.01-seed=5"]
    assert {t.config.model.activation for t in s.trials} == {"tanh"}
    assert s.trials[0].config.train.epochs == 3
    assert parse_override("optimizer.betas=[0.8, 0.9]") == ("optimizer.betas", [0.8, 0.9])


def test_staged_schedule_sets_epochs_and_checks_a_mismatch():
    stages = [{"epochs": 10, "lr": 0.1}, {"epochs": 10, "lr": 0.01}]
    s = sweep(scheduler={"name": "staged", "stages": stages})
    assert s.trials[0].config.train.epochs == 20
    msg = error({**BASE, "scheduler": {"name": "staged", "stages": stages}, "train": {"epochs": 5}})
    assert msg == "t.yaml: train.epochs is 5 but the scheduler's stages add up to 20 epochs"


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "model": {"arch": "mlp", "activation": "rleu"}},
     "t.yaml: model.activation: unknown activation 'rleu' (did you mean 'relu'?); allowed: elu, gelu, identity, "
     "leaky_relu, mish, relu, selu, sigmoid, silu, softplus, tanh"),
    ({**BASE, "optimizer": {"lrr": 0.1}},
     "t.yaml: optimizer.lrr: unknown key 'lrr' in optimizer (did you mean 'lr'?); allowed: betas, eps, group_lr, "
     "lr, momentum, name, nesterov, weight_decay"),
    ({**BASE, "model": {"arch": "mlp", "widht": 3}},
     "t.yaml: model.widht: model 'mlp' has no option 'widht' (did you mean 'widths'?); allowed: activation, arch, "
     "batchnorm, dropout, init, widths"),
    ({**BASE, "scheduler": {"name": "cosin"}},
     "t.yaml: scheduler.name: 'cosin' is not allowed (did you mean 'cosine'?); allowed: none, step, cosine, "
     "onecycle, plateau, staged"),
    ({**BASE, "train": {"epochs": 0}}, "t.yaml: train.epochs: Input should be greater than 0 (got 0)"),
    ({**BASE, "seeds": 3}, "t.yaml: seeds: must be a non-empty list of integers, got 3"),
    ({**BASE, "grid": {"optimizer.lrr": [1]}},
     "t.yaml: grid.optimizer.lrr: unknown key 'lrr' in optimizer (did you mean 'lr'?); allowed: betas, eps, "
     "group_lr, lr, momentum, name, nesterov, weight_decay"),
    ({**BASE, "grid": {"optimizer.lr": 0.1}}, "t.yaml: grid.optimizer.lr: must be a non-empty list of values or a search space such as {loguniform: [1.0e-4, 1.0e-1]}, got 0.1"),
    ({**BASE, "grid": {"optimizer.lr": [0.1, 0.1]}}, "t.yaml: grid.optimizer.lr: has duplicate values: [0.1, 0.1]"),
    ({**BASE, "optimizer": {"name": "adamm"}},
     "t.yaml: optimizer.name: unknown optimizer 'adamm' (did you mean 'adam'?); allowed: adadelta, adagrad, adam, "
     "adamw, nadam, radam, rmsprop, sgd, sgd_nesterov"),
    ({**BASE, "name": "a b"}, "t.yaml: name: name 'a b' must be letters, digits, '_', '-' or '.' (it names the results folder)"),
])
def test_bad_files_give_one_clear_message(raw, expected):
    assert error(raw) == expected


def test_bad_value_inside_grid_names_the_grid_point():
    msg = error({**BASE, "grid": {"model.activation": ["relu", "gelux"]}})
    assert msg.startswith("t.yaml: model.activation: unknown activation 'gelux' (did you mean 'gelu'?)")
    assert msg.endswith("(in grid point activation=gelux-seed=0)")


def test_bad_override_is_named():
    assert error(BASE, ["optimizer.lrr=1"]).startswith("--set: optimizer.lrr: unknown key 'lrr'")
    assert error(BASE, ["nokey"]) == "--set nokey: expected KEY=VALUE, e.g. --set optimizer.lr=0.01"


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_sweep(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_sweep(bad)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness.sweep", *args], capture_output=True, text=True)


def test_cli_bad_file_exits_2_without_traceback(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodel: {arch: mlpp}\n")
    proc = run_cli(str(path), "--dry-run")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{path}: model.arch: unknown model 'mlpp' (did you mean 'mlp'?)" in proc.stderr


def test_cli_dry_run_json_lists_trials_with_params(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndataset: {name: synthetic, shape: [1, 28, 28]}\nmodel: {arch: s3_mlp}\n"
                    "seeds: [0, 1]\ngrid:\n  model.activation: [relu, sigmoid]\n")
    proc = run_cli(str(path), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    trials = json.loads(proc.stdout)
    assert [t["trial_id"] for t in trials] == ["activation=relu-seed=0", "activation=relu-seed=1",
                                               "activation=sigmoid-seed=0", "activation=sigmoid-seed=1"]
    assert {t["params"] for t in trials} == {84060}
    assert trials[2]["model.activation"] == "sigmoid" and trials[2]["seed"] == 0


SWEEP_FILES = sorted(p.name for p in (Path(__file__).parent.parent / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_every_sweep_file_passes_dry_run(name):
    proc = run_cli(str(Path(__file__).parent.parent / "sweeps" / name), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) >= 1


def test_cifar_grid_is_900_trials():
    assert len(load_sweep(Path(__file__).parent.parent / "sweeps" / "cifar.yaml").trials) == 5 * 3 * 5 * 4 * 3


def test_dry_run_parameter_counts_over_the_zoo(write_sweep):
    """Exact counts, derived by hand from the layer specs in shared/seeds.md."""
    path = write_sweep("name: zoo\ndataset: {name: cifar10}\ngrid:\n  model.arch: [s0_mlp, s0_cnn, s0_cnn_bn_dropout,"
                       " s0_vgg16_transfer, s4_smallcnn, resnet18]\n")
    proc = run_cli(str(path), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    params = {t["model.arch"]: t["params"] for t in json.loads(proc.stdout)}
    assert params == {
        "s0_mlp": 3072 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,  # 820,874
        "s0_cnn": (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128)
        + (128 * 256 * 9 + 256) + (256 * 256 * 9 + 256) + (256 * 4 * 4 * 10 + 10),  # 1,167,050
        "s0_cnn_bn_dropout": 1_167_050 + 2 * (64 + 128 + 256),  # BatchNorm weight + bias
        "s0_vgg16_transfer": 14_714_688 + (512 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10),
        "s4_smallcnn": (3 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (1024 * 128 + 128) + (128 * 10 + 10),
        "resnet18": 11_181_642 - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3,  # torchvision's, with a 3x3 stem: 11,173,962
    }
    path = write_sweep("name: mnist\ndataset: {name: mnist}\ngrid:\n  model.arch: [s3_mlp, cnn_mnist]\n", "m.yaml")
    params = {t["model.arch"]: t["params"] for t in json.loads(run_cli(str(path), "--dry-run", "--json").stdout)}
    assert params == {"s3_mlp": 784 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10,  # 84,060
                      "cnn_mnist": (25 * 10 + 10) + (10 * 20 * 25 + 20) + (500 * 50 + 50) + (50 * 10 + 10)}  # 30,840
