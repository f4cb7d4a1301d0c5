"""Trials shared by claims (harness.sweep.claims): atomic claims under a race between real processes,
release of the claims of an owner that has ended, and two real sweeps sharing one results folder with
`--claim`, every trial run exactly once. The SLURM side (an array task killed, its claims released when
SLURM says it ended) is in tests/test_slurm.py."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

from harness import store
from harness.config import load_sweep
from harness.sweep.claims import claim_path, owner, release_dead_claims, try_claim


def _race(results_dir: str, queue) -> None:
    queue.put(try_claim(Path(results_dir), "t1", owner()))


def test_of_racing_processes_exactly_one_gets_a_claim(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, False, False, True]
    holder = json.loads(claim_path(tmp_path, "t1").read_text())
    assert holder["pid"] in {p.pid for p in procs}


def test_claims_of_ended_owners_are_released_and_live_ones_kept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has ended
    me = owner()
    assert try_claim(tmp_path, "dead", {**me, "job": None, "pid": dead_pid})
    assert try_claim(tmp_path, "alive", {**me, "job": None})
    assert try_claim(tmp_path, "elsewhere", {"job": None, "host": "another-host", "pid": 1})
    assert release_dead_claims(tmp_path, ["dead", "alive", "elsewhere", "unclaimed"]) == ["dead"]
    assert not claim_path(tmp_path, "dead").exists() and claim_path(tmp_path, "alive").exists()


SWEEP = """\
name: claimed
dataset: {name: synthetic, num_train: 256, num_val: 64, num_test: 64, shape: [1, 8, 8], num_classes: 2}
model: {arch: mlp, widths: [16]}
train: {epochs: 2, batch_size: 64}
health: {enabled: false}
resources: {cpus_per_trial: 1, pack: "off"}
seeds: [0, 1]
grid:
  optimizer.lr: [0.1, 0.03, 0.01, 0.003]
"""


def test_two_sweeps_sharing_a_folder_by_claims_run_every_trial_once(tmp_path):
    path = tmp_path / "claimed.yaml"
    path.write_text(SWEEP)
    cmd = [sys.executable, "-m", "harness.sweep", str(path), "--results-dir", str(tmp_path), "--no-report",
           "--claim", "--max-concurrent", "1", "--resume"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = store.read_table(tmp_path / "claimed", "trials")
    assert sorted(trials["trial_id"]) == sorted(t.trial_id for t in load_sweep(path).trials)  # each once
    assert set(trials["status"]) == {"completed"}
    ran = [int(out.split("\nfinished ")[1].split()[0]) for out in outs]
    assert sum(ran) == 8 and min(ran) >= 1, outs  # both took work
    assert not any((tmp_path / "claimed" / "claims").iterdir())  # every claim dropped
