"""The sweep-file schema: one pydantic section per part of a run (dataset, model, loss, ...) and
`RunConfig`, everything one trial needs. Names (datasets, models, losses, optimizers, activations,
inits, presets) are checked against the registries of harness.registry, and the task rules (which
dataset, model and loss a `task` may use) read the registries' metadata, so a new entry needs no
edit here. Model options are checked against the factory's annotations (model_options.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from harness.config.dotted import flatten
from harness.config.model_options import OptionError, option_names, validate_options
from harness.registry import (
    ACTIVATIONS,
    AUGMENTATIONS,
    DATASETS,
    INITS,
    LOSSES,
    MODELS,
    NORMALIZATIONS,
    OPTIMIZERS,
    Registry,
    did_you_mean,
)
from harness.vocabulary import direction

TASKS = ("classification", "segmentation")
TASK_METRICS = {"segmentation": ("val_iou", "val_dice")}  # metrics only one task has; val_loss, val_acc: both


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
    # keep only these classes (indices into the dataset's classes) in every split, relabelled 0..len-1 in
    # this order: [3, 5] makes a binary task of 3 (label 0) vs 5 (label 1); None: all classes
    classes: Optional[list[Annotated[int, Field(strict=True)]]] = None
    # caps for quick checks (`--smoke`): keep at most this many samples per split
    max_train: Optional[int] = Field(None, gt=0)
    max_eval: Optional[int] = Field(None, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, v: str) -> str:
        # resolved where the sweep is launched: Tune runs each trial in its own working directory
        return str(Path(v).expanduser().absolute())

    @field_validator("name", "augment", "normalize")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        registry = {"name": DATASETS, "augment": AUGMENTATIONS, "normalize": NORMALIZATIONS}[info.field_name]
        return _check_name(registry, v)

    @field_validator("shape")
    @classmethod
    def _chw(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or min(v) < 1:
            raise ValueError(f"shape must be [channels, height, width] of positive sizes, got {v}")
        return v

    @field_validator("classes")
    @classmethod
    def _class_subset(cls, v: Optional[list[int]], info: ValidationInfo) -> Optional[list[int]]:
        """At least two distinct classes, each one of the dataset's (when its class count is known
        without loading it: the registry's metadata, or num_classes for a FROM_CONFIG dataset)."""
        from harness.registry import FROM_CONFIG

        if v is None:
            return v
        name = info.data.get("name")
        meta = DATASETS.meta(name) if name in DATASETS else {}
        if meta.get("task", "classification") != "classification":
            raise ValueError(f"dataset '{name}' is a {meta['task']} dataset: classes selects classification "
                             f"labels only; allowed: null")
        count = meta.get("classes")
        count = info.data.get("num_classes") if count == FROM_CONFIG else count
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError(f"must list at least 2 different classes, got {v}; allowed: class indices such as [3, 5]")
        bad = [c for c in v if c < 0 or (isinstance(count, int) and c >= count)]
        if bad:
            allowed = f"0 to {count - 1}" if isinstance(count, int) else ">= 0"
            raise ValueError(f"class {bad[0]} is not one of dataset {name}'s classes; allowed: indices {allowed}")
        return v


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
        MODELS.entry(v)  # UnknownName (a ValueError) with a did-you-mean; resolves torchvision: and module:function
        return v

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else _check_name(ACTIVATIONS, v)

    @field_validator("init")
    @classmethod
    def _known_init(cls, v: str) -> str:
        return _check_name(INITS, v)

    @model_validator(mode="after")
    def _options_fit_arch(self) -> "ModelConfig":
        """Each option is a keyword of the arch's factory, of the type its annotation (or default) says."""
        factory = MODELS.get(self.arch)
        allowed, any_name = option_names(factory)
        for key in self.options:
            if key not in allowed and not any_name:
                names = sorted(set(allowed) | {"arch", "init"})
                raise OptionError(key, f"model '{self.arch}' has no option '{key}'{did_you_mean(key, names)}; "
                                       f"allowed: {', '.join(names)}")
        validate_options(self.arch, factory, self.options)
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
        return _check_name(LOSSES, v)  # the run's task checks which kind


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
        return self.mode if self.mode != "auto" else direction(self.monitor)


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
    # packed trials (harness.sweep.packs): auto sizes packs from the device's memory and the model, an
    # integer caps a pack at that many members, off runs every trial as its own program
    pack: Union[Literal["auto", "off"], Annotated[int, Field(ge=1)]] = "auto"

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_word(cls, v):
        if isinstance(v, bool):  # YAML reads a bare `off` / `on` as a boolean
            return "off" if v is False else "auto"
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if v in ("auto", "off") or (isinstance(v, int) and v >= 1):
            return v
        raise ValueError(f"{v!r} is not auto, off or a number of trials (1 or more)")


class MlflowTracking(Section):
    tracking_uri: Optional[str] = None  # None: MLflow's default (./mlruns, or $MLFLOW_TRACKING_URI)
    experiment: Optional[str] = None  # None: the sweep's name


class WandbTracking(Section):
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: Optional[str] = None  # None: the sweep's name
    entity: Optional[str] = None
    dir: Optional[str] = None  # None: RESULTS_DIR/wandb


class TrackingConfig(Section):
    """Experiment trackers fed every trial's config, epoch rows and final row (harness.sweep.tracking)."""

    tensorboard: bool = False  # event files under RESULTS_DIR/tensorboard/<trial_id>/
    mlflow: Optional[MlflowTracking] = None
    wandb: Optional[WandbTracking] = None


ADAPTIVE_SEARCH = ("optuna", "hyperopt", "bohb")  # Tune's searchers (harness.sweep.search): points chosen as trials end


PBT_KEYS = ("optimizer.lr", "optimizer.weight_decay")  # what PBT may change in a running optimizer


class TuneConfig(Section):
    scheduler: Literal["none", "asha", "hyperband", "median_stopping", "pbt"] = "none"
    search: Literal["grid", "random", "optuna", "hyperopt", "bohb"] = "grid"
    num_samples: int = Field(1, ge=1)  # random and adaptive search: configurations sampled, each x seeds
    metric: Optional[Literal["val_acc", "val_loss", "val_iou", "val_dice"]] = None  # None: val_acc, val_iou (segmentation)
    grace_period: int = Field(1, ge=1)  # asha, median_stopping (epochs before a trial can be stopped)
    reduction_factor: int = Field(3, ge=2)  # asha, hyperband
    perturbation_interval: int = Field(2, ge=1)  # pbt: epochs between exploit/explore steps
    mutations: dict[str, Any] = {}  # pbt: PBT_KEYS -> a list of values or a space ({loguniform: [a, b]}, ...)

    @field_validator("mutations")
    @classmethod
    def _mutable_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        from harness.config.spaces import parse_space

        for key, value in v.items():
            if key not in PBT_KEYS:
                raise ValueError(f"'{key}' cannot change while a trial runs; PBT mutates {', '.join(PBT_KEYS)}")
            try:
                space = parse_space(value)
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None
            if space is None and (not isinstance(value, list) or not value
                                  or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                             for x in value)):
                raise ValueError(f"{key}: a list of numbers >= 0 or a space ({{loguniform: [a, b]}}, ...), got {value!r}")
            if space is not None and space.kind == "randint":
                raise ValueError(f"{key}: randint is for integers; use uniform, loguniform, quniform or choice")
        return v


class RunConfig(Section):
    """Everything one trial needs: a sweep's base config with one grid point and one seed applied."""

    name: str = "sweep"
    description: str = ""
    task: Literal[TASKS] = "classification"
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
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
    def _pbt(self) -> "RunConfig":
        """PBT's needs: mutations only under it, and under it something to mutate, in one optimizer it owns."""
        tune = self.tune
        if tune.scheduler != "pbt":
            if tune.mutations:
                raise ValueError("tune.mutations are for tune.scheduler pbt")
            return self
        if not tune.mutations:
            raise ValueError(f"tune.scheduler pbt needs tune.mutations: what it may change ({', '.join(PBT_KEYS)})")
        if tune.perturbation_interval >= self.train.epochs:
            raise ValueError(f"tune.perturbation_interval ({tune.perturbation_interval}) must be below train.epochs "
                             f"({self.train.epochs}): PBT acts every perturbation_interval epochs")
        if "optimizer.lr" in tune.mutations and (self.scheduler.name != "none" or self.optimizer.group_lr):
            raise ValueError("tune.scheduler pbt sets the learning rate itself: scheduler.name must be none and "
                             "optimizer.group_lr empty")
        if tune.search in ADAPTIVE_SEARCH:
            raise ValueError(f"tune.scheduler pbt evolves the grid's (or random search's) trials; Ray Tune runs no "
                             f"searcher beside it (tune.search is {tune.search})")
        if not self.train.checkpoint:
            raise ValueError("tune.scheduler pbt copies trials' checkpoints: train.checkpoint must be true")
        return self

    @model_validator(mode="after")
    def _fits_task(self) -> "RunConfig":
        """Dataset, model, loss and monitored metrics of the run's task, from the registries' `task` metadata."""
        for key, value, registry in (("dataset.name", self.dataset.name, DATASETS),
                                     ("model.arch", self.model.arch, MODELS), ("loss.name", self.loss.name, LOSSES)):
            task = registry.entry(value).meta["task"]
            if task != self.task:
                raise ValueError(f"{key}: '{value}' is not for task {self.task} (it needs task: {task}); "
                                 f"allowed: {', '.join(registry.names(task=self.task))}")
        for key, value in (("early_stopping.monitor", self.early_stopping.monitor), ("tune.metric", self.tune.metric)):
            task = next((t for t, metrics in TASK_METRICS.items() if value in metrics), self.task)
            if task != self.task:
                raise ValueError(f"{key}: '{value}' needs task: {task} (this run's task is {self.task})")
        seg = self.task == "segmentation"
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
