"""Benchmarks run only on request: `pytest tests/benchmarks --benchmark-only` (pyproject's addopts has
--benchmark-skip, which --benchmark-only overrides). Every test here must use the `benchmark` fixture,
or the default run would not skip it. The throughput comparisons measured in a session are printed
at its end as the same table `python -m harness.bench` prints."""

import os

import pytest

from harness import bench

COMPARISONS: list = []


@pytest.fixture
def comparisons() -> list:
    """The session's bench.Comparison objects, for the summary table."""
    return COMPARISONS


def pytest_terminal_summary(terminalreporter):
    if COMPARISONS:
        device = bench.default_device()
        name = bench.describe_device(device, os.cpu_count())
        terminalreporter.write_sep("-", f"throughput on {name} (medians of the quiet rounds)")
        terminalreporter.write_line(bench.markdown([bench.table_row(c, device) for c in COMPARISONS]).rstrip())
