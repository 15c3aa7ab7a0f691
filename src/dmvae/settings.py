"""Typed settings: values from the command line, a TOML file or config.json, checked against the
type annotations of a frozen dataclass before anything uses them.

`--set model.gamma=10` reaches the model as a float that was checked here, not as a string that
fails three modules later; an unknown name is answered with the names that exist.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from dmvae.errors import ConfigError

T = TypeVar("T")


def parse_value(text: str) -> Any:
    """A `--set` value: JSON where it parses as JSON (numbers, true/false, null, lists, dicts),
    else the string itself (paths, device names)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` items (from repeated `--set`) as a dict of parsed values."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        settings[key.strip()] = parse_value(value.strip())
    return settings


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """`value` as `annotation` requires (ints are accepted as floats, lists as tuples), or a
    ConfigError that names the key, the value and the expected type."""
    ok, result = _coerce(value, annotation)
    if not ok:
        raise ConfigError(
            f"setting {key!r} must be {type_name(annotation)}, got {value!r} "
            f"({type(value).__name__})"
        )
    return result


def _coerce(value: Any, annotation: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True, value
    if annotation is type(None):
        return value is None, None
    if origin in (Union, types.UnionType):
        for arm in args:
            ok, result = _coerce(value, arm)
            if ok:
                return True, result
        return False, None
    if origin is typing.Literal:
        return value in args, value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
        if not isinstance(value, (list, tuple)):
            return False, None
        parts = [_coerce(v, args[0]) for v in value]
        return all(ok for ok, _ in parts), tuple(r for _, r in parts)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return False, None
        parts = [_coerce(v, a) for v, a in zip(value, args, strict=True)]
        return all(ok for ok, _ in parts), tuple(r for _, r in parts)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False, None
        parts = {k: _coerce(v, args[1]) for k, v in value.items()}
        good = all(isinstance(k, str) for k in value) and all(ok for ok, _ in parts.values())
        return good, {k: r for k, (_, r) in parts.items()}
    if annotation is float:
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
        return good, float(value) if good else None
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(annotation, type):
        return isinstance(value, annotation), value
    raise TypeError(f"unsupported setting type {annotation!r}")


def type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {type_name(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} ({', '.join(type_name(a) for a in args)})"
    if origin in (dict, Mapping):
        return f"a table of {type_name(args[1])} by name"
    return getattr(annotation, "__name__", str(annotation))


def build(cls: type[T], values: Mapping[str, Any], section: str) -> T:
    """An instance of dataclass `cls` from `values`, every value type-checked; unknown names are
    answered with the list of valid ones."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(
            f"unknown {section} settings {unknown}; valid ones are "
            f"{[f'{section}.{k}' for k in types_]}"
        )
    checked = {k: coerce(v, types_[k], f"{section}.{k}") for k, v in values.items()}
    try:
        return cls(**checked)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid {section} settings: {err}") from err


def replace(obj: T, values: Mapping[str, Any], section: str) -> T:
    """A copy of dataclass instance `obj` with `values` set (type-checked, validated again)."""
    if not values:
        return obj
    return build(type(obj), {**as_dict(obj), **values}, section)


def as_dict(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass instance, one level deep (nested values are copied, so that a
    change to the result never reaches `obj`)."""
    return {f.name: _copy(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value
