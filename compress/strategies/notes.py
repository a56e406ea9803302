"""How strategies word their notes and skip reasons: short lists of layers, grouped by why a
library left them alone, and a library's error cut to one line.

Shared by the families (pruning, clustering, quantization), which never import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compress.models.backend import keras

#: Layers named in notes and skip reasons before "and N more".
NAMED = 6


def named(items: list[str]) -> str:
    """A short list for notes: the first few, then how many more."""
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(items[:NAMED]) + more


def by_reason(left: list[tuple[keras.layers.Layer, str]]) -> str:
    """Layers a library left alone, grouped by why: "reason: name (Class), ...; reason: ..."."""
    groups: dict[str, list[str]] = {}
    for layer, reason in left:
        groups.setdefault(reason, []).append(f"{layer.name} ({type(layer).__name__})")
    return "; ".join(f"{reason}: {named(names)}" for reason, names in groups.items())


def first_line(error: Exception) -> str:
    """The first line of a library's error (tfmot's run to pages), or its type when it says nothing."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
