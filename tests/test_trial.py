"""The trial loop on real (small) data: learning, health flags on runs built to trigger them,
early stopping, resume from a checkpoint, Parquet rows, the CLI, and 2-process data parallelism."""

import json
import os
import subprocess
import sys

import pytest

from harness import store
from harness.config import build_sweep
from harness.trial import run_trial


def config(**sections):
    raw = {"name": "t", "dataset": {"name": "digits"}, "model": {"arch": "mlp", "widths": [64]},
           "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 3, "batch_size": 64}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_sweep(raw).trials[0].config


def test_learns_digits_and_writes_all_tables(tmp_path):
    out = run_trial(config(), "digits", tmp_path)
    assert out.status == "completed"
    assert out.row["best_val_acc"] > 0.85 and out.row["test_acc"] > 0.85  # chance is 0.1
    trials = store.read_table(tmp_path, "trials")
    epochs = store.read_table(tmp_path, "epochs")
    assert list(trials["trial_id"]) == ["digits"] and list(epochs["epoch"]) == [1, 2, 3]
    assert trials.loc[0, "params"] == 64 * 64 + 64 + 64 * 10 + 10
    assert trials.loc[0, "model.widths"] == "[64]" and trials.loc[0, "optimizer.lr"] == 0.01
    assert json.loads(trials.loc[0, "config"])["model"]["arch"] == "mlp"
    for col in store.EPOCH_COLUMNS:
        assert epochs[col].notna().all(), col
    classes = store.read_table(tmp_path, "classes")
    assert len(classes) == 10 and classes["support"].sum() == len(out.epochs) * 0 + classes["support"].sum()
    confusion = store.read_table(tmp_path, "confusion")
    assert confusion["count"].sum() == classes["support"].sum()
    assert not (tmp_path / "checkpoints" / "digits").exists()  # removed once the trial finished


def test_learns_synthetic_images_with_a_cnn():
    cfg = build_sweep({"name": "t", "dataset": {"name": "synthetic", "num_train": 2048, "num_test": 256,
                                                 "shape": [3, 32, 32]},
                       "model": {"arch": "s4_smallcnn"}, "optimizer": {"name": "adam", "lr": 0.001},
                       "train": {"epochs": 4, "batch_size": 64}}).trials[0].config
    out = run_trial(cfg, "synthetic")
    assert out.status == "completed" and out.row["best_val_acc"] > 0.4, out.epochs  # chance is 0.1


@pytest.mark.parametrize("activation, lr", [("tanh", 1e4), ("identity", 10.0)])  # huge finite loss; NaN
def test_huge_learning_rate_diverges_at_once(tmp_path, activation, lr):
    out = run_trial(config(model={"activation": activation}, optimizer={"name": "sgd", "lr": lr}, train={"epochs": 5}),
                    "boom", tmp_path)
    assert out.status == "diverged" and out.row["epochs_run"] == 1
    assert json.loads(out.row["health"]) == ["diverged@1"]
    assert store.read_table(tmp_path, "trials").loc[0, "status"] == "diverged"


def test_constant_init_stalls_at_chance():
    out = run_trial(config(model={"init": "constant", "activation": "sigmoid"},
                           optimizer={"name": "sgd", "lr": 0.01}, train={"epochs": 6}), "constant")
    assert out.status == "stalled" and out.row["epochs_run"] == 3
    assert "stalled@3" in json.loads(out.row["health"])
    assert out.epochs[-1]["val_acc"] <= 0.15


def test_healthy_run_raises_no_flags():
    out = run_trial(config(), "healthy")
    assert json.loads(out.row["health"]) == [] and out.status == "completed"


def test_big_model_on_tiny_split_overfits_and_stops_early():
    out = run_trial(config(dataset={"max_train": 48}, model={"widths": [512, 512]},
                           optimizer={"name": "adam", "lr": 0.003}, train={"epochs": 60, "batch_size": 16},
                           early_stopping={"enabled": True, "patience": 3}), "overfit")
    assert out.status == "early_stopped" and out.row["epochs_run"] < 60
    assert out.row["overfit_epoch"] == out.row["best_epoch"]
    assert out.row["epochs_run"] == out.row["best_epoch"] + 3
    last = out.epochs[-1]
    assert last["train_acc"] > last["val_acc"] and last["gap_loss"] > 0


def test_resume_from_a_mid_trial_checkpoint_reproduces_the_run(tmp_path):
    cfg = config(model={"dropout": 0.2}, train={"epochs": 4}, scheduler={"name": "cosine"})
    whole = run_trial(cfg, "whole", tmp_path / "a")

    def interrupt(row, verdict):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, "whole", tmp_path / "b", on_epoch=interrupt)
    assert (tmp_path / "b" / "checkpoints" / "whole" / "last.pt").exists()
    assert store.read_table(tmp_path / "b", "trials").empty  # not finished
    resumed = run_trial(cfg, "whole", tmp_path / "b")
    keys = ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm"]
    assert [[r[k] for k in keys] for r in resumed.epochs] == [[r[k] for k in keys] for r in whole.epochs]
    assert resumed.row["test_acc"] == whole.row["test_acc"]
    assert len(store.read_table(tmp_path / "b", "epochs")) == 4


def test_a_raising_trial_is_recorded_as_failed(tmp_path):
    cfg = config(dataset={"name": "cifar10", "data_dir": str(tmp_path / "none"), "download": False})
    out = run_trial(cfg, "nodata", tmp_path)
    assert out.status == "failed" and out.row["error"].startswith("DatasetUnavailable")
    assert store.read_table(tmp_path, "trials").loc[0, "status"] == "failed"


TRIAL_SWEEP = """
name: dp
dataset: {name: synthetic, num_train: 1024, num_val: 256, num_test: 256, shape: [1, 8, 8], num_classes: 4}
model: {arch: mlp, widths: [32]}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: 2, batch_size: 64}
seeds: [0]
grid:
  model.activation: [relu, tanh]
"""


def test_trial_cli_prints_epoch_lines_and_writes_parquet(tmp_path, write_sweep):
    path = write_sweep(TRIAL_SWEEP)
    proc = subprocess.run([sys.executable, "-m", "harness.trial", str(path), "--set", "model.activation=tanh",
                           "--results-dir", str(tmp_path / "res")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/2  train loss" in proc.stdout and "epoch   2/2" in proc.stdout
    trials = store.read_table(tmp_path / "res" / "dp", "trials")
    assert list(trials["trial_id"]) == ["activation=tanh-seed=0"]  # the override pins the grid point


@pytest.mark.parametrize("data_dir_exists", [True, False])
def test_trial_cli_ends_training_on_success_and_on_failure(tmp_path, write_sweep, monkeypatch, data_dir_exists):
    """main() ends the run with Accelerator.end_training (under torchrun: destroy_process_group),
    whether the trial completes or fails."""
    from accelerate import Accelerator

    from harness import trial as trial_cli
    ended = []
    monkeypatch.setattr(Accelerator, "end_training", lambda self: ended.append(self))
    path = write_sweep(TRIAL_SWEEP.replace("epochs: 2", "epochs: 1"))
    extra = [] if data_dir_exists else ["--set", "dataset.name=mnist", "--set", f"dataset.data_dir={tmp_path / 'none'}",
                                        "--set", "dataset.download=false"]
    code = trial_cli.main([str(path), "--results-dir", str(tmp_path / "res"), *extra])
    assert code == (0 if data_dir_exists else 1)
    assert len(ended) == 1


def test_two_process_data_parallel_matches_one_process_at_the_global_batch(tmp_path, write_sweep):
    """2 processes x batch 32 (gloo on CPU) == 1 process x batch 64: the same global-batch steps."""
    path = write_sweep(TRIAL_SWEEP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--set", "model.activation=relu", "--set", "train.checkpoint=false"]
    single = subprocess.run([sys.executable, "-m", "harness.trial", str(path), *common, "--set", "train.batch_size=64",
                             "--results-dir", str(tmp_path / "one")], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    multi = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "harness.trial", str(path), *common,
                            "--set", "train.batch_size=32", "--results-dir", str(tmp_path / "two")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "x2" in multi.stdout
    one = store.read_table(tmp_path / "one" / "dp", "epochs")
    two = store.read_table(tmp_path / "two" / "dp", "epochs")
    for col in ["train_loss", "train_acc", "val_loss", "val_acc"]:
        assert two[col].tolist() == pytest.approx(one[col].tolist(), rel=1e-4, abs=1e-6), col
    t1, t2 = (store.read_table(tmp_path / d / "dp", "trials").iloc[0] for d in ("one", "two"))
    assert (t1["world_size"], t2["world_size"]) == (1, 2)
    assert t2["test_acc"] == pytest.approx(t1["test_acc"])


def test_train_epoch_sums_match_each_step_by_hand():
    """train_epoch's device sums [loss x n, grad norm, samples, steps, *counts] equal the per-step values
    computed by hand on the same model (lr 0: the weights do not move between steps); the classification
    task's counts are the confusion matrix."""
    import torch

    from harness.config import LossConfig
    from harness.data import DeviceBatches
    from harness.losses import create_loss
    from harness.tasks.classification import Classification
    from harness.trial import make_accelerator, train_epoch

    images = torch.randint(0, 256, (20, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = torch.arange(20) % 3
    batches = DeviceBatches(images, labels, 8, device="cpu", shuffle=False)  # 8 + 8 + 4
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    accelerator = make_accelerator("no")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss_fn = create_loss(LossConfig(name="cross_entropy"))
    task = Classification(None)
    task.num_classes, task.num_counts = 3, 9
    sums, layer_min, _ = train_epoch(model, batches, optimizer, loss_fn, accelerator, count=task.counts, num_counts=9)

    expected = torch.zeros(4 + 9, dtype=torch.float64)
    for x, y in batches:
        model.zero_grad()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
        expected[:4] += torch.tensor([loss.item() * len(y), norm.item(), len(y), 1], dtype=torch.float64)
        for t, p in zip(y.tolist(), logits.argmax(1).tolist()):
            expected[4 + 3 * t + p] += 1
    assert sums.dtype == torch.float64 and sums[2].item() == 20 and sums[3].item() == 3
    assert torch.allclose(sums, expected, rtol=1e-6)
    assert task.scores(sums[4:])["acc"] == expected[[4, 8, 12]].sum().item() / 20
    assert layer_min.item() == pytest.approx(model[1].weight.grad.norm().item(), rel=1e-6)  # the last step's
    # without a task's counts (harness.bench times it so): [loss x n, grad norm, samples, steps]
    assert torch.allclose(train_epoch(model, batches, optimizer, loss_fn, accelerator)[0], expected[:4], rtol=1e-6)


def test_fp16_on_the_cpu_records_the_precision_that_ran(tmp_path, write_sweep, capsys):
    # Accelerate trains fp16 only on CUDA; on the CPU it silently runs fp32. The row says what ran.
    from harness.trial import main

    path = write_sweep("name: half\ndataset: {name: digits}\nmodel: {arch: mlp, widths: [16]}\n"
                       "train: {epochs: 1, precision: fp16}\n")
    assert main([str(path), "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "precision no" in out and "warning: train.precision fp16 does not run on cpu" in out
    row = store.read_table(tmp_path / "half", "trials").iloc[0]
    assert (row["precision"], row["train.precision"]) == ("no", "fp16")
    bf16 = run_trial(config(train={"epochs": 1, "precision": "bf16"}), "bf16", tmp_path)
    assert bf16.row["precision"] == "bf16"  # bf16 autocast does run on the CPU
