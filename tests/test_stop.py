"""A stop request (harness.engine.stop) interrupts a trial or a pack mid-epoch: it saves where it stands
(stopped.pt, stopped.json: the epoch and step) and raises TrialInterrupted with no row; run again, it
continues from that step and ends exactly where an uninterrupted run ends (augmentation, dropout and a
per-batch schedule included). A pack whose members stopped at different points goes back to their last
epoch checkpoints. The sweep driver's side (SIGUSR1 -> the stop file -> exit 3 -> --resume) is in
tests/test_resume.py and, on SLURM, tests/test_slurm.py."""

import json
import pickle

import pytest

from harness import store
from harness.config import load_sweep
from harness.engine.stop import StopRequest, TrialInterrupted, request_stop
from harness.packed_trial import run_pack
from harness.trial import run_trial

ONE_SPLIT = ["dataset.split_seed=43"]
# augmentation, dropout and a per-batch schedule: the RNG and schedule state a mid-epoch resume must carry
HARD = [*ONE_SPLIT, "train.epochs=3", "dataset.augment=standard", "model.dropout=0.3", "scheduler.name=onecycle",
        "early_stopping.enabled=false", "model.activation=relu", "optimizer.name=adam", "optimizer.lr=0.01"]
EXACT = ("val_loss", "val_acc", "train_acc", "lr")


class StopAfter:
    """A stop request that fires at its `calls`-th question (None: never; it counts them): the loops ask
    once before each step, so the test picks the step."""

    def __init__(self, calls=None):
        self.calls, self.limit, self.fired = 0, calls, False

    def __call__(self) -> bool:
        self.calls += 1
        self.fired = self.fired or (self.limit is not None and self.calls >= self.limit)
        return self.fired


def assert_same_epochs(resumed, whole):
    assert [r["epoch"] for r in resumed.epochs] == [r["epoch"] for r in whole.epochs]
    for r, w in zip(resumed.epochs, whole.epochs):
        for key in EXACT:
            assert r[key] == w[key], (r["epoch"], key)
        # the interrupted epoch's loss is summed in two parts: equal up to float64 rounding
        assert r["train_loss"] == pytest.approx(w["train_loss"], rel=1e-12, abs=1e-12)
    for key in ("test_loss", "test_acc", "best_epoch", "status"):
        assert resumed.row[key] == whole.row[key], key


def test_stop_request_looks_for_its_file_and_travels_as_its_path(tmp_path):
    path = tmp_path / "_stop" / "host-1"
    stop = StopRequest(path, every=0.0)
    assert not stop() and not stop.fired
    request_stop(path)
    assert stop() and stop.fired
    path.unlink()
    assert stop()  # once seen, it stays fired
    copy = pickle.loads(pickle.dumps(StopRequest(path, every=0.25)))
    assert copy.path == path and copy.every == 0.25 and not copy.fired
    assert not StopRequest(None)()


def test_a_trial_stopped_mid_epoch_continues_from_that_step(tmp_path):
    trial = load_sweep("sweeps/quickstart.yaml", HARD).trials[0]
    counter = StopAfter()
    whole = run_trial(trial.config, trial.trial_id, tmp_path / "whole", trial.point, stop=counter)
    per_epoch = counter.calls // 3
    assert counter.calls == 3 * per_epoch and per_epoch >= 8

    cut = tmp_path / "cut"
    with pytest.raises(TrialInterrupted) as stopped:
        run_trial(trial.config, trial.trial_id, cut, trial.point, stop=StopAfter(per_epoch + per_epoch // 2 + 1))
    assert stopped.value.trial_ids == [trial.trial_id]
    ckpt = cut / "checkpoints" / trial.trial_id
    assert json.loads((ckpt / "stopped.json").read_text()) == {"epoch": 2, "step": per_epoch // 2}
    assert store.read_table(cut, "trials").empty  # no row: it is not finished, nor failed
    assert list(store.read_table(cut, "epochs")["epoch"]) == [1]

    resumed = run_trial(trial.config, trial.trial_id, cut, trial.point, stop=StopAfter())
    assert_same_epochs(resumed, whole)
    assert list(store.read_table(cut, "epochs")["epoch"]) == [1, 2, 3]
    assert not ckpt.exists()


def test_a_trial_stopped_twice_in_one_epoch_and_at_an_epoch_start(tmp_path):
    trial = load_sweep("sweeps/quickstart.yaml", HARD).trials[1]
    counter = StopAfter()
    whole = run_trial(trial.config, trial.trial_id, None, trial.point, stop=counter)
    per_epoch = counter.calls // 3
    ckpt = tmp_path / "checkpoints" / trial.trial_id
    # step 3 of epoch 1, then 2 steps more: step 5; then at the very start of epoch 3 (epoch 2's row saved)
    for calls, mark in ((4, (1, 3)), (3, (1, 5)), (per_epoch - 5 + per_epoch + 1, (3, 0))):
        with pytest.raises(TrialInterrupted):
            run_trial(trial.config, trial.trial_id, tmp_path, trial.point, stop=StopAfter(calls))
        assert tuple(json.loads((ckpt / "stopped.json").read_text()).values()) == mark
    resumed = run_trial(trial.config, trial.trial_id, tmp_path, trial.point)
    assert_same_epochs(resumed, whole)


def test_a_pack_stopped_mid_epoch_continues_from_that_step(tmp_path):
    trials = load_sweep("sweeps/quickstart.yaml", HARD).trials[:3]
    counter = StopAfter()
    whole = run_pack(trials, tmp_path / "whole", stop=counter)
    per_epoch = counter.calls // 3
    with pytest.raises(TrialInterrupted) as stopped:
        run_pack(trials, tmp_path / "cut", stop=StopAfter(2 * per_epoch + 3))
    assert stopped.value.trial_ids == [t.trial_id for t in trials]
    for t in trials:
        mark = json.loads((tmp_path / "cut" / "checkpoints" / t.trial_id / "stopped.json").read_text())
        assert mark == {"epoch": 3, "step": 2}
    resumed = run_pack(trials, tmp_path / "cut")
    for r, w in zip(resumed, whole):
        assert_same_epochs(r, w)


def test_members_stopped_at_different_steps_go_back_to_their_epoch_checkpoints(tmp_path, monkeypatch):
    import harness.packed_trial

    monkeypatch.setattr(harness.packed_trial, "SAVE_EVERY", 0.0)  # a checkpoint every epoch
    trials = load_sweep("sweeps/quickstart.yaml", HARD).trials[:2]
    counter = StopAfter()
    whole = run_pack(trials, None, stop=counter)
    per_epoch = counter.calls // 3
    for t, calls in ((trials[0], per_epoch + 3), (trials[1], per_epoch + 6)):  # each alone, a different step
        with pytest.raises(TrialInterrupted):
            run_pack([t], tmp_path, stop=StopAfter(calls))
    ran = []
    resumed = run_pack(trials, tmp_path, on_pack_epoch=lambda closed: ran.append(closed[0][1]["epoch"]))
    assert ran == [2, 3]  # both went back to the end of epoch 1, and ran epoch 2 from its start together
    for r, w in zip(resumed, whole):
        assert_same_epochs(r, w)
