"""Optimizer registry: `optimizer.name` -> a factory (param_groups, cfg) -> torch.optim.Optimizer.

Parameter groups come from the model (`model.param_groups()` when it has one, e.g. the VGG16
transfer model's `features` and `head`); `optimizer.group_lr` gives a group its own learning rate.
Fused implementations are used where torch has them (SGD, Adam, AdamW; Adagrad on the CPU), foreach
elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.registry import OPTIMIZERS


def _fast(device_type: str) -> dict:
    """SGD, Adam, AdamW: torch's fused kernels on CUDA and on the CPU (one pass over each parameter: on the
    CPU 2.5x (SGD) to 4x (Adam) faster than foreach, which is a loop of aten ops there)."""
    return {"fused": True} if device_type in ("cuda", "cpu") else {"foreach": True}


@OPTIMIZERS.register("sgd")
def sgd(groups, cfg, device_type="cpu"):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay, **_fast(device_type))


@OPTIMIZERS.register("sgd_nesterov")
def sgd_nesterov(groups, cfg, device_type="cpu"):
    """SGD with Nesterov momentum (momentum 0.9 unless the config sets one)."""
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum or 0.9, nesterov=True,
                           weight_decay=cfg.weight_decay, **_fast(device_type))


@OPTIMIZERS.register("adam")
def adam(groups, cfg, device_type="cpu"):
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                            **_fast(device_type))


@OPTIMIZERS.register("adamw")
def adamw(groups, cfg, device_type="cpu"):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             **_fast(device_type))


@OPTIMIZERS.register("rmsprop")
def rmsprop(groups, cfg, device_type="cpu"):
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps,
                               weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("adagrad")
def adagrad(groups, cfg, device_type="cpu"):
    fast = {"fused": True} if device_type == "cpu" else {"foreach": True}  # torch fuses Adagrad on the CPU only
    return torch.optim.Adagrad(groups, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, **fast)


@OPTIMIZERS.register("adadelta")
def adadelta(groups, cfg, device_type="cpu"):
    return torch.optim.Adadelta(groups, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("nadam")
def nadam(groups, cfg, device_type="cpu"):
    return torch.optim.NAdam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             foreach=True)


@OPTIMIZERS.register("radam")
def radam(groups, cfg, device_type="cpu"):
    return torch.optim.RAdam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             foreach=True)


def param_groups(model: nn.Module, group_lr: dict[str, float]) -> list[dict]:
    """Trainable parameters as optimizer groups, each named, with its own lr where group_lr says."""
    groups = model.param_groups() if hasattr(model, "param_groups") else {"all": list(model.parameters())}
    unknown = set(group_lr) - set(groups)
    if unknown:
        raise ValueError(f"optimizer.group_lr names {sorted(unknown)}, but the model's groups are {sorted(groups)}")
    out = []
    for name, params in groups.items():
        params = [p for p in params if p.requires_grad]
        if params:
            group = {"params": params, "name": name}
            if name in group_lr:
                group["lr"] = group_lr[name]
            out.append(group)
    return out


def create_optimizer(model: nn.Module, cfg, device_type: str = "cpu") -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(param_groups(model, cfg.group_lr), cfg, device_type)
