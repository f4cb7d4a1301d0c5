"""`--set KEY=VALUE` overrides and the dotted keys they name: parsing an override, and whether a dotted
key names a field of the schema (else a one-line message with a did-you-mean)."""

from __future__ import annotations

from typing import Any, Optional

import yaml
from pydantic import BaseModel

from harness.config.errors import ConfigError
from harness.config.schema import ModelConfig, RunConfig
from harness.registry import did_you_mean


def known_key(key: str) -> Optional[str]:
    """None if `key` names a field (or a model option), else an error message with a did-you-mean."""
    if not isinstance(key, str) or not key:
        return f"{key!r} is not a key: keys are dotted names such as optimizer.lr"
    parts = key.split(".")
    model: type[BaseModel] = RunConfig
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            if model is ModelConfig and i == len(parts) - 1:
                return None  # a model option: checked against the arch's factory on validation
            where = ".".join(parts[:i]) or "the top level"
            allowed = sorted(fields) + (["seeds", "grid"] if model is RunConfig else [])
            return f"unknown key '{part}' in {where}{did_you_mean(part, allowed)}; allowed: {', '.join(allowed)}"
        annotation = fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(parts) - 1:
            return f"'{'.'.join(parts[: i + 1])}' is a value, not a section"
    if isinstance(fields[parts[-1]].annotation, type) and issubclass(fields[parts[-1]].annotation, BaseModel):
        return f"'{key}' is a section, not a key: name one of its keys ({key}.<key>)"
    return None


def parse_override(text: str) -> tuple[str, Any]:
    """'optimizer.lr=0.1' -> ('optimizer.lr', 0.1); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set optimizer.lr=0.01")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def section_at(key: str) -> Optional[type[BaseModel]]:
    """The section class a dotted key names (`train` -> TrainConfig), or None."""
    model: Any = RunConfig
    for part in key.split("."):
        field_info = getattr(model, "model_fields", {}).get(part)
        model = field_info.annotation if field_info else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model
