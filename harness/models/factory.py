"""Building a model by name: `create_model(arch, input_shape, num_classes, **options)` for every task.

An arch is one of three things, each resolved to an `Entry` (factory + metadata, `task` among it):

    a registered name       mlp, s4_smallcnn, unet_mobilenetv2, ...  (harness.registry.MODELS)
    torchvision:<name>      any torchvision classifier, its stem adapted to the input channels
    <module>:<function>     your own factory, imported from a module on the Python path (where you
                            launch the sweep): mymodels:tiny_net -> mymodels.tiny_net(input_shape,
                            num_classes, **options). A classifier, unless the function is also
                            registered (`@register_model(..., task="segmentation")`): then its metadata holds.

Nothing here defines a model; the modules beside this one register them.
"""

from __future__ import annotations

import functools
import importlib
import inspect

from torch import nn

from harness.config.model_options import NOT_OPTIONS
from harness.models.init import init_weights
from harness.models.torchvision_models import TORCHVISION_PREFIX
from harness.registry import MODELS, Entry, UnknownName, did_you_mean

register_model = MODELS.register


@functools.lru_cache(maxsize=None)
def user_entry(arch: str) -> Entry:
    """The entry for `module:function`; UnknownName (one line) when the module or the function is missing."""
    module_name, _, function = arch.partition(":")
    how = "allowed: a registered model, torchvision:<name>, or module:function importable from where you launch"
    if not module_name or not function.isidentifier():
        raise UnknownName(f"model '{arch}' is not module:function (e.g. mymodels:tiny_net); {how}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):  # the module itself, not one it imports
            raise UnknownName(f"model '{arch}': no module '{module_name}' on the Python path; {how}") from None
        raise UnknownName(f"model '{arch}': importing module '{module_name}' failed: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's module: whatever it raises is the answer
        raise UnknownName(f"model '{arch}': importing module '{module_name}' failed: "
                          f"{type(err).__name__}: {err}") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise UnknownName(f"model '{arch}': module '{module_name}' has no function '{function}'"
                          f"{did_you_mean(function, names)}; allowed: {', '.join(sorted(names)) or 'none defined'}")
    registered = MODELS.find(factory)
    return Entry(arch, factory, registered.meta if registered else dict(MODELS.defaults))


# after torchvision:<name> (registered by torchvision_models): any other `a:b` is a user's factory
MODELS.add_source(lambda arch: ":" in arch and not arch.startswith(TORCHVISION_PREFIX), user_entry)


def model_entry(arch: str) -> Entry:
    """The factory and metadata of `arch`; UnknownName with a did-you-mean for a bad name."""
    return MODELS.entry(arch)


def model_factory(arch: str):
    return model_entry(arch).factory


def model_task(arch: str) -> str:
    return model_entry(arch).meta["task"]


def check_arch(arch: str) -> str:
    """`arch` if it names a model (registered, torchvision:<name>, module:function), else UnknownName."""
    model_entry(arch)
    return arch


def model_options(arch: str) -> dict[str, inspect.Parameter]:
    """The options (keyword arguments) a model accepts besides input_shape and num_classes."""
    params = inspect.signature(model_factory(arch)).parameters
    return {k: p for k, p in params.items()
            if k not in NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def takes_any_option(arch: str) -> bool:
    """Whether the factory takes **options (a user's factory may): then any option name is allowed."""
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(model_factory(arch)).parameters.values())


def create_model(arch: str, input_shape, num_classes: int, init: str = "default", **options) -> nn.Module:
    """Build `arch` (any task) for inputs of `input_shape` (C, H, W) and `num_classes`, then apply `init`.

    Example:
        create_model("mlp", (1, 28, 28), 10, widths=[64])
        create_model("unet_mobilenetv2", (3, 64, 64), 2, encoder_depth=3)
    """
    factory = model_factory(arch)
    if options.get("pretrained") and init != "default":
        raise ValueError(f"model '{arch}': init '{init}' would overwrite the pretrained weights; use init 'default'")
    model = factory(tuple(input_shape), num_classes, **options)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model '{arch}': the factory returned a {type(model).__name__}, not a torch nn.Module")
    return init_weights(model, init)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
