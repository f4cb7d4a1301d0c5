"""Search spaces in sweep files: a grid axis whose value is a mapping with one of these keys instead of
a list of values.

    optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}     # log-uniform between the bounds
    optimizer.momentum: {uniform: [0.8, 0.99]}
    optimizer.weight_decay: {quniform: [0.0, 1.0e-3, 1.0e-4]}   # uniform, rounded to a multiple of q
    train.batch_size: {randint: [32, 257]}            # an integer in [low, high) (high excluded, as in Tune)
    model.activation: {choice: [relu, gelu, tanh]}

The meanings are Ray Tune's (`tune.loguniform`, `tune.uniform`, `tune.quniform`, `tune.randint`,
`tune.choice`). `search: random` draws its points here, at expansion time, from a generator seeded by
the sweep's first seed: a draw must be known before Ray starts (for --dry-run, packing and stable
trial ids under --resume), and importing ray.tune costs seconds, so these five one-line draws are
written with numpy. Drawn floats are rounded to 4
significant digits: the trial id shows the value the trial ran with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("loguniform", "uniform", "quniform", "randint", "choice")
SIGNIFICANT = 4


@dataclass(frozen=True)
class Space:
    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        if self.kind == "randint":
            return int(rng.integers(self.args[0], self.args[1]))
        if self.kind == "loguniform":
            low, high = self.args
            return rounded(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.kind == "uniform":
            return rounded(rng.uniform(*self.args))
        low, high, q = self.args  # quniform
        return rounded(round(rng.uniform(low, high) / q) * q)

    def cast(self, value: Any) -> Any:
        """A value drawn elsewhere (a Tune searcher) as this space draws it: floats rounded (quniform to its
        grid), integers as int, a choice as the listed value itself (searchers hand back numpy types)."""
        if self.kind == "choice":
            return next((a for a in self.args if a == value or str(a) == str(value)), value)
        if self.kind == "randint":
            return int(value)
        if self.kind == "quniform":
            low, high, q = self.args
            return rounded(round(float(value) / q) * q)
        return rounded(float(value))

    def describe(self) -> str:
        return f"{self.kind}{list(self.args)}"


def rounded(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _from_text(x: Any) -> Any:
    """'1e-4' -> 0.0001, '3' -> 3; anything else as it is."""
    if isinstance(x, str):
        for kind in (int, float):
            try:
                return kind(x)
            except ValueError:
                pass
    return x


def parse_space(value: Any) -> Space | None:
    """The Space a grid value describes, None when it is not a mapping (a list of values). Raises
    ValueError (a message naming the problem) for a malformed space."""
    if not isinstance(value, dict):
        return None
    if len(value) != 1 or next(iter(value)) not in KINDS:
        raise ValueError(f"a search space is one of {{{', '.join(f'{k}: [...]' for k in KINDS)}}}, got {value!r}")
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise ValueError(f"{kind} takes a list, got {args!r}")
    if kind == "choice":
        if len({repr(a) for a in args}) != len(args):
            raise ValueError(f"choice has duplicate values: {args}")
        return Space(kind, tuple(args))
    args = [_from_text(a) for a in args]  # YAML reads 1e-4 (no dot) as text
    need = 3 if kind == "quniform" else 2
    if len(args) != need or not all(_number(a) for a in args):
        form = "[low, high, q]" if kind == "quniform" else "[low, high]"
        raise ValueError(f"{kind} takes {form} (numbers), got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise ValueError(f"{kind} needs low < high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"loguniform needs low > 0, got {args!r}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"randint takes integers [low, high) (high excluded), got {args!r}")
    if kind == "quniform" and args[2] <= 0:
        raise ValueError(f"quniform needs q > 0, got {args!r}")
    return Space(kind, tuple(args))


def tune_domain(space: Space):
    """Ray Tune's search space object for a sweep file's space (what Tune's searchers and PBT take). Ray is
    imported here, when asked for: the rest of this module never needs it."""
    from ray import tune

    make = {"loguniform": tune.loguniform, "uniform": tune.uniform, "quniform": tune.quniform,
            "randint": tune.randint}
    return tune.choice(list(space.args)) if space.kind == "choice" else make[space.kind](*space.args)
