"""Training FLOPs per image of a trial's model: one forward + backward under
`torch.utils.flop_counter.FlopCounterMode`, on CPU, with the model built by
`harness.models.create_model(arch, input_shape, num_classes, **options)` from the stored config.

Input shape and class count come from the config: `dataset.shape` / `dataset.num_classes` for the
synthetic dataset, this table for named datasets. A model that cannot be built (unknown dataset or
arch, a factory error) gives None: the report leaves FLOPs empty and never fails on them.
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
    if data.get("input_shape") and data.get("num_classes"):  # stored explicitly by the trial, if it ever does
        return tuple(data["input_shape"]), int(data["num_classes"])
    name = str(data.get("name", "")).lower().replace("-", "").replace("_", "")
    if name == "synthetic" and data.get("shape") and data.get("num_classes"):
        return tuple(data["shape"]), int(data["num_classes"])
    return DATASET_SHAPES.get(name)


def train_flops_per_image(config: dict[str, Any]) -> Optional[float]:
    """FLOPs of one training step (forward + backward) per image, or None if the model can't be built."""
    spec = input_spec(config)
    model_cfg = dict(config.get("model", {}))
    if spec is None or "arch" not in model_cfg:
        return None
    return _count(json.dumps(model_cfg, sort_keys=True, default=str), spec[0], spec[1])


@functools.lru_cache(maxsize=64)
def _count(model_json: str, shape: tuple[int, ...], classes: int) -> Optional[float]:
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from harness.models import create_model

        options = json.loads(model_json)
        arch = options.pop("arch")
        if options.get("activation") is None:
            options.pop("activation", None)
        if "pretrained" in options:
            options["pretrained"] = False  # same FLOPs, and no download
        model = create_model(arch, shape, classes, **options)
        model.train()
        x = torch.randn(BATCH, *shape)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x).float().sum().backward()
        return counter.get_total_flops() / BATCH
    except Exception:  # noqa: BLE001 - FLOPs are optional; a model we can't build leaves them empty
        return None
