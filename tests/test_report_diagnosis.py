"""Diagnosis tables (overfitting, generalization gap, diverged/stalled/failed) and throughput on the fake sweep."""

import json
import math

import pandas as pd
import pytest

try:
    from report_fixtures import DEVICE, IMAGES_PER_SEC, build_fake_sweep
except ImportError:  # tests/ as a package
    from tests.report_fixtures import DEVICE, IMAGES_PER_SEC, build_fake_sweep

from harness.perf import find_device, peak_tflops
from harness.report.diagnosis import diagnosis_tables, generalization_gap, health, overfitting
from harness.report.flops import input_spec, train_flops_per_image
from harness.report.results import Results, load_results
from harness.report.throughput import throughput, throughput_table

OVERFIT_ID = "activation=relu-optimizer=adam-lr=0.01-seed=0"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return load_results(build_fake_sweep(tmp_path_factory.mktemp("sweep")))


def test_overfitting(results):
    frame = overfitting(results)
    assert list(frame["trial_id"]) == [OVERFIT_ID]
    got = frame.iloc[0]
    assert (got["overfit_epoch"], got["best_epoch"], got["epochs_run"]) == (4, 3, 5)
    assert got["gap_acc"] == pytest.approx(0.99 - 0.90)
    assert got["gap_loss"] == pytest.approx(0.38 - 0.04)
    assert got["val_acc_drop"] == pytest.approx(0.04)


def test_generalization_gap(results):
    frame = generalization_gap(results).set_index("label")
    assert len(frame) == 12
    top = frame.loc["activation=relu lr=0.01 optimizer=adam"]
    assert top["gap_acc"] == pytest.approx((0.09 + 0.04 + 0.04) / 3)
    assert (top["overfit"], top["n"], top["median_overfit_epoch"]) == (1, 3, 4)
    assert frame.index[0] == "activation=relu lr=0.01 optimizer=adam"  # largest gap first
    assert frame.loc["activation=tanh lr=0.1 optimizer=sgd", "n"] == 2  # diverged seed left out


def test_health_lists_diverged_stalled_failed_with_configs(results):
    frame = health(results)
    assert list(frame["status"]) == ["diverged", "stalled", "failed"]
    assert list(frame["label"]) == ["activation=tanh lr=0.1 optimizer=sgd", "activation=tanh lr=0.1 optimizer=adam",
                                    "activation=gelu lr=0.01 optimizer=sgd"]
    diverged, stalled, failed = (frame.iloc[i] for i in range(3))
    assert diverged["first_nonfinite_epoch"] == 3 and diverged["health"] == "nan_loss"
    assert stalled["final_val_acc"] == pytest.approx(0.10) and math.isnan(stalled["first_nonfinite_epoch"])
    assert failed["error"].startswith("RuntimeError: CUDA out of memory")


def test_diagnosis_views_show_nan_loss(results):
    tables = {t.name: t for t in diagnosis_tables(results)}
    assert set(tables) == {"overfitting", "generalization_gap", "health"}
    assert tables["health"].view["last train loss"].tolist() == ["NaN", "2.3000", "–"]


def test_throughput_on_fake_sweep(results):
    frame = throughput(results)
    assert len(frame) == 1
    got = frame.iloc[0]
    assert (got["arch"], got["precision"], got["batch_size"], got["device"]) == ("mlp", "bf16", 128, DEVICE)
    assert got["trials"] == 35  # the failed trial has no throughput
    assert got["images_per_sec"] == pytest.approx(IMAGES_PER_SEC)
    assert got["step_ms"] == pytest.approx(1000 * 128 / IMAGES_PER_SEC)
    assert got["peak_memory_mb"] == 512.0
    flops = train_flops_per_image({"dataset": {"name": "synthetic", "shape": [3, 32, 32], "num_classes": 10},
                                   "model": {"arch": "mlp", "activation": "relu"}})
    assert flops and got["gflops_per_image"] == pytest.approx(flops / 1e9)
    assert got["achieved_tflops"] == pytest.approx(flops * IMAGES_PER_SEC / 1e12)
    assert got["device_model"] == "H100 SXM" and got["peak_tflops"] == pytest.approx(989.4)
    assert got["pct_of_peak"] == pytest.approx(100 * got["achieved_tflops"] / 989.4)


def test_flops_of_an_mlp_by_hand():
    # input grads are not needed for the first layer: fwd 2*MACs, bwd weight grads 2*MACs, input grads of later layers
    macs = [3 * 32 * 32 * 256, 256 * 128, 128 * 10]
    expected = 2 * sum(macs) * 2 + 2 * sum(macs[1:])
    config = {"dataset": {"name": "cifar10"}, "model": {"arch": "mlp", "activation": "relu"}}
    assert input_spec(config) == ((3, 32, 32), 10)
    assert train_flops_per_image(config) == pytest.approx(expected)


def test_unbuildable_model_leaves_flops_empty_and_unknown_device_no_peak(tmp_path):
    def row(tid, arch, precision, device, dataset="cifar10"):
        config = {"dataset": {"name": dataset}, "model": {"arch": arch}}
        return {"trial_id": tid, "status": "completed", "config": json.dumps(config), "model.arch": arch,
                "train.precision": precision, "train.batch_size": 64, "device": device, "world_size": 2,
                "train_images_per_sec": 1000.0, "label": tid, "config_key": tid, "seed": 0}

    trials = pd.DataFrame([row("a", "mlp", "no", "Tesla V100-SXM2-16GB"), row("b", "no_such_arch", "bf16", "cpu"),
                           row("c", "mlp", "fp16", "NVIDIA A100-SXM4-80GB", dataset="unknown_set")])
    results = Results(tmp_path, trials, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    frame = throughput(results).set_index("arch")
    v100 = frame[frame["device"].str.startswith("Tesla")].iloc[0]
    assert v100["peak_dtype"] == "fp32" and v100["peak_tflops"] == pytest.approx(2 * 15.7)  # 2 devices
    assert v100["step_ms"] == pytest.approx(1000 * 64 * 2 / 1000.0)
    assert math.isnan(frame.loc["no_such_arch", "gflops_per_image"])
    assert math.isnan(frame.loc["no_such_arch", "pct_of_peak"])
    a100 = frame[frame["device"].str.contains("A100")].iloc[0]
    assert math.isnan(a100["gflops_per_image"]) and a100["peak_tflops"] == pytest.approx(2 * 312.0)
    assert throughput_table(frame.reset_index()).view["% of peak"].tolist().count("–") == 2


@pytest.mark.parametrize("device,name", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-PCIE-40GB", "A100"), ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("NVIDIA L4", "L4"), ("Tesla T4", "T4"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090"), ("NVIDIA L40S", "L40S"), ("NVIDIA A10", "A10"),
])
def test_device_matching(device, name):
    assert find_device(device).name == name


def test_device_peaks():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16")[2] == pytest.approx(989.4)
    assert peak_tflops("Tesla T4", "bf16")[2] is None  # no bf16 tensor cores
    assert peak_tflops("cpu", "no") == (None, "fp32", None)
    assert find_device("NVIDIA A100-SXM4-80GB").name == "A100"
    assert find_device(None) is None and find_device("NVIDIA A10G") is None
