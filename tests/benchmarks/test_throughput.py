"""Training throughput side by side: the trial loop, the bare loop (the limit) and the seeds' pipeline
(torchvision + PIL + DataLoader, the baseline), on CIFAR-shaped synthetic images; issue 7's targets
asserted on the medians.

    pytest tests/benchmarks --benchmark-only

pytest-benchmark times the trial loop's epochs; before each one (pedantic's untimed `setup`) the bare
loop and the seeds' pipeline run an epoch each, timed by harness.bench, so that all three meet the
same load. On CPU every contender gets all cores; on a GPU they train in bf16, CNNs channels_last.
"""

import math
import os

import pytest

from harness import bench

DEVICE = bench.default_device()
GPU = DEVICE.type == "cuda"
PRECISION = "bf16" if GPU else "no"
ROUNDS = {"s0_mlp": 7, "s4_smallcnn": 5, "resnet18": 3}
IMAGES = {"resnet18": 256} if not GPU else {}  # resnet18 trains ~50 img/s on 2 CPU cores

# Lower bounds on trial/bare and trial/seeds (medians of the same rounds); None: no target.
CPU_TARGETS = {"s0_mlp": (0.9, 3.5), "s4_smallcnn": (0.9, 1.4), "resnet18": (0.9, None)}
GPU_TARGETS = {"s0_mlp": (0.9, 20.0), "s4_smallcnn": (0.9, None), "resnet18": (0.9, None)}
GPU_PEAK_SHARE = {"resnet18": 0.35}  # forward + backward in bf16 + channels_last, of the dense bf16 peak


@pytest.mark.parametrize("arch", bench.ARCHS)
def test_epoch_throughput(benchmark, comparisons, arch):
    n = IMAGES.get(arch) or bench.default_images(arch, DEVICE)
    channels_last = GPU and arch != "s0_mlp"
    with bench.cpu_threads(None if GPU else os.cpu_count()):
        epochs = {name: make(arch, PRECISION, 128, n, channels_last=channels_last)
                  for name, make in bench.MAKERS.items()}
        rates = {name: [] for name in epochs}

        def others():
            for name in ("bare", "seeds"):
                rates[name].append(epochs[name]())

        def trial():
            rates["trial"].append(epochs["trial"]())

        benchmark.pedantic(trial, setup=others, rounds=ROUNDS[arch], iterations=1)
        del epochs
        c = bench.Comparison(arch, PRECISION, 128, n, rates)
        if GPU:
            c.fwd_bwd = bench.fwd_bwd_rate(arch, PRECISION, 128, channels_last=channels_last)
    comparisons.append(c)
    benchmark.extra_info.update(
        images_per_epoch=n, precision=PRECISION, channels_last=channels_last,
        **{f"{name}_img_per_s": c.median(name) for name in rates},
        trial_vs_bare=c.ratio("trial", "bare"), trial_vs_seeds=c.ratio("trial", "seeds"),
        gflop_per_image=c.gflop_per_image, tflops=c.tflops)

    bare_target, seeds_target = (GPU_TARGETS if GPU else CPU_TARGETS)[arch]
    summary = ", ".join(f"{name} {[round(r) for r in rates[name]]}" for name in rates)
    assert c.ratio("trial", "bare") >= bare_target, \
        f"trial loop {c.ratio('trial', 'bare'):.2f}x the bare loop; {summary}"
    if seeds_target:
        assert c.ratio("trial", "seeds") >= seeds_target, \
            f"trial loop {c.ratio('trial', 'seeds'):.2f}x the seeds' pipeline; {summary}"
    peak = bench.peak_tflops(DEVICE, PRECISION)
    if GPU and arch in GPU_PEAK_SHARE and math.isfinite(peak):
        share = c.gflop_per_image * c.fwd_bwd / 1e3 / peak
        assert share >= GPU_PEAK_SHARE[arch], f"forward + backward at {100 * share:.1f}% of the {peak:.0f} TFLOP/s peak"


@pytest.mark.skipif(not GPU, reason="host syncs are counted by CUDA's sync debug mode")
def test_trial_loop_never_syncs_the_host(benchmark):
    syncs = benchmark.pedantic(bench.host_syncs_per_step, args=("s4_smallcnn", "bf16"), rounds=1, iterations=1)
    assert syncs == 0, f"{syncs} host syncs per training step"
