"""Shared test helpers: small sweep files written to tmp dirs, in-process sweeps on one Ray per module,
and one thread per test process."""

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def write_sweep(tmp_path):
    """write_sweep(text) -> path of a sweep file holding `text` in the test's tmp dir."""

    def write(text: str, name: str = "sweep.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def one_ray():
    """One Ray for a module's in-process sweeps (harness.sweep.cli.main starts it, or joins the one
    running), shut down after its last test: `pytestmark = pytest.mark.usefixtures("one_ray")`."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def run_sweep(tmp_path):
    """run_sweep(sweep dict) -> (trials by id, epochs, results folder): the sweep written to the test's tmp
    dir and run in-process through the CLI, which must exit 0."""
    import yaml

    from harness import store
    from harness.sweep.cli import main

    def run(sweep: dict):
        path = tmp_path / f"{sweep['name']}.yaml"
        path.write_text(yaml.safe_dump(sweep))
        assert main([str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
        results = tmp_path / sweep["name"]
        return store.read_table(results, "trials").set_index("trial_id"), store.read_table(results, "epochs"), results

    return run


from readme_blocks import REPO, readme_block  # noqa: E402 - after the fixtures above, as pytest imports conftest


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The README's quickstart commands, run as written in a fresh working directory (once per
    test session): returns (workdir, [(command, CompletedProcess), ...])."""
    import shutil
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(os.path.join(REPO, "sweeps"), work / "sweeps")
    runs = []
    for command in readme_block():
        if command.startswith("pip "):
            continue  # the install is what CI itself does first
        argv = command.split()
        argv[0] = sys.executable
        proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=900)
        runs.append((command, proc))
        if proc.returncode != 0:
            break
    return work, runs
