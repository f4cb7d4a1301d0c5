"""Status and control of a sweep's SLURM jobs: `python -m harness.slurm status RESULTS_DIR` and
`python -m harness.slurm cancel RESULTS_DIR` (harness.slurm's main dispatches to main_status/main_cancel).

RESULTS_DIR is a sweep's results folder (results/<sweep>/). Every `--submit` appends one JSON line per
submitted job to RESULTS_DIR/slurm/jobs.jsonl (append_job):

    {"job_id": "123", "kind": "sweep" | "array" | "report", "submitted_at": "<iso time>",
     "script": "<path>", "array": N or null}

and these read it back:

    read_jobs(results_dir)      the jobs.jsonl records ([] when there is none)
    job_states(job_ids)         SLURM's view of each job and its array tasks: sacct (accounting, when the
                                cluster keeps it) merged with squeue (the controller's current view: it
                                knows jobs sacct has not recorded yet, and why a job pends); squeue alone
                                when sacct is unavailable (then a finished job drops out of it MinJobAge
                                after it ends, and its state is UNKNOWN)
    trial_counts(results_dir)   trials done, running, pending and failed, from the Parquet tables, the
                                checkpoints and the copy of the sweep file (RESULTS_DIR/sweep.yaml)
    status_text(results_dir)    one line per job / array task (state, elapsed, nodes, exit code, log),
                                then the trial counts
    cancel(results_dir)         scancel every job of jobs.jsonl that squeue still lists

This module does not import harness.slurm (which imports it): a job's log is where the rendered
script's `--output` puts it, RESULTS_DIR/slurm/<jobid>.out, or <jobid>_<task>.out for an array task.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from harness.config import ArgParser, ConfigError, load_sweep
from harness.provenance import SWEEP_COPY
from harness.store import read_table
from harness.sweep.claims import CLAIMS
from harness.vocabulary import FINISHED, Status

JOBS_FILE = "jobs.jsonl"  # in RESULTS_DIR/slurm/
KINDS = ("sweep", "array", "report")
SLURM_TIMEOUT_S = 60  # per squeue / sacct / scancel call
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "STAGE_OUT",
          "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT", "STOPPED", "RESV_DEL_HOLD")
# squeue -O fields; the job name last, so that a '|' in it cannot shift the others
SQUEUE_FIELDS = ("JobArrayID", "ArrayJobID", "State", "TimeUsed", "NodeList", "Reason", "exit_code", "Name")
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Elapsed", "NodeList", "Reason", "JobName")
DONE = tuple(s for s in FINISHED if s != Status.FAILED.value)  # completed, early_stopped, diverged, stalled


class SlurmError(RuntimeError):
    """A SLURM command is missing, failed or timed out (a one-line message)."""


# --------------------------------------------------------------------------------------------------
# jobs.jsonl


def jobs_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "slurm" / JOBS_FILE


def append_job(results_dir: str | Path, job_id: str | int, kind: str, script: Optional[str | Path],
               array: Optional[int] = None) -> dict[str, Any]:
    """Record one submitted job: one JSON line appended to RESULTS_DIR/slurm/jobs.jsonl, in one write to a
    file opened with O_APPEND (so lines of concurrent submits never interleave); returns the record.
    `script` None (null): a job submitted with --wrap, such as the report job."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    record = {"job_id": str(job_id), "kind": kind, "submitted_at": now, "script": str(script) if script is not None else None,
              "array": int(array) if array is not None else None}
    path = jobs_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)
    return record


def read_jobs(results_dir: str | Path) -> list[dict[str, Any]]:
    """The records of RESULTS_DIR/slurm/jobs.jsonl in submission order ([] when the file is missing).
    A line that is no job record (a write cut short) is skipped with a warning on stderr."""
    path = jobs_path(results_dir)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not str(record.get("job_id", "")).strip():
                raise ValueError("no job_id")
        except ValueError:
            print(f"harness.slurm: warning: {path}:{number}: not a job record, skipped", file=sys.stderr)
            continue
        jobs.append({**record, "job_id": str(record["job_id"])})
    return jobs


# --------------------------------------------------------------------------------------------------
# SLURM's view


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise SlurmError(f"{cmd[0]} not found on PATH (run this where SLURM's commands are, e.g. a login node)")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within {SLURM_TIMEOUT_S} s") from None
    except OSError as err:
        raise SlurmError(f"{cmd[0]}: {err}") from None


def _first_line(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()
    return text[0].strip()


def _base_id(job_id: str) -> str:
    """'14_3' -> '14', '14_[1-4%1]' -> '14', '13' -> '13'."""
    match = re.match(r"\d+", job_id)
    return match.group(0) if match else job_id


def _exit_code(raw: str) -> str:
    """squeue's exit_code is the wait status (768: exit 3); written as sacct writes it, 'code:signal'."""
    try:
        status = int(raw)
    except ValueError:
        return raw or "-"
    return f"{status >> 8}:{status & 0x7F}"


def squeue_rows(job_ids: list[str], states: str = "all") -> list[dict[str, str]]:
    """The controller's rows for these jobs (one per job, array task, or still-pending task range); every
    state with states='all' (a finished job stays listed for MinJobAge), else squeue's default states."""
    if not job_ids:
        return []
    cmd = ["squeue", "-h", "-j", ",".join(job_ids), "-O", ",".join(f"{f}:|" for f in SQUEUE_FIELDS)]
    if states:
        cmd[2:2] = ["-t", states]
    proc = _run(cmd)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # squeue -j with one id it no longer knows
            return []
        raise SlurmError(f"squeue failed: {_first_line(proc)}")
    rows = []
    for line in proc.stdout.splitlines():
        values = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(values) < len(SQUEUE_FIELDS):
            continue
        f = dict(zip(SQUEUE_FIELDS, values))
        state = f["State"].strip()
        running = state in ACTIVE
        rows.append({"job_id": f["JobArrayID"].strip(), "base": f["ArrayJobID"].strip() or _base_id(f["JobArrayID"]),
                     "name": f["Name"].rstrip("|").strip(), "state": state, "elapsed": f["TimeUsed"].strip(),
                     "nodes": f["NodeList"].strip() or "-", "reason": f["Reason"].strip(),
                     "exit_code": "-" if running else _exit_code(f["exit_code"].strip()), "source": "squeue"})
    return rows


def sacct_rows(job_ids: list[str]) -> tuple[list[dict[str, str]], Optional[str]]:
    """Accounting's rows for these jobs (allocations only: no steps), and None; or [] and why sacct could
    not tell (not on PATH, no accounting storage, the database down)."""
    if not job_ids:
        return [], None
    if shutil.which("sacct") is None:
        return [], "sacct not found on PATH"
    fields = list(SACCT_FIELDS)
    for _ in range(2):
        try:
            proc = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), f"--format={','.join(fields)}"])
        except SlurmError as err:
            return [], str(err)
        if proc.returncode == 0:
            break
        if "Reason" in fields and "invalid field" in proc.stderr.lower():  # an old sacct without Reason
            fields.remove("Reason")
            continue
        return [], f"sacct: {_first_line(proc)}"
    else:
        return [], f"sacct: {_first_line(proc)}"
    rows = []
    for line in proc.stdout.splitlines():
        values = line.split("|", len(fields) - 1)
        if len(values) < len(fields) or not values[0].strip():
            continue
        f = dict(zip(fields, values))
        job_id = f["JobID"].strip()
        state = f["State"].strip().split(" ")[0]  # "CANCELLED by 0" -> CANCELLED
        rows.append({"job_id": job_id, "base": _base_id(job_id), "name": f["JobName"].strip(), "state": state,
                     "elapsed": f["Elapsed"].strip(), "nodes": f["NodeList"].strip() or "-",
                     "reason": f.get("Reason", "").strip(), "source": "sacct",
                     "exit_code": "-" if state in ACTIVE else f["ExitCode"].strip() or "-"})
    return rows, None


def _order(row: dict[str, str]) -> tuple:
    task = row["job_id"][len(row["base"]):].lstrip("_")
    return (0, int(task), "") if task.isdigit() else (1 if task else -1, 0, task)


def job_states(job_ids: list[str], notes: Optional[list[str]] = None) -> dict[str, list[dict[str, str]]]:
    """SLURM's view of each job: {job id: [rows]}, one row for the job, or one per array task (and one for
    an array's tasks that have not started, such as '14_[2-9%2]'). A row: job_id, name, state, elapsed,
    nodes, reason, exit_code ('code:signal'; '-' while active) and source (sacct or squeue).

    squeue is asked for every state (the controller's current view, also of a job that ended less than
    MinJobAge ago); its rows replace sacct's for the same job or task, and sacct adds what squeue no longer
    lists. A job neither knows gets one row with state UNKNOWN. Why sacct could not be asked, if it
    could not, is appended to `notes`. SlurmError when squeue is missing or fails."""
    ids = list(dict.fromkeys(str(j) for j in job_ids))
    queued = squeue_rows(ids)
    accounted, why = sacct_rows(ids)
    if why is not None and notes is not None:
        notes.append(f"{why}: job states from squeue alone (it forgets a job MinJobAge after it ends)")
    states: dict[str, list[dict[str, str]]] = {}
    for job_id in ids:
        now = [r for r in queued if r["base"] == job_id]
        known = {r["job_id"] for r in now}
        # sacct's rows squeue does not have; its not-started range is stale when squeue lists the job
        older = [r for r in accounted if r["base"] == job_id and r["job_id"] not in known
                 and not (now and "[" in r["job_id"])]
        rows = sorted(now + older, key=_order)
        if not rows:
            rows = [{"job_id": job_id, "base": job_id, "name": "", "state": "UNKNOWN", "elapsed": "-", "nodes": "-",
                     "reason": "", "exit_code": "-", "source": "none"}]
        states[job_id] = rows
    return states


# --------------------------------------------------------------------------------------------------
# Trials


def trial_counts(results_dir: str | Path) -> dict[str, Any]:
    """{done, running, pending, failed, total} for the sweep in RESULTS_DIR: done has a finished status other
    than failed in trials.parquet (harness.vocabulary.FINISHED); failed, status failed; running, a
    `running` row, a claim by an array task (claims/<trial_id>), or a checkpoint folder (checkpoints/<trial_id>)
    or epochs rows without a finished row;
    pending, the rest of the sweep's trials (total: those of RESULTS_DIR/sweep.yaml). Without a readable
    sweep.yaml, total and pending are None and `note` says why."""
    results_dir = Path(results_dir)
    trials = read_table(results_dir, "trials")
    status = dict(zip(trials["trial_id"], trials["status"])) if not trials.empty else {}
    done = {t for t, s in status.items() if s in DONE}
    failed = {t for t, s in status.items() if s == Status.FAILED.value}
    running = {t for t, s in status.items() if s == Status.RUNNING.value}
    epochs = read_table(results_dir, "epochs")
    running |= set(epochs["trial_id"]) if not epochs.empty else set()
    checkpoints = results_dir / "checkpoints"
    if checkpoints.is_dir():
        running |= {p.name for p in checkpoints.iterdir() if p.is_dir()}
    claims = results_dir / CLAIMS  # held by an array task (--claim), maybe not started yet
    if claims.is_dir():
        running |= {p.name for p in claims.iterdir() if p.is_file() and not p.name.startswith(".")}
    running -= done | failed
    counts: dict[str, Any] = {"done": len(done), "running": len(running), "pending": None, "failed": len(failed),
                              "total": None}
    sweep_file = results_dir / SWEEP_COPY
    if not sweep_file.is_file():
        counts["note"] = f"no {SWEEP_COPY} in {results_dir}: the sweep's size is unknown"
        return counts
    try:
        counts["total"] = len(load_sweep(sweep_file).trials)
    except ConfigError as err:
        counts["note"] = f"the sweep's size is unknown: {err}"
        return counts
    counts["pending"] = max(counts["total"] - len(done) - len(running) - len(failed), 0)
    return counts


def trials_line(counts: dict[str, Any]) -> str:
    pending = "?" if counts["pending"] is None else counts["pending"]
    total = f"(of {counts['total']})" if counts["total"] is not None else f"({counts['note']})"
    return (f"trials: {counts['done']} done, {counts['running']} running, {pending} pending, "
            f"{counts['failed']} failed {total}")


# --------------------------------------------------------------------------------------------------
# Status and cancel


def log_path(results_dir: str | Path, job_id: str, kind: str = "sweep") -> Optional[Path]:
    """Where the log of a job or array task is (the rendered script's --output): slurm/<id>.out, or
    slurm/<id>_<task>.out (an array job's id alone: the pattern of its tasks' logs, slurm/<id>_*.out);
    None for a range of tasks that has not started."""
    if "[" in job_id:
        return None
    if kind == "array" and job_id.isdigit():
        job_id += "_*"
    return Path(results_dir) / "slurm" / f"{job_id}.out"


def _state_text(row: dict[str, str]) -> str:
    reason = row["reason"]
    quiet = ("RUNNING", "COMPLETED", "CANCELLED")  # a reason left from before they ran says nothing
    if reason and reason not in ("None", "NonZeroExitCode") and row["state"] not in quiet:
        return f"{row['state']} ({reason})"
    return row["state"]


def status_text(results_dir: str | Path) -> str:
    """The jobs of RESULTS_DIR/slurm/jobs.jsonl as SLURM sees them, one line per job or array task (job id,
    kind, state, elapsed, nodes, exit code, log), then the trial counts, then notes. SlurmError when
    squeue is missing or fails."""
    jobs = read_jobs(results_dir)
    kinds = {j["job_id"]: j.get("kind", "?") for j in jobs}
    notes: list[str] = []
    states = job_states(list(kinds), notes)
    table = [("job", "kind", "state", "elapsed", "nodes", "exit", "log")]
    for job_id, rows in states.items():
        for row in rows:
            log = log_path(results_dir, row["job_id"], kinds[job_id])
            table.append((row["job_id"], kinds[job_id], _state_text(row), row["elapsed"], row["nodes"],
                          row["exit_code"], str(log) if log else "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in table]
    lines.append(trials_line(trial_counts(results_dir)))
    if any(r["state"] == "UNKNOWN" for rows in states.values() for r in rows):
        notes.append("UNKNOWN: neither squeue nor sacct knows the job (it ended long ago, or on another cluster)")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def cancel(results_dir: str | Path) -> list[str]:
    """scancel every job of RESULTS_DIR/slurm/jobs.jsonl that squeue still lists (pending, running, ...);
    the ids cancelled (an array job's id cancels all its tasks). Prints what it did; nothing to cancel
    is no error. SlurmError when squeue or scancel is missing or fails."""
    jobs = read_jobs(results_dir)
    kinds = {j["job_id"]: j.get("kind", "?") for j in jobs}
    rows = squeue_rows(list(kinds), states="")  # squeue's default: the jobs not finished
    active = {}
    for row in rows:
        if row["base"] in kinds and row["state"] in ACTIVE:
            active.setdefault(row["base"], set()).add(row["state"])
    ids = [j for j in kinds if j in active]
    if not ids:
        print(f"nothing to cancel: none of the {len(kinds)} job(s) of {jobs_path(results_dir)} is pending or running")
        return []
    proc = _run(["scancel", *ids])
    if proc.returncode != 0:
        raise SlurmError(f"scancel {' '.join(ids)} failed: {_first_line(proc)}")
    for job_id in ids:
        print(f"cancelled job {job_id} ({kinds[job_id]}, {'/'.join(sorted(active[job_id]))})")
    return ids


def _fail(message: str) -> int:
    print(f"harness.slurm: {message}", file=sys.stderr)
    return 2


def _parse(argv: Optional[list[str]], command: str, description: str):
    p = ArgParser(prog=f"python -m harness.slurm {command}", description=description)
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="the sweep's results folder, e.g. results/quickstart")
    return p.parse_args(argv)


def _check_dir(results_dir: str) -> Optional[str]:
    """Why RESULTS_DIR cannot be looked at, or None."""
    path = Path(results_dir)
    if not path.is_dir():
        return f"{results_dir}: no such results folder"
    if not jobs_path(path).is_file():
        return f"{results_dir}: no slurm/{JOBS_FILE} (no job was submitted for it with harness.slurm --submit)"
    return None


def main_status(argv: Optional[list[str]] = None) -> int:
    """`python -m harness.slurm status RESULTS_DIR`: print status_text; 2 with one line on stderr for a
    folder without jobs or when SLURM's commands are missing or fail."""
    args = _parse(argv, "status", "Show the SLURM jobs of a sweep's results folder and its trial counts.")
    if (why := _check_dir(args.results_dir)) is not None:
        return _fail(why)
    try:
        text = status_text(args.results_dir)
    except SlurmError as err:
        return _fail(str(err))
    print(text)
    return 0


def main_cancel(argv: Optional[list[str]] = None) -> int:
    """`python -m harness.slurm cancel RESULTS_DIR`: scancel the sweep's pending and running jobs; 2 with one
    line on stderr for a folder without jobs or when SLURM's commands are missing or fail."""
    args = _parse(argv, "cancel", "Cancel the pending and running SLURM jobs of a sweep's results folder.")
    if (why := _check_dir(args.results_dir)) is not None:
        return _fail(why)
    try:
        cancel(args.results_dir)
    except SlurmError as err:
        return _fail(str(err))
    return 0
