"""Save and resume a trial: checkpoints/<trial_id>/last.pt (after an epoch: weights, optimizer, schedule,
grad scaler, RNG, the epoch rows so far, the best value), best.pt (the best epoch's weights),
config.json (what --resume compares with the sweep file, harness.resume), and, when a stop request
interrupted an epoch (harness.engine.stop), stopped.pt (the same, mid-epoch: the step reached and the
epoch's sums so far, with the best weights inside) beside stopped.json (its epoch and step, read
without loading it). Written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from harness.files import atomic_path, write_text


def checkpoint_dir(results_dir: Optional[Path], trial_id: str) -> Optional[Path]:
    return None if results_dir is None else Path(results_dir) / "checkpoints" / trial_id


def copy_state(model) -> dict:
    """The model's weights, copied (the best epoch's, kept while training goes on)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


LAST, STOPPED = "last.pt", "stopped.pt"


def save_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, epoch: int, history: list, best: dict,
                    generator: Optional[torch.Generator] = None, name: str = LAST, extra: Optional[dict] = None) -> None:
    """Everything needed to continue a trial after `epoch`: weights, optimizer, schedule, scaler, RNG
    (`generator`'s state instead of the global one: a pack member's own stream), and `extra`'s keys."""
    device = accelerator.device
    # copied: a pack member's weights are views into the pack's stacks, which torch.save would write whole
    save({"model": copy_state(model), "optimizer": optimizer.state_dict(),
          "scheduler": scheduler.state_dict() if scheduler is not None else None,
          "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
          "rng_cpu": torch.get_rng_state() if generator is None else None,
          "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" and generator is None else None,
          "rng_generator": generator.get_state() if generator is not None else None,
          "epoch": epoch, "history": history, "best_value": best["value"], "best_epoch": best["epoch"],
          **(extra or {})},
         ckpt / name)


def resume_from_checkpoint(ckpt: Path, model, optimizer, scheduler, accelerator, best: dict,
                           generator: Optional[torch.Generator] = None, name: str = LAST) -> dict:
    """Load `ckpt/name` (and the best weights: its own, else best.pt) into the run's objects; returns what it
    holds besides them (history, epoch, and a stopped.pt's step and sums)."""
    device = accelerator.device
    state = torch.load(ckpt / name, map_location=device, weights_only=False)
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
    if state.get("best_state") is not None:
        best["state"] = state["best_state"]
    elif (ckpt / "best.pt").exists():
        best["state"] = torch.load(ckpt / "best.pt", map_location=device, weights_only=False)
    return {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "scaler", "best_state")}


def stopped_mark(ckpt: Optional[Path]) -> Optional[tuple[int, int]]:
    """(epoch, step) where a stop request left the trial (stopped.json), or None."""
    if ckpt is None or not (ckpt / STOPPED).exists():
        return None
    try:
        mark = json.loads((ckpt / "stopped.json").read_text())
        return int(mark["epoch"]), int(mark["step"])
    except (OSError, ValueError, KeyError):  # stopped.json is written after stopped.pt: not there, not valid
        return None


def save_stopped_mark(ckpt: Path, epoch: int, step: int) -> None:
    write_text(ckpt / "stopped.json", json.dumps({"epoch": epoch, "step": step}))


def drop_stopped(ckpt: Optional[Path]) -> None:
    """Remove a mid-epoch checkpoint: a later last.pt supersedes it, or the pack resuming it cannot use it."""
    if ckpt is not None:
        for name in ("stopped.json", STOPPED):
            (ckpt / name).unlink(missing_ok=True)
