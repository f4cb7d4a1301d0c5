"""The throughput bench: the trial loop beside a bare loop (its limit) and the torchvision DataLoader
pipeline (its baseline), plus the costs around training (Ray, the sweep driver, Parquet).
`python -m harness.bench --help` says what it measures and how.

    fixtures.py     the images, the model, the CIFAR-10 folder and the FLOPs every contender shares
    contenders.py   trial, bare, torchvision: build one, time one epoch
    measure.py      CpuWatch, Comparison (medians, ratios), host syncs per step, forward + backward rate
    schedule.py     compare: the contenders in interleaved rounds under the same load
    overheads.py    Ray Tune and harness.sweep per-trial overhead, Parquet write + read
    table.py        the table: a Comparison as a Markdown row
    packed.py       K trials back to back vs one pack of K (`--packed`)
    gpu.py          every GPU measurement into docs/gpu.md (`--gpu-report`)
    cli.py          the command line (`python -m harness.bench`, `__main__.py` runs it)
"""

from harness.bench.contenders import (
    MAKERS,
    bare_loop_epoch,
    default_device,
    make_bare_loop,
    make_torchvision_pipeline,
    make_trial_loop,
    torchvision_pipeline_epoch,
    trial_loop_epoch,
)
from harness.bench.fixtures import ARCHS, cifar_fixture, cifar_like, torchvision_dataset, train_flops_per_image
from harness.bench.measure import Comparison, CpuWatch, fwd_bwd_rate, host_syncs_per_step
from harness.bench.overheads import epoch_rows, parquet_roundtrip, ray_trial_overhead, sweep_overhead
from harness.bench.schedule import compare
from harness.bench.table import COLUMNS, markdown, table_row
from harness.perf import describe_device, device_peak_tflops

__all__ = [
    "ARCHS", "COLUMNS", "MAKERS", "Comparison", "CpuWatch", "bare_loop_epoch", "cifar_fixture",
    "cifar_like", "compare", "default_device", "describe_device", "device_peak_tflops", "epoch_rows",
    "fwd_bwd_rate", "host_syncs_per_step", "make_bare_loop", "make_torchvision_pipeline",
    "make_trial_loop", "markdown", "parquet_roundtrip", "ray_trial_overhead", "sweep_overhead", "table_row",
    "torchvision_dataset", "torchvision_pipeline_epoch", "train_flops_per_image", "trial_loop_epoch",
]
