"""Sweep files: the schema, `--set` overrides, validation with clear errors, and grid expansion.

A sweep file is one run's config (dataset, model, loss, optimizer, ...) plus `seeds` and a `grid`
that maps dotted keys to lists of values (their cartesian product), or a list of such maps (the
union of their products, in order: variants that differ in several keys). `load_sweep` validates
the base config and every grid point once, at load; what comes out is a `Sweep` whose `trials` are
fully validated `RunConfig`s, each with a stable, readable `trial_id`. Everything here is pure (no
training, no I/O but reading the file), so it is tested without torch doing any work.

Every problem is a `ConfigError` whose one-line message names the file (or `--set`), the key and
what is allowed; the CLIs print it as `error: ...` and exit 2. Whether each model can run on its
dataset's inputs is checked afterwards, before any trial starts, by harness.preflight.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator,
)

from harness.registry import Registry, UnknownName, did_you_mean


class ConfigError(ValueError):
    """A bad sweep file or override: the message names the file, the key and what is allowed (one line)."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())


class ArgParser(argparse.ArgumentParser):
    """argparse for the harness CLIs: a bad command line is one `error: ...` line and exit 2 (no usage block)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        message = message.removeprefix("argument ")  # "argument --shard: ..." -> "--shard: ..."
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _check_name(registry: Registry, name: str) -> str:
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


def _numeric(annotation: Any) -> Optional[str]:
    """'an integer' / 'a number' for an int or float field (or Optional of one), else None."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Union:
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else None
    return {int: "an integer", float: "a number"}.get(annotation)


class Section(BaseModel):
    # NaN and infinity are never a setting (`lr: .inf` would pass gt=0)
    model_config = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """`epochs: true` is a mistake, not 1 (pydantic's lax mode would take it)."""
        if isinstance(v, bool):
            kind = _numeric(cls.model_fields[info.field_name].annotation)
            if kind:
                raise ValueError(f"expected {kind}, got {str(v).lower()}")
        return v


# --------------------------------------------------------------------------------------------------
# Sections


class DatasetConfig(Section):
    name: str = "digits"
    data_dir: str = "data"
    download: bool = True
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = Field(43, ge=0)
    augment: str = "none"
    normalize: str = "none"
    # synthetic only: a learnable class-conditional image set of any shape
    num_train: int = Field(2000, gt=0)
    num_val: Optional[int] = Field(None, ge=0)  # absolute validation size; overrides val_fraction
    num_test: int = Field(500, gt=0)
    shape: list[int] = [3, 32, 32]
    num_classes: int = Field(10, ge=2)
    # caps for quick checks (`--smoke`): keep at most this many samples per split
    max_train: Optional[int] = Field(None, gt=0)
    max_eval: Optional[int] = Field(None, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, v: str) -> str:
        # resolved where the sweep is launched: Tune runs each trial in its own working directory
        return str(Path(v).expanduser().absolute())

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from harness.data import DATASETS

        return _check_name(DATASETS, v)

    @field_validator("augment")
    @classmethod
    def _known_augment(cls, v: str) -> str:
        from harness.data import AUGMENTATIONS

        return _check_choice("augment preset", v, AUGMENTATIONS)

    @field_validator("normalize")
    @classmethod
    def _known_normalize(cls, v: str) -> str:
        from harness.data import NORMALIZATIONS

        return _check_choice("normalize preset", v, NORMALIZATIONS)

    @field_validator("shape")
    @classmethod
    def _chw(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or min(v) < 1:
            raise ValueError(f"shape must be [channels, height, width] of positive sizes, got {v}")
        return v


def _check_choice(kind: str, value: str, allowed) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {kind} '{value}'{did_you_mean(value, allowed)}; allowed: {', '.join(allowed)}")
    return value


class ModelConfig(BaseModel):
    """`arch` plus the options its factory takes (checked against the factory's signature)."""

    model_config = ConfigDict(extra="allow")

    arch: str = "mlp"
    activation: Optional[str] = None  # None: the model's own activation
    init: str = "default"
    init_from: Optional[str] = None  # a .pt saved by train.save_model: copy its weights, all but the head's
    finetune: Literal["all", "head"] = "all"  # head: train only the head (harness.models.transfer)

    @field_validator("init_from")
    @classmethod
    def _absolute(cls, v: Optional[str]) -> Optional[str]:
        # relative to where the sweep is launched, not to the folder a Ray trial runs in
        return str(Path(v).expanduser().absolute()) if v else None  # '' (e.g. --set model.init_from=): none

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        from harness.models import MODELS, TORCHVISION_PREFIX, check_arch
        from harness.segmentation.models import SEG_MODELS

        if v in SEG_MODELS:
            return v
        if v.startswith(TORCHVISION_PREFIX):
            return check_arch(v)  # UnknownName (a ValueError) with a did-you-mean over torchvision's classifiers
        return _check_name(MODELS, v)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: Optional[str]) -> Optional[str]:
        from harness.models import ACTIVATIONS

        return v if v is None else _check_name(ACTIVATIONS, v)

    @field_validator("init")
    @classmethod
    def _known_init(cls, v: str) -> str:
        from harness.models import INITS

        return _check_name(INITS, v)

    @model_validator(mode="after")
    def _options_fit_arch(self) -> "ModelConfig":
        """Each option is a keyword of the arch's factory, of the type its annotation (or default) says."""
        from harness.models import OptionError, model_factory, model_options, validate_options
        from harness.segmentation.models import SEG_MODELS, seg_model_options

        seg = self.arch in SEG_MODELS
        allowed = seg_model_options(self.arch) if seg else model_options(self.arch)
        for key in self.options:
            if key not in allowed:
                names = sorted(set(allowed) | {"arch", "init"})
                raise OptionError(key, f"model '{self.arch}' has no option '{key}'{did_you_mean(key, names)}; "
                                       f"allowed: {', '.join(names)}")
        validate_options(self.arch, SEG_MODELS.get(self.arch) if seg else model_factory(self.arch), self.options)
        if self.options.get("pretrained") and self.init != "default":
            raise OptionError("init", f"init '{self.init}' would overwrite the pretrained weights; "
                                      f"allowed: default (or pretrained: false)")
        return self

    @property
    def options(self) -> dict[str, Any]:
        """Keyword arguments for the model factory (activation included when set)."""
        opts = dict(self.model_extra or {})
        if self.activation is not None:
            opts["activation"] = self.activation
        return opts


class LossConfig(Section):
    name: str = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("name")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        from harness.losses import LOSSES
        from harness.segmentation.losses import SEG_LOSSES

        return v if v in SEG_LOSSES else _check_name(LOSSES, v)  # the run's task checks which kind


Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class OptimizerConfig(Section):
    name: str = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.0, ge=0.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    group_lr: dict[str, Annotated[float, Field(gt=0.0)]] = {}  # parameter group name -> lr (model.param_groups())

    @field_validator("name")
    @classmethod
    def _known_optimizer(cls, v: str) -> str:
        from harness.optimizers import OPTIMIZERS

        return _check_name(OPTIMIZERS, v)


class Stage(Section):
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0.0)


class SchedulerConfig(Section):
    name: Literal["none", "step", "cosine", "onecycle", "plateau", "staged"] = "none"
    step_size: int = Field(10, gt=0)  # step: epochs between decays
    gamma: float = Field(0.1, gt=0.0)  # step: decay factor
    factor: float = Field(0.1, gt=0.0, lt=1.0)  # plateau
    patience: int = Field(2, ge=0)  # plateau
    pct_start: float = Field(0.25, gt=0.0, lt=1.0)  # onecycle
    warmup_epochs: int = Field(0, ge=0)  # cosine: linear warm-up
    stages: list[Stage] = []  # staged: [{epochs: 10, lr: 0.1}, {epochs: 10, lr: 0.01}, ...]

    @model_validator(mode="after")
    def _stages_for_staged(self) -> "SchedulerConfig":
        if self.name == "staged" and not self.stages:
            raise ValueError("scheduler 'staged' needs stages: a list of {epochs, lr}")
        return self


class TrainConfig(Section):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(128, gt=0)
    eval_batch_size: int = Field(512, gt=0)
    precision: Literal["no", "fp16", "bf16"] = "no"
    compile: bool = False
    channels_last: bool = False
    grad_clip: Optional[float] = Field(None, gt=0.0)
    checkpoint: bool = True  # save a resumable checkpoint every epoch (removed when the trial ends)
    save_model: bool = False  # keep the best weights as results/<sweep>/models/<trial_id>.pt


class EarlyStoppingConfig(Section):
    enabled: bool = False
    monitor: Literal["val_loss", "val_acc", "val_iou", "val_dice"] = "val_loss"  # iou/dice: segmentation
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0.0)

    @property
    def direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "min" if self.monitor.endswith("loss") else "max"


class HealthConfig(Section):
    enabled: bool = True
    stall_epochs: int = Field(3, ge=1)  # judge "stuck at chance" after this many epochs
    stall_margin: float = Field(0.05, ge=0.0)  # within this of chance (a constant prediction's val acc) is "at chance"
    stop_on_stall: bool = True
    # collapsed (a flag; never stops): val acc within collapse_margin of chance while this fraction of the
    # classes is never predicted, or the top predicted class's share is >= collapse_top_share x the largest class's
    collapse_unpredicted: float = Field(0.5, gt=0.0, le=1.0)
    collapse_top_share: float = Field(2.5, gt=1.0)
    collapse_margin: float = Field(0.1, ge=0.0)
    divergence_factor: float = Field(100.0, gt=1.0)  # train loss above this x a uniform prediction's: diverged
    vanishing_grad: float = Field(1e-7, ge=0.0)  # a layer's grad norm below this: vanishing
    exploding_grad: float = Field(1e3, gt=0.0)  # total grad norm above this: exploding


class SegmentationConfig(Section):
    """`task: segmentation` only: prediction snapshots, mask threshold, joint image/mask augmentation."""

    snapshot_every: int = Field(5, ge=0)  # epochs between prediction snapshots (and the last epoch); 0: none
    snapshot_images: int = Field(4, ge=1, le=16)  # fixed validation images per snapshot
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # foreground where sigmoid(logit) > threshold
    augment: Literal["none", "hflip"] = "none"  # hflip: flip image and mask together (dataset.augment stays none)


class ResourcesConfig(Section):
    gpus_per_trial: Optional[float] = Field(None, ge=0.0)  # None: 1 when the cluster has GPUs, else 0
    cpus_per_trial: float = Field(1.0, gt=0.0)
    workers_per_trial: int = Field(1, ge=1)  # > 1: data-parallel over this many workers
    max_concurrent: Optional[int] = Field(None, ge=1)
    max_retries: int = Field(0, ge=0)  # run a failed trial again (from its checkpoint) at most this many times


class TuneConfig(Section):
    scheduler: Literal["none", "asha"] = "none"
    search: Literal["grid", "random"] = "grid"
    num_samples: int = Field(1, ge=1)  # random search: points drawn from the grid's values
    metric: Optional[Literal["val_acc", "val_loss", "val_iou", "val_dice"]] = None  # None: val_acc, val_iou (segmentation)
    grace_period: int = Field(1, ge=1)  # asha
    reduction_factor: int = Field(3, ge=2)  # asha


class RunConfig(Section):
    """Everything one trial needs: a sweep's base config with one grid point and one seed applied."""

    name: str = "sweep"
    description: str = ""
    task: Literal["classification", "segmentation"] = "classification"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    train: TrainConfig = TrainConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    health: HealthConfig = HealthConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tune: TuneConfig = TuneConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"name '{v}' must be letters, digits, '_', '-' or '.' (it names the results folder)")
        return v

    @model_validator(mode="after")
    def _staged_epochs(self) -> "RunConfig":
        if self.scheduler.name == "staged":
            total = sum(s.epochs for s in self.scheduler.stages)
            if "epochs" not in self.train.model_fields_set:
                self.train.epochs = total
            elif self.train.epochs != total:
                raise ValueError(
                    f"train.epochs is {self.train.epochs} but the scheduler's stages add up to {total} epochs"
                )
        return self

    @model_validator(mode="after")
    def _fits_task(self) -> "RunConfig":
        """Dataset, model, loss and monitored metric of the run's task (segmentation ones are separate)."""
        from harness.data import SEGMENTATION_DATASETS
        from harness.segmentation.losses import SEG_LOSSES
        from harness.segmentation.models import SEG_MODELS

        seg = self.task == "segmentation"
        checks = [("dataset.name", self.dataset.name, self.dataset.name in SEGMENTATION_DATASETS,
                   sorted(SEGMENTATION_DATASETS)),
                  ("model.arch", self.model.arch, self.model.arch in SEG_MODELS, SEG_MODELS.names()),
                  ("loss.name", self.loss.name, self.loss.name in SEG_LOSSES, SEG_LOSSES.names()),
                  ("early_stopping.monitor", self.early_stopping.monitor,
                   self.early_stopping.monitor in ("val_iou", "val_dice"), None),  # val_loss/val_acc: both tasks
                  ("tune.metric", self.tune.metric, self.tune.metric in ("val_iou", "val_dice"), None)]
        for key, value, is_seg, seg_names in checks:
            if seg and not is_seg and seg_names:
                raise ValueError(f"{key}: '{value}' is not for task segmentation; allowed: {', '.join(seg_names)}")
            if not seg and is_seg:
                raise ValueError(f"{key}: '{value}' needs task: segmentation (this run's task is {self.task})")
        if seg and self.dataset.augment != "none":
            raise ValueError("dataset.augment: task segmentation augments image and mask together: "
                             "set segmentation.augment (none, hflip) and leave dataset.augment none")
        if seg and (getattr(self.model, "init_from", None) or getattr(self.model, "finetune", "all") != "all"):
            raise ValueError("model.init_from / model.finetune: not supported for task segmentation "
                             "(use model.pretrained and model.freeze_encoder)")
        return self

    def flat(self) -> dict[str, Any]:
        """The config as one level of dotted keys (`optimizer.lr`), lists kept as lists."""
        return flatten(self.model_dump(mode="json"))


# --------------------------------------------------------------------------------------------------
# Dotted keys


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("group_lr",):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _known_key(key: str) -> Optional[str]:
    """None if `key` names a field (or a model option), else an error message with a did-you-mean."""
    if not isinstance(key, str) or not key:
        return f"{key!r} is not a key: keys are dotted names such as optimizer.lr"
    parts = key.split(".")
    model: type[BaseModel] = RunConfig
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            if model is ModelConfig and i == len(parts) - 1:
                return None  # a model option: checked against the arch's factory on validation
            where = ".".join(parts[:i]) or "the top level"
            allowed = sorted(fields) + (["seeds", "grid"] if model is RunConfig else [])
            return f"unknown key '{part}' in {where}{did_you_mean(part, allowed)}; allowed: {', '.join(allowed)}"
        annotation = fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(parts) - 1:
            return f"'{'.'.join(parts[: i + 1])}' is a value, not a section"
    if isinstance(fields[parts[-1]].annotation, type) and issubclass(fields[parts[-1]].annotation, BaseModel):
        return f"'{key}' is a section, not a key: name one of its keys ({key}.<key>)"
    return None


def parse_override(text: str) -> tuple[str, Any]:
    """'optimizer.lr=0.1' -> ('optimizer.lr', 0.1); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set optimizer.lr=0.01")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# --------------------------------------------------------------------------------------------------
# Sweeps


@dataclass
class Trial:
    trial_id: str
    params: dict[str, Any]  # the grid point (dotted key -> value) plus seed
    config: RunConfig


@dataclass
class Sweep:
    name: str
    path: Optional[Path]
    base: dict[str, Any]  # the raw base config (without grid and seeds)
    grids: list[dict[str, list[Any]]]  # `grid:` as a list of mappings (one when the file has a mapping)
    seeds: list[int]
    trials: list[Trial] = field(default_factory=list)

    @property
    def config(self) -> RunConfig:
        """The first trial's config: settings shared by the whole sweep (name, resources, tune)."""
        return self.trials[0].config


def short_name(key: str, keys: list[str]) -> str:
    parts = key.split(".")
    short = parts[-2] if parts[-1] in ("name", "arch") and len(parts) > 1 else parts[-1]
    if parts[-1] == "arch":
        short = "arch"
    others = [k for k in keys if k != key]
    if any(_plain_short_name(o) == short for o in others):
        return key
    return short


def _plain_short_name(key: str) -> str:
    parts = key.split(".")
    if parts[-1] == "arch":
        return "arch"
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}{format_value(v)}" for k, v in value.items())
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))


def trial_id(point: dict[str, Any], seed: int) -> str:
    """A stable, readable id from the grid point: 'activation=relu-lr=0.01-seed=0'."""
    keys = list(point)
    parts = [f"{short_name(k, keys)}={format_value(v)}" for k, v in point.items()]
    return "-".join(parts + [f"seed={seed}"])


def _error(where: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def _section_at(key: str) -> Optional[type[BaseModel]]:
    """The section class a dotted key names (`train` -> TrainConfig), or None."""
    model: Any = RunConfig
    for part in key.split("."):
        field_info = getattr(model, "model_fields", {}).get(part)
        model = field_info.annotation if field_info else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def _validation_message(err: ValidationError) -> tuple[str, str]:
    from harness.models import OptionError

    first = err.errors()[0]
    loc = first["loc"]
    n = next((i for i, p in enumerate(loc) if isinstance(p, int)), len(loc))  # the key ends at a list index
    key = ".".join(str(p) for p in loc[:n])
    at = f" at {loc[n - 1]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[n:]) if n < len(loc) else ""
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, OptionError):  # a model option: name it (model.widths), not just the section
        key = f"{key}.{cause.option}"
    if first["type"] == "extra_forbidden":
        msg = _known_key(key) or f"unknown key '{key}'"
    elif first["type"] == "literal_error":
        got = first.get("input")
        expected = re.findall(r"'([^']*)'", first.get("ctx", {}).get("expected", ""))
        msg = f"'{got}' is not allowed{did_you_mean(str(got), expected)}; allowed: {', '.join(expected)}"
    elif first["type"] == "missing":
        msg = f"a value is missing{at}" if at else "is required"
    elif first["type"] == "model_type":  # `train: 5`: a section given as something other than a mapping
        section = _section_at(key)
        allowed = f"; allowed keys: {', '.join(section.model_fields)}" if section else ""
        msg = f"must be a mapping of keys, e.g. {{key: value}}{at} (got {first.get('input')!r}){allowed}"
    else:
        got = first.get("input")
        msg += at
        if not isinstance(got, dict) and first["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {got!r})"
    if len(err.errors()) > 1:
        msg += f" (and {len(err.errors()) - 1} more problem(s))"
    return key, msg


def _set_by(key: str, set_keys) -> bool:
    """Whether the value at `key` came from one of the `--set` keys."""
    return any(key == k or key.startswith(k + ".") for k in set_keys)


def validate_run(raw: dict[str, Any], where: str = "<config>", set_keys=()) -> RunConfig:
    """Validate one run's config; a ConfigError names `where` (or `--set` when an override set the key)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        key, msg = _validation_message(err)
        raise _error("--set" if _set_by(key, set_keys) else where, key, msg) from None
    except UnknownName as err:
        raise _error(where, "", str(err)) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.again = key, first, again


class _SweepLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what, then where."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if not problem:
        return " ".join(str(err).split())
    context = getattr(err, "context", None)
    text = f"{context}: {problem}" if context else problem
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    if "'\\t'" in problem:
        text += "; indent with spaces, not tabs"
    return text


def read_yaml(path: Path) -> dict[str, Any]:
    """The sweep file's top-level mapping; ConfigError for a missing, unreadable, non-UTF-8 or non-YAML file."""
    try:
        if not path.exists():
            raise ConfigError(f"{path}: no such file")
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory; allowed: a sweep file (YAML), e.g. sweeps/quickstart.yaml")
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
                          f"allowed: a YAML file encoded as UTF-8") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file (it holds NUL bytes); allowed: a YAML file encoded as UTF-8")
    try:
        tree = yaml.load(text, Loader=_SweepLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: {err.key}: given twice in one mapping (lines {err.first} and {err.again}); "
                          f"a key may appear once") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    if tree is None:
        raise ConfigError(f"{path}: is empty; allowed: a mapping of keys (name, dataset, model, ...), "
                          f"e.g. sweeps/quickstart.yaml")
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping of keys (name, dataset, model, ...), "
                          f"got a {type(tree).__name__}")
    return tree


def build_sweep(raw: dict[str, Any], where: str = "<config>", overrides: list[str] = ()) -> Sweep:
    """Apply overrides, expand the grid x seeds and validate every trial."""
    raw = copy.deepcopy(raw)
    grid = raw.pop("grid", None)
    grid = {} if grid is None else grid
    seeds = raw.pop("seeds", None)
    listed = isinstance(grid, list)  # a list of grids: the union of their cartesian products
    grids = grid if listed else [grid]
    if not grids or not all(isinstance(g, dict) for g in grids):
        raise _error(where, "grid", "must map dotted keys to lists of values, e.g. model.activation: [relu, gelu], "
                                    f"or be a non-empty list of such mappings, got {grid!r}")
    if "seed" in raw:
        raise _error(where, "seed", "use seeds: [0, 1, 2] (a list) in a sweep file")
    set_keys: list[str] = []  # keys whose value came from --set: their errors name --set, not the file
    seeds_where = where
    for text in overrides:
        key, value = parse_override(text)
        set_keys.append(key)
        if key == "seeds" or key == "seed":
            seeds = value if isinstance(value, list) else [value]
            seeds_where = "--set"
        elif key.startswith("grid."):
            for g in grids:
                g[key[len("grid."):]] = value if isinstance(value, list) else [value]
        else:  # the value holds in every trial: it pins the axis where a grid has one, else sets the base
            pinned = [g for g in grids if key in g]
            for g in pinned:
                g[key] = [value]  # (kept in the trial id)
            if len(pinned) < len(grids):
                problem = _known_key(key)
                if problem:
                    raise _error("--set", key, problem)
                try:
                    set_dotted(raw, key, value)
                except ConfigError as err:
                    raise _error(where, "", str(err)) from None
    if seeds is None:
        seeds = [0]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise _error(seeds_where, "seeds", f"must be a non-empty list of integers, got {seeds!r}")
    if not all(0 <= s < 2**32 for s in seeds):
        raise _error(seeds_where, "seeds", f"{seeds!r} has a seed out of range; allowed: integers 0..{2**32 - 1}")
    if len(set(seeds)) != len(seeds):
        raise _error(seeds_where, "seeds", f"has duplicates: {seeds}")
    for i, g in enumerate(grids):
        label = f"grid[{i}]" if listed else "grid"
        for key, values in g.items():
            if not isinstance(key, str):
                raise _error(where, label, f"{key!r} is not a key: keys are dotted names such as optimizer.lr")
            problem = _known_key(key) if key not in ("seed", "seeds") else "put seeds in seeds: [...], not in the grid"
            if problem:
                raise _error(where, f"{label}.{key}", problem)
            if not isinstance(values, list) or not values:
                raise _error(where, f"{label}.{key}", f"must be a non-empty list of values, got {values!r}")
            if len({format_value(v) for v in values}) != len(values):
                raise _error(where, f"{label}.{key}", f"has duplicate values: {values}")

    base = validate_run({**raw, "seed": seeds[0]}, where, set_keys)
    sweep = Sweep(name=base.name, path=None, base=raw, grids=grids, seeds=seeds)
    origin: dict[str, int] = {}  # trial id -> the grid it came from
    for i, g in enumerate(grids):
        axes = list(g)
        for combo in itertools.product(*(g[k] for k in axes)):
            point = dict(zip(axes, combo))
            tree = copy.deepcopy(raw)
            for key, value in point.items():
                set_dotted(tree, key, value)
            for seed in seeds:
                tree["seed"] = seed
                tid = trial_id(point, seed)
                if tid in origin:
                    raise _error(where, "grid", f"grid[{origin[tid]}] and grid[{i}] both give trial {tid}: "
                                                f"make each grid's keys or values tell its trials apart")
                origin[tid] = i
                try:
                    config = validate_run(tree, where, set_keys)
                except ConfigError as err:
                    raise ConfigError(f"{err} (in grid point {tid})") from None
                sweep.trials.append(Trial(trial_id=tid, params={**point, "seed": seed}, config=config))
    return sweep


def load_sweep(path: str | Path, overrides: list[str] = ()) -> Sweep:
    """Read, override, expand and validate a sweep file. Raises ConfigError with a one-line message."""
    path = Path(path)
    sweep = build_sweep(read_yaml(path), str(path), overrides)
    sweep.path = path
    return sweep


def grid_size(grid: dict[str, list[Any]] | list[dict[str, list[Any]]], seeds: list[int]) -> int:
    grids = grid if isinstance(grid, list) else [grid]
    return sum(math.prod(len(v) for v in g.values()) for g in grids) * len(seeds)
