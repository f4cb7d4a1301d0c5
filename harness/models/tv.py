"""Models built on torchvision: S0's VGG16 transfer model, a small-input resnet18, and `torchvision:<name>`.

Pretrained weights go through `load_pretrained`, which turns a failed download into one-line
`WeightsUnavailable` saying where to put the file by hand (offline machines).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Optional
from urllib.parse import urlparse

import torch
from torch import nn

from harness.models import WeightsUnavailable, register_model
from harness.models.activations import make_activation, replace_activations
from harness.models.options import NonNegativeInt
from harness.registry import UnknownName, did_you_mean


# ------------------------------------------------------------------------------------------- helpers


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


# ------------------------------------------------------------------------------------- VGG16 transfer

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg_features(in_channels: int, activation: str, cfg=VGG16_CFG) -> nn.Sequential:
    """torchvision's `vgg16().features` layout (same indices, so its checkpoints load), any activation."""
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            conv = nn.Conv2d(in_channels, v, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's VGG
            nn.init.zeros_(conv.bias)
            layers += [conv, make_activation(activation)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG16Transfer(nn.Module):
    """VGG16 features (no resize, no avgpool) -> Flatten -> MLP head; features[:freeze_below] frozen."""

    def __init__(self, input_shape, num_classes: int, activation: str = "relu", pretrained: bool = False,
                 freeze_below: int = 19, head=(256, 128)):
        super().__init__()
        from harness.models.zoo import flat_size, mlp_head

        self.features = vgg_features(input_shape[0], activation)
        if pretrained:
            from torchvision.models import VGG16_Weights

            state = load_pretrained(VGG16_Weights.IMAGENET1K_V1)
            load_matching(self.features, {k[len("features."):]: v for k, v in state.items()
                                          if k.startswith("features.")})
        for layer in self.features[:freeze_below]:
            layer.requires_grad_(False)
        self.flatten = nn.Flatten()
        self.head = mlp_head(flat_size(self.features, input_shape, "s0_vgg16_transfer"), head, num_classes,
                             activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.features(x)))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part, for per-group learning rates (`optimizer.group_lr`)."""
        return {"features": [p for p in self.features.parameters() if p.requires_grad],
                "head": list(self.head.parameters())}


@register_model("s0_vgg16_transfer")
def s0_vgg16_transfer(input_shape, num_classes, activation: str = "relu", pretrained: bool = False,
                      freeze_below: NonNegativeInt = 19):
    """S0-D: VGG16 features (512 x 1 x 1 at 32x32) -> Linear(512,256) -> act -> Linear(256,128) -> act -> Linear.

    `pretrained` loads torchvision's IMAGENET1K_V1 features; `activation` replaces the features' ReLUs too.
    Feature modules with index < `freeze_below` (the first 8 convs at 19) do not train.
    """
    return VGG16Transfer(input_shape, num_classes, activation, pretrained, freeze_below)


# ---------------------------------------------------------------------------------------------- ResNet


@register_model("resnet18")
def resnet18(input_shape, num_classes, activation: str = "relu"):
    """torchvision resnet18 for small inputs (CIFAR-style): 3x3 stride-1 stem, no max-pool."""
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's ResNet
    model.maxpool = nn.Identity()
    if activation != "relu":
        replace_activations(model, activation)
    return model


# ------------------------------------------------------------------------------------ torchvision:<name>


@functools.lru_cache(maxsize=1)
def torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def check_torchvision_name(name: str) -> str:
    """`name` if torchvision has a classifier of that name, else UnknownName with a did-you-mean."""
    names = torchvision_classifiers()
    if name not in names:
        raise UnknownName(f"unknown torchvision model '{name}'{did_you_mean(name, names)}; "
                          f"allowed: {', '.join(names)} (as torchvision:<name>)")
    return name


def torchvision_model(input_shape, num_classes, name, activation: Optional[str] = None, pretrained: bool = False):
    """Any torchvision classification model, its stem adapted to the input channels.

    `pretrained` loads the model's DEFAULT ImageNet weights (all but a head of another size; a grayscale stem
    gets the summed RGB filters). `activation`, when given, replaces every activation.
    """
    import torchvision

    check_torchvision_name(name)
    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    set_input_channels(model, input_shape[0])
    if pretrained:
        load_matching(model, load_pretrained(torchvision.models.get_model_weights(name).DEFAULT))
    if activation is not None:
        replace_activations(model, activation)
    return model
