"""What a non-editable install gets: the wheel built from this checkout carries the sbatch template that
`python -m harness.slurm` renders, and harness.slurm finds it through importlib.resources (not through a
path relative to the source tree)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import slurm

ROOT = Path(__file__).resolve().parents[1]


def test_slurm_finds_its_template_as_package_data():
    assert slurm.TEMPLATE.name == "ray-sweep.sbatch" and slurm.TEMPLATE.is_file()
    assert "{{sweep_args}}" in slurm.TEMPLATE.read_text()
    assert "harness" in Path(str(slurm.TEMPLATE)).parts[-3:]  # inside the package, not the checkout's root


@pytest.mark.slow
def test_the_wheel_carries_the_template(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(tmp_path)], check=True, cwd=tmp_path, capture_output=True)
    wheel = next(tmp_path.glob("harness-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "harness/templates/ray-sweep.sbatch" in names
    assert "harness/bench/__main__.py" in names and "harness/store/__init__.py" in names
