"""Saved JSON documents as frozen dataclasses: the writer builds a record and the reader gets one
back, so both sides name fields, not string keys, and a damaged file is one line saying where.

A record's field types are its schema: ``int``, ``float``, ``str``, ``bool``, ``Any``, ``X | None``,
``tuple[X, ...]`` (a JSON list), ``dict[str, X]`` and other records.  A field with a default may be
missing from a file (an older file, written before the field existed).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from compress.common.errors import UserError

R = TypeVar("R", bound="Record")

_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


class RecordError(ValueError):
    """A document that does not match its record; the message names the field."""


class Record:
    """What every saved record shares: its dict for JSON and its checked reading back."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """``data`` (parsed JSON) as this record; RecordError names the first field that does
        not fit."""
        return _decode(cls, data, "")


def read_json(path: Path, remedy: str) -> Any:
    """A saved JSON document; missing, unreadable or not JSON is one line ending in ``remedy``."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no {path.name} in {path.parent}; {remedy}") from None
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; {remedy}") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check its permissions") from None


@functools.cache
def _hints(record: type) -> dict[str, Any]:
    return typing.get_type_hints(record)


def _decode(kind: Any, value: Any, where: str) -> Any:
    """``value`` as ``kind`` (lists become tuples); anything else raises RecordError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _decode(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(kind):
        return _record(kind, _checked(value, dict, where, "an object"), where)
    if origin is tuple:
        _checked(value, (list, tuple), where, "a list")
        items = args[:1] * len(value) if ... in args else args
        if len(items) != len(value):
            raise RecordError(f"{where} holds {len(value)} items, not {len(items)}")
        return tuple(_decode(item, v, f"{where}[{i}]")
                     for i, (item, v) in enumerate(zip(items, value, strict=True)))
    if origin is dict:
        return {key: _decode(args[1], v, f"{where}[{key!r}]")
                for key, v in _checked(value, dict, where, "an object").items()}
    if isinstance(value, bool) and kind is not bool:  # JSON's true is no number
        raise RecordError(f"{where} is {_shown(value)}, not {_KINDS[kind]}")
    return _checked(value, (int, float) if kind is float else kind, where, _KINDS[kind])


def _record(kind: type, value: dict[str, Any], where: str) -> Any:
    """A record from its fields; one without a default must be there."""
    given = {}
    for field in dataclasses.fields(kind):
        at = f"{where}.{field.name}" if where else field.name
        if field.name in value:
            given[field.name] = _decode(_hints(kind)[field.name], value[field.name], at)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise RecordError(f"{at} is missing")
    return kind(**given)


def _checked(value: Any, kind: type | tuple[type, ...], where: str, expected: str) -> Any:
    if not isinstance(value, kind):
        raise RecordError(f"{where or 'it'} is {_shown(value)}, not {expected}")
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 30 else f"{text[:27]}..."
