"""index.html is self-contained and renders in headless Chromium without console errors; its interactive views
(the "explore" section: an inline JSON blob and one inline script) draw and respond to hover.

Chromium comes from `.ci/install-chromium.sh`; without it the rendering test is skipped (the static checks
still run). Chromium's own log is noisy (D-Bus, GPU probing); what counts as a page error is any console
message (`CONSOLE`), an uncaught exception, or an error line that names the page.
"""

import json
import re
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
    assert "http://" not in page and "https://" not in page
    scripts = re.findall(r"<script\b[^>]*>", page)  # exactly the views' data blob and their script, both inline
    assert scripts == ['<script type="application/json" id="harness-data">', "<script>"]
    assert not any("src=" in tag for tag in scripts)
    blob = re.search(r'<script type="application/json" id="harness-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(blob)
    assert len(data["trials"]) == 34 and data["metric"] == "best_val_acc"  # 36 trials less failed and diverged
    for container in ("harness-parallel", "harness-scatter", "harness-tip"):
        assert f'id="{container}"' in page
    pngs = sorted((report / "plots").glob("*.png"))
    assert len(pngs) >= 8
    assert page.count('src="data:image/png;base64,') == len(pngs)
    for anchor in ("leaderboard", "uncertainty", "budget", "workloads", "marginals", "time-to-target", "curves",
                   "best-trial", "diagnosis", "throughput", "compare", "provenance", "explore", "pareto"):
        assert f'<section id="{anchor}">' in page
    # every statistic says which method made it
    for method in ("Student&#x27;s t interval", "Holm", "probability of improvement", "80% power",
                   "binomial", "Dodge et al. 2019", "IQM and performance profiles",
                   "permutation importance on a scikit-learn RandomForestRegressor", "Pareto front"):
        assert method in page, method


def _chromium(tmp_path, *args):
    """Run headless Chromium; return its stdout after checking the exit code and that the page logged no error."""
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    problems = [line for line in proc.stderr.splitlines()
                if "CONSOLE" in line or "Uncaught" in line or ("ERROR" in line and "index.html" in line)]
    assert not problems, problems
    return proc.stdout


needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="chromium is not installed (CI installs it with .ci/install-chromium.sh)")


@needs_chromium
def test_page_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", (report / "index.html").as_uri())
    image = imread(shot)
    assert image.shape[:2] == (2000, 1280)
    assert np.std(image[..., :3]) > 0.05  # not a blank page


@needs_chromium
def test_views_draw_and_respond_in_headless_chromium(report, tmp_path):
    """#selftest: the script hovers the first line and the first point after drawing and reports in the title."""
    dom = _chromium(tmp_path, "--dump-dom", (report / "index.html").as_uri() + "#selftest")
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("selftest ok lines=34 points=102 tooltip="), title  # 34 counted trials x 3 axes
    line_tip, point_tip = title.split(" tooltip=", 1)[1].split(" | point=")
    assert re.fullmatch(r"activation=\w+ lr=[\d.]+ optimizer=\w+ · seed \d · best_val_acc [\d.]+", line_tip), line_tip
    assert "seed=" in point_tip and "best_val_acc" in point_tip, point_tip  # the trial id and its metric
    assert len(re.findall(r'<polyline class="pc-line" data-i="\d+"', dom)) == 34  # drawn, not the script's text
    assert len(re.findall(r'<circle class="sc-pt" data-i="\d+"', dom)) == 102
