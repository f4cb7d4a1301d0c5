"""Trials that start together on a fresh machine download a dataset once: four processes open MNIST
with download on against a real HTTP server on localhost (torchvision's own download code, the real
.gz files of the IDX format); the server counts the requests."""

import gzip
import hashlib
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    from fixtures_data import write_mnist
except ImportError:  # tests/ as a package
    from tests.fixtures_data import write_mnist

OPEN_MNIST = """
import sys, json
import torchvision.datasets as d
d.MNIST.mirrors = [sys.argv[1]]
d.MNIST.resources = json.loads(sys.argv[3])
from harness.config import DatasetConfig
from harness.data.sources import mnist
raw = mnist(DatasetConfig(name="mnist", data_dir=sys.argv[2], download=True))
print(len(raw.train_y), len(raw.test_y))
"""


def serve(folder: Path):
    """A threaded HTTP server on 127.0.0.1 serving `folder`, slow enough (0.3 s a file) that processes
    starting together overlap; returns (server, the list of GET paths it answered)."""
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            seen.append(self.path)
            time.sleep(0.3)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def mnist_mirror(tmp_path: Path):
    """MNIST's four .gz files served on 127.0.0.1: (server, requests seen, url, torchvision resources)."""
    raw = write_mnist(tmp_path / "src") / "MNIST" / "raw"
    served = tmp_path / "mirror"
    served.mkdir()
    resources = []
    for path in sorted(raw.iterdir()):
        blob = gzip.compress(path.read_bytes())
        (served / f"{path.name}.gz").write_bytes(blob)
        resources.append([f"{path.name}.gz", hashlib.md5(blob).hexdigest()])
    server, seen = serve(served)
    return server, seen, f"http://127.0.0.1:{server.server_address[1]}/", resources


def test_processes_starting_together_download_each_file_once(tmp_path):
    server, seen, url, resources = mnist_mirror(tmp_path)

    def open_together(data_dir, count):
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_MNIST, url, str(data_dir), json.dumps(resources)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            assert out.split() == ["400", "200"]

    try:
        open_together(tmp_path / "alone", 1)  # how many requests one download makes (torchvision probes first)
        alone = sorted(seen)
        assert set(alone) == {f"/{name}" for name, _ in resources}
        seen.clear()
        open_together(tmp_path / "fresh", 4)  # four trials starting at once on a fresh data folder
    finally:
        server.shutdown()
    assert sorted(seen) == alone  # the files were fetched once, not once per process
