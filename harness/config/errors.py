"""Config errors: `ConfigError` (one line naming the file or `--set`, the key and what is allowed) and
`ArgParser`, argparse for the harness CLIs with the same one-line `error: ...` and exit 2."""

from __future__ import annotations

import argparse
import re


class ConfigError(ValueError):
    """A bad sweep file or override: the message names the file, the key and what is allowed (one line)."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())


class ArgParser(argparse.ArgumentParser):
    """argparse for the harness CLIs: a bad command line is one `error: ...` line and exit 2 (no usage block)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        message = message.removeprefix("argument ")  # "argument --shard: ..." -> "--shard: ..."
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def error(where: str, key: str, message: str) -> ConfigError:
    """`where: key: message` (or `where: message` without a key) as a ConfigError."""
    return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")
