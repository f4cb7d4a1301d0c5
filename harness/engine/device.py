"""The device a trial runs on: the Accelerator (GPU when there is one, else the CPU), the precision
that actually runs, its name, peak memory, and the sync that brackets a timed stretch. Not here:
anything that trains."""

from __future__ import annotations

import os
import resource

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState


def make_accelerator(precision: str = "no") -> Accelerator:
    """An Accelerator on the GPU when there is one, else the CPU; fresh mixed-precision state."""
    AcceleratorState._reset_state(reset_partial_state=False)  # allow a new precision in this process
    if not torch.cuda.is_available() and os.environ.get("ACCELERATE_TORCH_DEVICE", "").startswith("cuda"):
        # Ray Train names a worker's device after the Ray GPU it holds, CUDA or not (logical GPUs)
        os.environ["ACCELERATE_TORCH_DEVICE"] = "cpu"
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)


def precision_run(accelerator) -> str:
    """The precision the trial actually trains in: Accelerate runs fp16 only on CUDA (on the CPU it
    silently trains in fp32), so a trial records what ran, not what was asked for (`train.precision`)."""
    if accelerator.mixed_precision == "no" or not accelerator.native_amp:
        return "no"
    return accelerator.mixed_precision


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): a host sync, once per timed stretch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; process peak RSS
