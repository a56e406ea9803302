"""Strategy plugins; importing this package does not import the built-in families."""

from compress.strategies.base import (
    ENTRY_POINT_GROUP,
    Compressed,
    Context,
    RegistryError,
    Skip,
    Strategy,
    register,
    registry,
    select,
    strategies_from_spec,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Compressed",
    "Context",
    "RegistryError",
    "Skip",
    "Strategy",
    "register",
    "registry",
    "select",
    "strategies_from_spec",
    "unregister",
]
