"""Training throughput side by side: the trial loop, the bare loop (the limit) and the torchvision
DataLoader pipeline (PIL transforms in workers, the baseline), on CIFAR-shaped synthetic images; issue 7's targets
asserted on the medians.

    pytest tests/benchmarks --benchmark-only

Each benchmark is one harness.bench.compare: the three contenders built once, then rounds in which
trial and bare take turns on parts of the round's images (t b b t ...) and the torchvision pipeline
runs one epoch, so that all three meet the same load; rounds in which other processes took over 10% of
the CPUs are run again and left out of the medians. The img/s figures and ratios are in extra_info
(`--benchmark-json FILE` keeps them), and the session ends with the table `python -m harness.bench`
prints. On CPU every contender gets all cores; on a GPU they train in bf16, CNNs channels_last.
"""

import math
import os

import pytest

from harness import bench

DEVICE = bench.default_device()
GPU = DEVICE.type == "cuda"
PRECISION = "bf16" if GPU else "no"
ROUNDS = {"s0_mlp": 7, "s4_smallcnn": 5, "resnet18": 3}

# Lower bounds on trial/bare and trial/torchvision (medians of the same rounds); None: no target.
CPU_TARGETS = {"s0_mlp": (0.9, 3.5), "s4_smallcnn": (0.9, 1.4), "resnet18": (0.9, None)}
GPU_TARGETS = {"s0_mlp": (0.9, 20.0), "s4_smallcnn": (0.9, None), "resnet18": (0.9, None)}
GPU_PEAK_SHARE = {"resnet18": 0.35}  # forward + backward in bf16 + channels_last, of the dense bf16 peak


@pytest.mark.parametrize("arch", bench.ARCHS)
def test_epoch_throughput(benchmark, comparisons, arch):
    channels_last = GPU and arch != "s0_mlp"
    c = benchmark.pedantic(bench.compare, args=(arch, PRECISION, 128), kwargs=dict(
        rounds=ROUNDS[arch], channels_last=channels_last, threads=None if GPU else os.cpu_count()),
        rounds=1, iterations=1)
    comparisons.append(c)
    rates = c.rates
    benchmark.extra_info.update(
        images_per_epoch=c.images, precision=PRECISION, channels_last=channels_last, rounds=len(c.busy),
        quiet_rounds=len(c.quiet), busy=c.busy, rates=rates, trial_vs_bare=c.ratio("trial", "bare"),
        trial_vs_torchvision=c.ratio("trial", "torchvision"), gflop_per_image=c.gflop_per_image, tflops=c.tflops,
        **{f"{name}_img_per_s": c.median(name) for name in rates})

    if len(c.quiet) < ROUNDS[arch] // 2 + 1:
        pytest.skip(f"other processes kept the CPUs busy ({[round(b, 2) for b in c.busy]} of them per round): "
                    f"too few quiet rounds to judge the ratios; {c.rates}")
    bare_target, torchvision_target = (GPU_TARGETS if GPU else CPU_TARGETS)[arch]
    summary = ", ".join(f"{name} {[round(r) for r in rates[name]]}" for name in rates) + \
        f"; others' CPU share per round {[round(b, 2) for b in c.busy]}"
    assert c.ratio("trial", "bare") >= bare_target, \
        f"trial loop {c.ratio('trial', 'bare'):.2f}x the bare loop; {summary}"
    if torchvision_target:
        assert c.ratio("trial", "torchvision") >= torchvision_target, \
            f"trial loop {c.ratio('trial', 'torchvision'):.2f}x the torchvision pipeline; {summary}"
    if GPU:
        assert c.syncs_per_step == 0, f"{c.syncs_per_step} host syncs per training step (CUDA sync debug mode)"
        peak = bench.device_peak_tflops(DEVICE, PRECISION)
        if arch in GPU_PEAK_SHARE and math.isfinite(peak):
            share = c.gflop_per_image * c.fwd_bwd / 1e3 / peak
            assert share >= GPU_PEAK_SHARE[arch], f"forward + backward at {100 * share:.1f}% of {peak:.0f} TFLOP/s"
