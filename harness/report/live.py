"""The live report: while a sweep runs, RESULTS_DIR/report/ is rewritten every few finished trials, so
`report/index.html` can be opened at any time and shows what has finished so far.

A rewrite runs in one background thread (the Tune driver's loop never waits for matplotlib); a new one
starts only when the last has ended. Every file of the report is written atomically (harness.files),
and the page embeds its figures, so an open page is always a whole report of some moment. The final
report, written by the sweep when it ends, waits for a rewrite in flight.

    live = LiveReport(results_dir, total=48)     # every max(5, total // 10) trials, >= 30 s apart
    live.finished(["trial-a", "trial-b"])          # from the sweep's on_finished hook
    live.close()
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Optional, TextIO

MIN_SECONDS = 30.0  # between automatic rewrites: a report costs seconds of CPU the trials want


def default_every(total: int) -> int:
    return max(5, total // 10)


class LiveReport:
    """Rewrites the report every `every` finished trials; `every` None: default_every(total) and at
    least MIN_SECONDS apart; an explicit `every` has no time gate."""

    def __init__(self, results_dir: Path, total: int, every: Optional[int] = None, stream: Optional[TextIO] = None):
        self.results_dir = Path(results_dir)
        self.total = total
        self.every = every or default_every(total)
        self.min_seconds = MIN_SECONDS if every is None else 0.0
        self.stream = stream or sys.stdout
        self.done = 0
        self.reported_at = 0  # trials finished at the last rewrite's start
        self.last_time = time.monotonic()
        self.thread: Optional[threading.Thread] = None
        self.rewrites = 0

    def finished(self, trial_ids: list[str]) -> None:
        self.done += len(trial_ids)
        due = self.done - self.reported_at >= self.every and time.monotonic() - self.last_time >= self.min_seconds
        if due and self.done < self.total and not (self.thread and self.thread.is_alive()):
            self.reported_at, self.last_time = self.done, time.monotonic()
            self.thread = threading.Thread(target=self._write, args=(self.done,), daemon=True)
            self.thread.start()

    def _write(self, done: int) -> None:
        from harness.report.build import write_report

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a figure that fails now is reported by the final report
                out = write_report(self.results_dir)
        except Exception as err:  # noqa: BLE001 - a live report never stops the sweep
            print(f"live report skipped ({type(err).__name__}: {err})", file=self.stream, flush=True)
            return
        self.rewrites += 1
        print(f"report updated ({done}/{self.total} trials): {out / 'index.html'}", file=self.stream, flush=True)

    def close(self) -> None:
        """Wait for a rewrite in flight (the final report comes next)."""
        if self.thread is not None:
            self.thread.join()
