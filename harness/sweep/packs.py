"""Which trials of a sweep train together as one pack (harness.packed_trial), and how many per pack.

Trials may share a pack when everything that shapes the computation is the same: dataset and split,
task, model (arch, activation, widths, dropout, ...), loss, batch sizes, epochs, precision. Inside a
pack, members differ in what each one owns: seed (init, data order, augmentation), init scheme,
optimizer and its hyperparameters, schedule, early stopping and health settings. `pack_key` says
which keys are which.

Packing is off (every trial its own program) with `resources.pack: off` or `--no-pack`, and for
trials a pack cannot run: data-parallel (`workers_per_trial` > 1), `train.compile`, fp16 (one
gradient scaler would skip every member's step for one member's overflow), and tasks other than
classification. Under a Tune scheduler a pack holds one configuration's seeds only: the scheduler stops a
Tune trial, a pack is one, and it ranks the seeds' mean (so it stops a configuration, never a lucky seed).

    units = plan_packs(trials, slots=2)   # [[trial, ...], ...]: a list of one trial runs alone
"""

from __future__ import annotations

import json
import math
from typing import Callable, Optional, Sequence

from harness.config import Trial

# config keys whose values may differ between the members of one pack (prefixes end with ".")
MEMBER_KEYS = ("name", "description", "seed", "optimizer.", "scheduler.", "early_stopping.", "health.",
               "model.init", "model.init_from", "train.grad_clip", "train.checkpoint", "train.save_model",
               "resources.", "tune.", "tracking.")
AUTO_CAP = 64  # members per pack under `auto` where memory allows more: beyond this a pack only gets slower to shed


def _member_key(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MEMBER_KEYS)


def pack_key(cfg) -> str:
    """Trials with equal keys can share a pack."""
    return json.dumps({k: v for k, v in cfg.flat().items() if not _member_key(k)}, sort_keys=True, default=str)


def configuration_key(cfg) -> str:
    """Trials with equal keys are one configuration's seeds."""
    return json.dumps({k: v for k, v in cfg.flat().items() if k not in ("seed", "name", "description")},
                      sort_keys=True, default=str)


def why_not_packed(cfg, no_pack: bool = False, seeds_only: bool = False) -> Optional[str]:
    """Why the trials of this config run one by one (None: they can be packed). `seeds_only`: a pack of
    one configuration's seeds (adaptive search), which a scheduler may stop together."""
    if no_pack:
        return "--no-pack"
    if cfg.resources.pack == "off":
        return "resources.pack is off"
    if cfg.resources.pack == 1:
        return "resources.pack is 1"
    if cfg.tune.scheduler != "none" and not seeds_only:
        return f"under tune.scheduler {cfg.tune.scheduler} a pack holds one configuration's seeds"
    if cfg.resources.workers_per_trial > 1:
        return "data-parallel trials"
    if cfg.train.compile:
        return "train.compile"
    if cfg.train.precision == "fp16":
        return "fp16 (one gradient scaler for all members)"
    if cfg.task != "classification":
        return f"task {cfg.task}"
    return None


def plan_packs(trials: Sequence[Trial], slots: int = 1, member_cap: Optional[Callable[[Trial], int]] = None,
               no_pack: bool = False) -> list[list[Trial]]:
    """The sweep's units of work, in grid order: packs of trials with equal `pack_key` (under a scheduler:
    equal `configuration_key`), each at most
    resources.pack members when that is an integer, else `member_cap(trial)` (what the device's memory
    holds) and AUTO_CAP, split further so that there are at least `slots` units (every CPU or GPU
    share busy) as long as trials allow. Trials that cannot be packed are units of one. Members are
    ordered by optimizer within a pack (each optimizer's rule then updates one contiguous slice)."""
    groups: dict[str, list[Trial]] = {}
    units: list[list[Trial]] = []
    for t in trials:
        scheduled = t.config.tune.scheduler != "none"  # a pack: one configuration's seeds (the docstring above)
        if why_not_packed(t.config, no_pack, seeds_only=scheduled):
            units.append([t])
        else:
            groups.setdefault(configuration_key(t.config) if scheduled else pack_key(t.config), []).append(t)
    for members in groups.values():
        setting = members[0].config.resources.pack
        size = setting if isinstance(setting, int) else min(AUTO_CAP, (member_cap and member_cap(members[0])) or AUTO_CAP)
        units += _split(members, max(1, size))
    while len(units) < slots:  # more units than slots to fill: split the largest pack in two
        largest = max(units, key=len)
        if len(largest) < 2:
            break
        units.remove(largest)
        units += _split(largest, math.ceil(len(largest) / 2))
    order = {t.trial_id: i for i, t in enumerate(trials)}
    units = [sorted(u, key=lambda t: (t.config.optimizer.name, order[t.trial_id])) for u in units]
    return sorted(units, key=lambda u: min(order[t.trial_id] for t in u))


def _split(members: list[Trial], size: int) -> list[list[Trial]]:
    """`members` in packs of at most `size`, as even as possible."""
    n = math.ceil(len(members) / size)
    per = math.ceil(len(members) / n)
    return [members[i:i + per] for i in range(0, len(members), per)]


def pack_id(unit: Sequence[Trial]) -> str:
    """A unit's name: the trial id alone, or the first member's id with the pack's size."""
    return unit[0].trial_id if len(unit) == 1 else f"pack{len(unit)}:{unit[0].trial_id}"


def member_cap_for(budget_bytes: float) -> Callable[[Trial], int]:
    """`plan_packs`' member_cap under `auto`: as many members as `budget_bytes` (half a CPU or GPU share's
    memory) holds, by `member_bytes`."""
    from harness.data import dataset_spec

    specs, sizes = {}, {}

    def cap(trial: Trial) -> int:
        c = trial.config
        data = c.dataset.model_dump_json()
        if data not in specs:
            specs[data] = dataset_spec(c.dataset)
        key = pack_key(c)
        if key not in sizes:
            sizes[key] = member_bytes(c, *specs[data])
        return max(1, int(budget_bytes // sizes[key])) if sizes[key] else AUTO_CAP

    return cap


def member_bytes(cfg, input_shape, num_classes: int) -> int:
    """What one member needs on the device, estimated on the model built on the meta device (no memory):
    weights, gradients and two optimizer slots (4 copies of the parameters), the activations of one
    training batch kept for backward and their gradients (3 copies of every layer's output), and the
    largest layer output of one evaluation batch (no gradients there), in float32. 0 for a model that
    cannot be built on meta."""
    import torch

    from harness.models import create_model

    options = dict(cfg.model.options)
    if options.get("pretrained"):
        options["pretrained"] = False  # never download weights for an estimate: the shapes are the same
    try:
        with torch.device("meta"):
            model = create_model(cfg.model.arch, input_shape, num_classes, init=cfg.model.init, **options)
    except Exception:  # noqa: BLE001 - no estimate: no memory cap, packed
        return 0
    elements, largest = [0], [0]

    def count(_module, _inputs, out):
        elements[0] += out.numel()
        largest[0] = max(largest[0], out.numel())

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.empty(1, *input_shape, device="meta"))
    except Exception:  # noqa: BLE001
        return 0
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return 4 * (4 * params + 3 * cfg.train.batch_size * elements[0] + 2 * cfg.train.eval_batch_size * largest[0])
