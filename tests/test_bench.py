"""harness.bench at toy sizes: every contender trains and returns a rate, the FLOP count is exact for an
MLP, Parquet round-trips, and the CLI prints the comparison table. (The real measurements are the
benchmarks: `pytest tests/benchmarks --benchmark-only`.)"""

import math
import time

import pytest
import torch

from harness import bench
from harness.bench import cli, schedule
from harness.report.tables import DASH

SMALL = dict(arch="s0_mlp", precision="no", batch_size=64, n_images=512)


@pytest.mark.parametrize("measure", [bench.trial_loop_epoch, bench.bare_loop_epoch, bench.torchvision_pipeline_epoch])
def test_each_contender_returns_images_per_second(measure):
    rate = measure(**SMALL)
    assert math.isfinite(rate) and rate > 0


def test_trial_loop_options_and_a_cnn():
    assert bench.trial_loop_epoch("s4_smallcnn", "bf16", 32, 128, channels_last=True, augment="none",
                                  warmup_steps=1) > 0


def test_torchvision_pipeline_reads_the_fixture_as_torchvision_cifar10():
    x, y = bench.cifar_like(100)
    ds = bench.torchvision_dataset(100)
    assert len(ds) == 100 and ds.classes[3] == "class_3"
    assert torch.equal(torch.from_numpy(ds.data[7]).permute(2, 0, 1), x[7]) and ds.targets[7] == int(y[7])


def test_torchvision_pipeline_needs_images_left_after_warm_up():
    with pytest.raises(ValueError, match="warm-up"):
        bench.make_torchvision_pipeline("s0_mlp", n_images=128, batch_size=64)


def test_training_flops_of_the_s0_mlp_are_counted_exactly():
    layers = [(3072, 256), (256, 128), (128, 10)]
    forward = sum(2 * a * b for a, b in layers)
    input_grads = sum(2 * a * b for a, b in layers[1:])  # the first layer's input needs no gradient
    assert bench.train_flops_per_image("s0_mlp") == 2 * forward + input_grads
    assert bench.train_flops_per_image("resnet18") > 1e9  # ~3.3 GFLOP at 32x32


def test_parquet_roundtrip_reads_back_every_row():
    r = bench.parquet_roundtrip(2000, trials=4)
    assert r["rows"] == 2000 and r["parts"] == 4
    assert r["write_s"] > 0 and r["read_s"] > 0 and r["mb"] > 0


def test_comparison_medians_and_ratios():
    c = bench.Comparison("s0_mlp", "no", 128, 1024, {"trial": [9.0, 10.0, 30.0], "bare": [10.0, 11.0, 12.0]})
    # round by round: 0.9, 0.91, 2.5
    assert c.median("trial") == 10.0 and c.ratio("trial", "bare") == pytest.approx(10 / 11)
    assert math.isnan(c.median("torchvision"))
    row = bench.table_row(c, torch.device("cpu"))
    assert len(row) == len(bench.COLUMNS) and row[6] == "0.91x" and row[7] == DASH and row[-1] == DASH


def test_medians_leave_out_rounds_disturbed_by_other_processes():
    c = bench.Comparison("s0_mlp", "no", 128, 1024, {"trial": [1.0, 10.0, 11.0], "bare": [1.0, 20.0, 22.0]},
                         busy=[0.6, 0.02, 0.05])
    assert c.quiet == [1, 2] and c.median("trial") == 10.5 and c.ratio("trial", "bare") == pytest.approx(0.5)
    c.busy = [0.5, 0.5, 0.5]  # never quiet: every round counts
    assert c.quiet == [] and c.median("trial") == 10.0


def test_cpu_watch_measures_a_share():
    with bench.CpuWatch() as watch:
        time.sleep(0.3)
    assert 0.0 <= watch.others <= 1.0


def test_compare_runs_rounds_side_by_side():
    c = bench.compare("s0_mlp", "no", 64, 256, rounds=2, contenders=("trial", "bare"), threads=1, max_busy=1.0)
    assert len(c.busy) == 2 and [len(c.rates[k]) for k in ("trial", "bare")] == [2, 2]
    assert c.ratio("trial", "bare") > 0 and c.tflops > 0


def test_compare_alternates_trial_and_bare_on_parts_of_a_round(monkeypatch):
    """Trial and bare take turns on parts of the round's images (t b b t ...), the torchvision pipeline runs
    one whole epoch before them or after them in turn; a round's rate is images over seconds (harmonic mean)."""
    calls, built = [], {}

    def maker(name, rates):
        def make(arch, precision, batch_size, n_images, **kw):
            built[name] = n_images

            def epoch():
                calls.append(name)
                return rates[(calls.count(name) - 1) % len(rates)]

            return epoch

        return make

    monkeypatch.setattr(schedule, "MAKERS", {"trial": maker("trial", [1.0, 3.0]), "bare": maker("bare", [2.0]),
                                             "torchvision": maker("torchvision", [5.0])})
    c = bench.compare("s0_mlp", "no", 64, 512, rounds=2, parts=4, contenders=("trial", "bare", "torchvision"),
                      threads=1, max_busy=1.0)
    turns = ["trial", "bare", "bare", "trial"] * 2
    assert calls == ["torchvision"] + turns + turns + ["torchvision"]
    assert built == {"trial": 128, "bare": 128, "torchvision": 512} and c.images == 512
    assert c.rates == {"trial": [1.5, 1.5], "bare": [2.0, 2.0], "torchvision": [5.0, 5.0]}  # 4 / (1 + 1/3 + 1 + 1/3)
    assert c.ratio("trial", "bare") == 0.75


def test_cli_prints_the_table(capsys):
    assert cli.main(["--arch", "s0_mlp", "s4_smallcnn", "--images", "512", "--batch", "64", "--rounds", "1",
                       "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines[0] == "| " + " | ".join(bench.COLUMNS) + " |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| s0_mlp", "| s4_smallcnn"]
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert all(cells[3:6]) and cells[6].endswith("x") and cells[7].endswith("x")
    assert "harness.bench on cpu" in out


def test_cli_rejects_an_unknown_model(capsys):
    assert cli.main(["--arch", "no_such_net"]) == 2
    assert "unknown --arch no_such_net" in capsys.readouterr().err


def test_the_old_no_seeds_flag_still_leaves_out_the_torchvision_pipeline():
    assert cli.build_parser().parse_args(["--no-seeds"]).no_torchvision
    assert cli.build_parser().parse_args(["--no-torchvision"]).no_torchvision


def test_gpu_report_sweep_is_48_trials_of_cifar_shaped_data():
    # the --gpu-report sweep (run on a GPU only): sweeps/cifar.yaml on synthetic 32x32 data, 16 points x 3 seeds
    from harness.bench.gpu import SWEEP_SETS
    from harness.config import load_sweep
    from harness.sweep.select import random_subset

    sweep = load_sweep("sweeps/cifar.yaml", SWEEP_SETS)
    trials = random_subset(sweep.trials, sweep.config.tune.num_samples, sweep.seeds, seed=sweep.config.seed)
    assert len(trials) == 48
    assert {tuple(t.config.dataset.shape) for t in trials} == {(3, 32, 32)}
    assert {t.config.model.arch for t in trials} == {"s4_smallcnn"}


def test_gpu_report_without_a_gpu_is_a_clear_error(capsys):
    import torch

    from harness.bench.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the report itself is the check")
    assert main(["--gpu-report", "/tmp/never-written.md"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
