"""The model zoo, every task: `create_model(arch, input_shape, num_classes, **options)` over ONE registry,
harness.registry.MODELS, whose entries carry their task as metadata.

    factory.py             create_model, model_entry (registered, torchvision:<name>, module:function), options
    layers.py              Classifier (features -> flatten -> head), mlp_head, flat_size: shared parts
    classifiers.py         the seed MLPs and CNNs                                  (task classification)
    torchvision_models.py  s0_vgg16_transfer, resnet18, torchvision:<name>         (task classification)
    unet.py                unet_mobilenetv2                                        (task segmentation)
    pretrained.py          torchvision weights into models of other shapes, WeightsUnavailable
    activations.py  init.py  transfer.py  options.py (the option types a factory annotates with)

A model is one decorated function; its keyword arguments are its options in sweep files, checked
against their annotations when a file loads. `activation` (when a model takes it) replaces every
activation of the model. A model may define `param_groups() -> dict[str, list[Parameter]]` so that
`optimizer.group_lr` can give each group its own learning rate.

    @register_model("tiny", task="classification")   # task: the default
    def tiny(input_shape, num_classes, activation: str = "relu", widths: Widths = (64,)) -> nn.Module: ...
"""

from __future__ import annotations

from harness.config.model_options import OptionError, validate_options
from harness.models import classifiers, torchvision_models, unet  # noqa: F401  (their decorators register the models)
from harness.models.activations import ACTIVATIONS, make_activation, replace_activations
from harness.models.factory import (
    check_arch,
    count_params,
    create_model,
    model_entry,
    model_factory,
    model_options,
    model_task,
    register_model,
)
from harness.models.init import INITS, init_weights
from harness.models.pretrained import WeightsUnavailable
from harness.models.torchvision_models import TORCHVISION_PREFIX
from harness.registry import MODELS, UnknownName

__all__ = ["MODELS", "register_model", "create_model", "count_params", "model_entry", "model_factory",
           "model_options", "model_task", "check_arch", "validate_options", "OptionError", "UnknownName",
           "WeightsUnavailable", "TORCHVISION_PREFIX", "ACTIVATIONS", "INITS", "make_activation",
           "replace_activations", "init_weights"]
