"""Nested frozen dataclasses <-> plain mappings (YAML), strictly typed, with dotted overrides.

`from_mapping(TrainConfig, read_yaml(path))` builds a config from nested mappings: an unknown
key is an error naming its dotted path, and each value must fit its field's annotation (int,
float, bool, str, Literal[...], Optional, tuples/lists of those, nested dataclasses).
`apply_overrides(config, ["optim.peak_lr=1e-3"])` applies `--set` overrides the same way.

These files come from users and from disk, so every problem is one `ValueError` of one short
line that names the file or the key: `read_yaml` turns whatever the YAML parser raises into
one, and values in messages are shown by `short_repr`, cut to a few dozen characters.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = ["apply_overrides", "from_mapping", "parse_yaml", "read_yaml", "short_repr", "to_mapping"]

T = TypeVar("T")

_INT64 = 2**63  # config integers become tensor sizes, seeds and counters: int64 at most
_MAX_NAMES = 5  # unknown keys named in one message


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass (nested ones included) as plain dicts, lists and scalars, ready for YAML."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def read_yaml(path: str | Path) -> Any:
    """The one YAML document in `path` as plain data (None for an empty file).

    PyYAML's safe loader builds only plain data: a tag such as `!!python/object/apply` is
    refused, never run. A missing file is FileNotFoundError; anything else that keeps the file
    from being read (permissions, bytes that are not UTF-8, broken YAML, nesting too deep for
    the parser) is one ValueError naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load(text)`, with any failure one ValueError that starts with `where`."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"{where}: YAML nested too deeply to read") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{where}: not valid YAML ({_yaml_problem(error)})") from None
    except Exception as error:
        # PyYAML's constructors let ValueError, KeyError or AttributeError escape for a bad
        # tagged scalar (`!!int abc`, `!!bool maybe`, `!!timestamp x`): still a YAML problem.
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{where}: not valid YAML ({_cut(reason)})") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: what is wrong, and where."""
    if isinstance(error, yaml.MarkedYAMLError):
        what = error.problem or error.context or type(error).__name__
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return _cut(" ".join(what.split())) + where
    return _cut(" ".join(str(error).splitlines()[0].split()) or type(error).__name__)


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = _REPR.maxother = 48
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def short_repr(value: Any) -> str:
    """`repr(value)` cut to one short line, for error messages about values read from files.

    An alias bomb (a few lines of YAML that expand to millions of items) or a 5000-digit
    integer must neither flood the message nor fail to print (`repr` refuses huge ints).
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
        return f"an integer of {value.bit_length()} bits"
    return _cut(_REPR.repr(value), 80)


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `values`, checking keys and types; errors name the key path.

    A value the dataclass itself refuses (its `__post_init__`) is a ValueError prefixed with
    `where` unless its message already starts with that path.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {_kind(values)}")
    for key in values:
        if not isinstance(key, str):
            raise ValueError(f"{where or 'config'}: keys must be names, got {short_repr(key)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(_join(where, _key_name(key)) for key in unknown[:_MAX_NAMES])
        more = f" and {len(unknown) - _MAX_NAMES} more" if len(unknown) > _MAX_NAMES else ""
        raise ValueError(f"unknown config key(s): {names}{more}")
    kwargs = {
        name: _convert(hints[name], value, _join(where, name)) for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"{where or cls.__name__}: {error}") from None
    except ValueError as error:  # __post_init__ refused a value
        message = str(error)
        if where and not message.startswith(f"{where}."):
            message = f"{where}: {message}"
        raise ValueError(message) from None


def apply_overrides(config: T, overrides: Sequence[str]) -> T:
    """A copy of `config` with `key.path=value` overrides applied (values parsed as YAML)."""
    values = to_mapping(config)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {short_repr(override)} is not of the form key.path=value")
        node = values
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            if part not in node:
                raise ValueError(f"unknown config key: {key}")
            if not isinstance(node[part], dict):
                section = ".".join(parts[: depth + 1])
                raise ValueError(
                    f"cannot set {key}: {section} is {short_repr(node[part])}, not a section"
                )
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key: {key}")
        node[parts[-1]] = parse_yaml(text, f"--set {key}") if text.strip() else None
    return from_mapping(type(config), values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _key_name(key: str) -> str:
    """A key as it reads in a message: as is when plain, else quoted and cut."""
    return key if key.isprintable() and len(key) <= 48 else short_repr(key)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


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
        if len(errors) == 1:
            raise ValueError(errors[0])
        raise ValueError(f"{where}: {short_repr(value)} fits none of {_describe(annotation)}")
    if origin is Literal:
        # by type too: True == 1, yet `true` is not the setting 1
        if not any(type(value) is type(a) and value == a for a in args):
            raise ValueError(f"{where}: {short_repr(value)} is not one of {_describe(annotation)}")
        return value
    if origin in (tuple, list, typing.Sequence, Sequence):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {short_repr(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, float]
            if len(value) != len(args):
                raise ValueError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _convert(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _scalar(annotation, value, where)


def _describe(annotation: Any) -> str:
    """The values an annotation takes, for a message: "a number or 'tiny', 'eps'"."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _scalar(annotation: Any, value: Any, where: str) -> Any:
    if annotation is Any:
        return value
    if annotation is float:
        return _number(value, where)
    if annotation is bool and not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {short_repr(value)}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {short_repr(value)}")
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: {short_repr(value)} is too large (64 bits at most)")
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ValueError(f"{where}: expected {_describe(annotation)}, got {short_repr(value)}")
    return value


def _number(value: Any, where: str) -> float:
    """A finite float from a number, or from a string PyYAML left unparsed: it reads "5e-4"
    (no dot) as a string, yet a float field still means a number. NaN and infinity never are
    a setting: they would only surface later, as a NaN loss or an endless loop."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: expected a number, got {short_repr(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # "abc"; an int beyond float's range
        raise ValueError(f"{where}: expected a number, got {short_repr(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: expected a finite number, got {short_repr(value)}")
    return number
