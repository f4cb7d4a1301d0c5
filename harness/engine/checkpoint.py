"""Save and resume a trial between epochs: checkpoints/<trial_id>/last.pt (weights, optimizer, schedule,
grad scaler, RNG, the epoch rows so far, the best value), best.pt (the best epoch's weights) and
config.json (what --resume compares with the sweep file, harness.resume). Written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from harness.files import atomic_path


def checkpoint_dir(results_dir: Optional[Path], trial_id: str) -> Optional[Path]:
    return None if results_dir is None else Path(results_dir) / "checkpoints" / trial_id


def copy_state(model) -> dict:
    """The model's weights, copied (the best epoch's, kept while training goes on)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, epoch: int, history: list, best: dict,
                    generator: Optional[torch.Generator] = None) -> None:
    """Everything needed to continue a trial after `epoch`: weights, optimizer, schedule, scaler, RNG
    (`generator`'s state instead of the global one: a pack member's own stream)."""
    device = accelerator.device
    # copied: a pack member's weights are views into the pack's stacks, which torch.save would write whole
    save({"model": copy_state(model), "optimizer": optimizer.state_dict(),
          "scheduler": scheduler.state_dict() if scheduler is not None else None,
          "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
          "rng_cpu": torch.get_rng_state() if generator is None else None,
          "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" and generator is None else None,
          "rng_generator": generator.get_state() if generator is not None else None,
          "epoch": epoch, "history": history, "best_value": best["value"], "best_epoch": best["epoch"]},
         ckpt / "last.pt")


def resume_from_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, best: dict,
                           generator: Optional[torch.Generator] = None) -> tuple[list, int]:
    """Load `ckpt/last.pt` (and the best weights) into the run's objects; returns (history, next epoch)."""
    device = accelerator.device
    state = torch.load(ckpt / "last.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if accelerator.scaler is not None and state.get("scaler") is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    if generator is not None and state.get("rng_generator") is not None:
        generator.set_state(state["rng_generator"].cpu())  # loaded onto the device with the rest: a state is a CPU tensor
    elif state.get("rng_cpu") is not None:
        torch.set_rng_state(state["rng_cpu"].cpu())
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
    best.update(value=state["best_value"], epoch=state["best_epoch"])
    if (ckpt / "best.pt").exists():
        best["state"] = torch.load(ckpt / "best.pt", map_location=device, weights_only=False)
    return state["history"], state["epoch"] + 1
