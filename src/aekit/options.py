"""The machinery of aekit's dataclass configs: fields that carry their CLI help, the flags derived
from them, a JSON round trip that refuses unknown keys and wrong types, and the range checks the
configs share. Each config lives beside what it configures (:mod:`aekit.data.config`,
:mod:`aekit.models.config`, :mod:`aekit.training.config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import numbers
import types
import typing
from dataclasses import field, fields
from typing import Any, TypeVar

from .errors import AekitError

T = TypeVar("T")

# The side of the square images are resized to (--image-size) and a model's input: the models halve
# it three times, and 4096 is far beyond any use while a typo (a few extra zeros) is one line
# rather than an allocator error minutes later.
MIN_SIDE, MAX_SIDE = 8, 4096


def check_side(size: object, flag: str = "--image-size", low: int = MIN_SIDE) -> None:
    """Refuse an image side that is not a whole number of pixels in [low, MAX_SIDE] (the
    loader takes any small size; a model's input is at least MIN_SIDE)."""
    if size is None:
        return
    if (
        isinstance(size, bool)
        or not isinstance(size, numbers.Integral)
        or not low <= size <= MAX_SIDE
    ):
        raise AekitError(
            f"{flag} must be a whole number of pixels from {low} to {MAX_SIDE:,}, got {size!r}"
        )


def check_range(flag: str, value: int | float, low: int | float, high: int | float) -> None:
    """Refuse ``value`` outside [low, high] (and NaN) with one line naming the flag."""
    if not low <= value <= high:
        raise AekitError(f"{flag} must be between {low:,} and {high:,}, got {value}")


def option(help: str, default: Any, flag: str | None = None) -> Any:
    """A dataclass field with CLI metadata: ``help`` text and an optional flag name."""
    return field(default=default, metadata={"help": help, "flag": flag})


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a plain JSON-ready dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, refusing keys it does not know (as minGPT's config merge) and
    values of the wrong type (a saved config may have been edited or damaged)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise AekitError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _has_type(value, hints[name]):
            raise AekitError(f"{cls.__name__}.{name} is {value!r}, not of type {hints[name]}")
    return cls(**data)


def _has_type(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits a field type: str, int, float, bool, or one of them | None."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_has_type(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return type(value) in (int, float)
    return type(value) is tp  # bool is not an int here, nor an int a bool


def _base_type(tp: Any) -> type:
    """``int | None`` -> ``int``: the type a flag's value is parsed as."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    choices: dict[str, list[str]] | None = None,
) -> None:
    """Add one ``--flag`` per field of the dataclass ``cls`` (defaults left to the dataclass);
    ``choices`` lists the valid values of some fields (e.g. the registered model families)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        kind: dict[str, Any] = {"type": _base_type(hints[f.name])}
        if f.name in (choices or {}):
            kind["choices"] = choices[f.name]  # type: ignore[index]
        if hints[f.name] is bool:  # a switch: --no-x turns off what is on by default
            flag = flag.replace("--", "--no-") if f.default else flag
            kind = {"action": "store_const", "const": not f.default}
        parser.add_argument(
            flag, dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help"), **kind
        )


def from_namespace(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the flags the user gave (others keep the dataclass defaults)."""
    given = {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)}  # type: ignore[arg-type]
    given.update(overrides)
    return cls(**given)
