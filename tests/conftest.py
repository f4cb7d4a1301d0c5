"""Shared test helpers: small sweep files written to tmp dirs, and one thread per test process."""

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
