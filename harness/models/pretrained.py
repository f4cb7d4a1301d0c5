"""Pretrained torchvision weights in models of other shapes: download with a one-line error offline
(`WeightsUnavailable` says where to put the file by hand), a stem adapted to any number of input
channels, and loading every tensor whose name and shape fit. No model is registered here."""

from __future__ import annotations

import math
import os
from urllib.parse import urlparse

import torch
from torch import nn


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that could not be downloaded; the message says where to put the file by hand."""


def load_pretrained(weights) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum entry, downloading it into torch's hub cache if needed."""
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as e:  # URLError, HTTPError, timeouts, refused connections, unwritable cache
        filename = os.path.basename(urlparse(weights.url).path)
        target = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
        reason = getattr(e, "reason", None) or e.strerror or e
        raise WeightsUnavailable(
            f"could not download the pretrained weights {weights} ({reason}); download {weights.url} "
            f"on a machine with internet and put it at {target} (torch.hub.get_dir()/checkpoints/{filename})"
        ) from None


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The name and module of the first Conv2d (the stem of every torchvision classifier)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no Conv2d stem to adapt to other input channels")


def set_input_channels(model: nn.Module, channels: int) -> None:
    """Replace the stem convolution by one taking `channels` inputs (same kernel, stride, padding)."""
    name, conv = first_conv(model)
    if conv.in_channels == channels:
        return
    if conv.groups != 1:
        raise ValueError(f"cannot adapt the grouped stem convolution '{name}' of {type(model).__name__} "
                         f"to {channels} input channels")
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB stem weights for `channels` inputs: summed for grayscale, else tiled and rescaled (as timm does)."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(channels / weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor of `state` whose name and shape fit `model` (the stem adapted to the input channels).

    Returns the names left as initialised: the new head when num_classes differs from the checkpoint's.
    """
    own = model.state_dict()
    stem = first_conv(model)[0] + ".weight"
    if stem in state and state[stem].shape[1] != own[stem].shape[1]:
        state = {**state, stem: adapt_input_conv(state[stem], own[stem].shape[1])}
    kept = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(kept, strict=False)
    return sorted(set(own) - set(kept))
