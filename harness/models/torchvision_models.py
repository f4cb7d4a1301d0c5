"""Classifiers built on torchvision: S0's VGG16 transfer model, a small-input resnet18, and the
`torchvision:<name>` source (any torchvision classification model, its stem adapted to the input).

Pretrained weights go through harness.models.pretrained (offline: a one-line WeightsUnavailable).
torchvision itself is imported inside the functions that build its models: its import costs seconds
and most sweeps never need it.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import nn

from harness.models.activations import make_activation, replace_activations
from harness.models.layers import flat_size, mlp_head
from harness.models.options import NonNegativeInt
from harness.models.pretrained import load_matching, load_pretrained, set_input_channels
from harness.registry import MODELS, Entry, UnknownName, did_you_mean

register_model = MODELS.register
TORCHVISION_PREFIX = "torchvision:"


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


def torchvision_model(input_shape, num_classes, name: str, activation: Optional[str] = None, pretrained: bool = False):
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


@functools.lru_cache(maxsize=None)
def torchvision_entry(arch: str) -> Entry:
    """The entry for `torchvision:<name>`: torchvision_model with `name` bound (one object per name, so the
    option types computed from it are cached)."""
    name = check_torchvision_name(arch[len(TORCHVISION_PREFIX):])
    return Entry(arch, functools.partial(torchvision_model, name=name), {"task": "classification"})


MODELS.add_source(lambda arch: arch.startswith(TORCHVISION_PREFIX), torchvision_entry)
