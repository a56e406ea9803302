"""Strategies that misbehave on purpose, imported by sweep workers through `imports`."""

from __future__ import annotations

import os
from pathlib import Path

from compress.strategies import Compressed, Context, Strategy, register, registry


class CrashOnce(Strategy):
    """Kills its worker process the first time (a marker file remembers), then behaves."""

    name, family, summary = "test-crash-once", "baseline", "kills its worker once"

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def compress(self, ctx: Context) -> Compressed:
        if not Path(self.marker).exists():
            Path(self.marker).write_text("crashed")
            os._exit(1)
        return Compressed(model=ctx.teacher)


class AlwaysRaises(Strategy):
    name, family, summary = "test-raise", "baseline", "raises"

    def __init__(self) -> None:
        pass

    def compress(self, ctx: Context) -> Compressed:
        raise RuntimeError("deliberate job failure")


for _cls in (CrashOnce, AlwaysRaises):
    if _cls.name not in registry():
        register(_cls)


class Counted(Strategy):
    """The teacher as it is, one line appended to ``$COMPRESS_TEST_COUNT`` per application: how
    a test counts what a command really made, in any process."""

    name, family, summary = "test-count", "baseline", "counts its applications"

    def __init__(self) -> None:
        pass

    def compress(self, ctx: Context) -> Compressed:
        with open(os.environ["COMPRESS_TEST_COUNT"], "a") as count:
            count.write("applied\n")
        return Compressed(model=ctx.teacher)


if Counted.name not in registry():
    register(Counted)
