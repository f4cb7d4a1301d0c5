"""The sweep's progress on the terminal: trials done / running / pending / failed, the best so far,
elapsed time and ETA, as one live line on a terminal or a line per finished trial otherwise."""

from __future__ import annotations

import json
import math
import os
import sys
import time

from harness.vocabulary import Status, format_seconds, lower_is_better

MEMBERS = "pack_members"  # a pack's Tune result: JSON {trial_id: {"status": "" or how it stopped, metrics...}}


class Progress:
    """Trials done / running / pending / failed, best so far, elapsed and ETA: one live line on a
    terminal, a line per finished trial otherwise."""

    def __init__(self, total: int, metric: str, stream=None):
        self.total, self.metric = total, metric
        self._stream = stream  # None: sys.stdout at the time of writing (Tune pickles this object)
        self.started = time.time()
        self.running: set[str] = set()
        self.units: set[str] = set()  # Tune trials (packs or trials alone) running now
        self.peak_units = 0  # most Tune trials running at once
        self.done: dict[str, str] = {}  # trial_id -> status
        self.best: tuple[float, str] = (-math.inf, "")
        self.live = self.stream.isatty()
        self.interrupted: str | None = None  # the stop signal's name (harness.sweep.tune.StopSignals)
        self._last_draw = 0.0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def __getstate__(self):
        return {**self.__dict__, "_stream": None}

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.draw()

    def result(self, unit: str, result: dict) -> None:
        """A Tune result of `unit`: one trial's epoch, or a pack's (each member's metrics and whether it stopped)."""
        if MEMBERS not in result:
            self.epoch(unit, result)
            return
        for tid, member in json.loads(result[MEMBERS]).items():
            self.epoch(tid, member)
            if member.get("status") and tid not in self.done:
                self.finish(tid, member["status"])

    def unit_started(self, unit: str) -> None:
        self.units.add(unit)
        self.peak_units = max(self.peak_units, len(self.units))

    def unit_ended(self, unit: str) -> None:
        self.units.discard(unit)

    def epoch(self, trial_id: str, row: dict) -> None:
        value = row.get(self.metric)
        if value is not None and math.isfinite(value):
            score = -value if lower_is_better(self.metric) else value
            if score > self.best[0]:
                self.best = (score, trial_id)
        self.draw()

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.done[trial_id] = status
        if not self.live:
            print(f"[{len(self.done)}/{self.total}] {trial_id}: {status}  |  {self.line()}", file=self.stream, flush=True)
        self.draw(force=True)

    def line(self) -> str:
        failed = sum(s == Status.FAILED for s in self.done.values())
        pending = self.total - len(self.done) - len(self.running)
        elapsed = time.time() - self.started
        eta = elapsed / len(self.done) * (self.total - len(self.done)) if self.done else math.nan
        best = ""
        if self.best[1]:
            value = -self.best[0] if lower_is_better(self.metric) else self.best[0]
            best = f" | best {self.metric} {value:.4f} ({self.best[1]})"
        return (f"{len(self.done)}/{self.total} done, {len(self.running)} running, {pending} pending, {failed} failed"
                f" | {format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}{best}")

    def draw(self, force: bool = False) -> None:
        if not self.live or (not force and time.time() - self._last_draw < 0.2):
            return
        self._last_draw = time.time()
        width = os.get_terminal_size(self.stream.fileno()).columns if self.live else 200
        print("\r\033[K" + self.line()[: width - 1], end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=self.stream)
