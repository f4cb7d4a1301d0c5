"""Model options: the types a model factory's keyword arguments take, checked when a sweep file loads.
(Here, in the config, because the config checks them; factories import the types from
harness.models.options.)

A factory declares its options as annotated keyword arguments; pydantic validates a sweep file's
values against those annotations (strictly: no string -> number or bool -> int coercion, no NaN or
infinity), so `model: {arch: mlp, widths: 5}` fails at load with "a list of integers > 0", not
inside torch at run time. An option without an annotation takes the type of its default (a bool,
an int, a float, a string, or a list of those); a default of None takes anything.

    @register_model("tiny")
    def tiny(input_shape, num_classes, activation: str = "relu", widths: Widths = (64,),
             dropout: Probability = 0.0, kernel_size: PositiveInt = 3): ...

    validate_options("tiny", tiny, {"widths": [0]})
    # OptionError (option 'widths'): Input should be greater than 0 at widths[0] (got [0]);
    #                                allowed: a list of integers > 0
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Callable, Optional, Union

import annotated_types
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]  # a dropout rate
Widths = Sequence[PositiveInt]  # layer widths or channel counts, one per layer
ChannelPairs = Sequence[Annotated[Sequence[PositiveInt], Field(min_length=2, max_length=2)]]  # [[c1, c2], ...]

NOT_OPTIONS = ("input_shape", "num_classes", "name")  # positional inputs of every factory, not sweep-file options

_STRICT = ConfigDict(strict=True, allow_inf_nan=False)


class OptionError(ValueError):
    """A model option the factory does not take, or a value of the wrong type; `option` names it."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def _inferred(default: Any) -> Any:
    """The type an unannotated option takes, from its default."""
    if default is None or default is inspect.Parameter.empty:
        return Any
    if isinstance(default, (bool, int, float, str)):
        return type(default)
    if isinstance(default, (list, tuple)):
        inner = {_inferred(v) for v in default}
        return Sequence[inner.pop() if len(inner) == 1 else Any]
    return Any


@functools.lru_cache(maxsize=None)
def option_types(factory: Callable) -> dict[str, Any]:
    """Option name -> the type its values must have (annotation, else the default's type)."""
    try:  # a functools.partial (torchvision:<name>) has its function's annotations
        hints = typing.get_type_hints(getattr(factory, "func", factory), include_extras=True)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: fall back to the defaults
        hints = {}
    params = inspect.signature(factory).parameters
    return {name: hints.get(name, _inferred(p.default)) for name, p in params.items()
            if name not in NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


@functools.lru_cache(maxsize=None)
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation, config=_STRICT)


def validate_options(arch: str, factory: Callable, options: dict[str, Any]) -> None:
    """Raise OptionError for the first option whose value does not fit the factory's type for it.

    Names are checked by the caller (with a did-you-mean); `activation` is checked against the
    activation registry by the config, so only its type is looked at here.
    """
    wanted = option_types(factory)
    for key, value in options.items():
        annotation = wanted.get(key, Any)
        if annotation is Any:
            continue
        try:
            _adapter(annotation).validate_python(value)
        except ValidationError as err:
            first = err.errors()[0]
            where = key + "".join(f"[{p}]" for p in first["loc"])
            msg = first["msg"].replace("an instance of Sequence", "a list").replace(
                "'str' instances are not allowed as a Sequence value", "Input should be a list, not a string")
            if first["loc"]:
                msg = f"{msg} at {where}"
            raise OptionError(key, f"{msg} (got {value!r}); allowed: {describe(annotation)}") from None


# --------------------------------------------------------------------------------------------------
# Types in words: "a list of integers > 0", "a number >= 0 and < 1"

_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings")}


def _constraints(metadata) -> tuple[str, Optional[int], Optional[int]]:
    """(' > 0 and < 1', min_length, max_length) from Annotated metadata."""
    words, low, high = [], None, None
    items = []
    for m in metadata:
        items.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    for m in items:
        if isinstance(m, annotated_types.Gt):
            words.append(f"> {m.gt}")
        elif isinstance(m, annotated_types.Ge):
            words.append(f">= {m.ge}")
        elif isinstance(m, annotated_types.Lt):
            words.append(f"< {m.lt}")
        elif isinstance(m, annotated_types.Le):
            words.append(f"<= {m.le}")
        elif isinstance(m, annotated_types.MinLen):
            low = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            high = m.max_length
    return (" " + " and ".join(words) if words else ""), low, high


def describe(annotation: Any, plural: bool = False) -> str:
    """A type annotation in words, for error messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        base, metadata = args[0], args[1:]
        bounds, low, high = _constraints(metadata)
        if typing.get_origin(base) in (list, tuple, Sequence) or base in (list, tuple):
            inner = typing.get_args(base)
            items = describe(inner[0], plural=True) if inner and inner[0] is not Ellipsis else "values"
            size = f"{low} " if low is not None and low == high else ""
            limits = "" if size else "".join([f" (at least {low})" if low else "", f" (at most {high})" if high else ""])
            return f"{'lists' if plural else 'a list'} of {size}{items}{limits}"
        return describe(base, plural) + bounds
    if origin in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        text = " or ".join(describe(a, plural) for a in kinds)
        return text + (" or null" if len(kinds) < len(args) else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple, Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"{'lists' if plural else 'a list'} [{', '.join(describe(a) for a in args)}]"
        items = describe(args[0], plural=True) if args else "values"
        return f"{'lists' if plural else 'a list'} of {items}"
    if annotation in _NOUNS:
        return _NOUNS[annotation][1 if plural else 0]
    if annotation is Any:
        return "any value"
    return getattr(annotation, "__name__", str(annotation))


def option_names(factory: Callable) -> tuple[list[str], bool]:
    """(the options a factory takes besides its inputs, whether it also takes **options: any name)."""
    params = inspect.signature(factory).parameters.values()
    names = [p.name for p in params if p.name not in NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)
