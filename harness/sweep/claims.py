"""Trials claimed one batch at a time from a shared results folder (`python -m harness.sweep --claim`):
the way SLURM array tasks share a sweep so that a task that finishes early takes more work.

A claim is a file RESULTS_DIR/claims/<trial_id>, created atomically (O_CREAT | O_EXCL: of several
processes, exactly one gets it), holding who claimed it: the SLURM job (SLURM_JOB_ID, unique per array
task), the host and the pid. A process claims as many trials as its Ray cluster runs at once, runs them
(harness.sweep.tune.run_on_tune: packed as usual), drops its claims, and claims again, until no trial is
left. A claim whose owner has ended (SLURM no longer lists its job as running, or, outside SLURM, its
pid is gone from this host) is released, and its trial (with its checkpoint) goes to whoever claims
next; a process that finds only trials claimed by live owners waits for them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from harness import store
from harness.config import Trial

CLAIMS = "claims"
LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
               "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED"}
WAIT_SECONDS = 5.0  # between looks at other owners' claims, while only they hold trials


def owner() -> dict:
    """Who claims: this SLURM job (array task), host and pid."""
    return {"job": os.environ.get("SLURM_JOB_ID"), "host": socket.gethostname(), "pid": os.getpid()}


def claim_path(results_dir: Path, trial_id: str) -> Path:
    return results_dir / CLAIMS / trial_id


def try_claim(results_dir: Path, trial_id: str, me: dict) -> bool:
    """Claim a trial; False when another process holds it."""
    path = claim_path(results_dir, trial_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    return True


def read_claim(results_dir: Path, trial_id: str) -> Optional[dict]:
    try:
        return json.loads(claim_path(results_dir, trial_id).read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # being written right now: its owner is alive
        return {"job": None, "host": None, "pid": None}


def release(results_dir: Path, trial_ids: list[str]) -> None:
    for tid in trial_ids:
        claim_path(results_dir, tid).unlink(missing_ok=True)


def slurm_jobs_alive(job_ids: set[str]) -> set[str]:
    """The jobs among `job_ids` that SLURM still lists as live (pending, running, ...)."""
    if not job_ids:
        return set()
    proc = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%A %T", "-j", ",".join(sorted(job_ids))],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        return set(job_ids)  # SLURM cannot say now: take them as alive, look again later
    return {job for job, state in (line.split() for line in proc.stdout.splitlines() if line.strip())
            if state in LIVE_STATES}


def owner_alive(claim: dict, slurm_alive: set[str]) -> bool:
    if claim.get("job"):
        return claim["job"] in slurm_alive
    if claim.get("host") == socket.gethostname() and claim.get("pid"):
        try:
            os.kill(int(claim["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return True  # another host outside SLURM: nothing to ask


def release_dead_claims(results_dir: Path, trial_ids: list[str]) -> list[str]:
    """Release the claims among `trial_ids` whose owner has ended; returns those trial ids."""
    claims = {tid: c for tid in trial_ids if (c := read_claim(results_dir, tid)) is not None}
    jobs = {c["job"] for c in claims.values() if c.get("job")}
    alive = slurm_jobs_alive(jobs) if jobs else set()
    dead = [tid for tid, c in claims.items() if not owner_alive(c, alive)]
    release(results_dir, dead)
    return dead


def run_claimed(trials: list[Trial], results_dir: Path, batch: int, run: Callable[[list[Trial]], dict[str, str]],
                say: Callable[[str], None] = print) -> dict[str, str]:
    """Claim up to `batch` of `trials` that are neither finished nor claimed, `run` them, drop the claims,
    and again, until every trial is finished (by anyone). Returns trial_id -> status of those run here."""
    me, statuses = owner(), {}
    while True:
        finished = store.finished_trial_ids(results_dir)
        left = [t for t in trials if t.trial_id not in finished]
        if not left:
            return statuses
        freed = release_dead_claims(results_dir, [t.trial_id for t in left])
        if freed:
            say(f"released {len(freed)} claim(s) of ended job(s): {', '.join(freed[:5])}"
                + (" ..." if len(freed) > 5 else ""))
        mine = []
        for t in left:
            if len(mine) == batch:
                break
            if try_claim(results_dir, t.trial_id, me):
                mine.append(t)
        if not mine:  # every trial left is being run by a live owner: wait, it may end without them
            time.sleep(WAIT_SECONDS)
            continue
        say(f"claimed {len(mine)} trial(s), {len(left) - len(mine)} left to others or later")
        try:
            statuses.update(run(mine))
        finally:
            release(results_dir, [t.trial_id for t in mine])
