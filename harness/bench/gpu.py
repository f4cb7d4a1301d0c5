"""Every GPU measurement of the project in one command (about 6-8 minutes on one GPU), written to
docs/gpu.md:

    python -m harness.bench --gpu-report            # needs a CUDA GPU; offline (synthetic data only)

1. The trial loop vs a bare loop vs torchvision, in bf16 (CNNs channels_last): img/s, % of the bf16
   peak, host syncs per step (harness.bench.compare).
2. Packs on the GPU: s4_smallcnn K=16 packed vs one trial alone and vs the bound for four fractional
   trials sharing the GPU (4x one trial's rate), the other --packed cases beside it.
3. A 48-trial packed sweep on CIFAR-shaped synthetic data (sweeps/cifar.yaml's model, optimizer and
   schedule; 16 random grid points x 3 seeds, 3 epochs) through harness.sweep and Ray, and the time
   that projects for sweeps/cifar.yaml's 900 trials x 30 epochs (an upper bound: early stopping ends
   some sooner).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from harness.bench.fixtures import ARCHS
from harness.bench.packed import CASES
from harness.bench.packed import run as run_packed
from harness.bench.schedule import compare
from harness.bench.table import markdown, table_row
from harness.perf import describe_device

SWEEP_SETS = ["dataset.name=synthetic", "dataset.shape=[3,32,32]", "dataset.num_train=45000",
              "dataset.num_val=5000", "dataset.num_test=10000", "loss.name=cross_entropy", "train.epochs=3",
              "tune.search=random", "tune.num_samples=16", "early_stopping.enabled=false"]
GPU_CASES = [("s4_smallcnn K=16 (32x32)", ["model.arch=s4_smallcnn", "dataset.name=synthetic", "dataset.num_train=20000",
                                           "train.batch_size=128", "train.precision=bf16", "train.channels_last=true"], 16)]


def gpu_report(out: Path, results_dir: Path = Path("results/gpu-report")) -> str:
    if not torch.cuda.is_available():
        raise RuntimeError("--gpu-report needs a CUDA GPU (torch.cuda.is_available() is False)")
    device = torch.device("cuda")
    started = time.time()
    lines = [f"# GPU measurements\n\n{describe_device(device, None)}, torch {torch.__version__}, "
             f"`python -m harness.bench --gpu-report` ({time.strftime('%Y-%m-%d')}).\n"]

    rows, syncs = [], []
    for arch in ARCHS:
        c = compare(arch, "bf16", 128, None, rounds=3, parts=8, channels_last=arch != "s0_mlp", compile=False,
                    threads=None)
        rows.append(table_row(c, device))
        syncs.append(f"{arch} {c.syncs_per_step:.1f}")
    lines += ["## The trial loop, bf16\n", markdown(rows), f"\nHost syncs per trial-loop step: {', '.join(syncs)}\n"]

    packed = run_packed(3, GPU_CASES + CASES)
    lines += ["## Packs\n", "| case | solo img/s | pack img/s | pack/solo | pack / four fractional trials |",
              "| --- | --: | --: | --: | --: |"]
    for r in packed:
        lines.append(f"| {r['case']} | {r['solo_img_s']:,.0f} | {r['pack_img_s']:,.0f} | {r['ratio']:.2f}x "
                     f"| {r['ratio'] / 4:.2f}x |")

    t0 = time.time()
    cmd = [sys.executable, "-m", "harness.sweep", "sweeps/cifar.yaml", "--results-dir", str(results_dir),
           "--overwrite", "--no-report", *[a for s in SWEEP_SETS for a in ("--set", s)]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    finished = re.search(r"finished (\d+) trials in (\S+)", proc.stdout)
    per_trial_epoch = seconds / (48 * 3)
    projected_h = per_trial_epoch * 900 * 30 / 3600
    lines += ["\n## A 48-trial packed sweep\n", f"`{' '.join(cmd[1:])}`\n",
              f"{finished.group(0) if finished else 'did not finish: ' + proc.stderr[-500:]} "
              f"({seconds:.0f} s with Ray's start); {per_trial_epoch:.2f} s per trial-epoch projects "
              f"sweeps/cifar.yaml (900 trials x 30 epochs) to {projected_h:.2f} GPU-hours.\n",
              f"Report written in {time.time() - started:.0f} s.\n"]
    text = "\n".join(lines)
    out.write_text(text)
    return text
