"""index.html is self-contained and renders in headless Chromium without console errors.

Chromium comes from `.ci/install-chromium.sh`; without it the rendering test is skipped (the static checks
still run). Chromium's own log is noisy (D-Bus, GPU probing); what counts as a page error is any console
message (`CONSOLE`), an uncaught exception, or an error line that names the page.
"""

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

try:
    from report_fixtures import build_fake_sweep
except ImportError:  # tests/ as a package
    from tests.report_fixtures import build_fake_sweep

from harness.report import write_report

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,2000", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    other = build_fake_sweep(root / "other", configs=[("relu", "adam", 0.01), ("gelu", "adam", 0.01)],
                             shift=-0.03, sweep="baseline")
    return write_report(build_fake_sweep(root / "sweep"), compare=other)


def test_page_is_self_contained(report):
    page = (report / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    pngs = sorted((report / "plots").glob("*.png"))
    assert len(pngs) >= 8
    assert page.count('src="data:image/png;base64,') == len(pngs)
    for anchor in ("leaderboard", "uncertainty", "budget", "workloads", "marginals", "time-to-target", "curves",
                   "best-trial", "diagnosis", "throughput", "compare", "provenance"):
        assert f'<section id="{anchor}">' in page
    # every statistic says which method made it
    for method in ("Student&#x27;s t interval", "Holm", "probability of improvement", "80% power",
                   "binomial", "Dodge et al. 2019", "IQM and performance profiles"):
        assert method in page, method


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it with .ci/install-chromium.sh)")
def test_page_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         (report / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    problems = [line for line in proc.stderr.splitlines()
                if "CONSOLE" in line or "Uncaught" in line or ("ERROR" in line and "index.html" in line)]
    assert not problems, problems
    image = imread(shot)
    assert image.shape[:2] == (2000, 1280)
    assert np.std(image[..., :3]) > 0.05  # not a blank page
