"""The model zoo: `create_model(arch, input_shape, num_classes, **options)` over a registry of factories.

A factory is one decorated function:

    @register_model("mlp")
    def mlp(input_shape, num_classes, activation="relu", widths=(256, 128), ...) -> nn.Module

`activation` (every model takes it) replaces every activation of the model. A model may define
`param_groups() -> dict[str, list[Parameter]]` so that `optimizer.group_lr` can give each group its
own learning rate (the VGG16 transfer model has `features` and `head`). `torchvision:<name>` builds
any torchvision classification model.

Options are typed by the factory's annotations (`widths: Widths`, `dropout: Probability`, see
harness/models/options.py); a sweep file's values are checked against them when it loads.
"""

from __future__ import annotations

import inspect

from torch import nn

from harness.models.activations import ACTIVATIONS, make_activation, replace_activations  # noqa: F401
from harness.models.init import INITS, init_weights  # noqa: F401
from harness.models.options import NOT_OPTIONS, OptionError, validate_options  # noqa: F401
from harness.registry import Registry, UnknownName

MODELS = Registry("model")
register_model = MODELS.register

TORCHVISION_PREFIX = "torchvision:"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that could not be downloaded; the message says where to put the file by hand."""


def model_factory(arch: str):
    """The factory for `arch`, raising UnknownName with a did-you-mean for a bad name."""
    if arch.startswith(TORCHVISION_PREFIX):
        from harness.models.zoo import torchvision_model

        return torchvision_model
    return MODELS.get(arch)


def model_options(arch: str) -> dict[str, inspect.Parameter]:
    """The options (keyword arguments) a model accepts besides input_shape and num_classes."""
    params = inspect.signature(model_factory(arch)).parameters
    return {k: p for k, p in params.items() if k not in NOT_OPTIONS}


def check_arch(arch: str) -> str:
    """`arch` if it names a registered model or a torchvision classifier, else UnknownName (did-you-mean)."""
    if arch.startswith(TORCHVISION_PREFIX):
        from harness.models.tv import check_torchvision_name

        check_torchvision_name(arch[len(TORCHVISION_PREFIX):])
        return arch
    MODELS.get(arch)
    return arch


def create_model(arch: str, input_shape, num_classes: int, init: str = "default", **options) -> nn.Module:
    factory = model_factory(arch)
    if options.get("pretrained") and init != "default":
        raise ValueError(f"model '{arch}': init '{init}' would overwrite the pretrained weights; use init 'default'")
    if arch.startswith(TORCHVISION_PREFIX):
        options["name"] = arch[len(TORCHVISION_PREFIX):]
    model = factory(tuple(input_shape), num_classes, **options)
    return init_weights(model, init)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Importing the zoo registers its models.
from harness.models import zoo  # noqa: E402,F401

__all__ = ["MODELS", "register_model", "create_model", "count_params", "model_options", "check_arch",
           "validate_options", "OptionError", "UnknownName", "WeightsUnavailable"]
