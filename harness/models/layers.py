"""Building blocks shared by the zoo's models: the `Classifier` layout (features -> flatten -> head),
the MLP head, VGG-style double-conv blocks, and `flat_size` (a head's fan-in from the input shape).
No model is registered here."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from harness.models.activations import make_activation


class Classifier(nn.Sequential):
    """features -> flatten -> head, with the three parts reachable by name."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__(OrderedDict(features=features, flatten=nn.Flatten(), head=head))


def flat_size(features: nn.Module, input_shape, arch: str) -> int:
    """How many values `features` outputs per sample for `input_shape`, from one dummy forward pass."""
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except RuntimeError as e:  # a kernel or pooling window larger than the feature map
        first_line = str(e).strip().splitlines()[0]
        raise ValueError(f"model '{arch}': input shape {tuple(input_shape)} is too small ({first_line})") from None
    finally:
        features.train(was_training)
    return out[0].numel()


def mlp_head(fan_in: int, widths, num_classes: int, activation: str, dropout: float = 0.0,
             batchnorm: bool = False) -> nn.Sequential:
    """Linear [-> BatchNorm1d] -> act [-> Dropout] for each width, then Linear(-> num_classes)."""
    layers = []
    for w in widths:
        layers.append(nn.Linear(fan_in, w))
        if batchnorm:
            layers.append(nn.BatchNorm1d(w))
        layers.append(make_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        fan_in = w
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def double_conv_blocks(c_in: int, channels, activation: str, padding: int = 1, dropout: float = 0.0,
                       batchnorm: bool = False) -> nn.Sequential:
    """[conv3x3 -> act -> conv3x3 -> act -> MaxPool2 (-> Dropout -> BatchNorm2d)] for each (c1, c2) in channels."""
    layers = []
    for c1, c2 in channels:
        layers += [nn.Conv2d(c_in, c1, 3, padding=padding), make_activation(activation),
                   nn.Conv2d(c1, c2, 3, padding=padding), make_activation(activation), nn.MaxPool2d(2)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        if batchnorm:
            layers.append(nn.BatchNorm2d(c2))
        c_in = c2
    return nn.Sequential(*layers)
