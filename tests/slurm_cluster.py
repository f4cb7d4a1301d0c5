"""Whether a SLURM cluster is up here (`bash .ci/start-slurm.sh` starts one on localhost): the skip
condition of every test that submits real jobs."""

import shutil
import subprocess

import pytest


def slurm_running() -> bool:
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in proc.stdout.split())


needs_slurm = pytest.mark.skipif(not slurm_running(),
                                 reason="no SLURM cluster is running here (start one with bash .ci/start-slurm.sh)")
