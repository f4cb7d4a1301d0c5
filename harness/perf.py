"""Hardware arithmetic shared by the report and the bench: training FLOPs per image (one counter),
device names, and the dense peak FLOP/s of common accelerators. Nothing here trains or times anything;
the report's throughput table and `python -m harness.bench` both turn these into "% of peak".

    train_flops_per_image(create_model, "resnet18", (3, 32, 32), 10)   # ~3.3e9: forward + backward
    peak_tflops("NVIDIA H100 80GB HBM3", "bf16")                         # (Device("H100 SXM", ...), "bf16", 989.4)

FLOPs: one forward + backward of a batch of BATCH images under `torch.utils.flop_counter.FlopCounterMode`,
the model built on the meta device (shapes only, no arithmetic), on the CPU when it can't be; divided
by BATCH. A model that cannot be built at all gives None: FLOPs are optional wherever they are shown.

Peaks: vendor datasheet numbers, TFLOP/s, no structured sparsity; tensor-core rates with FP32
accumulation where GeForce cards differ. A device is matched on the string a trial stores as `device`
(e.g. "NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB"); the first pattern that matches wins, so
specific variants (H100 PCIe) come before the family. `precision` as in `train.precision`: "no" trains
in fp32, "bf16"/"fp16" use those tensor cores.
"""

from __future__ import annotations

import functools
import json
import math
import platform
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

# --------------------------------------------------------------------------------------------------
# FLOPs per image

BATCH = 2  # >1 so that batch norm works in train mode; FLOPs are divided by it


def train_flops_per_image(make: Callable[..., torch.nn.Module], arch: str, input_shape, num_classes: int,
                          **options: Any) -> Optional[float]:
    """FLOPs of one training step (forward + backward) per image of `make(arch, input_shape, num_classes,
    **options)`, or None when the model can't be built or run. Cached per model."""
    shape = tuple(int(d) for d in input_shape)
    return _count(make, arch, shape, int(num_classes), json.dumps(options, sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)
def _count(make: Callable[..., torch.nn.Module], arch: str, shape: tuple[int, ...], classes: int,
           options_json: str) -> Optional[float]:
    for device in ("meta", "cpu"):  # meta: shapes only, no compute; cpu if a model can't be built on meta
        try:
            with torch.device(device):
                model = make(arch, shape, classes, **json.loads(options_json)).train()
                x = torch.randn(BATCH, *shape)
            counter = FlopCounterMode(display=False)
            with counter:
                model(x).float().sum().backward()
            return counter.get_total_flops() / BATCH
        except Exception:  # noqa: BLE001 - FLOPs are optional; a model we can't build leaves them empty
            continue
    return None


# --------------------------------------------------------------------------------------------------
# Devices and their peaks


@dataclass(frozen=True)
class Device:
    name: str
    fp32: float
    tf32: Optional[float]
    bf16: Optional[float]
    fp16: Optional[float]


# (regex searched case-insensitively in the device string, peaks)
DEVICES: list[tuple[str, Device]] = [
    (r"H200.*NVL", Device("H200 NVL", 60.0, 417.5, 835.5, 835.5)),
    (r"H200", Device("H200 SXM", 67.0, 494.7, 989.4, 989.4)),
    (r"H100.*PCIe", Device("H100 PCIe", 51.0, 378.0, 756.0, 756.0)),
    (r"H100.*NVL", Device("H100 NVL", 60.0, 417.5, 835.5, 835.5)),
    (r"H100", Device("H100 SXM", 67.0, 494.7, 989.4, 989.4)),
    (r"A100", Device("A100", 19.5, 156.0, 312.0, 312.0)),
    (r"\bA10\b", Device("A10", 31.2, 62.5, 125.0, 125.0)),
    (r"A30\b", Device("A30", 10.3, 82.0, 165.0, 165.0)),
    (r"A40\b", Device("A40", 37.4, 74.8, 149.7, 149.7)),
    (r"L40S", Device("L40S", 91.6, 183.0, 362.05, 362.05)),
    (r"L40\b", Device("L40", 90.5, 90.5, 181.0, 181.0)),
    (r"\bL4\b", Device("L4", 30.3, 60.0, 121.0, 121.0)),
    (r"V100S", Device("V100S PCIe", 16.4, None, None, 130.0)),
    (r"V100.*PCIE", Device("V100 PCIe", 14.0, None, None, 112.0)),
    (r"V100", Device("V100 SXM2", 15.7, None, None, 125.0)),
    (r"\bT4\b", Device("T4", 8.1, None, None, 65.0)),
    (r"P100", Device("P100", 9.3, None, None, 18.7)),
    (r"RTX A6000", Device("RTX A6000", 38.7, 77.4, 154.8, 154.8)),
    (r"RTX 4090", Device("RTX 4090", 82.6, 82.6, 165.2, 165.2)),
    (r"RTX 3090", Device("RTX 3090", 35.6, 35.6, 71.0, 71.0)),
    (r"MI300X", Device("MI300X", 163.4, 653.7, 1307.4, 1307.4)),
    (r"MI250X", Device("MI250X", 95.7, None, 383.0, 383.0)),
]

# train.precision -> which peak applies
PRECISION_PEAK = {"no": "fp32", "fp32": "fp32", "32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16"}


def device_name(device: torch.device) -> str:
    """The `device` string a trial stores and find_device matches: the GPU's model name, or "cpu"."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def describe_device(device: torch.device, threads: Optional[int] = None) -> str:
    """device_name for a heading: a CPU also says which one and how many threads it was given."""
    device = torch.device(device)
    if device.type == "cuda":
        return device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {threads or torch.get_num_threads()} threads)"


def find_device(device: object) -> Optional[Device]:
    if not isinstance(device, str):
        return None
    for pattern, spec in DEVICES:
        if re.search(pattern, device, flags=re.IGNORECASE):
            return spec
    return None


def peak_tflops(device: object, precision: object) -> tuple[Optional[Device], Optional[str], Optional[float]]:
    """(device spec, dtype used, dense peak TFLOP/s) for a stored device string; Nones when the device or
    the precision is unknown."""
    spec = find_device(device)
    dtype = PRECISION_PEAK.get(str(precision).lower()) if precision is not None else None
    if spec is None or dtype is None:
        return spec, dtype, None
    return spec, dtype, getattr(spec, dtype)


def device_peak_tflops(device: torch.device, precision: str) -> float:
    """Dense peak TFLOP/s of this torch device at this precision; NaN for a CPU or an unknown GPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return math.nan
    peak = peak_tflops(device_name(device), precision)[2]
    return peak if peak else math.nan
