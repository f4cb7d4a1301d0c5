"""Peak dense throughput of common accelerators (TFLOP/s, no structured sparsity), matched on the
`device` string a trial stores (e.g. "NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB").

Vendor datasheet numbers; tensor-core rates with FP32 accumulation where GeForce cards differ.
The first pattern that matches wins, so specific variants (H100 PCIe) come before the family.
`precision` as in `train.precision`: "no" trains in fp32, "bf16"/"fp16" use those tensor cores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


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


def find_device(device: object) -> Optional[Device]:
    if not isinstance(device, str):
        return None
    for pattern, spec in DEVICES:
        if re.search(pattern, device, flags=re.IGNORECASE):
            return spec
    return None


def peak_tflops(device: object, precision: object) -> tuple[Optional[Device], Optional[str], Optional[float]]:
    """(device spec, dtype used, dense peak TFLOP/s) — Nones when the device or the precision is unknown."""
    spec = find_device(device)
    dtype = PRECISION_PEAK.get(str(precision).lower()) if precision is not None else None
    if spec is None or dtype is None:
        return spec, dtype, None
    return spec, dtype, getattr(spec, dtype)
