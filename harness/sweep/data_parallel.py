"""A data-parallel trial is a Ray Train run (TorchTrainer, Accelerate in each worker) inside a Ray Tune
trial. What is here is the glue between the two, which Ray leaves to the user:

- `Relay`: rank 0's report of each epoch reaches the Tune trial's own thread, which tells Tune, with the
  checkpoint a scheduler needs (HyperBand pauses and PBT copies only trials that report a Tune
  checkpoint; Ray's TuneReportCallback sends its path as a metric). Rank 0 waits for Tune to take each
  epoch before it trains on: a trial Tune pauses, copies or stops there trains no further.
- `trainable`: the Tune trainable for these trials. When Tune ends one (a pause, a copy, a stop), its
  cleanup aborts the Train run, so that the run's workers and their CPUs and GPUs go back at once. Tune
  only stops the trial's own actor, and that actor cannot exit while the Train run it started goes on
  (the run then holds its placement group until it finishes by itself, or for ever if it waits on Tune).

    relay = Relay()
    trainer = TorchTrainer(loop, ..., run_config=RunConfig(callbacks=[relay.callback()]))
    relay.run(trainer, tell_tune)   # in the Tune trial: trainer.fit(), each epoch handed to tell_tune
    # in `loop`, on rank 0 after each train.report(...): relay.wait_for_tune()
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

ABORT_TIMEOUT = 60.0  # seconds for the Train controller to abort a run (it gives its workers 5, then kills them)

_RUNNING: set["Relay"] = set()  # the relays running in this process (one: a Tune trial per actor)


class Relay:
    """Rank 0's epochs, from the Train controller to the Tune trial's thread (`run`), and Tune's go-ahead
    back to rank 0 (`wait_for_tune`). Lives in the Tune trial; the Train side holds only its queues."""

    def __init__(self):
        from ray.util.queue import Queue

        self.epochs = Queue(actor_options={"num_cpus": 0})  # (metrics, checkpoint path, controller handle)
        self.answers = Queue(actor_options={"num_cpus": 0})  # one per epoch, once Tune has taken it
        self.controller = None
        self._fit: Optional[threading.Thread] = None

    def callback(self):
        """The Ray Train callback (it runs in the Train controller) that puts each report on `epochs`."""
        from ray.train import UserCallback

        epochs = self.epochs

        class ToTune(UserCallback):
            def after_report(self, run_context, metrics, checkpoint):
                import ray

                epochs.put((metrics[0], checkpoint.path if checkpoint else None,
                            ray.get_runtime_context().current_actor))

        return ToTune()

    def wait_for_tune(self) -> None:
        """On rank 0, after its report: until Tune has taken the epoch."""
        self.answers.get()

    def __getstate__(self):  # rank 0's copy (in the loop's closure): the queues only
        return {"epochs": self.epochs, "answers": self.answers, "controller": None, "_fit": None}

    def run(self, trainer, tell_tune: Callable[[dict, Optional[str]], None]) -> None:
        """trainer.fit() in a thread, while this thread (the Tune trial's) hands each epoch to
        `tell_tune(metrics, checkpoint path or None)`. Tune ends the trial by raising there (SystemExit),
        after `end` has aborted the Train run (`trainable`'s cleanup)."""
        from queue import Empty

        outcome: dict = {}

        def fit():
            try:
                trainer.fit()
            except BaseException as err:  # noqa: BLE001 - raised in the Tune trial's thread below
                outcome["error"] = err

        self._fit = threading.Thread(target=fit, daemon=True)
        _RUNNING.add(self)
        try:
            self._fit.start()
            while self._fit.is_alive() or not self.epochs.empty():
                try:
                    metrics, folder, self.controller = self.epochs.get(timeout=0.5)
                except Empty:
                    continue
                tell_tune(metrics, folder)
                self.answers.put(True)
        finally:
            _RUNNING.discard(self)
        self._fit.join()
        if "error" in outcome:
            raise outcome["error"]

    def end(self) -> None:
        """Abort the Train run (its workers end, its placement group goes) and wait for trainer.fit()."""
        import ray

        if self.controller is not None:
            try:
                ray.get(self.controller.abort.remote(), timeout=ABORT_TIMEOUT)
            except Exception:  # noqa: BLE001 - the controller exits as it aborts (ActorDiedError, ActorUnavailable)
                pass
        if self._fit is not None:
            self._fit.join(timeout=ABORT_TIMEOUT)


def end_runs() -> None:
    """End the Train runs of the relays running in this process."""
    for relay in list(_RUNNING):
        relay.end()


def trainable(fn: Callable[[dict], None]):
    """Tune's trainable class for `fn` (a function trainable running data-parallel trials) whose cleanup,
    run when Tune ends the trial, first ends the Train runs this process still runs (`Relay.end`)."""
    from ray.tune.trainable.function_trainable import wrap_function

    class DataParallelTrial(wrap_function(fn)):
        def cleanup(self):
            # this class reaches the worker pickled by value, with copies of the globals it names: the
            # relays are the module's own
            from harness.sweep.data_parallel import end_runs

            end_runs()
            super().cleanup()

    return DataParallelTrial

