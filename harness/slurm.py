"""Run a sweep on a SLURM cluster: render an sbatch script, and submit it with --submit.

    python -m harness.slurm sweeps/cifar.yaml --nodes 4 --gpus-per-node 8 --time 12:00:00 --submit
    python -m harness.slurm status results/cifar     # its jobs and trials (harness.slurm_status)
    python -m harness.slurm cancel results/cifar

One job by default: a Ray cluster over --nodes nodes (head on the first, a worker on each other),
then `python -m harness.sweep --address ... --resume` against it, so a requeued or resubmitted job
skips every finished trial. With --array N instead: N array tasks, each running its own Ray on its
node(s) and claiming trials a batch at a time from the shared results folder (`harness.sweep --claim`:
a task that finishes early takes more; the claims of a task that died are released once SLURM no
longer lists it), then one small job (after the array) writing the merged report. The script is rendered
from harness/templates/ray-sweep.sbatch (package data: in a wheel too) into results/<sweep>/slurm/, and its
log goes next to it.
Ray's ports and temp dir are derived from the job id, so two jobs sharing a node never collide.
SLURM warns the job --signal-before seconds before its time limit (USR1); the sweep then has its
trials save where they stand, mid-epoch, and, with --max-requeues N, the job requeues itself and
resumes from there; a preemption (SIGTERM) does the same. Each submitted job is recorded in
results/<sweep>/slurm/jobs.jsonl for `status` and `cancel`.
"""

from __future__ import annotations

import argparse
import importlib.resources
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness import files, slurm_status
from harness.config import ConfigError, load_sweep
from harness.data.download import missing_datasets
from harness.provenance import SWEEP_COPY

TEMPLATE = importlib.resources.files("harness") / "templates" / "ray-sweep.sbatch"
TIME_FORMAT = re.compile(r"\d+|\d+:\d\d|\d+:\d\d:\d\d|\d+-\d+|\d+-\d+:\d\d|\d+-\d+:\d\d:\d\d")
MEM_FORMAT = re.compile(r"\d+[KMGT]?")


@dataclass
class Job:
    """Everything the sbatch script depends on (paths as they should appear in it)."""

    sweep: str  # the sweep file
    name: str  # the sweep's name: results go to <results_dir>/<name>/
    nodes: int = 1  # nodes per job (per array task with --array)
    gpus_per_node: int = 0
    cpus_per_node: Optional[int] = None  # None: the whole node (--exclusive)
    partition: Optional[str] = None
    time: Optional[str] = None
    account: Optional[str] = None
    mem: Optional[str] = None
    setup: list[str] = field(default_factory=list)  # shell lines run before Ray starts
    results_dir: str = "results"
    python: str = sys.executable
    workdir: str = "."
    array: Optional[int] = None  # number of array tasks (None: one Ray-cluster job)
    max_parallel: Optional[int] = None  # array tasks running at once
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE, passed through
    smoke: bool = False
    max_concurrent: Optional[int] = None
    no_report: bool = False
    requeue: bool = False
    max_requeues: int = 0  # the job requeues itself after a time-limit warning or preemption, this many times
    signal_before: int = 120  # seconds before the time limit SLURM warns the job (USR1)
    ray_args: str = ""  # extra `ray start` arguments for every node
    join_timeout: int = 300  # seconds to wait for all nodes to join

    @property
    def out_dir(self) -> Path:
        return Path(self.results_dir) / self.name / "slurm"

    @property
    def script_path(self) -> Path:
        return self.out_dir / (f"{self.name}-array.sbatch" if self.array else f"{self.name}.sbatch")

    def log_path(self, job_id: Optional[str] = None) -> Path:
        """sbatch's --output pattern; with `job_id`, where the log of that job is (array: one per task)."""
        if self.array:
            return self.out_dir / (f"{job_id}_*.out" if job_id else "%A_%a.out")
        return self.out_dir / f"{job_id or '%j'}.out"


def check_job(job: Job) -> None:
    """Raise ValueError with a one-line message for a value SLURM or the script cannot take."""
    if job.nodes < 1:
        raise ValueError(f"--nodes must be at least 1, got {job.nodes}")
    if job.gpus_per_node < 0:
        raise ValueError(f"--gpus-per-node must be 0 or more, got {job.gpus_per_node}")
    if job.cpus_per_node is not None and job.cpus_per_node < 1:
        raise ValueError(f"--cpus-per-node must be at least 1, got {job.cpus_per_node}")
    if job.array is not None and job.array < 1:
        raise ValueError(f"--array must be at least 1, got {job.array}")
    if job.max_parallel is not None and (job.max_parallel < 1 or not job.array):
        raise ValueError("--max-parallel must be at least 1 and goes with --array")
    if job.time is not None and not TIME_FORMAT.fullmatch(job.time):
        raise ValueError(f"--time '{job.time}' is not a SLURM time; use HH:MM:SS, D-HH:MM:SS or minutes")
    if job.mem is not None and not MEM_FORMAT.fullmatch(job.mem):
        raise ValueError(f"--mem '{job.mem}' is not a SLURM size; use e.g. 64G, 500M or 0 (all of the node)")
    try:
        shlex.split(job.ray_args)
    except ValueError as err:
        raise ValueError(f"--ray-args: {err}") from None
    if job.max_requeues < 0:
        raise ValueError(f"--max-requeues must be 0 or more, got {job.max_requeues}")
    if job.signal_before < 1:
        raise ValueError(f"--signal-before must be at least 1 second, got {job.signal_before}")
    if job.join_timeout < 1:
        raise ValueError(f"--join-timeout must be at least 1 second, got {job.join_timeout}")


def sbatch_lines(job: Job) -> list[str]:
    opts = [f"--job-name={job.name}", f"--nodes={job.nodes}", "--ntasks-per-node=1"]
    if job.gpus_per_node:
        opts.append(f"--gpus-per-node={job.gpus_per_node}")
    opts.append(f"--cpus-per-task={job.cpus_per_node}" if job.cpus_per_node else "--exclusive")
    for flag, value in (("mem", job.mem), ("time", job.time), ("partition", job.partition), ("account", job.account)):
        if value is not None:
            opts.append(f"--{flag}={value}")
    if job.array:
        opts.append(f"--array=0-{job.array - 1}" + (f"%{job.max_parallel}" if job.max_parallel else ""))
    opts += [f"--output={job.log_path()}", "--open-mode=append"]  # append: a requeued job keeps its log
    opts.append(f"--signal=B:USR1@{job.signal_before}")  # the batch shell: it tells the sweep
    if job.requeue or job.max_requeues:
        opts.append("--requeue")
    return [f"#SBATCH {opt}" for opt in opts]


def sweep_args(job: Job) -> str:
    """The arguments of `python -m harness.sweep` (all but --address and --resume), shell-quoted."""
    args = [job.sweep, "--results-dir", job.results_dir]
    for override in job.overrides:
        args += ["--set", override]
    if job.max_concurrent:
        args += ["--max-concurrent", str(job.max_concurrent)]
    if job.smoke:
        args.append("--smoke")
    if job.no_report or job.array:  # array tasks: one report job after them all
        args.append("--no-report")
    text = " ".join(shlex.quote(a) for a in args)
    if job.array:  # the tasks claim trials a batch at a time: one that finishes early takes more
        text += " --claim"
    return text


def render_script(job: Job, template: str | Path | importlib.resources.abc.Traversable = TEMPLATE) -> str:
    """The sbatch script for `job`: the template (a file, or package data) with its {{placeholders}}
    filled in (pure)."""
    ray_args = shlex.split(job.ray_args)
    values = {
        "sbatch": "\n".join(sbatch_lines(job)),
        "workdir": shlex.quote(job.workdir),
        "python": shlex.quote(job.python),
        "nodes": str(job.nodes),
        "cpus": str(job.cpus_per_node) if job.cpus_per_node else "$SLURM_CPUS_ON_NODE",
        "gpus": str(job.gpus_per_node),
        "setup": "\n".join(job.setup),
        "ray_args": "".join(" " + shlex.quote(a) for a in ray_args),
        "join_timeout": str(job.join_timeout),
        "sweep_args": sweep_args(job),
        "out_dir": shlex.quote(str(job.out_dir)),
        "max_requeues": str(job.max_requeues),
    }
    text = (Path(template) if isinstance(template, str) else template).read_text()

    def fill(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{template}: unknown placeholder {match.group(0)}")
        return values[match.group(1)]

    def fill_line(match: re.Match) -> str:  # a placeholder alone on its line: no line when empty
        value = fill(match)
        return value + "\n" if value else ""

    text = re.sub(r"^\{\{(\w+)\}\}\n", fill_line, text, flags=re.M)
    return re.sub(r"\{\{(\w+)\}\}", fill, text)


def report_command(job: Job, after: str) -> list[str]:
    """sbatch command for the job that writes the merged report once the array is done."""
    cmd = ["sbatch", "--parsable", f"--dependency=afterany:{after}", f"--job-name={job.name}-report",
           "--ntasks=1", "--cpus-per-task=1", f"--output={job.out_dir / '%j.out'}"]
    for flag, value in (("time", job.time), ("partition", job.partition), ("account", job.account)):
        if value is not None:
            cmd.append(f"--{flag}={value}")
    report = f"cd {shlex.quote(job.workdir)} && {shlex.quote(job.python)} -m harness.report "
    report += shlex.quote(str(Path(job.results_dir) / job.name))
    return cmd + ["--wrap", "\n".join(job.setup + [report])]


# --------------------------------------------------------------------------------------------------
# Inside the job


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def wait_for_nodes(address: str, nodes: int, timeout: float = 300.0, steps: str = "") -> int:
    """Block until the Ray cluster at `address` has `nodes` alive nodes; exit 3 with a message when
    one of the srun `steps` (space-separated pids) dies first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout

    def check(what: str) -> None:
        for pid in steps.split():
            if _dead(int(pid)):
                sys.exit(f"harness.slurm: a Ray srun step (pid {pid}) exited while {what}; see its output above")
        if time.monotonic() > deadline:
            sys.exit(f"harness.slurm: timed out after {timeout:.0f} s {what}; see the srun output above")

    host, port = address.rsplit(":", 1)
    while not _port_open(host, int(port)):  # ray.init on a head that is not up yet hangs for minutes
        check(f"waiting for the Ray head at {address}")
        time.sleep(1)
    import ray  # here, inside the job only: rendering and submitting a script never needs Ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        while (alive := sum(bool(node["Alive"]) for node in ray.nodes())) < nodes:
            check(f"waiting for {nodes} Ray nodes at {address} ({alive} joined)")
            time.sleep(2)
    finally:
        ray.shutdown()
    print(f"ray cluster at {address}: {alive} node(s) alive", flush=True)
    return alive


# --------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m harness.slurm", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", help="the sweep file")
    p.add_argument("--nodes", type=int, default=1, help="nodes per job (per array task with --array); default 1")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default 0: a CPU cluster)")
    p.add_argument("--cpus-per-node", type=int, help="CPUs per node for Ray (default: the whole node, --exclusive)")
    p.add_argument("--partition")
    p.add_argument("--time", help="wall-clock limit, HH:MM:SS or D-HH:MM:SS")
    p.add_argument("--account")
    p.add_argument("--mem", help="memory per node, e.g. 64G (0: all of it)")
    p.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="a shell line run first in the job, e.g. 'module load cuda' (repeatable)")
    p.add_argument("--results-dir", default="results", help="parent of the results folder (default results)")
    p.add_argument("--python", default=sys.executable, help="interpreter in the job (default: this one)")
    p.add_argument("--workdir", default=".", help="directory the job runs in (default: this one)")
    p.add_argument("--array", type=int, metavar="N", help="N array tasks, sharing the trials by claims")
    p.add_argument("--max-parallel", type=int, metavar="N", help="with --array: tasks running at once")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable), passed on to the sweep")
    p.add_argument("--smoke", action="store_true", help="tiny epochs/data, passed on to the sweep")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="passed on to the sweep")
    p.add_argument("--no-report", action="store_true", help="write no report at the end")
    p.add_argument("--requeue", action="store_true", help="let SLURM requeue the job (it resumes)")
    p.add_argument("--max-requeues", type=int, default=0, metavar="N",
                   help="on the time-limit warning or a preemption, the job's trials save where they stand "
                        "and it requeues itself, at most N times (default 0: it just stops)")
    p.add_argument("--signal-before", type=int, default=120, metavar="S",
                   help="seconds before the time limit SLURM warns the job (--signal=B:USR1@S; default 120)")
    p.add_argument("--ray-args", default="", metavar="ARGS",
                   help="extra `ray start` arguments, e.g. --ray-args='--object-store-memory=200000000'")
    p.add_argument("--join-timeout", type=int, default=300, metavar="S", help="seconds to wait for the nodes")
    p.add_argument("--submit", action="store_true", help="submit with sbatch and print the job id")
    return p.parse_args(argv)


def fail(message: str) -> int:
    print(f"harness.slurm: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["status"]:
        return slurm_status.main_status(argv[1:])
    if argv[:1] == ["cancel"]:
        return slurm_status.main_cancel(argv[1:])
    args = parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides)
    except ConfigError as err:
        return fail(str(err))
    if not Path(args.workdir).is_dir():
        return fail(f"--workdir {args.workdir}: no such directory")
    if args.submit and shutil.which("sbatch") is None:
        return fail("--submit: sbatch not found on PATH (run this on a SLURM login node, or drop --submit)")
    if args.submit and (missing := missing_datasets(sweep.trials, args.sweep)):
        return fail("--submit: compute nodes may have no internet, and these datasets are not on disk: "
                    + "; ".join(missing))
    job = Job(
        sweep=str(Path(args.sweep).resolve()), name=sweep.name, nodes=args.nodes,
        gpus_per_node=args.gpus_per_node, cpus_per_node=args.cpus_per_node, partition=args.partition,
        time=args.time, account=args.account, mem=args.mem, setup=args.setup,
        results_dir=str(Path(args.results_dir).resolve()), python=args.python,
        workdir=str(Path(args.workdir).resolve()), array=args.array, max_parallel=args.max_parallel,
        overrides=args.overrides, smoke=args.smoke, max_concurrent=args.max_concurrent,
        no_report=args.no_report, requeue=args.requeue, ray_args=args.ray_args, join_timeout=args.join_timeout,
        max_requeues=args.max_requeues, signal_before=args.signal_before,
    )
    try:
        check_job(job)
    except ValueError as err:
        return fail(str(err))
    if job.array and job.array > len(sweep.trials):
        print(f"--array {job.array}: the sweep has {len(sweep.trials)} trial(s), so {len(sweep.trials)} task(s)")
        job.array = len(sweep.trials)

    job.out_dir.mkdir(parents=True, exist_ok=True)
    files.write_text(job.script_path, render_script(job))
    if args.submit:  # `status` counts the trials of the sweep's copy before the job has started (the sweep rewrites it)
        files.write_bytes(Path(job.results_dir) / job.name / SWEEP_COPY, Path(args.sweep).read_bytes())
    job.script_path.chmod(0o755)
    what = f"{job.array} array task(s) of " if job.array else ""
    what += f"{job.nodes} node(s) x {job.gpus_per_node} GPU(s), {len(sweep.trials)} trial(s)"
    if not args.submit:
        print(f"wrote {job.script_path} ({what})\nsubmit it with: sbatch {job.script_path}")
        if job.array and not job.no_report:
            print("then the report: " + shlex.join(report_command(job, "<array job id>")))
        return 0

    job_id = _sbatch(["sbatch", "--parsable", str(job.script_path)], job.workdir)
    if job_id is None:
        return 2  # sbatch refuses bad input (partition, account, time limit, ...)
    slurm_status.append_job(Path(job.results_dir) / job.name, job_id, "array" if job.array else "sweep", job.script_path, job.array)
    print(f"submitted job {job_id} ({what})")
    print(f"script  {job.script_path}")
    print(f"log     {job.log_path(job_id)}")
    if job.array and not job.no_report:
        report_id = _sbatch(report_command(job, job_id), job.workdir)
        if report_id is None:
            return 2
        slurm_status.append_job(Path(job.results_dir) / job.name, report_id, "report", None)
        print(f"report job {report_id} (after the array)  log {job.out_dir / f'{report_id}.out'}")
    print(f"results {Path(job.results_dir) / job.name}")
    print(f"status  python -m harness.slurm status {Path(job.results_dir) / job.name}")
    return 0


def _sbatch(cmd: list[str], cwd: str) -> Optional[str]:
    """Run sbatch --parsable; the job id, or None after printing sbatch's complaint."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"harness.slurm: sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}", file=sys.stderr)
        return None
    return proc.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"


if __name__ == "__main__":
    sys.exit(main())
