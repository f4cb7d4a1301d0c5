"""harness.slurm: rendered sbatch scripts (run under bash with fake srun/scontrol/python), the CLI's
input checks, and real submissions to a SLURM cluster when one is running (`bash .ci/start-slurm.sh`
starts one on localhost)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import store
from harness.config import load_sweep
from harness.slurm import Job, main, render_script, sbatch_lines
from slurm_cluster import needs_slurm

REPO = Path(__file__).resolve().parent.parent
SEP = "\x1f"

TINY = """\
name: {name}
dataset: {{name: synthetic, num_train: 64, num_val: 32, num_test: 32, shape: [1, 8, 8], num_classes: 2}}
model: {{arch: mlp, widths: [16]}}
train: {{epochs: 1, batch_size: 32}}
health: {{enabled: false}}
resources: {{cpus_per_trial: 1, gpus_per_trial: 0}}
grid:
  model.activation: [relu, tanh]
"""


def tiny_sweep(tmp_path: Path, name: str = "slurm-tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(name=name))
    return path


# --------------------------------------------------------------------------------------------------
# Rendering, checked by running the script with fake SLURM and Python commands that log their argv


FAKES = {
    "srun": """#!/bin/bash
line=$(printf '%s\\x1f' srun "$@"); echo "$line" >> "$LOG"  # one write: calls run in parallel
for a in "$@"; do [[ $a == hostname ]] && echo "10.0.0.1 10.1.0.1"; done
exit 0
""",
    "scontrol": """#!/bin/bash
[[ $1 == show && $2 == hostnames ]] && printf 'node%s\\n' 1 2 3 4 | head -n "$NODES"
""",
    "rm": """#!/bin/bash
line=$(printf '%s\\x1f' rm "$@"); echo "$line" >> "$LOG"  # one write: calls run in parallel
""",
    "python": """#!/bin/bash
line=$(printf '%s\\x1f' python "$@"); echo "$line" >> "$LOG"  # one write: calls run in parallel
[[ $* == *secrets* ]] && echo token
[[ $* == *"import grpc"* ]] && exit "${HAS_GRPC:-1}"
if [[ $* == *wait_for_nodes* ]]; then  # like the real one: until the srun step has started
    want=--head; [[ $* == *"', 1, "* ]] || want=--exclude
    for _ in $(seq 100); do grep -q -- "$want" "$LOG" && break; sleep 0.05; done
fi
[[ $2 == harness.sweep ]] && exit "${SWEEP_STATUS:-0}"
exit 0
""",
}


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in FAKES.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_script(text: str, fake_bin: Path, nodes: int, job_id: int = 1234, **env: str):
    """Run a rendered script; returns (exit code, the logged calls as argv lists)."""
    script = fake_bin.parent / "job.sbatch"
    script.write_text(text)
    log = fake_bin.parent / "calls.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "LOG": str(log), "NODES": str(nodes),
           "SLURM_JOB_ID": str(job_id), "SLURM_JOB_NODELIST": f"node[1-{nodes}]", **env}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    calls = [line.split(SEP)[:-1] for line in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode, [without_step_wrapper(c) for c in calls]


def without_step_wrapper(call: list[str]) -> list[str]:
    """An srun call with the script's `bash -c '...' ray-step` wrapper (the step ends itself, exit 0, on
    the job's stop file) taken out: the command it runs."""
    if call[:1] == ["srun"] and "ray-step" in call:
        i = call.index("ray-step")
        assert call[i - 3:i - 1] == ["bash", "-c"] and "STOP_FILE" in call[i - 1]
        return call[:i - 3] + call[i + 1:]
    return call


def big_job(tmp_path: Path, **kw) -> Job:
    args = dict(sweep="/shared/sweeps/big.yaml", name="big", nodes=4, gpus_per_node=8, cpus_per_node=64,
                partition="gpu", time="24:00:00", account="proj1", results_dir="/shared/results",
                python=str(tmp_path / "bin" / "python"), workdir=str(tmp_path))
    return Job(**{**args, **kw})


def ray_start(tmp_path: Path, job_id: int, cpus: str, gpus: str) -> list[str]:
    """The `ray start` arguments every node of job `job_id` gets."""
    off, workers = job_id % 1000, 20000 + (job_id % 50) * 250
    return [str(tmp_path / "bin" / "python"), "-m", "ray.scripts.scripts", "start", "--block",
            f"--temp-dir=/tmp/ray_{job_id}", f"--num-cpus={cpus}", f"--num-gpus={gpus}",
            f"--node-manager-port={11001 + off}", f"--object-manager-port={12001 + off}",
            f"--dashboard-agent-listen-port={13001 + off}", f"--dashboard-agent-grpc-port={14001 + off}",
            f"--metrics-export-port={15001 + off}", f"--runtime-env-agent-port={16001 + off}",
            f"--min-worker-port={workers}", f"--max-worker-port={workers + 249}"]


def test_render_4_nodes_8_gpus_header(tmp_path):
    assert sbatch_lines(big_job(tmp_path)) == [
        "#SBATCH --job-name=big",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --time=24:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj1",
        "#SBATCH --output=/shared/results/big/slurm/%j.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@120",
    ]
    text = render_script(big_job(tmp_path))
    assert text.startswith("#!/bin/bash\n")
    assert "{{" not in text
    header = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert header == sbatch_lines(big_job(tmp_path))
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_render_4_nodes_8_gpus_commands(tmp_path, fake_bin):
    code, calls = run_script(render_script(big_job(tmp_path)), fake_bin, nodes=4, job_id=1234)
    assert code == 0
    start = ray_start(tmp_path, 1234, "64", "8")
    assert "--node-manager-port=11235" in start and "--min-worker-port=28500" in start  # 1234 % 1000, % 50
    head = ["srun", "--nodes=1", "--ntasks=1", "--cpus-per-task=64", "-w", "node1", *start,
            "--head", "--node-ip-address=10.0.0.1", "--port=6613", "--dashboard-port=8499"]
    worker = ["srun", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1", "--cpus-per-task=64",
              "--exclude=node1", *start, "--address=10.0.0.1:6613"]
    sweep = ["python", "-m", "harness.sweep", "/shared/sweeps/big.yaml", "--results-dir", "/shared/results",
             "--address", "10.0.0.1:6613", "--resume"]
    assert head in calls and worker in calls and sweep in calls
    waits = [i for i, c in enumerate(calls) if c[:2] == ["python", "-c"] and "wait_for_nodes" in c[2]]
    joined = [re.search(r"wait_for_nodes\('10\.0\.0\.1:6613', (\d), 300, ", calls[i][2]).group(1) for i in waits]
    assert joined == ["1", "4"] and waits[-1] < calls.index(sweep)  # the sweep starts once all 4 joined
    # on exit: the job's Ray temp dir and the stop file that ended the Ray steps
    assert calls[-1] == ["rm", "-rf", "/tmp/ray_1234", "/shared/results/big/slurm/.stop-1234"]


def test_render_ports_differ_between_jobs(tmp_path, fake_bin):
    job = big_job(tmp_path, nodes=1)
    ports = []
    for job_id in (1234, 1235):
        _, calls = run_script(render_script(job), fake_bin, nodes=1, job_id=job_id, HAS_GRPC="0")
        head = next(c for c in calls if "--head" in c)
        ports.append({a.split("=")[0]: a.split("=")[1] for a in head if a.startswith("--") and "port" in a})
        assert f"--temp-dir=/tmp/ray_{job_id}" in head
    assert len(ports[0]) == 11  # client server port included where grpc is installed
    assert all(ports[0][k] != ports[1][k] for k in ports[0])
    fixed = [int(v) for k, v in ports[0].items() if "worker" not in k]
    assert len(set(fixed)) == len(fixed) and max(fixed) < int(ports[0]["--min-worker-port"])


def test_render_cpu_only_whole_node_and_passthrough(tmp_path, fake_bin):
    job = big_job(tmp_path, nodes=1, gpus_per_node=0, cpus_per_node=None, partition=None, time=None,
                  account=None, mem="64G", setup=["module load cuda/12.4", "export FOO='a b'"],
                  overrides=["model.widths=[16, 8]", "optimizer.lr=0.1"], smoke=True, max_concurrent=3,
                  no_report=True, requeue=True, ray_args="--object-store-memory=200000000")
    text = render_script(job)
    header = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --exclusive" in header and "#SBATCH --mem=64G" in header and "#SBATCH --requeue" in header
    assert not any("gpus" in line for line in header)
    assert "module load cuda/12.4\nexport FOO='a b'\n" in text
    code, calls = run_script(text, fake_bin, nodes=1, SLURM_CPUS_ON_NODE="2")
    assert code == 0
    head = next(c for c in calls if "--head" in c)
    assert "--num-cpus=2" in head and "--num-gpus=0" in head and "--object-store-memory=200000000" in head
    assert not any(c[0] == "srun" and "--address=10.0.0.1:6379" in " ".join(c) for c in calls)  # no workers
    sweep = next(c for c in calls if c[1:3] == ["-m", "harness.sweep"])
    assert sweep[3:] == ["/shared/sweeps/big.yaml", "--results-dir", "/shared/results",
                         "--set", "model.widths=[16, 8]", "--set", "optimizer.lr=0.1", "--max-concurrent", "3",
                         "--smoke", "--no-report", "--address", "10.0.0.1:6613",
                         "--resume"]


def test_render_array(tmp_path, fake_bin):
    job = big_job(tmp_path, nodes=1, array=4, max_parallel=2)
    text = render_script(job)
    assert "#SBATCH --array=0-3%2" in text
    assert "#SBATCH --output=/shared/results/big/slurm/%A_%a.out" in text
    code, calls = run_script(text, fake_bin, nodes=1, job_id=1236, SLURM_ARRAY_TASK_ID="2")
    assert code == 0
    sweep = next(c for c in calls if c[1:3] == ["-m", "harness.sweep"])
    assert sweep[3:] == ["/shared/sweeps/big.yaml", "--results-dir", "/shared/results", "--no-report",
                         "--claim", "--address", "10.0.0.1:6615", "--resume"]


def test_script_exits_with_the_sweeps_status(tmp_path, fake_bin):
    code, calls = run_script(render_script(big_job(tmp_path, nodes=2)), fake_bin, nodes=2, SWEEP_STATUS="1")
    assert code == 1
    assert calls[-1][0] == "rm"


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_writes_script(tmp_path, capsys):
    sweep = tiny_sweep(tmp_path)
    code = main([str(sweep), "--nodes", "2", "--gpus-per-node", "4", "--results-dir", str(tmp_path / "r"),
                 "--array", "8", "--set", "optimizer.lr=0.5"])
    assert code == 0
    script = tmp_path / "r" / "slurm-tiny" / "slurm" / "slurm-tiny-array.sbatch"
    out = capsys.readouterr().out
    assert str(script) in out and "2 task(s)" in out  # 8 array tasks for 2 trials: 2
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "--set optimizer.lr=0.5" in text
    assert f"PY={sys.executable}" in text and f"--results-dir {tmp_path / 'r'}" in text
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("args, message", [
    (["missing.yaml"], "no such file"),
    (["{sweep}", "--gpus-per-node", "0", "--set", "optimizer.lrr=1"], "unknown key"),
    (["{sweep}", "--gpus-per-node", "0", "--nodes", "0"], "--nodes must be at least 1"),
    (["{sweep}", "--gpus-per-node", "-1"], "--gpus-per-node"),
    (["{sweep}", "--gpus-per-node", "0", "--time", "2h"], "--time '2h'"),
    (["{sweep}", "--gpus-per-node", "0", "--mem", "lots"], "--mem"),
    (["{sweep}", "--gpus-per-node", "0", "--max-parallel", "2"], "--max-parallel"),
    (["{sweep}", "--gpus-per-node", "0", "--ray-args=--x 'y"], "--ray-args"),
    (["{sweep}", "--gpus-per-node", "0", "--workdir", "/no/such/dir"], "no such directory"),
    (["{sweep}", "--gpus-per-node", "0", "--submit"], "sbatch not found"),
    (["{sweep}", "--max-requeues", "-1"], "--max-requeues must be 0 or more"),
    (["{sweep}", "--signal-before", "0"], "--signal-before must be at least 1 second"),
])
def test_cli_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    sweep = tiny_sweep(tmp_path)
    code = main([a.format(sweep=sweep) for a in args] + ["--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_submit_refuses_a_sweep_whose_dataset_is_not_on_disk(tmp_path, capsys, monkeypatch):
    """Compute nodes may have no internet: --submit checks the files first (harness.data.download)."""
    (tmp_path / "sbatch").write_text("#!/bin/bash\necho called >> \"$(dirname \"$0\")/called\"\n")
    (tmp_path / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    sweep = tmp_path / "cifar.yaml"
    sweep.write_text(TINY.format(name="needs-cifar").replace(
        "dataset: {name: synthetic, num_train: 64, num_val: 32, num_test: 32, shape: [1, 8, 8], num_classes: 2}",
        f"dataset: {{name: cifar10, data_dir: {tmp_path / 'data'}}}").replace("arch: mlp, widths: [16]", "arch: mlp"))
    code = main([str(sweep), "--results-dir", str(tmp_path / "r"), "--submit"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "these datasets are not on disk: cifar10 in" in err and "python -m harness.data download" in err
    assert not (tmp_path / "called").exists()  # nothing submitted


# --------------------------------------------------------------------------------------------------
# Real submissions (a SLURM cluster must be up: `bash .ci/start-slurm.sh` starts one on localhost)




def submit(args: list[str]) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-m", "harness.slurm", *args, "--workdir", str(REPO), "--submit",
                           "--ray-args=--object-store-memory=200000000"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = {"job": re.search(r"submitted job (\d+)", proc.stdout).group(1)}
    report = re.search(r"report job (\d+)", proc.stdout)
    if report:
        ids["report"] = report.group(1)
    return ids


def wait_for(job_ids: list[str], logs: Path, timeout: float = 240) -> None:
    """Poll squeue until the jobs are gone; then every task must have COMPLETED (logs shown if not)."""
    deadline = time.monotonic() + timeout
    while True:
        queued = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)],
                                capture_output=True, text=True).stdout.split()
        if not queued:
            break
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *job_ids])
            pytest.fail(f"jobs {job_ids} still queued after {timeout} s\n{show_logs(logs)}")
        time.sleep(2)
    for job_id in job_ids:
        info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        states = re.findall(r"JobState=(\w+)", info)
        assert states and set(states) == {"COMPLETED"}, f"job {job_id}: {states}\n{info}\n{show_logs(logs)}"


def show_logs(folder: Path) -> str:
    return "\n".join(f"==> {p} <==\n{p.read_text()[-6000:]}" for p in sorted(folder.glob("*.out")))


def assert_results(results: Path, sweep: Path) -> None:
    trials = store.read_table(results, "trials")
    expected = sorted(t.trial_id for t in load_sweep(sweep).trials)
    assert sorted(trials["trial_id"]) == expected, show_logs(results / "slurm")
    assert set(trials["status"]) == {"completed"}, trials[["trial_id", "status", "error"]]
    assert len(store.read_table(results, "epochs")) >= len(expected)


@pytest.mark.slow
@needs_slurm
def test_submit_ray_cluster_job(tmp_path):
    sweep = tiny_sweep(tmp_path, "slurm-cluster")
    cpus = str(min(2, os.cpu_count() or 1))
    ids = submit([str(sweep), "--nodes", "1", "--gpus-per-node", "0", "--cpus-per-node", cpus,
                  "--results-dir", str(tmp_path / "results"), "--smoke", "--no-report"])
    results = tmp_path / "results" / "slurm-cluster"
    wait_for([ids["job"]], results / "slurm")
    assert_results(results, sweep)
    log = (results / "slurm" / f"{ids['job']}.out").read_text()
    assert "1 node(s) alive" in log and "sweep exited with 0" in log
    assert "srun: error" not in log and "Killed" not in log, log  # the Ray steps ended by themselves
    steps = subprocess.run(["squeue", "-h", "-s", "-j", ids["job"]], capture_output=True, text=True).stdout
    assert not steps.strip()  # no step left behind


@pytest.mark.slow
@needs_slurm
def test_submit_array_job(tmp_path):
    sweep = tiny_sweep(tmp_path, "slurm-array")
    ids = submit([str(sweep), "--array", "2", "--gpus-per-node", "0", "--cpus-per-node", "1",
                  "--results-dir", str(tmp_path / "results"), "--smoke"])
    results = tmp_path / "results" / "slurm-array"
    wait_for([ids["job"], ids["report"]], results / "slurm")
    assert_results(results, sweep)
    logs = sorted(p.name for p in (results / "slurm").glob(f"{ids['job']}_*.out"))
    assert logs == [f"{ids['job']}_0.out", f"{ids['job']}_1.out"]
    assert (results / "report").is_dir()


LONG = """\
name: {name}
dataset: {{name: synthetic, num_train: 6000, num_val: 256, num_test: 256, shape: [1, 8, 8], num_classes: 4}}
model: {{arch: mlp, widths: [32]}}
train: {{epochs: {epochs}, batch_size: 64}}
health: {{enabled: false}}
early_stopping: {{enabled: false}}
resources: {{cpus_per_trial: 1, gpus_per_trial: 0, pack: "off"}}
grid:
  optimizer.lr: [0.1, 0.01, 0.001, 0.0001]
"""


def job_log(results: Path, job_id: str) -> str:
    path = results / "slurm" / f"{job_id}.out"
    return path.read_text() if path.exists() else ""


def wait_until_held(job_id: str, timeout: float = 120) -> None:
    """Until SLURM holds the requeued job (reason BeginTime): its first run has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reason = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%r"], capture_output=True, text=True).stdout
        if reason.strip() == "BeginTime":
            return
        time.sleep(1)
    raise AssertionError(f"job {job_id} was not requeued within {timeout} s")


def start_requeued_now(job_id: str, timeout: float = 120) -> None:
    """SLURM holds a requeued batch job for 2 minutes (reason BeginTime); start it at once instead (the test
    only saves that wait: the requeue itself is the job's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reason = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%r"], capture_output=True, text=True).stdout
        if reason.strip() == "BeginTime":
            # not in the same instant: a job started while its previous run is still being cleaned up on the
            # node can fail to launch (seen once in CI: restarted with RunTime 0, exit 1, no log line)
            time.sleep(10)
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
            return
        time.sleep(1)


@pytest.mark.slow
@needs_slurm
def test_a_usr1_warning_requeues_the_job_and_no_trial_runs_twice(tmp_path):
    """SLURM's warning before the time limit, sent by hand (`scancel --signal=USR1 --batch`) once trials
    have checkpoints: the running trials save where they stand within seconds (stopped.json), the sweep
    exits 3, the job requeues itself, and on restart the interrupted trials continue from there: every
    trial once, every epoch once."""
    path = tmp_path / "slurm-requeue.yaml"
    path.write_text(LONG.format(name="slurm-requeue", epochs=20))
    ids = submit([str(path), "--cpus-per-node", "2", "--results-dir", str(tmp_path / "results"), "--no-report",
                  "--max-requeues", "2"])
    results = tmp_path / "results" / "slurm-requeue"
    try:
        deadline = time.monotonic() + 180
        while not any((results / "checkpoints").glob("*/last.pt")):  # trials under way, with a checkpoint
            assert time.monotonic() < deadline, show_logs(results / "slurm")
            time.sleep(1)
        signalled = time.time()
        subprocess.run(["scancel", "--signal=USR1", "--batch", ids["job"]], check=True)
        wait_until_held(ids["job"])
        # the running trials saved where they stood when the signal came (mid-epoch), not at their last epoch's end
        saved = [(json.loads(p.read_text()), p.stat().st_mtime) for p in (results / "checkpoints").glob("*/stopped.json")]
        assert saved and all(signalled <= at <= signalled + 30 for _, at in saved), (saved, signalled)
        start_requeued_now(ids["job"])
        wait_for([ids["job"]], results / "slurm", timeout=400)
    finally:
        subprocess.run(["scancel", ids["job"]])
    log = job_log(results, ids["job"])
    assert "received SIGUSR1" in log and "interrupted by SIGUSR1" in log and "sweep exited with 3" in log, log
    assert "requeueing job" in log and "restart 1," in log and "sweep exited with 0" in log, log
    assert_results(results, path)
    epochs = store.read_table(results, "epochs")
    assert (epochs.groupby("trial_id")["epoch"].apply(sorted).apply(list) == [list(range(1, 21))] * 4).all()
    assert "srun: error" not in log and "Killed" not in log, log  # the Ray steps ended cleanly


@pytest.mark.slow
@needs_slurm
def test_status_and_cancel_of_a_submitted_sweep(tmp_path):
    path = tmp_path / "slurm-status.yaml"
    path.write_text(LONG.format(name="slurm-status", epochs=200))
    ids = submit([str(path), "--cpus-per-node", "2", "--results-dir", str(tmp_path / "results"), "--no-report"])
    try:
        check_status_and_cancel(tmp_path / "results" / "slurm-status", ids["job"])
    finally:
        subprocess.run(["scancel", ids["job"]])


def check_status_and_cancel(results: Path, job_id: str) -> None:
    ids = {"job": job_id}
    status = subprocess.run([sys.executable, "-m", "harness.slurm", "status", str(results)], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert re.search(rf"^{ids['job']}\s+sweep\s+(PENDING|RUNNING)", status.stdout, re.M), status.stdout
    assert "trials: 0 done" in status.stdout and "(of 4)" in status.stdout
    cancel = subprocess.run([sys.executable, "-m", "harness.slurm", "cancel", str(results)], capture_output=True,
                            text=True, timeout=60)
    assert cancel.returncode == 0 and f"cancelled job {ids['job']}" in cancel.stdout, cancel.stdout + cancel.stderr
    deadline = time.monotonic() + 60
    while "CANCELLED" not in (text := subprocess.run([sys.executable, "-m", "harness.slurm", "status", str(results)],
                                                      capture_output=True, text=True).stdout):
        assert time.monotonic() < deadline, text
        time.sleep(2)


@pytest.mark.slow
@needs_slurm
def test_an_array_task_killed_has_its_trials_picked_up_by_the_others(tmp_path):
    """Two array tasks claim trials one at a time; task 1 is killed outright (SIGKILL: no chance to drop its
    claim). Once SLURM no longer lists it, task 0 releases the claim and runs that trial too, from its
    checkpoint: every trial once, every epoch once."""
    path = tmp_path / "slurm-claims.yaml"
    path.write_text(LONG.format(name="slurm-claims", epochs=15).replace("[0.1, 0.01, 0.001, 0.0001]",
                                                                      "[0.1, 0.03, 0.01, 0.003, 0.001]"))
    ids = submit([str(path), "--array", "2", "--cpus-per-node", "1", "--results-dir", str(tmp_path / "results"),
                  "--no-report"])
    results = tmp_path / "results" / "slurm-claims"
    task1 = f"{ids['job']}_1"
    try:
        deadline = time.monotonic() + 240
        while True:  # both tasks hold a claim, and task 1's trial has a checkpoint
            claims = [json.loads(p.read_text()) for p in (results / "claims").glob("*")] \
                if (results / "claims").is_dir() else []
            if len({c["job"] for c in claims}) == 2 and any((results / "checkpoints").glob("*/last.pt")):
                break
            assert time.monotonic() < deadline, show_logs(results / "slurm")
            time.sleep(1)
        subprocess.run(["scancel", "--full", "--signal=KILL", task1], check=True)
        wait_for_gone([ids["job"]], results / "slurm", timeout=480)
    finally:
        subprocess.run(["scancel", ids["job"]])
    log0 = (results / "slurm" / f"{ids['job']}_0.out").read_text()
    assert "released 1 claim(s) of ended job(s)" in log0, log0
    assert_results(results, path)
    epochs = store.read_table(results, "epochs")
    assert (epochs.groupby("trial_id")["epoch"].apply(sorted).apply(list) == [list(range(1, 16))] * 5).all()


def wait_for_gone(job_ids: list[str], logs: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True,
                         text=True).stdout.split():
        if time.monotonic() > deadline:
            pytest.fail(f"jobs {job_ids} still queued after {timeout} s\n{show_logs(logs)}")
        time.sleep(2)
