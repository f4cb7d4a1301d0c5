"""Training throughput of the trial loop next to its limit and its baseline, on the machine at hand.

    python -m harness.bench                                   # s0_mlp, s4_smallcnn, resnet18
    python -m harness.bench --arch resnet18 --precision bf16 --compile
    python -m harness.bench --ray --parquet                   # + Ray per-trial overhead, Parquet 100k rows

Three contenders train the same model (same init) with the same optimizer (SGD, Nesterov momentum,
torch's fused kernel on CPU and CUDA alike) at the same batch size and precision on CIFAR-shaped (3x32x32,
10 classes) images:

    trial        harness.trial.train_epoch over DeviceBatches: uint8 images on the device, crop + flip and
                 normalize there, Accelerate, the on-device metrics a trial records. What a sweep runs.
    bare         a hand-written loop over pre-normalized float tensors already on the device: no
                 augmentation, no metrics. The limit.
    torchvision  the usual pipeline: torchvision CIFAR10 + PIL transforms (flip, crop pad 4, ToTensor,
                 Normalize) + DataLoader(shuffle, num_workers=2). The baseline users have today.

They run in rounds, so that ratios are taken side by side under the same load: within a round, trial
and bare take turns on parts of the epoch (t b b t t b ...), the torchvision pipeline runs one whole
epoch. Rates and ratios are medians over the rounds other processes left alone (CpuWatch), a ratio
being taken within each round. FLOPs come from FlopCounterMode, % of peak from harness.perf's table
of dense peaks. On CPU every contender gets all cores (a sweep runs each trial on one: OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

import torch

from harness import perf
from harness.bench.contenders import MAKERS, default_device
from harness.bench.fixtures import ARCHS
from harness.bench.overheads import parquet_roundtrip, ray_trial_overhead, sweep_overhead
from harness.bench.schedule import compare
from harness.bench.table import markdown, table_row
from harness.models import MODELS
from harness.report.tables import fmt, fmt_si


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--arch", nargs="+", default=list(ARCHS), help="models (default: %(default)s)")
    p.add_argument("--precision", nargs="+", choices=["no", "bf16", "fp16"],
                   help="default: bf16 on a GPU, no (fp32) on the CPU")
    p.add_argument("--batch", type=int, default=128, help="train batch size (default: %(default)s)")
    p.add_argument("--images", type=int, help="images per contender per round (default: a few seconds' worth)")
    p.add_argument("--parts", type=int, default=8,
                   help="trial and bare take turns on this many parts of a round's images (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians (default: 3)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="channels_last memory format (default: on a GPU, for CNNs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is warm-up)")
    p.add_argument("--no-torchvision", "--no-seeds", dest="no_torchvision", action="store_true",
                   help="leave out the torchvision DataLoader baseline (--no-seeds: its old name)")
    p.add_argument("--threads", type=int, help="CPU threads for every contender (default: all cores)")
    p.add_argument("--ray", action="store_true", help="also: Ray Tune and harness.sweep per-trial overhead (~1 min)")
    p.add_argument("--parquet", action="store_true", help="also: write + read 100k epoch rows of Parquet")
    p.add_argument("--gpu-report", nargs="?", const="docs/gpu.md", metavar="FILE",
                   help="only: every GPU measurement (trial loop, packs, a 48-trial sweep) into FILE (docs/gpu.md)")
    p.add_argument("--packed", action="store_true",
                   help="only: K solo trials back to back vs one pack of K (s3_mlp, mlp, s4_smallcnn)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.gpu_report:
        from harness.bench.gpu import gpu_report

        try:
            print(gpu_report(Path(args.gpu_report)))
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if args.packed:
        from harness.bench.packed import run as run_packed

        print(f"harness.bench --packed: medians of {args.rounds} interleaved rounds, one thread", flush=True)
        run_packed(args.rounds)
        return 0
    unknown = [a for a in args.arch if a not in MODELS and not a.startswith("torchvision:")]
    too_few = args.images is not None and args.images < args.batch
    if unknown or min(args.batch, args.rounds, args.parts) < 1 or too_few:
        what = f"unknown --arch {', '.join(unknown)} (e.g. {', '.join(ARCHS)})" if unknown else \
            "--batch, --rounds and --parts must be positive, --images at least one batch"
        print(f"error: {what}", file=sys.stderr)
        return 2
    device = default_device()
    precisions = args.precision or (["bf16"] if device.type == "cuda" else ["no"])
    contenders = ("trial", "bare") if args.no_torchvision else tuple(MAKERS)
    threads = args.threads or (os.cpu_count() if device.type == "cpu" else None)
    print(f"harness.bench on {perf.describe_device(device, threads)}, torch {torch.__version__}; "
          f"medians of {args.rounds} interleaved rounds", flush=True)
    rows, syncs = [], []
    for arch in args.arch:
        channels_last = args.channels_last if args.channels_last is not None else (
            device.type == "cuda" and arch != "s0_mlp")
        for precision in precisions:
            c = compare(arch, precision, args.batch, args.images, rounds=args.rounds, parts=args.parts,
                        contenders=contenders, channels_last=channels_last, compile=args.compile, threads=threads)
            rows.append(table_row(c, device))
            syncs.append(f"{arch}/{precision} {fmt(c.syncs_per_step, 1)}")
            print(f"  {arch} {precision}{' channels_last' if channels_last else ''}: {c.images} images per round, "
                  + ", ".join(f"{k} " + " ".join(fmt_si(v) for v in c.rates[k]) for k in c.rates) + " img/s; "
                  f"{len(c.quiet)} of {len(c.busy)} rounds quiet (others' CPU share "
                  + " ".join(fmt(100 * b, 0) + "%" for b in c.busy) + ")", file=sys.stderr, flush=True)
    print(markdown(rows), end="")
    if device.type == "cuda":
        print("host syncs per trial-loop step (should be 0): " + ", ".join(syncs))
    if args.ray:
        ray = ray_trial_overhead()
        sweep = sweep_overhead()
        print(f"Ray Tune, {ray['trials']} trivial trials: {ray['init_s']:.1f} s import + init, "
              f"{ray['per_trial_s']:.2f} s per trial")
        print(f"harness.sweep, near-empty trials: {sweep['startup_s']:.1f} s to start, {sweep['per_trial_s']:.2f} s "
              f"per trial, of which the trial's own work (total_seconds) {sweep['own_s']:.2f} s")
    if args.parquet:
        for trials in (1, 1000):
            r = parquet_roundtrip(100_000, trials)
            print(f"Parquet, {r['rows']:,} epoch rows in {r['parts']} part file(s): write {r['write_s']:.2f} s, "
                  f"read {r['read_s']:.2f} s, {r['mb']:.1f} MB")
    return 0
