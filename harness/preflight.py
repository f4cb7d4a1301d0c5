"""Preflight: before any trial starts, build each distinct model of a sweep and push a batch through it.

A sweep file can be right key by key and still fail in every trial: a model whose layers do not fit
the dataset's inputs (VGG16's five 2x2 pools on 8x8 digits, a ViT that wants 224x224 on CIFAR), a
loss that cannot take the model's output, `optimizer.group_lr` naming a parameter group the model
does not have, a validation split that leaves no training images, a `model.init_from` file
that is not there. `check_trials` finds these before any trial runs; `python -m harness.sweep`
(before its `--dry-run` output too) and `python -m harness.trial` call it after loading the file, so
such a file exits 2 with one line naming the file, the key, the trial and the input shape, like any
other bad input:

    check_trials(sweep.trials, "sweeps/x.yaml")
    # ConfigError: sweeps/x.yaml: model.arch: s0_vgg16_transfer needs inputs of at least 32x32,
    #              dataset digits gives 1x8x8 (...) (in grid point arch=s0_vgg16_transfer-seed=0)

For each distinct (task, arch, init, options, transfer settings, input shape, classes) the model is
built as the trial builds it (`pretrained` turned off: nothing is downloaded), a batch of two zero
samples goes through it in training mode, the run's loss is applied to the output, and the
optimizer's parameter groups are formed: what a trial does before its first step. (Not the torch
optimizer or the schedule themselves: the schema bounds their arguments, and the first torch
optimizer built in a process imports torch._dynamo, seconds.) A model that does not fit is probed
at larger square sizes to say how large its inputs must be.

Where: the CPU, one build per distinct model (on 2 busy cores: s4_smallcnn ~0.01 s, resnet18 at
32x32 ~0.2 s, a torchvision convnext_tiny ~1 s); datasets are not loaded (their shapes and classes
are DATASETS metadata, `input_spec`). A torchvision model of more than BIG_MODEL parameters is checked on PyTorch's
meta device instead (shapes only: no memory, no arithmetic), which costs a one-off ~2-4 s import of
torch's meta kernels, and is retried on the CPU if only the meta device fails (an op without a meta
kernel).
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any, Optional

import torch

from harness.config import ConfigError, Trial
from harness.data import dataset_spec, train_pool
from harness.losses import create_loss
from harness.models import TORCHVISION_PREFIX, count_params, create_model
from harness.models.transfer import apply_transfer
from harness.optimizers import param_groups

LARGEST_PROBE = 1024  # the largest square input tried when a model does not fit
BIG_MODEL = 50_000_000  # parameters: a torchvision model above this is checked on the meta device, not the CPU


class _Failure(Exception):
    """One check failed: the key to blame and what went wrong."""

    def __init__(self, key: str, message: str, cause: BaseException, stage: str):
        super().__init__(message)
        self.key, self.message, self.cause, self.stage = key, message, cause, stage


def _detail(err: BaseException) -> str:
    """An exception as one short line: its first line, else its type."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    if isinstance(err, (AssertionError, KeyError, TypeError, IndexError, AttributeError, NotImplementedError)):
        text = f"{type(err).__name__}: {text}"
    return text if len(text) <= 400 else text[:397] + "..."


def _meta_only(err: BaseException) -> bool:
    """An error the meta device may raise where a real device would not."""
    return isinstance(err, NotImplementedError) or "meta" in str(err).lower()


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def _build(cfg, shape, classes: int, device: str, files: bool):
    """The run's model on `device` (pretrained weights off), with its transfer settings applied."""
    options = dict(cfg.model.options)
    if options.get("pretrained"):
        options["pretrained"] = False  # never download weights for a check: the shapes are the same
    try:
        with torch.device(device):
            model = create_model(cfg.model.arch, shape, classes, init=cfg.model.init, **options)
    except Exception as err:  # noqa: BLE001 - whatever the factory raises is the user's answer
        named = [k for k in cfg.model.options if re.search(rf"\b{re.escape(k)}\b", str(err))]
        raise _Failure(f"model.{named[0]}" if named else "model.arch", _detail(err), err, "build") from None
    if cfg.task == "classification":  # the schema allows init_from / finetune for classification only
        transfer = cfg.model if files else cfg.model.model_copy(update={"init_from": None})
        try:
            with torch.device(device):
                apply_transfer(model, transfer)
        except Exception as err:  # noqa: BLE001 - whatever a model or loss raises is reported as one line
            key = "model.init_from" if transfer.init_from and "init_from" in str(err) else "model.finetune"
            raise _Failure(key, _detail(err).removeprefix(key + ": "), err, "transfer") from None
    return model


def _forward(model, shape, device: str):
    try:
        model.train()
        with torch.no_grad():
            return model(torch.zeros(2, *shape, device=device))
    except Exception as err:  # noqa: BLE001 - whatever a model or loss raises is reported as one line
        raise _Failure("model.arch", _detail(err), err, "model") from None


def _check(cfg, shape, classes: int, device: str, files: bool, models: dict):
    """Build, forward, loss and optimizer groups for one run's config on `device`; returns the model,
    raises _Failure."""
    seg = cfg.task == "segmentation"
    options = {**cfg.model.options, **({"pretrained": False} if cfg.model.options.get("pretrained") else {})}
    model_key = json.dumps([device, cfg.task, cfg.model.arch, cfg.model.init, options, cfg.model.finetune,
                            cfg.model.init_from if files else None, shape, classes], sort_keys=True, default=str)
    if model_key not in models:
        model = _build(cfg, shape, classes, device, files)
        models[model_key] = (model, _forward(model, shape, device))
    model, out = models[model_key]

    expected = (2, 1, *shape[1:]) if seg else (2, classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = f"shape {list(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        what = "one logit per pixel" if seg else f"{classes} logits per sample ({classes} classes)"
        err = ValueError(f"it outputs {got} for a batch of 2, expected {list(expected)}: {what}")
        raise _Failure("model.arch", str(err), err, "output")

    try:
        target = (torch.zeros(2, 1, *shape[1:], dtype=torch.uint8, device=device) if seg
                  else torch.zeros(2, dtype=torch.long, device=device))
        value = create_loss(cfg.loss)(out, target)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(f"it gives {getattr(value, 'shape', value)}, not one number")
    except Exception as err:  # noqa: BLE001 - whatever a model or loss raises is reported as one line
        raise _Failure("loss.name", f"loss '{cfg.loss.name}' cannot take the output of {cfg.model.arch} "
                                    f"(shape {list(out.shape)}): {_detail(err)}", err, "loss") from None

    # the optimizer's parameter groups, as create_optimizer forms them (see the module docstring)
    try:
        groups = param_groups(model, cfg.optimizer.group_lr)
        if not groups:
            raise ValueError("the model has no trainable parameters" +
                             (" outside its frozen layers" if cfg.model.finetune == "head" else ""))
    except Exception as err:  # noqa: BLE001 - whatever a model or loss raises is reported as one line
        key = "optimizer.group_lr" if "group_lr" in str(err) else "model.finetune"
        raise _Failure(key, f"optimizer '{cfg.optimizer.name}' cannot train {cfg.model.arch}: {_detail(err)}",
                       err, "optimizer") from None
    return model


def _smallest_square(cfg, shape, classes: int) -> Optional[int]:
    """The smallest square input (same channels) the model fits, or None (none up to LARGEST_PROBE).

    Probed on the meta device: a model that fits no size would otherwise compute its early layers at
    1024x1024 on the CPU before failing.
    """
    def fits(size: int) -> bool:
        probe = (shape[0], size, size)
        try:
            _forward(_build(cfg, probe, classes, "meta", files=False), probe, "meta")
            return True
        except _Failure:
            return False

    low = max(shape[1:])  # does not fit (or is not square)
    high = low * 2
    while high <= LARGEST_PROBE and not fits(high):
        low, high = high, high * 2
    if high > LARGEST_PROBE:
        return None
    while high - low > 1:  # fits(high), not fits(low)
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def _message(failure: _Failure, cfg, shape, classes: int) -> str:
    arch, dataset = cfg.model.arch, cfg.dataset.name
    if failure.stage in ("build", "model"):
        size = _smallest_square(cfg, shape, classes)
        if size is not None and size > max(shape[1:]):
            return (f"{arch} needs inputs of at least {size}x{size}, dataset {dataset} gives {_dims(shape)} "
                    f"({failure.message})")
        verb = "cannot be built for" if failure.stage == "build" else "cannot run on"
        return f"{arch} {verb} the {_dims(shape)} inputs of dataset {dataset}: {failure.message}"
    if failure.stage == "output":
        return f"{arch} on dataset {dataset} ({_dims(shape)}, {classes} classes): {failure.message}"
    if failure.stage in ("transfer", "optimizer"):
        return failure.message
    return f"{failure.message} (dataset {dataset}, {_dims(shape)} inputs)"


def _device_for(cfg, shape, classes: int, cache: dict) -> str:
    """'meta' for a torchvision model of more than BIG_MODEL parameters (counted on the meta device, where
    building costs nothing), else 'cpu'."""
    if not cfg.model.arch.startswith(TORCHVISION_PREFIX):
        return "cpu"
    key = json.dumps([cfg.model.arch, cfg.model.options, shape, classes], sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = "meta" if count_params(_build(cfg, shape, classes, "meta", files=False)) > BIG_MODEL else "cpu"
        except _Failure:
            cache[key] = "cpu"  # the CPU check says what is wrong
    return cache[key]


def _check_split(dataset, where: str, tid: str) -> None:
    """A validation split that leaves no training images fails every trial when it loads its data."""
    pool = train_pool(dataset)
    if pool is None:
        return
    num_val = dataset.num_val if dataset.num_val is not None else round(dataset.val_fraction * pool)
    if num_val >= pool:
        key = "dataset.num_val" if dataset.num_val is not None else "dataset.val_fraction"
        raise ConfigError(f"{where}: {key}: a validation split of {num_val} leaves no training images "
                          f"(the training pool of dataset {dataset.name} holds {pool}); allowed: a split of "
                          f"fewer than {pool} images (in grid point {tid})")


def check_trials(trials: list[Trial], where: str, *, files: bool = True) -> dict[str, int]:
    """Raise ConfigError (one line: `where`, the key, the trial, the input shape) for the first trial whose
    model cannot be built and run on its dataset's inputs, or whose loss or optimizer groups cannot take it.
    Returns each trial's parameter count, from the model built here (what --dry-run prints).

    `files`: also load `model.init_from` (off for --dry-run: a source sweep may not have run yet).
    """
    params_of: dict[str, int] = {}  # check key -> parameter count
    params: dict[str, int] = {}  # trial id -> parameter count
    models: dict[str, Any] = {}
    devices: dict[str, str] = {}
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):  # the CPU fallback draws weights
        warnings.simplefilter("ignore")  # meta copies, zero-element inits: noise here
        for trial in trials:
            cfg = trial.config
            try:
                shape, classes = dataset_spec(cfg.dataset)
            except Exception as err:  # noqa: BLE001 - a registered dataset that cannot be read
                raise ConfigError(f"{where}: dataset.name: dataset {cfg.dataset.name} could not be read to learn "
                                  f"its input shape: {_detail(err)} (in grid point {trial.trial_id})") from None
            shape = tuple(int(d) for d in shape)
            _check_split(cfg.dataset, where, trial.trial_id)
            key = json.dumps([cfg.task, cfg.model.model_dump(mode="json"), cfg.loss.model_dump(mode="json"),
                              cfg.optimizer.group_lr, shape, classes], sort_keys=True, default=str)  # what _check uses
            if key not in params_of:
                params_of[key] = count_params(_checked_model(cfg, shape, classes, files, models, devices, where,
                                                             trial.trial_id))
            params[trial.trial_id] = params_of[key]
    return params


def _checked_model(cfg, shape, classes: int, files: bool, models: dict, devices: dict, where: str, trial_id: str):
    """The model `_check` built for this config (on the meta device, or the CPU where meta cannot run it);
    ConfigError when a check fails."""
    device = _device_for(cfg, shape, classes, devices)
    try:
        return _check(cfg, shape, classes, device, files, models)
    except _Failure as failure:
        if device == "meta" and _meta_only(failure.cause):
            try:
                return _check(cfg, shape, classes, "cpu", files, models)
            except _Failure as cpu_failure:
                failure = cpu_failure
        raise ConfigError(f"{where}: {failure.key}: {_message(failure, cfg, shape, classes)} "
                          f"(in grid point {trial_id})") from None
