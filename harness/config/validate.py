"""Validating one run's config: `validate_run(raw, where) -> RunConfig`, with pydantic's errors translated
into one line that names the file (or `--set`), the dotted key and what is allowed."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from harness.config.errors import error
from harness.config.model_options import OptionError
from harness.config.overrides import known_key, section_at
from harness.config.schema import RunConfig
from harness.registry import UnknownName, did_you_mean


def _validation_message(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = first["loc"]
    n = next((i for i, p in enumerate(loc) if isinstance(p, int)), len(loc))  # the key ends at a list index
    key = ".".join(str(p) for p in loc[:n])
    at = f" at {loc[n - 1]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[n:]) if n < len(loc) else ""
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, OptionError):  # a model option: name it (model.widths), not just the section
        key = f"{key}.{cause.option}"
    if first["type"] == "extra_forbidden":
        msg = known_key(key) or f"unknown key '{key}'"
    elif first["type"] == "literal_error":
        got = first.get("input")
        expected = re.findall(r"'([^']*)'", first.get("ctx", {}).get("expected", ""))
        msg = f"'{got}' is not allowed{did_you_mean(str(got), expected)}; allowed: {', '.join(expected)}"
    elif first["type"] == "missing":
        msg = f"a value is missing{at}" if at else "is required"
    elif first["type"] == "model_type":  # `train: 5`: a section given as something other than a mapping
        section = section_at(key)
        allowed = f"; allowed keys: {', '.join(section.model_fields)}" if section else ""
        msg = f"must be a mapping of keys, e.g. {{key: value}}{at} (got {first.get('input')!r}){allowed}"
    else:
        got = first.get("input")
        msg += at
        if not isinstance(got, dict) and first["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {got!r})"
    if len(err.errors()) > 1:
        msg += f" (and {len(err.errors()) - 1} more problem(s))"
    return key, msg


def _set_by(key: str, set_keys) -> bool:
    """Whether the value at `key` came from one of the `--set` keys."""
    return any(key == k or key.startswith(k + ".") for k in set_keys)


def validate_run(raw: dict[str, Any], where: str = "<config>", set_keys=()) -> RunConfig:
    """Validate one run's config; a ConfigError names `where` (or `--set` when an override set the key)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        key, msg = _validation_message(err)
        raise error("--set" if _set_by(key, set_keys) else where, key, msg) from None
    except UnknownName as err:
        raise error(where, "", str(err)) from None
