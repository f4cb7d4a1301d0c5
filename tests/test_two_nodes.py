"""A sweep on a real two-node Ray cluster on this one machine (issue 18, item 6): the second node is a
Ray worker inside a network namespace of its own, joined to the host by a veth pair, so it has its own
network address (10.211.X.2, the head's is 10.211.X.1) and, in a UTS namespace, its own hostname
(harness-node2). The sweep's driver runs on the host against the head's address; the test checks that
every trial completed exactly once and that the trials ran on both nodes (the `host` column of the
trials table holds both hostnames). The results folder is a tmp dir: the namespace shares the host's
filesystem, as a cluster shares its results folder. SLURM's own two-node path (a second slurmd in the
namespace, under its own NodeName) is not run yet: the one-node cluster of .ci/start-slurm.sh is what
CI starts, and the rendered script's multi-node commands are checked with fake srun in test_slurm.py.

Needs root (to create the namespace and the veth pair) and iproute2's `ip`; skipped, with the reason,
only where the namespace cannot be created. Nothing leaves the machine: the only addresses used are
loopback and the two ends of the veth pair, which exist only while the test runs."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import store

pytestmark = pytest.mark.slow

WORKER_HOSTNAME = "harness-node2"
LRS = [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]
SWEEP = """
name: twonode
dataset: {name: synthetic, num_train: 3000, num_val: 256, num_test: 256, shape: [1, 8, 8], num_classes: 4}
model: {arch: mlp, widths: [32]}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 8, batch_size: 64}
health: {enabled: false}
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
seeds: [0]
grid:
  optimizer.lr: %s
""" % LRS


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on the host right now (the kernel's choice, so no clash with a SLURM
    job's Ray or another test's)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_block(size: int = 100) -> int:
    """The first port of `size` consecutive ports free on the host (Ray's worker ports), below the
    kernel's ephemeral range; the block is picked from this process's pid."""
    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("", port))
                return True
            except OSError:
                return False

    for i in range(40):
        start = 22000 + ((os.getpid() + i) % 40) * 250
        if all(free(p) for p in range(start, start + size)):
            return start
    raise RuntimeError("no block of free ports for Ray's workers")


def pick_subnet() -> int:
    """X of a 10.211.X.0/24 that no interface uses now (from this process's pid)."""
    used = sh("ip", "-o", "-4", "addr").stdout
    for i in range(250):
        x = 1 + (os.getpid() + i) % 250
        if f" 10.211.{x}." not in used:
            return x
    raise RuntimeError("every 10.211.X.0/24 is in use")


def check_tcp(ns: str, host_ip: str, ns_ip: str) -> None:
    """A TCP connection from the namespace to the host's end and one from the host to the namespace's
    end, before Ray: the head, the driver and the worker all dial each other."""
    with socket.socket() as server:
        server.bind((host_ip, 0))
        server.listen(1)
        server.settimeout(20)
        dial = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                 f"import socket; socket.create_connection(({host_ip!r}, {server.getsockname()[1]}), "
                                 "timeout=10).close()"], stderr=subprocess.PIPE, text=True)
        try:
            server.accept()[0].close()
        except OSError as e:
            dial.kill()
            raise AssertionError(f"namespace {ns} ({ns_ip}) cannot reach the host at {host_ip}: {e}; "
                                 f"{dial.communicate()[1].strip()}") from e
        assert dial.wait(20) == 0, f"namespace {ns} -> {host_ip}: {dial.communicate()[1].strip()}"
    listen = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                               "import socket; s = socket.socket(); s.bind((%r, 0)); s.listen(1); "
                               "print(s.getsockname()[1], flush=True); s.settimeout(20); s.accept()" % ns_ip],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(listen.stdout.readline() or 0)
        assert port, f"no listener in namespace {ns}: {listen.communicate(timeout=10)[1].strip()}"
        try:
            socket.create_connection((ns_ip, port), timeout=10).close()
        except OSError as e:
            raise AssertionError(f"the host ({host_ip}) cannot reach namespace {ns} at {ns_ip}:{port}: {e}") from e
        assert listen.wait(20) == 0
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group of `proc` (a `ray start --block` in a session of its own: it stops the
    Ray processes it started), then SIGKILL what is left of the group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def kill_leftovers(marker: str, ns: str) -> list[int]:
    """SIGKILL what this test started and outlived its `ray start`: every process in the namespace, and
    every process whose command line names this test's Ray temp dir. Returns their pids."""
    pids = {int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split()}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.add(int(entry.name))
            except OSError:
                pass
    pids.discard(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sorted(pids)


@pytest.fixture
def netns():
    """A network namespace joined to the host by a veth pair: (namespace, host_ip, namespace_ip)."""
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` (iproute2) to create a network namespace")
    pid = os.getpid()
    ns, host_if, ns_if = f"harness-n2-{pid}", f"hn2h{pid}", f"hn2n{pid}"
    added = sh("ip", "netns", "add", ns, check=False)
    if added.returncode != 0:
        pytest.skip(f"cannot create a network namespace: `ip netns add {ns}`: {added.stderr.strip()}")
    try:
        x = pick_subnet()
        host_ip, ns_ip = f"10.211.{x}.1", f"10.211.{x}.2"
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        for cmd in (["ip", "addr", "add", f"{ns_ip}/24", "dev", ns_if], ["ip", "link", "set", ns_if, "up"],
                    ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", ns, *cmd)
        check_tcp(ns, host_ip, ns_ip)
        yield ns, host_ip, ns_ip
    finally:
        left = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for p in left:  # only processes inside the namespace this fixture made
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "link", "del", host_if, check=False)  # deleting one end deletes the pair
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def two_node_cluster(netns):
    """A Ray head on the host at the veth's host end and a Ray worker in the namespace, with its own
    hostname: yields (address, env), env holding the cluster's auth token for the driver."""
    ns, host_ip, ns_ip = netns
    temp = Path(f"/tmp/ray_twonode_{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # as the SLURM template: a token per cluster, no usage stats, no drain wait at stop
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", OMP_NUM_THREADS="1")
    gcs, node_manager, object_manager, agent_listen, agent_grpc, metrics, runtime_env, dashboard, client = \
        free_ports(9)
    workers = free_port_block()
    address = f"{host_ip}:{gcs}"
    ray_start = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus=1", "--num-gpus=0",
                 "--object-store-memory=100000000"]
    head_cmd = ray_start + [
        "--head", f"--node-ip-address={host_ip}", f"--port={gcs}", f"--temp-dir={temp / 'head'}",
        "--include-dashboard=false", f"--dashboard-port={dashboard}",
        f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
        f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
        f"--min-worker-port={workers}", f"--max-worker-port={workers + 99}"]
    try:
        import grpc  # noqa: F401 - Ray's client server (default port 10001) starts only where grpc is installed
        head_cmd.append(f"--ray-client-server-port={client}")
    except ImportError:
        pass
    # the worker's ports are in its own namespace: Ray's defaults clash with nothing there
    worker_cmd = ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
                  f'hostname {WORKER_HOSTNAME} && exec "$@"', "sh",
                  *ray_start, f"--address={address}", f"--node-ip-address={ns_ip}", f"--temp-dir={temp / 'n2'}"]
    head = worker = None
    logs = temp / "logs"
    logs.mkdir(parents=True)
    try:
        started = time.monotonic()
        print(f"\nhead: {' '.join(head_cmd)}\nworker: {' '.join(worker_cmd)}", flush=True)
        with open(logs / "head.log", "w") as out:
            head = subprocess.Popen(head_cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with open(logs / "worker.log", "w") as out:
            worker = subprocess.Popen(worker_cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        joined = subprocess.run([sys.executable, "-c", "from harness.slurm import wait_for_nodes; "
                                 f"wait_for_nodes({address!r}, 2, 120, '{head.pid} {worker.pid}')"],
                                env=env, capture_output=True, text=True, timeout=180)
        assert joined.returncode == 0, (joined.stdout + joined.stderr)[-3000:] + tail(logs)
        print(f"{joined.stdout.strip()} after {time.monotonic() - started:.1f} s", flush=True)
        yield address, env
    finally:
        stopping = time.monotonic()
        for proc in (worker, head):
            if proc is not None:
                stop_group(proc)
        left = kill_leftovers(f"{temp}/", ns)  # the slash: not /tmp/ray_twonode_<pid>1...
        if left:
            print(f"killed {len(left)} leftover Ray process(es): {left}", flush=True)
        shutil.rmtree(temp, ignore_errors=True)
        print(f"ray stopped in {time.monotonic() - stopping:.1f} s", flush=True)


def tail(logs: Path) -> str:
    return "".join(f"\n--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(logs.glob("*.log")))


def test_sweep_runs_on_both_nodes(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness.sweep", str(path), "--address", address,
                           "--results-dir", str(results), "--no-report", "--no-pack"],
                          env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = store.read_table(results / "twonode", "trials")
    assert len(trials) == len(LRS) and trials["trial_id"].is_unique, trials[["trial_id", "status"]]
    assert sorted(trials["optimizer.lr"]) == sorted(LRS)
    assert (trials["status"] == "completed").all(), trials[["trial_id", "status", "error"]]
    hosts = trials.groupby("host")["trial_id"].count().to_dict()
    print(f"sweep: {len(trials)} trials in {took:.1f} s; trials per host: {hosts}", flush=True)
    print(trials.sort_values("started_at")[["host", "optimizer.lr", "started_at", "total_seconds"]].to_string(
        index=False), flush=True)
    assert set(hosts) == {socket.gethostname(), WORKER_HOSTNAME}, hosts
