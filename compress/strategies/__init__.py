"""Strategies: plugins that turn a clone of the teacher into a compressed model, and return it
with notes.  One class per file plus ``@register`` (or an entry point in the
``compress.strategies`` group); ``compress.testing.check_strategy`` holds each to the contract.

Strategies never measure: they may import ``compress.models`` (training, conversion, reading
their own candidate flatbuffers to decide), ``compress.data`` and ``compress.common``, never
``measure``, ``results`` or anything after them.  A family (a module that registers) never
imports another: what families share lives in shared modules (``apply``, ``students``,
``notes``, ``quantizing``...).  Importing this package does not import the built-in families.
"""

from compress.strategies.base import (
    ENTRY_POINT_GROUP,
    Choice,
    Compressed,
    Context,
    Range,
    RegistryError,
    Skip,
    Strategy,
    Task,
    register,
    registry,
    select,
    unregister,
)
from compress.strategies.resolve import strategies_from_spec

__all__ = [
    "ENTRY_POINT_GROUP",
    "Choice",
    "Compressed",
    "Context",
    "Range",
    "RegistryError",
    "Skip",
    "Strategy",
    "Task",
    "register",
    "registry",
    "select",
    "strategies_from_spec",
    "unregister",
]
