"""`python -m harness.sweep SWEEP.yaml`: see harness/sweep/cli.py."""

import os
import sys

from harness.sweep.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        os._exit(0)
