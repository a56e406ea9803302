"""The reference row: the teacher itself, converted to float32 TFLite."""

from __future__ import annotations

from compress.strategies.base import Compressed, Context, Strategy, register


@register
class Baseline(Strategy):
    name = "baseline"
    family = "baseline"
    summary = "The teacher as float32 TFLite: the reference every other row is compared to."
    role = "baseline"
    cost = 0.0

    def __init__(self) -> None:
        pass

    def compress(self, ctx: Context) -> Compressed:
        return Compressed(model=ctx.teacher, notes="Uncompressed float32 teacher.")
