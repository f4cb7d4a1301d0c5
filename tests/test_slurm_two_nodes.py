"""A sweep submitted to a real two-node SLURM cluster on this one machine: the second node is a slurmd in a
network namespace of its own (test_two_nodes.py's `netns` fixture: a veth pair, 10.211.X.2 there and
10.211.X.1 on the host) and a UTS namespace (hostname harness-node2), under its own NodeName. The test
stops the one-node cluster of .ci/start-slurm.sh, restarts it with both nodes (SlurmctldHost and the host's
NodeAddr on the veth's host end, which the namespace can reach; the slurmd spool, pid and log paths per
node, %n), checks that `srun -N2` runs on both, submits `python -m harness.slurm --nodes 2 --submit` and
checks that every trial completed once and that the trials ran on both nodes (the `host` column of the
trials table). Whatever happens, it stops its daemons and restarts the one-node cluster with the
configuration file it found.

Runs only where the cluster is the one .ci/start-slurm.sh wrote (never on a real cluster), as root, with
no job queued (it restarts the daemons)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import store
from slurm_cluster import needs_slurm
from test_two_nodes import netns, sh  # noqa: F401 - netns is a fixture

pytestmark = [pytest.mark.slow, needs_slurm]

REPO = Path(__file__).resolve().parent.parent
CONF = Path("/etc/slurm/slurm.conf")
MARK = "# Written by .ci/start-slurm.sh"
NODE2 = "harness-node2"
LRS = [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]
SWEEP = """\
name: slurm-two-nodes
dataset: {name: synthetic, num_train: 3000, num_val: 256, num_test: 256, shape: [1, 8, 8], num_classes: 4}
model: {arch: mlp, widths: [32]}
train: {epochs: 4, batch_size: 64}
health: {enabled: false}
early_stopping: {enabled: false}
resources: {cpus_per_trial: 1, gpus_per_trial: 0, pack: "off"}
grid:
  optimizer.lr: %s
""" % LRS


def conf_value(text: str, key: str) -> str:
    match = re.search(rf"^{key}=(\S+)", text, re.M)
    assert match, f"{CONF} has no {key}"
    return match.group(1)


def two_node_conf(text: str, head: str, host_ip: str, ns_ip: str) -> str:
    """The one-node configuration of .ci/start-slurm.sh with NODE2 added: every address one the namespace
    can reach, and the slurmd paths per node."""
    lines = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "SlurmctldHost":
            line = f"SlurmctldHost={head}({host_ip})"
        elif key == "SlurmdSpoolDir":
            line = f"{key}={value}/%n"
        elif key in ("SlurmdPidFile", "SlurmdLogFile"):
            stem, dot, ext = value.rpartition(".")
            line = f"{key}={stem}-%n{dot}{ext}"
        elif key == "NodeName" and line.startswith(f"NodeName={head} "):
            line = re.sub(r"NodeAddr=\S+", f"NodeAddr={host_ip}", line)
            lines.append(line)
            line = re.sub(r"^NodeName=\S+ NodeAddr=\S+", f"NodeName={NODE2} NodeAddr={ns_ip}", line)
        elif key == "PartitionName":
            line = line.replace(f" Nodes={head} ", f" Nodes={head},{NODE2} ")
        lines.append(line)
    return "\n".join(lines) + "\n"


def stop_daemon(pid_file: Path) -> None:
    """SIGTERM the daemon whose pid `pid_file` holds, and wait until it is gone (SIGKILL after 30 s)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 30
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += 30
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def node_states() -> dict[str, str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def wait_idle(nodes: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    i = 0
    while not all((states := node_states()).get(n, "").startswith(("idle", "mix", "alloc")) for n in nodes):
        if time.monotonic() > deadline:
            raise AssertionError(f"nodes {nodes} not idle after {timeout} s: {states}")
        i += 1
        if i % 5 == 0:  # a node left down by a restart comes back
            for n in nodes:
                if states.get(n, "").startswith(("down", "drain", "drng")):
                    subprocess.run(["scontrol", "update", f"NodeName={n}", "State=RESUME"], capture_output=True)
        time.sleep(1)


def start_one_node(conf: str) -> None:
    """The configuration `conf` back in place, and its daemons started (each unless its pid file names a
    live process), as .ci/start-slurm.sh does."""
    CONF.write_text(conf)
    for daemon, key in (("slurmctld", "SlurmctldPidFile"), ("slurmd", "SlurmdPidFile")):
        pid_file = Path(conf_value(conf, key))
        try:
            running = alive(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            running = False
        if not running:
            sh(daemon, "-f", str(CONF))


@pytest.fixture
def two_node_slurm(netns, tmp_path):  # noqa: F811 - the fixture imported above
    """The one-node cluster restarted with a second node, NODE2, in the namespace; yields (head node, NODE2,
    NODE2's address). On the way out, the daemons are stopped and the one-node cluster started again with
    the configuration found."""
    ns, host_ip, ns_ip = netns
    original = CONF.read_text() if CONF.exists() else ""
    if not original.startswith(MARK):
        pytest.skip(f"{CONF} is not the one-node cluster of .ci/start-slurm.sh: this test restarts its daemons")
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    if queued:
        pytest.skip(f"jobs {queued} are queued: this test restarts the SLURM daemons")
    if shutil.which("nsenter") is None or shutil.which("unshare") is None:
        pytest.skip("no nsenter/unshare (util-linux) to start a slurmd in the namespace")
    head = conf_value(original, "NodeName")
    conf = two_node_conf(original, head, host_ip, ns_ip)
    # the namespace reaches every address of the host through the host's end (the Ray head listens on the
    # first address of `hostname -I`)
    sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{ns_ip} {NODE2}\n{host_ip} {head}\n")
    pid_files = [Path(conf_value(original, "SlurmdPidFile")), Path(conf_value(original, "SlurmctldPidFile"))]
    two_pid_files = [Path(conf_value(conf, "SlurmdPidFile").replace("%n", n)) for n in (NODE2, head)] + pid_files
    started = time.monotonic()
    try:
        for pid_file in pid_files:
            stop_daemon(pid_file)
        for n in (head, NODE2):
            Path(conf_value(conf, "SlurmdSpoolDir").replace("%n", n)).mkdir(parents=True, exist_ok=True)
        CONF.write_text(conf)
        sh("slurmctld", "-f", str(CONF))
        sh("slurmd", "-f", str(CONF))
        # nsenter, not `ip netns exec`: that mounts a fresh /sys, without the cgroup mounts slurmd needs
        # ("No filesystem mounted on /sys/fs/cgroup"); a mount namespace of its own for the node's
        # /etc/hosts (its name on its address, as `hostname --ip-address` in the sbatch script needs)
        sh("nsenter", f"--net=/run/netns/{ns}", "unshare", "--uts", "--mount", "sh", "-c",
           f'mount --bind "$0" /etc/hosts && hostname {NODE2} && exec slurmd -f "$1" -N {NODE2}',
           str(hosts), str(CONF))
        wait_idle([head, NODE2])
        print(f"\ntwo-node cluster up in {time.monotonic() - started:.1f} s: {node_states()}", flush=True)
        yield head, NODE2, ns_ip
    finally:
        for pid_file in two_pid_files:
            stop_daemon(pid_file)
        for n in (NODE2, head):  # the per-node pid files and spool dirs (the logs stay)
            Path(conf_value(conf, "SlurmdPidFile").replace("%n", n)).unlink(missing_ok=True)
            shutil.rmtree(conf_value(conf, "SlurmdSpoolDir").replace("%n", n), ignore_errors=True)
        start_one_node(original)
        wait_idle([head])
        print(f"one-node cluster back: {node_states()}", flush=True)


def test_srun_and_a_sweep_run_on_both_nodes(two_node_slurm, tmp_path):
    head, node2, ns_ip = two_node_slurm
    step = subprocess.run(["srun", "-N2", "--ntasks-per-node=1", "hostname"], capture_output=True, text=True,
                          timeout=60)
    assert step.returncode == 0 and sorted(step.stdout.split()) == sorted([head, node2]), step.stdout + step.stderr
    step = subprocess.run(["srun", "-N1", "-w", node2, "hostname", "-I"], capture_output=True, text=True, timeout=60)
    assert step.stdout.split() == [ns_ip], step.stdout + step.stderr

    path = tmp_path / "slurm-two-nodes.yaml"
    path.write_text(SWEEP)
    results = tmp_path / "results" / "slurm-two-nodes"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness.slurm", str(path), "--nodes", "2", "--cpus-per-node", "1",
                           "--results-dir", str(tmp_path / "results"), "--no-report", "--workdir", str(REPO),
                           "--ray-args=--object-store-memory=100000000", "--submit"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = re.search(r"submitted job (\d+)", proc.stdout).group(1)
    log = results / "slurm" / f"{job}.out"
    try:
        deadline = time.monotonic() + 400
        while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
            time.sleep(2)
    finally:
        subprocess.run(["scancel", job])
    took = time.monotonic() - started
    info = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    text = log.read_text() if log.exists() else "no log"
    assert re.findall(r"JobState=(\w+)", info) == ["COMPLETED"], info + text
    assert "2 node(s) alive" in text and "sweep exited with 0" in text, text
    trials = store.read_table(results, "trials")
    assert len(trials) == len(LRS) and trials["trial_id"].is_unique, trials[["trial_id", "status"]]
    assert sorted(trials["optimizer.lr"]) == sorted(LRS)
    assert (trials["status"] == "completed").all(), trials[["trial_id", "status", "error"]]
    hosts = trials.groupby("host")["trial_id"].count().to_dict()
    print(f"job {job}: {len(trials)} trials in {took:.1f} s; trials per host: {hosts}", flush=True)
    assert set(hosts) == {head, node2}, (hosts, text)
