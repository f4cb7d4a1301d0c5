"""Population based training (`tune.scheduler: pbt`) on Ray Tune's PopulationBasedTraining. The sweep's
units (a trial alone, or a pack of one configuration's seeds, ranked by their mean) are the population.
Every `tune.perturbation_interval` epochs, once all of them have got there (synchronous PBT), Tune ranks
them on the sweep's metric. A unit in the bottom quarter takes a copy of a top-quarter unit's state
(exploit: weights, optimizer, epoch rows; in a pack each member takes the donor's member of its seed) and
goes on with perturbed hyperparameters (explore: `tune.mutations`, of harness.config.schema.PBT_KEYS).

Tune decides who copies whom and the new values; what is here is the glue:
- `param_space`: each unit's starting values in its Tune config, where PBT reads and perturbs them;
- `make_pbt`: Tune's scheduler, keeping each Tune trial's own `trial_id` through a copy (Tune copies
  the donor's whole config), leaving units at their last epoch alone, never leaving the population
  paused when a unit short of the perturbation epoch ends, and starting a resumed population at the
  perturbation epoch it had passed (`population_epoch`; units that had reached the next one report it
  again first, `rows_at`);
- `report`: at each perturbation epoch, a Tune checkpoint holding each member's harness checkpoint
  (last.pt, best.pt) and schedule so far (pbt.json): what a unit that copies it starts from;
- `start`: a unit (re)started by Tune installs the checkpoint it is given as its own (epoch rows
  renamed to each member) and runs with its config's current values.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from harness import store
from harness.config import RunConfig, Trial
from harness.config.dotted import set_dotted
from harness.config.spaces import parse_space, rounded, tune_domain
from harness.engine.checkpoint import LAST, checkpoint_dir, drop_stopped, save
from harness.files import write_text
from harness.vocabulary import Status

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


def make_pbt(cfg, metric: str, mode: str, start_epoch: int = 0):
    """Tune's PopulationBasedTraining on the epoch, for this sweep's mutations. `start_epoch`: the last
    perturbation epoch the whole population has passed (population_epoch; 0 for a new sweep): a resumed
    population waits for its next perturbation epoch, as it would have without the stop."""
    from ray.tune.experiment import Trial as TuneTrial
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

    last_epoch, interval = cfg.train.epochs, cfg.tune.perturbation_interval

    class HarnessPBT(PopulationBasedTraining):
        def on_trial_add(self, tune_controller, trial):
            super().on_trial_add(tune_controller, trial)
            state = self._trial_state[trial]
            state.last_perturbation_time = state.last_train_time = start_epoch

        def on_trial_result(self, tune_controller, trial, result):
            if result.get("epoch", 0) >= last_epoch:  # done: a copy now would only repeat its donor's result
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        def choose_trial_to_run(self, tune_controller):
            # Tune's synchronous PBT perturbs when a result finds every live trial at the sync epoch. When the
            # last trial short of it ends first (it stopped itself, failed, or reached its last epoch), no result
            # comes, and the others stay paused for ever (what hung a resumed sweep). Then: perturb them with
            # the results they wait with, as that last result would have; if that leaves none to run, let them
            # run on to the next perturbation epoch
            chosen = super().choose_trial_to_run(tune_controller)
            live = list(tune_controller.get_live_trials())
            if chosen is not None or not live or any(t.status != TuneTrial.PAUSED for t in live):
                return chosen
            states = [self._trial_state[t] for t in live]
            waiting = [t for t, s in zip(live, states) if s.last_result and s.last_perturbation_time < s.last_train_time]
            if waiting:
                super().on_trial_result(tune_controller, waiting[0], self._trial_state[waiting[0]].last_result)
            chosen = super().choose_trial_to_run(tune_controller)
            if chosen is None:
                self._next_perturbation_sync = max(s.last_train_time for s in states) + interval
                chosen = super().choose_trial_to_run(tune_controller)
            return chosen

        # _get_new_config is the hook Tune's own PB2 overrides. Tune gives the copying trial the donor's
        # whole config; the copying trial keeps its own id
        def _get_new_config(self, trial, trial_to_clone):
            config, operations = super()._get_new_config(trial, trial_to_clone)
            return {**config, "trial_id": trial.config["trial_id"]}, operations

    scheduler = HarnessPBT(time_attr="epoch", metric=metric, mode=mode, perturbation_interval=interval,
                           hyperparam_mutations={k: mutation(v) for k, v in cfg.tune.mutations.items()},
                           quantile_fraction=0.25, resample_probability=0.25, log_config=False,
                           # synchronous: the population is ranked once all of it has reached the epoch, so who
                           # copies whom does not depend on which trials happened to run first (a few CPUs or
                           # GPUs, many trials)
                           synch=True)
    scheduler._next_perturbation_sync = start_epoch + interval
    return scheduler


def rows_at(unit: list[Trial], results_dir: Path, epoch: int) -> dict[str, dict]:
    """Each member's epoch row at `epoch` (members that have one): what a unit resumed there reports again."""
    epochs = store.read_table(results_dir, "epochs")
    at = epochs[epochs["trial_id"].isin([t.trial_id for t in unit]) & (epochs["epoch"] == epoch)]
    return {row["trial_id"]: {k: v for k, v in row.items() if not pd.isna(v)} for row in at.to_dict("records")}


def population_epoch(completed: dict[str, int], interval: int) -> int:
    """The last perturbation epoch every unit has passed, from each unit's completed epochs (a resumed
    sweep; 0 for a new one): where synchronous PBT left the population when the sweep stopped."""
    return min(completed.values(), default=0) // interval * interval


def completed_epochs(units: dict[str, list[Trial]], results_dir: Path) -> dict[str, int]:
    """Unit id -> the epochs its members have completed (their epoch rows; 0 for a unit not started). The
    members of a pack train in step; a member with its row already (stopped early) is not counted."""
    epochs = store.read_table(results_dir, "epochs")
    last = epochs.groupby("trial_id")["epoch"].max().to_dict() if not epochs.empty else {}
    ended = store.recorded_statuses(results_dir, [t.trial_id for unit in units.values() for t in unit])
    out = {}
    for uid, unit in units.items():
        going = [t.trial_id for t in unit if ended.get(t.trial_id) in (None, Status.FAILED)] or [t.trial_id for t in unit]
        out[uid] = int(min(last.get(tid, 0) for tid in going))
    return out


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


def _donor(trial: Trial, position: int, members: list[dict]) -> dict:
    """The donor's member whose state a member takes: the one with its seed, else the one at its position
    (a pack split differently, a trial alone copying another seed's)."""
    same = [m for m in members if m["seed"] == trial.config.seed]
    return same[0] if same else members[position % len(members)]


def start(unit: list[Trial], tune_config: dict, results_dir: Path) -> tuple[list[Trial], dict[str, list[dict]]]:
    """The unit (a trial alone or a pack of one configuration's seeds) as Tune (re)starts it: the checkpoint
    Tune hands it installed (a donor unit's after a copy, its own after a pause: member by member, each
    member taking the donor's member of its seed), each member's schedule so far with this start's step,
    and the members with the config's current values. Members that have their row already (stopped
    early) are left as they are."""
    from ray import tune

    mutations = unit[0].config.tune.mutations
    values = _values(tune_config, mutations)
    ids = [t.trial_id for t in unit]
    recorded = store.recorded_statuses(results_dir, ids)
    schedules = {t.trial_id: read_schedule(checkpoint_dir(results_dir, t.trial_id)) for t in unit}
    given = tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as folder:
            saved = json.loads((Path(folder) / SCHEDULE).read_text())
            copy = saved["unit"] != ids  # a copy: its weights go on from the donor's, trained here
            for position, trial in enumerate(unit):
                if recorded.get(trial.trial_id) not in (None, Status.FAILED):
                    continue
                donor = _donor(trial, position, saved["members"])
                epoch = install(Path(folder) / donor["folder"], trial.trial_id, results_dir)
                schedule = donor["schedule"]
                if copy:
                    schedule = [*schedule, {"epoch": epoch, "trial": trial.trial_id, "config": values}]
                schedules[trial.trial_id] = schedule
    for trial in unit:
        schedule = schedules[trial.trial_id] or [{"epoch": 0, "trial": trial.trial_id, "config": values}]
        schedules[trial.trial_id] = schedule
        ckpt = checkpoint_dir(results_dir, trial.trial_id)
        ckpt.mkdir(parents=True, exist_ok=True)
        write_text(ckpt / SCHEDULE, json.dumps({"trial_id": trial.trial_id, "schedule": schedule}))
    return [with_values(t, schedules[t.trial_id][-1]["config"]) for t in unit], schedules


def perturbation_epoch(epoch: int, cfg) -> bool:
    """Whether PBT may act after this epoch: what a report then carries its snapshot for."""
    return epoch % cfg.tune.perturbation_interval == 0


@contextmanager
def snapshot(unit: list[Trial], ran: list[str], results_dir: Path, schedules: dict[str, list[dict]], epoch: int):
    """A folder, for as long as the context lasts, with what a unit that copies this one starts from: one
    folder per member that ran the epoch (`ran`, trial ids) with its harness checkpoint, and pbt.json
    listing them with their seeds and schedules."""
    seeds = {t.trial_id: t.config.seed for t in unit}
    with tempfile.TemporaryDirectory() as tmp:
        members = []
        for position, trial_id in enumerate(ran):
            ckpt, folder = checkpoint_dir(results_dir, trial_id), Path(tmp, f"member{position}")
            folder.mkdir()
            for name in (LAST, "best.pt"):
                if (ckpt / name).exists():
                    shutil.copy(ckpt / name, folder / name)
            members.append({"trial_id": trial_id, "seed": seeds[trial_id], "folder": folder.name,
                            "schedule": schedules[trial_id]})
        Path(tmp, SCHEDULE).write_text(json.dumps({"unit": [t.trial_id for t in unit], "epoch": epoch,
                                                   "members": members}))
        yield Path(tmp)


def report(metrics: dict, unit: list[Trial], ran: list[str], results_dir: Path, schedules: dict[str, list[dict]]) -> None:
    """Tell Tune one epoch's metrics (a trial's, or a pack's: harness.sweep.tune.pack_report), at a
    perturbation epoch with the unit's snapshot as its checkpoint."""
    from ray import tune

    if not perturbation_epoch(metrics["epoch"], unit[0].config):
        tune.report(metrics)
        return
    with snapshot(unit, ran, results_dir, schedules, metrics["epoch"]) as folder:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def report_from_worker(metrics: dict, trial: Trial, results_dir: Path, schedules: dict[str, list[dict]],
                       is_main: bool) -> None:
    """A data-parallel trial's report of one epoch, on every Ray Train worker: at a perturbation epoch rank
    0 attaches the trial's snapshot (Ray Train keeps it; the trial's Tune function hands it on to Tune)."""
    from ray import train

    if not (is_main and perturbation_epoch(metrics["epoch"], trial.config)):
        train.report(metrics)
        return
    with snapshot([trial], [trial.trial_id], results_dir, schedules, metrics["epoch"]) as folder:
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(folder))
