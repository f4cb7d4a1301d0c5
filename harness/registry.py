"""Registries: ONE per concept (model, dataset, loss, optimizer, activation, init, augment and normalize
presets), each mapping a name to a factory plus metadata, with did-you-mean errors. Nothing else.

The registries are created here, at the bottom of the package, so that the config (which checks a
sweep file's names and task rules) reads them without importing the layers that fill them. A
registry fills itself on first use by importing the package that holds its entries (`loads`): the
decorators there run and register every entry.

    @MODELS.register("unet_mobilenetv2", task="segmentation")
    def unet_mobilenetv2(input_shape, num_classes, ...): ...

    @DATASETS.register("cifar10", shape=(3, 32, 32), classes=10, train_pool=50_000)
    def cifar10(cfg): ...

    MODELS.get("unet_mobilenetv2")           # the factory
    MODELS.meta("unet_mobilenetv2")["task"]  # 'segmentation' (task defaults to 'classification')
    MODELS.names(task="segmentation")        # ['unet_mobilenetv2']
    MODELS.get("unet_mobilenet")             # UnknownName: unknown model 'unet_mobilenet'
                                             #   (did you mean 'unet_mobilenetv2'?); allowed: ...
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional


class UnknownName(KeyError, ValueError):
    """A name that is not in a registry; the message lists what is allowed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def did_you_mean(name: str, allowed: list[str]) -> str:
    """' (did you mean 'relu'?)' for a near miss, '' otherwise."""
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class Entry:
    """One registered name: its factory and its metadata (task, shape, classes, ...)."""

    name: str
    factory: Callable
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """A mapping of names to factories with metadata, filled by the `register` decorator.

    Args:
        kind: what an entry is, in error messages ("model").
        loads: the module whose import registers the entries; imported on first lookup.
        **defaults: metadata every entry has unless its `register` call says otherwise.
    """

    def __init__(self, kind: str, loads: Optional[str] = None, **defaults: Any):
        self.kind = kind
        self.loads = loads
        self.defaults = defaults
        self._entries: dict[str, Entry] = {}
        self._sources: list[tuple[Callable[[str], bool], Callable[[str], Entry]]] = []
        self._loaded = loads is None

    def register(self, name: str | None = None, **meta: Any) -> Callable[[Callable], Callable]:
        """Decorator: add `factory` under `name` (default: the function's name) with `meta`."""
        def decorator(factory: Callable) -> Callable:
            key = name or factory.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._entries[key] = Entry(key, factory, {**self.defaults, **meta})
            return factory

        return decorator

    def add_source(self, matches: Callable[[str], bool], resolve: Callable[[str], Entry]) -> None:
        """Names outside the registry that `resolve` turns into entries (`torchvision:<name>`, `module:function`);
        the first source whose `matches(name)` is true answers, after the registered names."""
        self._sources.append((matches, resolve))

    def _fill(self) -> None:
        if not self._loaded:
            self._loaded = True  # before the import: the registering modules read the registry too
            importlib.import_module(self.loads)

    def entry(self, name: str) -> Entry:
        """The entry for `name`, else UnknownName with a did-you-mean and the allowed names."""
        self._fill()
        if isinstance(name, str) and name not in self._entries:
            for matches, resolve in self._sources:
                if matches(name):
                    return resolve(name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown_message(name)) from None

    def get(self, name: str) -> Callable:
        return self.entry(name).factory

    def meta(self, name: str) -> Mapping[str, Any]:
        return self.entry(name).meta

    def find(self, factory: Callable) -> Optional[Entry]:
        """The entry whose factory is `factory` (a `module:function` model registered in its own module)."""
        self._fill()
        return next((e for e in self._entries.values() if e.factory is factory), None)

    def unknown_message(self, name: str, **where: Any) -> str:
        allowed = self.names(**where)
        return f"unknown {self.kind} '{name}'{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"

    def names(self, **where: Any) -> list[str]:
        """Sorted names, only those whose metadata has every `key=value` of `where`."""
        self._fill()
        return sorted(k for k, e in self._entries.items() if all(e.meta.get(m) == v for m, v in where.items()))

    def __contains__(self, name: object) -> bool:
        """Whether `name` is registered (a source's names are not: use `entry` to resolve those)."""
        self._fill()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._fill()
        return len(self._entries)


# ------------------------------------------------------------------------------------ the registries
# Metadata: `task` (classification, segmentation) on models, datasets and losses; datasets also have
# `shape` (C, H, W), `classes` and `train_pool` (images in the training pool) where fixed, or
# FROM_CONFIG where they come from the dataset's config (synthetic data: dataset.shape, ...).

FROM_CONFIG = "from_config"

MODELS = Registry("model", loads="harness.models", task="classification")
ACTIVATIONS = Registry("activation", loads="harness.models")
INITS = Registry("init", loads="harness.models")
DATASETS = Registry("dataset", loads="harness.data", task="classification", shape=None, classes=None,
                    train_pool=None)
AUGMENTATIONS = Registry("augment preset", loads="harness.data")
NORMALIZATIONS = Registry("normalize preset", loads="harness.data")
LOSSES = Registry("loss", loads="harness.losses", task="classification")
OPTIMIZERS = Registry("optimizer", loads="harness.optimizers")
