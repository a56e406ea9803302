"""Strategy plugins; importing this package does not import the built-in families."""

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
    strategies_from_spec,
    unregister,
)

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
