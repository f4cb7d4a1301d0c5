"""One registry per concept, with metadata: a new dataset or model is one decorated function (valid in
sweep files at once, its metadata driving the dry run's shapes and the task rules), `module:function`
models from the user's own module, and did-you-mean errors."""

import os
import subprocess
import sys

import pytest
from torch import nn

from harness.config import ConfigError, load_sweep
from harness.data import dataset_spec
from harness.models import count_params, create_model, register_model
from harness.preflight import check_trials
from harness.registry import DATASETS, LOSSES, MODELS, Registry, UnknownName
from harness.sweep.cli import dry_run_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@DATASETS.register("test_only_tiles", shape=(2, 12, 12), classes=3, train_pool=40)
def tiles_never_loaded(cfg):
    raise AssertionError("the dry run and the preflight must not load a dataset whose metadata says its shape")


@register_model("test_only_net")
def only_net(input_shape, num_classes, hidden: int = 4):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], hidden),
                         nn.Linear(hidden, num_classes))


def test_registry_metadata_defaults_filters_and_did_you_mean():
    reg = Registry("widget", task="classification")
    reg.register("round")(object)
    reg.register("square", task="segmentation")(object)
    assert reg.meta("round")["task"] == "classification" and reg.meta("square")["task"] == "segmentation"
    assert reg.names(task="segmentation") == ["square"]
    with pytest.raises(UnknownName, match=r"unknown widget 'rund' \(did you mean 'round'\?\); allowed: round, square"):
        reg.get("rund")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("round")(object)


def test_one_registry_per_concept_tags_the_task():
    assert MODELS.meta("unet_mobilenetv2")["task"] == "segmentation" and MODELS.meta("mlp")["task"] == "classification"
    assert LOSSES.names(task="segmentation") == ["bce", "bce_dice", "dice"]
    assert DATASETS.names(task="segmentation") == ["segmentation_folder", "synthetic_shapes"]
    assert DATASETS.meta("cifar10")["shape"] == (3, 32, 32) and DATASETS.meta("emnist_letters")["classes"] == 26


def test_a_decorated_dataset_and_model_are_valid_in_a_sweep_file_and_drive_the_dry_run(write_sweep):
    path = write_sweep("name: t\ndataset: {name: test_only_tiles}\nmodel: {arch: test_only_net}\n"
                       "grid: {model.hidden: [4, 8]}\n")
    sweep = load_sweep(path)
    assert dataset_spec(sweep.trials[0].config.dataset) == ((2, 12, 12), 3)  # from the metadata, nothing loaded
    rows = dry_run_rows(sweep.trials, check_trials(sweep.trials, str(path)))
    assert [r["params"] for r in rows] == [count_params(create_model("test_only_net", (2, 12, 12), 3, hidden=h))
                                           for h in (4, 8)]


def test_task_rules_read_the_metadata(write_sweep):
    with pytest.raises(ConfigError, match="dataset.name: 'test_only_tiles' is not for task segmentation"):
        load_sweep(write_sweep("name: t\ntask: segmentation\ndataset: {name: test_only_tiles}\n"
                               "model: {arch: unet_mobilenetv2}\nloss: {name: bce}\n"))
    with pytest.raises(ConfigError, match="loss.name: 'dice' is not for task classification"):
        load_sweep(write_sweep("name: t\nloss: {name: dice}\n"))


def test_did_you_mean_still_names_the_key(write_sweep):
    with pytest.raises(ConfigError, match=r"model.arch: unknown model 'test_only_nett' \(did you mean 'test_only_net'\?\)"):
        load_sweep(write_sweep("name: t\nmodel: {arch: test_only_nett}\n"))
    with pytest.raises(ConfigError, match=r"model.hiden: model 'test_only_net' has no option 'hiden' "
                                          r"\(did you mean 'hidden'\?\)"):
        load_sweep(write_sweep("name: t\nmodel: {arch: test_only_net, hiden: 3}\n"))


USER_MODULE = '''
from torch import nn


def tiny_net(input_shape, num_classes, width: int = 7):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(), nn.Linear(width, num_classes))
'''


def _sweep_cli(tmp_path, arch, *extra):
    (tmp_path / "mymodels.py").write_text(USER_MODULE)
    (tmp_path / "s.yaml").write_text(f"name: user\ndataset: {{name: digits}}\nmodel: {{arch: '{arch}'}}\n"
                                     "grid: {model.width: [3, 5]}\n")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "harness.sweep", "s.yaml", "--dry-run", *extra], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)


def test_module_function_model_by_a_real_dry_run(tmp_path):
    proc = _sweep_cli(tmp_path, "mymodels:tiny_net")
    assert proc.returncode == 0, proc.stderr
    assert "width=3" in proc.stdout and "width=5" in proc.stdout
    # digits is 1x8x8 with 10 classes: 64*3+3 + 3*10+10 parameters at width 3
    assert str(64 * 3 + 3 + 3 * 10 + 10) in proc.stdout


@pytest.mark.parametrize("arch, message", [
    ("mymodels:tiny_nett", "model.arch: model 'mymodels:tiny_nett': module 'mymodels' has no function 'tiny_nett' "
                           "(did you mean 'tiny_net'?)"),
    ("no_such_module:net", "model.arch: model 'no_such_module:net': no module 'no_such_module' on the Python path"),
])
def test_module_function_model_that_is_missing_exits_2(tmp_path, arch, message):
    proc = _sweep_cli(tmp_path, arch)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
