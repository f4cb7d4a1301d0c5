"""Population based training (`tune.scheduler: pbt`) on Ray Tune's PopulationBasedTraining. The sweep's
trials are the population. Every `tune.perturbation_interval` epochs, once all of them have got there
(synchronous PBT), Tune ranks them on the sweep's metric. A trial in the bottom quarter takes a copy of a top-quarter trial's state (exploit: weights,
optimizer, epoch rows) and goes on with perturbed hyperparameters (explore: `tune.mutations`, of
harness.config.schema.PBT_KEYS).

Tune decides who copies whom and the new values; what is here is the glue:
- `param_space`: each trial's starting values in its Tune config, where PBT reads and perturbs them;
- `make_pbt`: Tune's scheduler, keeping each Tune trial's own `trial_id` through a copy (Tune copies
  the donor's whole config), and leaving trials at their last epoch alone;
- `report`: at each perturbation epoch, a Tune checkpoint holding the trial's harness checkpoint
  (last.pt, best.pt) and its schedule so far (pbt.json): what a trial that copies it starts from;
- `start`: a trial (re)started by Tune installs the checkpoint it is given as its own (epoch rows
  renamed to it) and runs with its config's current values.

A trial's trials row records the lineage of the weights it ends with, `pbt_schedule`, JSON:
[{"epoch": 0, "trial": "lr=0.3-seed=0", "config": {"optimizer.lr": 0.3}},
 {"epoch": 4, "trial": "lr=0.001-seed=0", "config": {"optimizer.lr": 0.36}}]: after each entry's epoch,
that trial trained them with that config (here lr=0.001-seed=0 copied lr=0.3-seed=0 at epoch 4). Its epoch
rows are that lineage's too: a copy brings the donor's rows up to the copy's epoch. A trial at its last
epoch is not copied into (it would only repeat its donor's result).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from harness import store
from harness.config import RunConfig, Trial
from harness.config.dotted import set_dotted
from harness.config.spaces import parse_space, rounded, tune_domain
from harness.engine.checkpoint import LAST, checkpoint_dir, drop_stopped, save
from harness.files import write_text

SCHEDULE = "pbt.json"  # in a harness checkpoint folder and in each Tune checkpoint


def read_schedule(folder: Path) -> list[dict]:
    """The schedule saved in a checkpoint folder ([] without one)."""
    try:
        return json.loads((folder / SCHEDULE).read_text())["schedule"]
    except (OSError, ValueError, KeyError):
        return []


def current_values(trial: Trial, results_dir: Path) -> dict[str, Any]:
    """The values of the mutated keys a trial runs with now: its schedule's last, else its config's."""
    schedule = read_schedule(checkpoint_dir(results_dir, trial.trial_id))
    if schedule:
        return schedule[-1]["config"]
    flat = trial.config.flat()
    return {key: flat[key] for key in trial.config.tune.mutations}


def param_space(units: dict[str, list[Trial]], results_dir: Path) -> dict:
    """Tune's param_space under PBT: the trials (a grid over their ids) and each one's current values of the
    mutated keys (a resumed trial: where its schedule left it)."""
    from ray import tune

    values = {uid: current_values(unit[0], results_dir) for uid, unit in units.items()}
    keys = next(iter(values.values())).keys()
    return {"trial_id": tune.grid_search(list(units)),
            **{key: tune.sample_from(lambda spec, k=key: values[spec.config["trial_id"]][k]) for key in keys}}


def mutation(value: Any):
    """Tune's form of a tune.mutations entry: a list as it is, a space as Tune's domain."""
    space = parse_space(value)
    return list(value) if space is None else tune_domain(space)


def make_pbt(cfg, metric: str, mode: str):
    """Tune's PopulationBasedTraining on the epoch, for this sweep's mutations."""
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

    last_epoch = cfg.train.epochs

    class HarnessPBT(PopulationBasedTraining):
        def on_trial_result(self, tune_controller, trial, result):
            if result.get("epoch", 0) >= last_epoch:  # done: a copy now would only repeat its donor's result
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        # _get_new_config is the hook Tune's own PB2 overrides. Tune gives the copying trial the donor's
        # whole config; the copying trial keeps its own id
        def _get_new_config(self, trial, trial_to_clone):
            config, operations = super()._get_new_config(trial, trial_to_clone)
            return {**config, "trial_id": trial.config["trial_id"]}, operations

    return HarnessPBT(time_attr="epoch", metric=metric, mode=mode, perturbation_interval=cfg.tune.perturbation_interval,
                      hyperparam_mutations={k: mutation(v) for k, v in cfg.tune.mutations.items()},
                      quantile_fraction=0.25, resample_probability=0.25, log_config=False,
                      # synchronous: the population is ranked once all of it has reached the epoch, so who copies
                      # whom does not depend on which trials happened to run first (a few CPUs or GPUs, many trials)
                      synch=True)


def with_values(trial: Trial, values: dict[str, Any]) -> Trial:
    """The trial with these values of the mutated keys in its config (its id and grid point unchanged)."""
    raw = trial.config.model_dump(mode="json")
    for key, value in values.items():
        set_dotted(raw, key, value)
    return Trial(trial.trial_id, trial.point, RunConfig.model_validate(raw))


def _values(tune_config: dict, mutations: dict) -> dict[str, Any]:
    """The mutated keys' values in a Tune config, rounded as sweep-file values are (4 significant digits)."""
    return {k: rounded(float(tune_config[k])) for k in mutations}


def install(source: Path, trial_id: str, results_dir: Path) -> int:
    """Make the harness checkpoint in `source` (a Tune checkpoint, maybe another trial's) `trial_id`'s own:
    last.pt with its epoch rows renamed, best.pt, and its epochs part. Returns the checkpoint's epoch."""
    ckpt = checkpoint_dir(results_dir, trial_id)
    ckpt.mkdir(parents=True, exist_ok=True)
    drop_stopped(ckpt)
    state = torch.load(source / LAST, map_location="cpu", weights_only=False)
    state["history"] = [{**row, "trial_id": trial_id} for row in state["history"]]
    save(state, ckpt / LAST)
    if (source / "best.pt").exists():
        shutil.copy(source / "best.pt", ckpt / "best.pt")
    else:
        (ckpt / "best.pt").unlink(missing_ok=True)
    store.write_part(results_dir, "epochs", trial_id, state["history"])
    return int(state["epoch"])


def start(trial: Trial, tune_config: dict, results_dir: Path) -> tuple[Trial, list[dict]]:
    """The trial as Tune (re)starts it: the checkpoint Tune hands it installed (a donor's after a copy, its own
    after a pause), the schedule so far with this start's step, and the config with the current values."""
    from ray import tune

    mutations = trial.config.tune.mutations
    values = _values(tune_config, mutations)
    ckpt = checkpoint_dir(results_dir, trial.trial_id)
    schedule = read_schedule(ckpt)
    given = tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as folder:
            saved = json.loads((Path(folder) / SCHEDULE).read_text())
            epoch = install(Path(folder), trial.trial_id, results_dir)
        schedule = saved["schedule"]
        if saved["trial_id"] != trial.trial_id:  # a copy: its weights go on from the donor's, trained here
            schedule = [*schedule, {"epoch": epoch, "trial": trial.trial_id, "config": values}]
    if not schedule:
        schedule = [{"epoch": 0, "trial": trial.trial_id, "config": values}]
    ckpt.mkdir(parents=True, exist_ok=True)
    write_text(ckpt / SCHEDULE, json.dumps({"trial_id": trial.trial_id, "schedule": schedule}))
    return with_values(trial, schedule[-1]["config"]), schedule


def report(metrics: dict, trial: Trial, results_dir: Path, schedule: list[dict]) -> None:
    """Tell Tune one epoch's metrics; at a perturbation epoch with a checkpoint a copying trial starts from."""
    from ray import tune

    epoch = metrics["epoch"]
    if epoch % trial.config.tune.perturbation_interval:
        tune.report(metrics)
        return
    ckpt = checkpoint_dir(results_dir, trial.trial_id)
    with tempfile.TemporaryDirectory() as tmp:
        for name in (LAST, "best.pt"):
            if (ckpt / name).exists():
                shutil.copy(ckpt / name, Path(tmp) / name)
        Path(tmp, SCHEDULE).write_text(json.dumps({"trial_id": trial.trial_id, "epoch": epoch, "schedule": schedule}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
