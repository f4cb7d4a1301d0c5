"""Where a trial's numbers came from: the code version, the versions of the libraries that trained it,
the host, and a hash of the sweep file. Every trials row carries these columns (harness.trial adds them
to the row's base), so that a table mixing code versions or machines says so (harness.report.provenance).

    provenance()                             # {"code_commit": "95a0302e...", "code_dirty": False, ...}
    sweep_file_hash("results/x/sweep.yaml")  # "3f1c0a9b2e7d4c61": sha256 of the bytes, first 16 hex digits
    results_sweep_hash("results/x")          # the same for the copy of the sweep file a sweep ran, or None

The code version is the git commit of the checkout the harness package lives in (and whether its
tracked files differ from that commit); installed from a wheel, or wherever git is missing, those are
None and `harness_version` (the installed distribution's version) is what identifies the code.
Nothing here raises: a value that cannot be found is None, never a failed trial.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

PACKAGE_DIR = Path(__file__).resolve().parent
DISTRIBUTION = "harness"  # pyproject.toml's [project] name
GIT_TIMEOUT_S = 5.0  # per git command; a slow or hung git leaves the code version None
HASH_CHARS = 16  # sweep_file_hash: the first 16 hex digits (64 bits) of the sha256
SWEEP_COPY = "sweep.yaml"  # the exact sweep file a sweep ran, as `python -m harness.sweep` copies it into its results

COLUMNS = ("code_commit", "code_dirty", "harness_version", "torch_version", "cuda_version", "cudnn_version",
           "accelerate_version", "ray_version", "host", "python_version")  # provenance()'s keys, in order


def _git(directory: Path, *args: str) -> Optional[str]:
    """`git -C directory ARGS`'s stdout, stripped; None when git is missing, fails or times out."""
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_version(directory: str | Path = PACKAGE_DIR) -> tuple[Optional[str], Optional[bool]]:
    """(HEAD commit, dirty) of the git checkout `directory`'s files are tracked in; (None, None) when they
    are not tracked in one (a wheel in site-packages, even a venv inside a checkout; a plain folder) or git
    is missing. Dirty: `git status --porcelain --untracked-files=no` lists something, i.e. a tracked
    file of the whole working tree is modified, staged, deleted or renamed; untracked files are ignored."""
    directory = Path(directory)
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit or not _git(directory, "ls-files", "--", "."):  # no commit, or nothing here is tracked
        return None, None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _safe(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except Exception:  # noqa: BLE001 - provenance is best effort: a value not found is None
        return None


def _version(distribution: str) -> Optional[str]:
    """An installed distribution's version from its metadata (never importing it: `import ray` takes seconds)."""
    return _safe(lambda: importlib.metadata.version(distribution))


def _cudnn() -> Optional[str]:
    import torch

    version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return None if version is None else str(version)  # as torch gives it: 92400 is cuDNN 9.24.0


@functools.cache
def _provenance(directory: Path) -> dict[str, Any]:
    import torch

    commit, dirty = _safe(lambda: git_version(directory)) or (None, None)
    return {
        "code_commit": commit, "code_dirty": dirty, "harness_version": _version(DISTRIBUTION),
        "torch_version": _safe(lambda: torch.__version__), "cuda_version": _safe(lambda: torch.version.cuda),
        "cudnn_version": _safe(_cudnn), "accelerate_version": _version("accelerate"), "ray_version": _version("ray"),
        "host": _safe(socket.gethostname), "python_version": _safe(platform.python_version),
    }


def provenance(directory: str | Path | None = None) -> dict[str, Any]:
    """The code version and environment this process trains in, the keys of COLUMNS: code_commit (40 hex
    digits, or None outside a git checkout), code_dirty (bool, or None outside one), harness_version,
    torch_version, cuda_version (None on a CPU-only torch), cudnn_version (str(torch.backends.cudnn.version()),
    None without cuDNN), accelerate_version, ray_version, host, python_version; each None when it can't be
    found. `directory`: where to look for the git checkout (default: the harness package's folder).
    Computed once per process and directory (the commit a long-running worker reports is the one it started
    with); a fresh dict each call."""
    return dict(_provenance(Path(directory).resolve() if directory is not None else PACKAGE_DIR))


def sweep_file_hash(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex, its first HASH_CHARS (16) digits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:HASH_CHARS]


def results_sweep_hash(results_dir: str | Path | None) -> Optional[str]:
    """sweep_file_hash of RESULTS_DIR/sweep.yaml (the copy `python -m harness.sweep` writes before it runs
    trials); None without a results directory, without that file (`python -m harness.trial` alone), or when
    it can't be read."""
    if results_dir is None:
        return None
    try:
        return sweep_file_hash(Path(results_dir) / SWEEP_COPY)
    except OSError:
        return None
