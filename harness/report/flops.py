"""Training FLOPs per image of a trial's model: one forward + backward under
`torch.utils.flop_counter.FlopCounterMode`, on the meta device (shapes only, no arithmetic; CPU as a
fallback), the model built by `harness.models.create_model(arch, input_shape, num_classes, **options)`
from the stored config.

Input shape and class count: the trial row's `input_shape` / `num_classes` when stored, else from the
config: `dataset.shape` / `dataset.num_classes` for the synthetic dataset, this table for named ones.
A model that cannot be built (unknown dataset or arch, a factory error) gives None: the report leaves
FLOPs empty and never fails on them.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Optional

# dataset name (lower case, '-' and '_' dropped) -> (input shape C,H,W; classes)
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashionmnist": ((1, 28, 28), 10),
    "kmnist": ((1, 28, 28), 10),
    "emnistletters": ((1, 28, 28), 26),
    "emnistdigits": ((1, 28, 28), 10),
    "emnistbalanced": ((1, 28, 28), 47),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "svhn": ((3, 32, 32), 10),
    "stl10": ((3, 96, 96), 10),
    "digits": ((1, 8, 8), 10),
}
BATCH = 2  # >1 so that batch norm works in train mode; FLOPs are divided by it


def input_spec(config: dict[str, Any]) -> Optional[tuple[tuple[int, ...], int]]:
    """(input shape, classes) for a full config dict, or None when the dataset is unknown."""
    data = config.get("dataset", {})
    name = str(data.get("name", "")).lower().replace("-", "").replace("_", "")
    if name == "synthetic" and data.get("shape") and data.get("num_classes"):
        return tuple(data["shape"]), int(data["num_classes"])
    return DATASET_SHAPES.get(name)


def train_flops_per_image(config: dict[str, Any], input_shape=None, num_classes=None) -> Optional[float]:
    """FLOPs of one training step (forward + backward) per image, or None if the model can't be built.
    `input_shape` / `num_classes` (as the trial stored them) win over what the config implies."""
    spec = (tuple(int(d) for d in input_shape), int(num_classes)) if input_shape and num_classes else input_spec(config)
    model_cfg = dict(config.get("model", {}))
    if spec is None or "arch" not in model_cfg:
        return None
    return _count(json.dumps(model_cfg, sort_keys=True, default=str), spec[0], spec[1])


@functools.lru_cache(maxsize=64)
def _count(model_json: str, shape: tuple[int, ...], classes: int) -> Optional[float]:
    for device in ("meta", "cpu"):  # meta: shapes only, no compute; cpu if a model can't be built on meta
        try:
            return _count_on(json.loads(model_json), shape, classes, device)
        except Exception:  # noqa: BLE001 - FLOPs are optional; a model we can't build leaves them empty
            continue
    return None


def _count_on(options: dict[str, Any], shape: tuple[int, ...], classes: int, device: str) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.config import ModelConfig
    from harness.models import create_model
    from harness.segmentation.models import SEG_MODELS, create_seg_model

    model_cfg = ModelConfig.model_validate(options)  # the factory's kwargs, as the trial built them
    kwargs = model_cfg.options
    if "pretrained" in kwargs:
        kwargs["pretrained"] = False  # same FLOPs, and no download
    make = create_seg_model if model_cfg.arch in SEG_MODELS else create_model
    with torch.device(device):
        model = make(model_cfg.arch, shape, classes, **kwargs).train()
        x = torch.randn(BATCH, *shape)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).float().sum().backward()
    return counter.get_total_flops() / BATCH
