"""Activation registry and activation substitution: `model.activation` replaces every activation of a model."""

from __future__ import annotations

from torch import nn

from harness.registry import ACTIVATIONS

for _name, _cls in {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}.items():
    ACTIVATIONS.register(_name)(_cls)

# Module classes that count as "an activation" when substituting into an existing model.
ACTIVATION_TYPES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardswish, nn.Hardsigmoid, nn.PReLU, nn.CELU,
)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for a registered name."""
    return ACTIVATIONS.get(name)()


def replace_activations(module: nn.Module, name: str) -> int:
    """Swap every activation module inside `module` for `name`, in place. Returns how many were swapped."""
    factory = ACTIVATIONS.get(name)
    swapped = 0
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, ACTIVATION_TYPES):
                setattr(parent, child_name, factory())
                swapped += 1
    return swapped
