"""Loss registry: `loss.name` -> a function (logits, targets) -> scalar loss.

Every loss takes raw logits and integer class targets, so any loss can sit behind any model:
`nll` applies log_softmax first (NLLLoss on raw logits is S3's bug), and the regression-style
losses (mse, l1) compare softmax probabilities with one-hot targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.registry import Registry

LOSSES = Registry("loss")


@LOSSES.register("cross_entropy")
def cross_entropy(label_smoothing: float = 0.0):
    return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing)


@LOSSES.register("nll")
def nll(label_smoothing: float = 0.0):
    return lambda logits, y: F.nll_loss(F.log_softmax(logits, dim=1), y)


def _one_hot(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, logits.shape[1]).to(logits.dtype)


@LOSSES.register("mse")
def mse(label_smoothing: float = 0.0):
    return lambda logits, y: F.mse_loss(logits.softmax(dim=1), _one_hot(y, logits))


@LOSSES.register("l1")
def l1(label_smoothing: float = 0.0):
    return lambda logits, y: F.l1_loss(logits.softmax(dim=1), _one_hot(y, logits))


@LOSSES.register("bce_with_logits")
def bce_with_logits(label_smoothing: float = 0.0):
    def loss(logits, y):
        target = _one_hot(y, logits)
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / logits.shape[1]
        return F.binary_cross_entropy_with_logits(logits, target)

    return loss


@LOSSES.register("multi_margin")
def multi_margin(label_smoothing: float = 0.0):
    return lambda logits, y: F.multi_margin_loss(logits, y)


def create_loss(cfg):
    """The loss function for a LossConfig; computed in float32 whatever the autocast dtype."""
    fn = LOSSES.get(cfg.name)(label_smoothing=cfg.label_smoothing)
    return lambda logits, y: fn(logits.float(), y)
