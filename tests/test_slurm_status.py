"""harness.slurm_status (`python -m harness.slurm status|cancel RESULTS_DIR`): jobs.jsonl, trial counts from
real Parquet rows, and real jobs on a SLURM cluster when one is running (`bash .ci/start-slurm.sh` starts
one on localhost): their states, array tasks, cancelling, and the one-line errors on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import store
from harness.config import load_sweep
from harness.slurm_status import (
    append_job,
    cancel,
    job_states,
    main_cancel,
    main_status,
    read_jobs,
    status_text,
    trial_counts,
)
from harness.sweep.claims import try_claim
from slurm_cluster import needs_slurm

REPO = Path(__file__).resolve().parent.parent

SWEEP = """\
name: status-tiny
dataset: {name: synthetic, num_train: 64, num_val: 32, num_test: 32, shape: [1, 8, 8], num_classes: 2}
model: {arch: mlp, widths: [16]}
train: {epochs: 1, batch_size: 32}
health: {enabled: false}
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
seeds: [0, 1]
grid:
  model.activation: [relu, tanh, gelu]
"""




def results_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """A results folder as a sweep of 6 trials leaves it part way: sweep.yaml; 2 trials done (completed,
    early_stopped), 1 failed, 1 with epochs rows only and 1 with a checkpoint only (both running), 1 not
    started; the done trial also still has a checkpoint folder. Returns (folder, trial ids)."""
    results = tmp_path / "status-tiny"
    results.mkdir()
    (results / "sweep.yaml").write_text(SWEEP)
    trials = load_sweep(results / "sweep.yaml").trials
    ids = [t.trial_id for t in trials]
    store.write_schema(results, [t.config for t in trials])

    def row(i: int, status: str) -> dict:
        t = trials[i]
        return {"trial_id": t.trial_id, "sweep": "status-tiny", "status": status, "config": t.config.model_dump_json(),
                "point": json.dumps(t.point, sort_keys=True), "epochs_run": 1, "error": None, **t.config.flat()}

    epoch = {"epoch": 1, "train_loss": 0.7, "train_acc": 0.5, "val_loss": 0.69, "val_acc": 0.5, "lr": 0.01}
    store.write_trial(results, ids[0], row(0, "completed"), [{"trial_id": ids[0], **epoch}])
    store.write_trial(results, ids[1], row(1, "early_stopped"), [{"trial_id": ids[1], **epoch}])
    store.write_part(results, "trials", ids[2], [{**row(2, "failed"), "error": "RuntimeError: boom", "epochs_run": 0}])
    store.write_part(results, "epochs", ids[3], [{"trial_id": ids[3], **epoch}])
    for i in (0, 4):
        (results / "checkpoints" / ids[i]).mkdir(parents=True)
    return results, ids


# --------------------------------------------------------------------------------------------------
# Without SLURM


def test_jobs_file_round_trip(tmp_path, capsys):
    assert read_jobs(tmp_path) == []
    append_job(tmp_path, 101, "sweep", tmp_path / "a.sbatch")
    append_job(tmp_path, "102", "array", "b.sbatch", array=4)
    path = tmp_path / "slurm" / "jobs.jsonl"
    path.write_text(path.read_text() + '{"job_id": "10')  # a write cut short: skipped with a warning
    jobs = read_jobs(tmp_path)
    assert [(j["job_id"], j["kind"], j["array"]) for j in jobs] == [("101", "sweep", None), ("102", "array", 4)]
    assert jobs[0]["script"] == str(tmp_path / "a.sbatch") and re.match(r"\d{4}-\d\d-\d\dT", jobs[0]["submitted_at"])
    assert "jobs.jsonl:3: not a job record" in capsys.readouterr().err
    with pytest.raises(ValueError, match="kind"):
        append_job(tmp_path, 103, "other", "c.sbatch")


def test_trial_counts(tmp_path):
    results, ids = results_folder(tmp_path)
    assert trial_counts(results) == {"done": 2, "running": 2, "pending": 1, "failed": 1, "total": 6}
    (results / "sweep.yaml").unlink()
    counts = trial_counts(results)
    assert [counts[k] for k in ("done", "running", "failed", "pending", "total")] == [2, 2, 1, None, None]
    assert "sweep.yaml" in counts["note"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert trial_counts(empty)["done"] == 0
    # an array task's claims (--claim): a claimed trial is running even before it has a checkpoint; a finished
    # one that is still claimed (its task has not dropped the claim yet) is done
    (results / "sweep.yaml").write_text(SWEEP)
    for tid in (ids[5], ids[0]):
        assert try_claim(results, tid, {"job": "7_1", "host": "vm", "pid": 1})
    assert trial_counts(results) == {"done": 2, "running": 3, "pending": 0, "failed": 1, "total": 6}


@pytest.mark.parametrize("command", ["status", "cancel"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, command):
    """Run as a command line would: no traceback, one line on stderr, exit 2."""
    (tmp_path / "nojobs").mkdir()
    with_jobs = tmp_path / "with-jobs"
    append_job(with_jobs, 1, "sweep", "x.sbatch")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    cases = [(str(tmp_path / "missing"), None, "no such results folder"),
             (str(tmp_path / "nojobs"), None, "no slurm/jobs.jsonl"),
             (str(with_jobs), str(empty_bin), "squeue not found on PATH")]  # no SLURM commands on PATH
    for folder, path, message in cases:
        env = {"PATH": path} if path else None
        code = (f"import sys; from harness.slurm_status import main_{command}; "
                f"sys.exit(main_{command}([{folder!r}]))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env=env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("harness.slurm: ") and message in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_status(["a", "b"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------------------------------
# Real jobs (a SLURM cluster must be up)


def sbatch(*args: str) -> str:
    proc = subprocess.run(["sbatch", "--parsable", "--time=2", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def poll(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}")
        time.sleep(1)
    return result


def job_line(text: str, job_id: str) -> list[str]:
    """The columns of job `job_id`'s line of status_text."""
    return next((line.split() for line in text.splitlines() if line.split()[:1] == [job_id]), [])


@needs_slurm
def test_status_and_cancel_real_jobs(tmp_path, capsys):
    results, _ = results_folder(tmp_path)
    logs = results / "slurm"
    logs.mkdir()
    jobs = []
    try:
        sleeper = sbatch("--job-name=status-sleep", f"--output={logs / '%j.out'}", "--wrap", "sleep 300")
        jobs.append(sleeper)
        array = sbatch("--job-name=status-array", "--array=0-1", f"--output={logs / '%A_%a.out'}", "--wrap", "sleep 1")
        jobs.append(array)
        append_job(results, sleeper, "sweep", "sleep.sbatch")
        append_job(results, array, "array", "array.sbatch", array=2)

        assert main_status([str(results)]) == 0
        out = capsys.readouterr().out
        assert job_line(out, sleeper)[1:3] in (["sweep", "RUNNING"], ["sweep", "PENDING"])
        assert any(line.startswith(f"{array}_") and " array " in line for line in out.splitlines())
        assert "trials: 2 done, 2 running, 1 pending, 1 failed (of 6)" in out.splitlines()
        sacct = subprocess.run(["sacct", "-n", "-X", "-j", sleeper], capture_output=True, text=True)
        if sacct.returncode != 0:  # no accounting storage (as .ci/start-slurm.sh configures): said once
            assert len([line for line in out.splitlines() if "squeue alone" in line]) == 1

        # both array tasks, one line each, finished with their own logs
        def array_done():
            rows = job_states([array])[array]
            return rows if [r["job_id"] for r in rows] == [f"{array}_0", f"{array}_1"] and all(
                r["state"] == "COMPLETED" for r in rows) else None

        rows = poll(array_done, 60, f"array {array}'s two tasks COMPLETED: {job_states([array])}")
        assert {r["exit_code"] for r in rows} == {"0:0"} and {r["name"] for r in rows} == {"status-array"}
        text = status_text(results)
        for task in (0, 1):
            line = job_line(text, f"{array}_{task}")
            assert line[1:3] == ["array", "COMPLETED"] and line[-2:] == ["0:0", str(logs / f"{array}_{task}.out")]
            assert (logs / f"{array}_{task}.out").exists()

        poll(lambda: job_line(status_text(results), sleeper)[2:3] == ["RUNNING"], 120, f"job {sleeper} RUNNING")
        assert main_cancel([str(results)]) == 0
        assert f"cancelled job {sleeper} (sweep, RUNNING)" in capsys.readouterr().out
        poll(lambda: job_line(status_text(results), sleeper)[2:3] == ["CANCELLED"], 20,
             f"job {sleeper} CANCELLED:\n{status_text(results)}")
        assert cancel(results) == []  # nothing left to cancel: no error
        assert "nothing to cancel" in capsys.readouterr().out
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True)
