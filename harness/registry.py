"""Name -> factory registries: one decorator adds an activation, loss, optimizer, model or dataset.

    ACTIVATIONS = Registry("activation")

    @ACTIVATIONS.register("relu")
    def relu():
        return nn.ReLU()

    ACTIVATIONS.get("relu")()   # -> nn.ReLU()
    ACTIVATIONS.get("rleu")     # -> UnknownName: unknown activation 'rleu' (did you mean 'relu'?) ...
"""

from __future__ import annotations

import difflib
from typing import Callable, Iterator


class UnknownName(KeyError, ValueError):
    """A name that is not in a registry; the message lists what is allowed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def did_you_mean(name: str, allowed: list[str]) -> str:
    """' (did you mean 'relu'?)' for a near miss, '' otherwise."""
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """A mapping of names to factories, filled by the `register` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable] = {}

    def register(self, name: str | None = None) -> Callable[[Callable], Callable]:
        def decorator(factory: Callable) -> Callable:
            key = name or factory.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable:
        try:
            return self._factories[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        allowed = self.names()
        return f"unknown {self.kind} '{name}'{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._factories)
