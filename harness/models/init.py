"""Weight-initialisation registry (`model.init`): each entry re-initialises a built model in place."""

from __future__ import annotations

from torch import nn

from harness.registry import INITS

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)


def _apply(model: nn.Module, fill_weight, bias: float = 0.0) -> None:
    for m in model.modules():
        if isinstance(m, _WEIGHTED):
            fill_weight(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)


@INITS.register("default")
def default(model: nn.Module) -> None:
    """PyTorch's own per-layer initialisation: leave the model as built."""


@INITS.register("xavier_uniform")
def xavier_uniform(model: nn.Module) -> None:
    _apply(model, nn.init.xavier_uniform_)


@INITS.register("xavier_normal")
def xavier_normal(model: nn.Module) -> None:
    _apply(model, nn.init.xavier_normal_)


@INITS.register("kaiming_uniform")
def kaiming_uniform(model: nn.Module) -> None:
    _apply(model, lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"))


@INITS.register("kaiming_normal")
def kaiming_normal(model: nn.Module) -> None:
    _apply(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))


@INITS.register("orthogonal")
def orthogonal(model: nn.Module) -> None:
    _apply(model, nn.init.orthogonal_)


@INITS.register("constant")
def constant(model: nn.Module) -> None:
    """Every weight 0.01, every bias 0: all units of a layer stay identical (S1's negative control)."""
    _apply(model, lambda w: nn.init.constant_(w, 0.01))


def init_weights(model: nn.Module, name: str) -> nn.Module:
    INITS.get(name)(model)
    return model
