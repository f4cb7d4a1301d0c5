"""`python -m harness.data download SWEEP.yaml [--set KEY=VALUE ...]`: fetch every dataset the sweep's
trials use into their data_dir, on a machine with internet (a cluster's login node), so that trials on
compute nodes without it find the files there (see harness/data/download.py).

    python -m harness.data download sweeps/cifar.yaml
    # cifar10 -> data/ ...
    # cifar10 in data/: downloaded (50000 train, 10000 test)

Exit codes: 0 every dataset is there, 1 some could not be fetched (one `error: ...` line each, after
trying them all), 2 bad input (a missing or invalid sweep file, a bad --set).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from harness.config import ArgParser, ConfigError, load_sweep
from harness.data.download import distinct_datasets, fetch, needs_files, shown
from harness.data.sources import DatasetUnavailable


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog="python -m harness.data", description="Dataset tools.")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    download = commands.add_parser(
        "download", help="fetch every dataset a sweep file uses into its data_dir",
        description="Fetch every dataset the sweep's trials use into their data_dir (run it where there is "
                    "internet, e.g. a cluster's login node).")
    download.add_argument("sweep", help="sweep file (YAML)")
    download.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config key (repeatable), as for python -m harness.sweep")
    return p


def _failure(cfg, err: BaseException) -> str:
    """`error: ...` in one line; DatasetUnavailable's message already names the dataset and its folder."""
    text = " ".join(str(err).split())
    if isinstance(err, DatasetUnavailable):
        return f"error: {text}"
    return f"error: {cfg.name} in {shown(cfg.data_dir)}: {type(err).__name__}: {text}"


def download(sweep_path: str, overrides: list[str]) -> int:
    try:
        trials = load_sweep(sweep_path, overrides).trials
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for cfg in distinct_datasets(trials):
        if needs_files(cfg):
            print(f"{cfg.name} -> {shown(cfg.data_dir)} ...", flush=True)
        try:
            print(fetch(cfg), flush=True)
        except (RuntimeError, OSError, ValueError) as err:  # DatasetUnavailable, an unreadable file, ...
            print(_failure(cfg, err), file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return download(args.sweep, args.overrides)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        os._exit(0)
