"""Nested frozen dataclasses <-> plain mappings (YAML), strictly typed, with dotted overrides.

`from_mapping(TrainConfig, yaml.safe_load(text))` builds a config from nested mappings: an unknown
key is an error naming its dotted path, and each value must fit its field's annotation (int,
float, bool, str, Literal[...], Optional, tuples/lists of those, nested dataclasses).
`apply_overrides(config, ["optim.peak_lr=1e-3"])` applies `--set` overrides the same way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = ["apply_overrides", "from_mapping", "to_mapping"]

T = TypeVar("T")


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass (nested ones included) as plain dicts, lists and scalars, ready for YAML."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `values`, checking keys and types; errors name the key path."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(_join(where, key) for key in unknown)
        raise ValueError(f"unknown config key(s): {names}")
    kwargs = {
        name: _convert(hints[name], value, _join(where, name)) for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"{where or cls.__name__}: {error}") from None


def apply_overrides(config: T, overrides: Sequence[str]) -> T:
    """A copy of `config` with `key.path=value` overrides applied (values parsed as YAML)."""
    values = to_mapping(config)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {override!r} is not of the form key.path=value")
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown config key: {key.strip()}")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key: {key.strip()}")
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    return from_mapping(type(config), values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(annotation: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits no option")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ValueError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if origin in (tuple, list, typing.Sequence, Sequence):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _scalar(annotation, value, where)


def _scalar(annotation: Any, value: Any, where: str) -> Any:
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # PyYAML reads "5e-4" (no dot) as a string; a float field still means a number.
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if annotation is bool and not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if annotation is int and isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ValueError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value
