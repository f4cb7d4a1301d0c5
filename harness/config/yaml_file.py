"""Reading a sweep file: its top-level YAML mapping, or a one-line ConfigError for a missing,
unreadable, non-UTF-8, binary or invalid file, or a key given twice in one mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import ConfigError


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.again = key, first, again


class _SweepLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what, then where."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if not problem:
        return " ".join(str(err).split())
    context = getattr(err, "context", None)
    text = f"{context}: {problem}" if context else problem
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    if "'\\t'" in problem:
        text += "; indent with spaces, not tabs"
    return text


def read_yaml(path: Path) -> dict[str, Any]:
    """The sweep file's top-level mapping; ConfigError for a missing, unreadable, non-UTF-8 or non-YAML file."""
    try:
        if not path.exists():
            raise ConfigError(f"{path}: no such file")
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory; allowed: a sweep file (YAML), e.g. sweeps/quickstart.yaml")
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
                          f"allowed: a YAML file encoded as UTF-8") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file (it holds NUL bytes); allowed: a YAML file encoded as UTF-8")
    try:
        tree = yaml.load(text, Loader=_SweepLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: {err.key}: given twice in one mapping (lines {err.first} and {err.again}); "
                          f"a key may appear once") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    if tree is None:
        raise ConfigError(f"{path}: is empty; allowed: a mapping of keys (name, dataset, model, ...), "
                          f"e.g. sweeps/quickstart.yaml")
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping of keys (name, dataset, model, ...), "
                          f"got a {type(tree).__name__}")
    return tree
