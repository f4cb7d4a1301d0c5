"""`python -m harness.sweep SWEEP.yaml`: see harness/sweep/cli.py."""

import os
import signal
import sys

if __name__ == "__main__":
    # SLURM's time-limit warning (USR1) or a preemption (TERM) while the imports below take their seconds:
    # nothing has run yet, so exit as an interrupted sweep (3: the sbatch script requeues); main() then
    # installs the handlers that stop running trials
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda *_: os._exit(3))

from harness.sweep.cli import main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        os._exit(0)
