"""Training FLOPs per image of a trial's model, from what the trial stored: its config's `model`
section rebuilt with `ModelConfig` (the factory's kwargs, as the trial built them; `pretrained` off:
same FLOPs, no download) and counted by `harness.perf.train_flops_per_image`.

Input shape and class count: the trial row's `input_shape` / `num_classes` when stored, else from the
config's dataset (`input_spec`: the DATASETS metadata). A model that cannot be built (unknown dataset or arch, a factory
error) gives None: the report leaves FLOPs empty and never fails on them.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Optional

from harness import perf
from harness.config import DatasetConfig, ModelConfig
from harness.data import dataset_spec
from harness.models import create_model
from harness.registry import DATASETS

__all__ = ["input_spec", "train_flops_per_image"]


def input_spec(config: dict[str, Any]) -> Optional[tuple[tuple[int, ...], int]]:
    """(input shape, classes) of a stored config's dataset from the DATASETS metadata, or None when this
    version does not know it (the report never loads a dataset to learn it)."""
    try:
        dataset = DatasetConfig.model_validate(config.get("dataset", {}))
        if None in (DATASETS.meta(dataset.name).get("shape"), DATASETS.meta(dataset.name).get("classes")):
            return None
        return dataset_spec(dataset)
    except Exception:  # noqa: BLE001 - an unknown or invalid dataset leaves FLOPs empty
        return None


def train_flops_per_image(config: dict[str, Any], input_shape=None, num_classes=None) -> Optional[float]:
    """FLOPs of one training step (forward + backward) per image, or None if the model can't be built.
    `input_shape` / `num_classes` (as the trial stored them) win over what the config implies."""
    spec = (tuple(int(d) for d in input_shape), int(num_classes)) if input_shape and num_classes else input_spec(config)
    if spec is None or "arch" not in config.get("model", {}):
        return None
    return _count(json.dumps(dict(config["model"]), sort_keys=True, default=str), spec[0], spec[1])


@functools.lru_cache(maxsize=64)  # one model config validated once, whatever the number of its trials
def _count(model_json: str, shape: tuple[int, ...], classes: int) -> Optional[float]:
    try:
        model_cfg = ModelConfig.model_validate(json.loads(model_json))
    except Exception:  # noqa: BLE001 - a config this version can't read leaves FLOPs empty
        return None
    options = model_cfg.options
    if "pretrained" in options:
        options["pretrained"] = False
    return perf.train_flops_per_image(create_model, model_cfg.arch, shape, classes, **options)
