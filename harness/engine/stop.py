"""Stopping a trial mid-epoch when its sweep is told to stop (SLURM's time-limit warning, a preemption):
`StopRequest` is what the training loops ask before every step, and `TrialInterrupted` is what a trial
raises once it has saved where it stands (harness.engine.progress: `stopped.pt`), so that a resume
continues from that step, not from the last epoch's end.

    stop = StopRequest(results_dir / "_stop" / "host-1234")   # the sweep driver creates the file
    train_epoch(..., stop=stop)                               # returns early once the file exists
    if stop.fired: progress.save_stopped(...); raise TrialInterrupted(trial_id)

The request is a file, not a signal: trials run in Ray's worker processes, on any node, and the results
folder is the one place every one of them can see. A sweep driver's file is its own (host and pid), so
the array tasks sharing a results folder by claims stop one at a time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional


class TrialInterrupted(BaseException):
    """A trial stopped by its sweep's stop request, after saving where it stands; it has no row. A
    BaseException, like KeyboardInterrupt: the `except Exception` that records a failed trial lets it by."""

    def __init__(self, trial_ids: list[str]):
        super().__init__(f"stopped on request: {', '.join(trial_ids)}")
        self.trial_ids = trial_ids


class StopRequest:
    """Whether the stop file exists, looked up at most every `every` seconds: a clock read per step in
    the hot loop, a stat twice a second. Once seen, `fired` stays True."""

    def __init__(self, path: Optional[str | Path], every: float = 0.5):
        self.path = None if path is None else Path(path)
        self.every = every
        self.fired = False
        self._next_look = 0.0

    def __call__(self) -> bool:
        if self.fired or self.path is None:
            return self.fired
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + self.every
            self.fired = self.path.exists()
        return self.fired

    def __reduce__(self):  # sent to Ray's workers as its path: each process looks for itself
        return StopRequest, (self.path, self.every)


def request_stop(path: Path) -> None:
    """Ask every trial watching `path` to stop (the sweep driver, on a stop signal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
