"""Transfer learning (`model.init_from`, `model.finetune`): start a model from another run's weights.

A source run saves its best weights with `train.save_model: true` (results/<sweep>/models/<trial_id>.pt).
A target run of the same arch on another dataset copies every tensor whose name and shape match,
except the head's (the head is new: another task, maybe another number of classes), then trains
either everything (`finetune: all`) or only the head (`finetune: head`; the rest is frozen, so the
optimizer never sees it). The head is the model's `head` submodule (every zoo CNN and the VGG16
transfer model have one), else its last Linear layer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def head_module(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the model's head: its `head` submodule, else its last nn.Linear."""
    if isinstance(getattr(model, "head", None), nn.Module):
        return "head", model.head
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has neither a `head` submodule nor a Linear layer to use as its head")
    return linears[-1]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(head_module(model)[1].parameters())


def freeze_all_but_head(model: nn.Module) -> nn.Module:
    """requires_grad False on every parameter outside the head (BatchNorm statistics still update in train mode)."""
    model.requires_grad_(False)
    head_module(model)[1].requires_grad_(True)
    return model


def load_transferred(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy into `model` every tensor of the state dict at `path` whose name and shape match, except the head's.

    Returns {"loaded": names, "skipped": names of the model's tensors left as initialised}.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.init_from: {path} does not exist; run the source sweep with train.save_model: true first "
            f"(it writes results/<sweep>/models/<trial_id>.pt), "
            f"e.g. python -m harness.sweep sweeps/s1_transfer_source.yaml")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state.get("model"), dict):  # a resumable checkpoint (last.pt) rather than bare weights
        state = state["model"]
    head = head_module(model)[0] + "."
    own = model.state_dict()
    kept = {k: v for k, v in state.items()
            if k in own and not k.startswith(head) and v.shape == own[k].shape}
    if not kept:
        raise ValueError(f"model.init_from: no tensor of {path} fits {type(model).__name__} outside its head "
                         f"(was it saved from another arch?)")
    model.load_state_dict(kept, strict=False)
    return {"loaded": sorted(kept), "skipped": sorted(set(own) - set(kept))}


def apply_transfer(model: nn.Module, cfg) -> nn.Module:
    """`cfg` is the run's ModelConfig: load `init_from` if set, then freeze all but the head for `finetune: head`."""
    if cfg.init_from:
        load_transferred(model, cfg.init_from)
    if cfg.finetune == "head":
        freeze_all_but_head(model)
    return model
